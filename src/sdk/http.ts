/**
 * The request helper for API connectors (worker side, one client per partition
 * attempt or per health check): authentication, TLS, a keep-alive pool, response
 * classification for the runtime's retries (Retry-After, 408/429/5xx, network
 * errors), rate-limit headroom from the response headers, and redaction of URLs,
 * headers and bodies in every error it throws. The http connector is built on it,
 * and so is a custom API connector (see examples/custom-connector).
 *
 * @example
 * const http = new HttpClient({ auth: { type: 'bearer', token: opts.token }, timeoutMs: 30_000 }, ctx);
 * try {
 *   const res = await http.request({ method: 'GET', url: `${opts.base_url}/items?cursor=${cursor}` });
 *   const page = res.json() as { items: Row[]; next?: string };
 * } finally {
 *   await http.close();
 * }
 */
import * as crypto from 'node:crypto';
import { createRequire } from 'node:module';
import type { ConnectionOptions } from 'node:tls';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import type { Agent, Dispatcher } from 'undici';
import type { Log } from './connector.js';
import { parseRetryAfter, RowError, WeirError } from './errors.js';
import { parseJsonExact } from './values.js';

const gzip = promisify(gzipCallback);

/** How a request authenticates. Every credential in it is scrubbed from what the client throws. */
export type HttpAuth =
  | { type: 'none' }
  | { type: 'bearer'; token: string }
  | { type: 'basic'; username: string; password: string }
  | { type: 'api_key'; header: string; value: string }
  | { type: 'oauth2_client_credentials'; token_url: string; client_id: string; client_secret: string; scope?: string };

/** What the API says is left of its rate limit (from `RateLimit-*` or `X-RateLimit-*` headers). */
export interface RateLimitHeadroom {
  limit: number;
  remaining: number;
  /** Until the window resets, when the API says. */
  resetMs?: number;
}

export interface HttpClientOptions {
  auth?: HttpAuth;
  /** Headers sent with every request. Values are treated as secrets (scrubbed from errors). */
  headers?: Record<string, string>;
  /** Whole-request timeout (connect, headers and body). */
  timeoutMs: number;
  /** TLS settings of https connections (e.g. from `tlsConfig`). */
  tls?: ConnectionOptions;
  /** Keep-alive connections per origin. */
  connections?: number;
  /** Called with the API's rate-limit headroom after each response that reports it. */
  onHeadroom?: (headroom: RateLimitHeadroom) => void;
  /** More values to scrub from errors (e.g. a token in the URL's query). */
  secrets?: readonly string[];
  /** Longest body excerpt kept in an error. */
  excerptChars?: number;
}

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';
  url: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Compress the body with gzip (sets `Content-Encoding: gzip`). */
  gzip?: boolean;
  /** Sent as `Idempotency-Key`. */
  idempotencyKey?: string;
  signal?: AbortSignal;
  /**
   * Retries of a retryable failure (network, timeout, 408, 429, 5xx) made by the
   * client itself, after `Retry-After` or an exponential backoff with jitter.
   * 0 (the default) where the runtime retries the call (a writer's `write`).
   */
  retries?: number;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The body parsed as JSON, exact (big integers and decimals keep their digits); a bad body is a retryable-free connector error. */
  json(maxDepth?: number): unknown;
}

/** Counters of one client, logged at close (requests, status classes, latency). */
export interface HttpStats {
  requests: number;
  statuses: Record<string, number>;
  latencyMs: number;
}

const REDACTED = '***REDACTED***';
const SAFE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** An HTTP error's status, when the error is one. */
export function httpStatusOf(error: unknown): number | undefined {
  return error instanceof WeirError && /^http_\d{3}$/.test(error.code) ? Number(error.code.slice(5)) : undefined;
}

/**
 * The API's rate-limit headroom from the IETF `RateLimit-Limit/Remaining/Reset`
 * headers or the common `X-RateLimit-*` ones; undefined when it reports none.
 */
