/**
 * A local HTTP API for the http connector's tests (node:http): it stores the rows
 * of each request once per Idempotency-Key, and misbehaves on request as a real
 * API does — 429 with Retry-After, 503, slow answers, connection resets, a 400
 * that echoes the request's headers and URL, OAuth2 tokens that expire.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface ReceivedRequest {
  at: number;
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  key: string | undefined;
  status: number;
}

/** What the API does with a request it has not stored yet: answer normally (undefined) or misbehave. */
export type Behaviour = (
  req: ReceivedRequest,
  api: TestApi,
) => { status: number; headers?: Record<string, string>; body?: string; delayMs?: number; reset?: boolean } | undefined;

export interface TestApi {
  url: string;
  requests: ReceivedRequest[];
  /** Rows stored, once per Idempotency-Key. */
  rows: Record<string, unknown>[];
  /** Keys seen with the rows they stored. */
  stored: Map<string, number>;
  behaviour: Behaviour | undefined;
  /** Headers added to every answer (e.g. X-RateLimit-*). */
  extraHeaders: Record<string, string>;
  /** OAuth2: tokens issued, and the client credentials accepted. */
  oauth: { clientId: string; clientSecret: string; expiresIn: number; issued: string[]; valid: Set<string> };
  close(): Promise<void>;
}

function parseRows(body: string, contentType: string | undefined): Record<string, unknown>[] {
  if (body === '') return [];
  if (contentType?.includes('ndjson'))
    return body
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const parsed = JSON.parse(body) as unknown;
  return Array.isArray(parsed) ? (parsed as Record<string, unknown>[]) : [parsed as Record<string, unknown>];
}

export async function startTestApi(): Promise<TestApi> {
  const api: TestApi = {
    url: '',
    requests: [],
    rows: [],
    stored: new Map(),
    behaviour: undefined,
    extraHeaders: {},
    oauth: { clientId: 'weir-client', clientSecret: '', expiresIn: 3600, issued: [], valid: new Set() },
    close: async () => {},
  };
  let counter = 0;
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let raw = Buffer.concat(chunks);
    if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
    const body = raw.toString('utf8');
    const key = req.headers['idempotency-key'] as string | undefined;
    const r: ReceivedRequest = {
      at: performance.now(),
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body,
      key,
      status: 0,
    };
    api.requests.push(r);
    const answer = (status: number, text = '', headers: Record<string, string> = {}) => {
      r.status = status;
      res.writeHead(status, { 'content-type': 'application/json', ...api.extraHeaders, ...headers });
      res.end(text);
    };
    if (req.url === '/oauth/token') {
      const basic = Buffer.from(`${api.oauth.clientId}:${api.oauth.clientSecret}`).toString('base64');
      if (req.headers.authorization !== `Basic ${basic}`) return answer(401, JSON.stringify({ error: 'invalid_client' }));
      const token = `tok-${++counter}-${Math.random().toString(36).slice(2)}`;
      api.oauth.issued.push(token);
      api.oauth.valid.add(token);
      return answer(200, JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: api.oauth.expiresIn }));
    }
    if (req.url?.startsWith('/oauth/') && !api.oauth.valid.has(String(req.headers.authorization).replace(/^Bearer /, '')))
      return answer(401, JSON.stringify({ error: 'token expired' }));
    if (key !== undefined && api.stored.has(key)) return answer(200, JSON.stringify({ duplicate: true }));
    const special = api.behaviour?.(r, api);
    if (special) {
      if (special.delayMs) await new Promise((ok) => setTimeout(ok, special.delayMs));
      if (special.reset) {
        r.status = -1;
        req.socket.destroy();
        return;
      }
      return answer(special.status, special.body ?? '', special.headers);
    }
    if (req.method === 'HEAD' || req.method === 'GET') return answer(200, req.method === 'GET' ? '{"ok":true}' : '');
    const rows = parseRows(body, req.headers['content-type']);
    api.rows.push(...rows);
    if (key !== undefined) api.stored.set(key, rows.length);
    answer(200, JSON.stringify({ stored: rows.length }));
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: Error) => {
      res.writeHead(500);
      res.end(error.message);
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  api.close = () =>
    new Promise<void>((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    });
  return api;
}

/** A 400 whose body echoes what the request carried: its URL and every header (Authorization included). */
export const echoBadRequest: Behaviour = (r) => ({
  status: 400,
  body: JSON.stringify({ error: 'invalid payload', url: r.url, headers: r.headers }),
});