export function rateLimitHeadroom(headers: Record<string, string | string[] | undefined>): RateLimitHeadroom | undefined {
  const get = (name: string) => {
    const v = headers[name];
    const s = Array.isArray(v) ? v[0] : v;
    if (s === undefined) return undefined;
    const n = Number.parseFloat(s.split(/[;,]/)[0] ?? '');
    return Number.isFinite(n) && n >= 0 ? n : undefined;
  };
  for (const prefix of ['ratelimit-', 'x-ratelimit-']) {
    const limit = get(`${prefix}limit`);
    const remaining = get(`${prefix}remaining`);
    if (limit === undefined || remaining === undefined || limit <= 0) continue;
    const reset = get(`${prefix}reset`);
    // a reset above a year in seconds is an epoch time (GitHub's X-RateLimit-Reset)
    const resetMs = reset === undefined ? undefined : reset > 31_536_000 ? Math.max(0, reset * 1000 - Date.now()) : reset * 1000;
    return { limit, remaining: Math.min(remaining, limit), resetMs };
  }
  return undefined;
}

/** A stable Idempotency-Key from its parts (run, partition, batch): the same on every retry of the batch. */
export function idempotencyKey(...parts: (string | number)[]): string {
  return sha256Hex(parts.join('\u0000')).slice(0, 32);
}

/** SHA-256 in hex: the one-shot `crypto.hash` (Node 20.12+), a fraction of a `Hash` object's cost for short input. */
const sha256Hex: (text: string) => string =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'hex')
    : (text) => crypto.createHash('sha256').update(text).digest('hex');

/** Forms a secret may take in an echoed error: as it is, URL-encoded, base64. */
function secretForms(value: string): string[] {
  if (value.length < 3) return [];
  return [value, encodeURIComponent(value), Buffer.from(value).toString('base64')];
}

/** A URL with its userinfo and query values replaced, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username) u.username = REDACTED;
    if (u.password) u.password = REDACTED;
    for (const key of [...u.searchParams.keys()]) u.searchParams.set(key, REDACTED);
    return u.toString().replaceAll(encodeURIComponent(REDACTED), REDACTED);
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * An HTTP client for one partition attempt or one health check (worker). Throws
 * only {@link WeirError}s: `retryable` for network errors, timeouts, 408, 429 and
 * 5xx (with `retryAfterMs` from `Retry-After`), a {@link BatchRefused} row error
 * for any other 4xx, so the runtime dead-letters the request's rows. Close it.
 */
type Undici = typeof import('undici');
let undici: Undici | undefined;
/** undici, loaded by the first client: it took ~60 ms of every `weir` start-up (even `--version`), and most runs make no request. */
const loadUndici = (): Undici => {
  undici ??= createRequire(import.meta.url)('undici') as Undici;
  return undici;
};

export class HttpClient {
  readonly stats: HttpStats = { requests: 0, statuses: {}, latencyMs: 0 };
  private readonly agent: Agent;
  private readonly secrets = new Set<string>();
  private accessToken?: { value: string; expiresAt: number };
  /** The auth headers that do not change between requests (bearer, basic, API key), made once. */
  private readonly authHeaders: Record<string, string>;
  /** The requests in flight: the run stopping aborts them all, through one listener per client rather than one per request. */
  private readonly inFlight = new Set<AbortController>();
  /** The last URL requested, parsed: a sink sends every request to the same one. */
  private lastTarget?: { url: string; origin: string; path: string };
  /** Controllers of finished requests that were not aborted, for the next ones (an AbortSignal is costly to make). */
  private readonly idle: AbortController[] = [];
  private readonly onStop = () => {
    for (const controller of this.inFlight) controller.abort(this.ctx.signal?.reason);
  };

  constructor(
    private readonly options: HttpClientOptions,
    private readonly ctx: { log: Log; signal?: AbortSignal },
  ) {
    this.agent = new (loadUndici().Agent)({
      connections: options.connections ?? 8,
      connect: { ...options.tls, timeout: options.timeoutMs },
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    });
    const auth = options.auth;
    if (auth?.type === 'bearer') this.addSecret(auth.token);
    if (auth?.type === 'api_key') this.addSecret(auth.value);
    if (auth?.type === 'basic') {
      this.addSecret(auth.password);
      this.addSecret(`${auth.username}:${auth.password}`);
    }
    if (auth?.type === 'oauth2_client_credentials') {
      this.addSecret(auth.client_secret);
      this.addSecret(`${encodeURIComponent(auth.client_id)}:${encodeURIComponent(auth.client_secret)}`);
    }
    for (const v of Object.values(options.headers ?? {})) this.addSecret(v);
    for (const v of options.secrets ?? []) this.addSecret(v);
    this.authHeaders = staticAuthHeaders(auth);
    ctx.signal?.addEventListener('abort', this.onStop, { once: true });
  }

  /** A URL as undici's dispatcher takes it (what `undici.request(url)` does), parsed once per distinct URL in a row. */
  private target(url: string): { origin: string; path: string } {
    if (this.lastTarget?.url !== url) {
      const u = new URL(url);
      this.lastTarget = { url, origin: u.origin, path: `${u.pathname}${u.search}` };
    }
    return this.lastTarget;
  }

  /**
   * The signal of one request: aborted when the run stops or the caller's signal aborts
   * (with its reason), or when the timeout passed (a `TimeoutError`). `done()` clears the
   * timer once the answer is read, so nothing outlives the request (`AbortSignal.timeout`
   * would keep a timer per request for the whole `timeout`).
   */
  private deadline(caller?: AbortSignal): { signal: AbortSignal; done(): void } {
    const controller = this.idle.pop() ?? new AbortController();
    const timeoutMs = this.options.timeoutMs;
    const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
    const onAbort = () => controller.abort(caller?.reason);
    if (this.ctx.signal?.aborted) controller.abort(this.ctx.signal.reason);
    else if (caller?.aborted) onAbort();
    caller?.addEventListener('abort', onAbort, { once: true });
    this.inFlight.add(controller);
    return {
      signal: controller.signal,
      done: () => {
        clearTimeout(timer);
        this.inFlight.delete(controller);
        caller?.removeEventListener('abort', onAbort);
        if (!controller.signal.aborted) this.idle.push(controller);
      },
    };
  }

  private addSecret(value: string): void {
    for (const form of secretForms(value)) this.secrets.add(form);
    // a header value like "Bearer <token>": its parts too
    for (const part of value.split(/\s+/)) if (part !== value) for (const form of secretForms(part)) this.secrets.add(form);
  }

  /** Text with every credential this client knows (and anything that looks like an Authorization header) replaced. */
  scrub(text: string): string {
    let out = text;
    for (const s of [...this.secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join(REDACTED);
    return out
      .replace(
        /((?:authorization|proxy-authorization|x-api-key|api[_-]?key|token)["']?\s*[:=]\s*["']?)(?:(?:bearer|basic)\s+)?[^\s"'&,;}]+/gi,
        `$1${REDACTED}`,
      )
      .replace(/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`);
  }

  /** Sends one request; see the class for what it throws. A 401 with OAuth2 refreshes the token and tries once more. */
  async request(req: HttpRequest): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.requestOnce(req);
      } catch (error) {
        if (!(error instanceof WeirError) || !error.retryable || attempt >= (req.retries ?? 0)) throw error;
        const wait = error.retryAfterMs ?? Math.min(10_000, 200 * 2 ** attempt) * (0.5 + Math.random() / 2);
        this.ctx.log.warn('http request retried', {
          error_type: error.code,
          error_message: error.message,
          attempt: attempt + 1,
          delay_ms: Math.round(wait),
        });
        await sleep(wait, req.signal, this.ctx.signal);
      }
    }
  }

  private async requestOnce(req: HttpRequest): Promise<HttpResponse> {
    const first = await this.send(req, false);
    if (first.status === 401 && this.options.auth?.type === 'oauth2_client_credentials') {
      this.accessToken = undefined;
      return this.classify(req, await this.send(req, true));
    }
    return this.classify(req, first);
  }

  private async send(req: HttpRequest, isRetryOf401: boolean): Promise<HttpResponse> {
    const headers: Record<string, string> = { ...this.options.headers, ...req.headers, ...this.authHeaders };
    const auth = this.options.auth;
    if (auth?.type === 'oauth2_client_credentials') headers.authorization = `Bearer ${await this.oauthToken(auth)}`;
    if (req.idempotencyKey) headers['idempotency-key'] = req.idempotencyKey;
    let body = req.body;
    if (body !== undefined && req.gzip) {
      body = await gzip(body);
      headers['content-encoding'] = 'gzip';
    }
    const started = performance.now();
    this.stats.requests++;
    const deadline = this.deadline(req.signal);
    let res: Dispatcher.ResponseData;
    let buf: Buffer;
    try {
      res = await this.agent.request({ ...this.target(req.url), method: req.method, headers, body, signal: deadline.signal });
      buf = req.method === 'HEAD' ? Buffer.alloc(0) : Buffer.from(await res.body.arrayBuffer());
    } catch (error) {
      this.count('network');
      throw this.networkError(req, error, isRetryOf401);
    } finally {
      deadline.done();
    }
    this.stats.latencyMs += performance.now() - started;
    this.count(String(res.statusCode));
    const headroom = rateLimitHeadroom(res.headers);
    if (headroom) this.options.onHeadroom?.(headroom);
    return {
      status: res.statusCode,
      headers: res.headers,
      body: buf,
      json: (maxDepth?: number) => {
        try {
          return parseJsonExact(buf.toString('utf8'), maxDepth);
        } catch (error) {
          throw new WeirError(`${req.method} ${redactUrl(req.url)}: the response is not JSON (${this.scrub((error as Error).message)})`, {
            code: 'http_bad_json',
          });
        }
      },
    };
  }

  private count(key: string): void {
    this.stats.statuses[key] = (this.stats.statuses[key] ?? 0) + 1;
  }

  private networkError(req: HttpRequest, error: unknown, _second: boolean): WeirError {
    const e = error as { code?: string; name?: string; message?: string };
    const aborted = e.name === 'AbortError' || e.name === 'TimeoutError';
    if (aborted && this.ctx.signal?.aborted) return new WeirError('run stopped', { kind: 'cancelled', code: 'cancelled' });
    const what = aborted
      ? `no answer within ${this.options.timeoutMs} ms`
      : `${e.code ?? e.name ?? 'error'}: ${this.scrub(e.message ?? '')}`;
    const tls = /CERT|SSL|TLS|self.signed/i.test(`${e.code} ${e.message}`);
    return new WeirError(
      `${req.method} ${redactUrl(req.url)} failed: ${what}${tls ? '; check ssl_ca_cert (the CA that signed the server certificate) and the host name' : ''}`,
      { code: tls ? 'http_tls' : aborted ? 'http_timeout' : 'http_network', retryable: !tls },
    );
  }

  private classify(req: HttpRequest, res: HttpResponse): HttpResponse {
    const { status } = res;
    if (status >= 200 && status < 300) return res;
    const excerpt = this.excerpt(res.body);
    const where = `HTTP ${status} from ${req.method} ${redactUrl(req.url)}`;
    if (SAFE_STATUS.has(status) || status >= 500) {
      const retryAfterMs = status === 429 || status === 503 ? parseRetryAfter(header(res.headers, 'retry-after')) : undefined;
      throw new WeirError(`${where}${excerpt ? `: ${excerpt}` : ''}`, { code: `http_${status}`, retryable: true, retryAfterMs });
    }
    if (status === 401 || status === 403)
      throw new BatchRefused(`${where}: the credentials were refused (check auth and headers)${excerpt ? `: ${excerpt}` : ''}`, status);
    if (status >= 400) throw new BatchRefused(`${where}${excerpt ? `: ${excerpt}` : ''}`, status);
    throw new WeirError(`${where}: unexpected status (redirects are not followed; set url to the final address)`, {
      code: `http_${status}`,
    });
  }

  private excerpt(body: Buffer): string {
    if (body.length === 0) return '';
    const max = this.options.excerptChars ?? 300;
    const text = this.scrub(body.subarray(0, max * 4).toString('utf8')).replace(/\s+/g, ' ');
    return text.length > max ? `${text.slice(0, max)}…` : text;
  }

  /** The cached client-credentials token, fetched again 30 s before it expires. */
  private async oauthToken(auth: Extract<HttpAuth, { type: 'oauth2_client_credentials' }>): Promise<string> {
    if (this.accessToken && this.accessToken.expiresAt > Date.now() + 30_000) return this.accessToken.value;
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (auth.scope) form.set('scope', auth.scope);
    const basic = Buffer.from(`${encodeURIComponent(auth.client_id)}:${encodeURIComponent(auth.client_secret)}`).toString('base64');
    const deadline = this.deadline();
    let res: Dispatcher.ResponseData;
    let text: string;
    try {
      res = await loadUndici().request(auth.token_url, {
        dispatcher: this.agent,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}`, accept: 'application/json' },
        body: form.toString(),
        signal: deadline.signal,
      });
      text = await res.body.text();
    } catch (error) {
      throw this.networkError({ method: 'POST', url: auth.token_url }, error, false);
    } finally {
      deadline.done();
    }
    if (res.statusCode !== 200) {
      throw new WeirError(
        `auth.token_url: HTTP ${res.statusCode} from ${redactUrl(auth.token_url)}: ${this.excerpt(Buffer.from(text))}; check auth.client_id and auth.client_secret`,
        { code: 'http_oauth2', retryable: res.statusCode >= 500 || res.statusCode === 429 },
      );
    }
    let body: { access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new WeirError(`auth.token_url: the token response of ${redactUrl(auth.token_url)} is not JSON`, { code: 'http_oauth2' });
    }
    if (typeof body.access_token !== 'string' || body.access_token === '')
      throw new WeirError(`auth.token_url: the token response of ${redactUrl(auth.token_url)} has no access_token`, {
        code: 'http_oauth2',
      });
    this.addSecret(body.access_token);
    const expiresIn = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 3600;
    this.accessToken = { value: body.access_token, expiresAt: Date.now() + expiresIn * 1000 };
    return body.access_token;
  }

  /** Closes the pool; logs the client's counters at debug level. */
  async close(): Promise<void> {
    this.ctx.signal?.removeEventListener('abort', this.onStop);
    if (this.stats.requests > 0)
      this.ctx.log.debug('http client closed', {
        requests: this.stats.requests,
        statuses: this.stats.statuses,
        latency_ms_avg: Math.round(this.stats.latencyMs / this.stats.requests),
      });
    await this.agent.close();
  }
}

/**
 * The API refused a request for what it carried (a 4xx other than 408 and 429): the
 * request's rows are the bad records. The runtime dead-letters them all together
 * with `errors.tolerance: all` (never resending them), else the run fails.
 */
export class BatchRefused extends RowError {
  /** All the rows of the refused request are bad together: the runtime does not split the batch to find one. */
  readonly wholeBatch = true;
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message, { code: `http_${status}` });
  }
}

/** Waits `ms`; rejects as cancelled when either signal aborts first. */
function sleep(ms: number, a: AbortSignal | undefined, b: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const settle = (stopped: boolean) => {
      clearTimeout(timer);
      a?.removeEventListener('abort', onAbort);
      b?.removeEventListener('abort', onAbort);
      if (stopped) reject(new WeirError('run stopped', { kind: 'cancelled', code: 'cancelled' }));
      else resolve();
    };
    const onAbort = () => settle(true);
    if (a?.aborted || b?.aborted) return settle(true);
    timer = setTimeout(() => settle(false), ms);
    a?.addEventListener('abort', onAbort, { once: true });
    b?.addEventListener('abort', onAbort, { once: true });
  });
}

function header(headers: HttpResponse['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The headers of an auth that does not change between requests; none for OAuth2 (its token is fetched and cached). */
function staticAuthHeaders(auth: HttpAuth | undefined): Record<string, string> {
  switch (auth?.type) {
    case 'bearer':
      return { authorization: `Bearer ${auth.token}` };
    case 'basic':
      return { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` };
    case 'api_key':
      return { [auth.header.toLowerCase()]: auth.value };
    default:
      return {};
  }
}
