/**
 * The one place that scrubs secrets, by key and by value. Every output a user
 * sees — log lines, error messages, stack traces, summaries, dead-letter records,
 * metric labels — passes through a {@link Redactor} before it is written.
 *
 * Three layers, applied in this order by {@link Redactor.scrub}:
 * 1. **By value**: every registered secret (resolved references, literal values of
 *    options declared secret) in any encoding that output picks up on the way, nested
 *    to any depth — URL-encoded (either hex case, re-encoded, `+` for spaces),
 *    JSON-escaped (also `\u0022` and JSON inside JSON), HTML entities (also of JSON),
 *    base64/base64url (also inside a longer base64 text such as a `Basic` header) —
 *    in any letter case, each line of a multi-line secret (PEM keys), and a secret cut
 *    short: any prefix of {@link PREFIX_LENGTH} characters or more, whatever its length
 *    (see `matcher.ts`, which also says how short secrets are matched: as whole tokens).
 * 2. **URL passwords**: the `PASS` of `scheme://user:PASS@host`, registered or not.
 * 3. **Credential pairs in free text**: `password=…`, `"api_key": "…"`, `token: …`,
 *    `Authorization: Bearer …`, `?access_token=…` — any key ending in a credential
 *    word (see {@link isCredentialKey}), quoted or not.
 *
 * {@link Redactor.scrubValue} also redacts object properties by key.
 *
 * Limits (documented in docs/security.md): a secret shorter than
 * {@link MIN_SECRET_LENGTH} characters is redacted by key only, and one shorter than
 * {@link SHORT_SECRET_LENGTH} only as a whole token (scrubbing every `ab` or `test` of
 * every line would destroy the output, and such a secret protects little anyway;
 * validation warns about it); a secret split
 * across two separate writes, or transformed in a way not listed above (hex,
 * compression, encryption), is not recognised by value.
 */
import { inspect } from 'node:util';
import { setDisplayMasker } from '../sdk/options.js';
import { Decimal } from '../sdk/values.js';
import { SecretMatcher } from './matcher.js';

export { CUT_PREFIX, PREFIX_LENGTH, SHORT_SECRET_LENGTH } from './matcher.js';

export const REDACTED = '***REDACTED***';

/** Keys whose values are credentials wherever they appear (compared without case, `_`, `-` or spaces). */
export const CREDENTIAL_KEY_NAMES = [
  'password',
  'passwd',
  'pwd',
  'pass',
  'passphrase',
  'api_key',
  'apikey',
  'client_secret',
  'secret',
  'secret_key',
  'token',
  'access_token',
  'refresh_token',
  'bearer_token',
  'auth_token',
  'id_token',
  'session_token',
  'authorization',
  'proxy_authorization',
  'private_key',
  'x_api_key',
  'cookie',
  'set_cookie',
  'credentials',
] as const;

/**
 * Endings that make any key a credential key: `db_password`, `PGPASSWORD`,
 * `clientSecret`, `github_token`, `AWS_SECRET_ACCESS_KEY`, `stripeApiKey`.
 */
const CREDENTIAL_SUFFIXES = ['password', 'passwd', 'passphrase', 'secret', 'token', 'apikey', 'privatekey', 'secretkey', 'accesskey'];

const normaliseKey = (key: string) => key.toLowerCase().replace(/[^a-z0-9]/g, '');
const CREDENTIAL_KEYS = new Set<string>(CREDENTIAL_KEY_NAMES.map(normaliseKey));

/** Whether a key names a credential by itself (a well-known name or ending), before any key is registered. */
export function isCredentialKey(key: string): boolean {
  const k = normaliseKey(key);
  return CREDENTIAL_KEYS.has(k) || CREDENTIAL_SUFFIXES.some((s) => k.endsWith(s));
}

/**
 * Minimum length of a value to be scrubbed by value. A shorter secret is redacted
 * only where it appears under a credential key (`password: ab`) — scrubbing every
 * `ab` of every log line would wreck the output while protecting a value that can
 * be guessed in a few hundred tries anyway. `resolveReferences` warns when a
 * reference resolves to such a value.
 */
export const MIN_SECRET_LENGTH = 3;

/** Lines of a multi-line secret shorter than this are not scrubbed on their own. */
const MIN_LINE_LENGTH = 8;

// user:PASS@ in any URL-like text. PASS may contain '@' when another '@' follows before the host.
// Bounded repetitions and a scheme that must start a word keep the scan linear on hostile text.
const URL_PASSWORD =
  /(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,30}:\/\/[^\s/:@'"<>]{0,256}:)((?:[^\s'"<>@/?#]|@(?=[^\s'"<>/?#@]{0,256}@)){1,512})@/gi;

const KEY_CORE = [
  'password',
  'passwd',
  'pwd',
  'passphrase',
  'secret',
  'token',
  'api[_-]?key',
  'private[_-]?key',
  'secret[_-]?key',
  'access[_-]?key',
  'authorization',
  'cookie',
  'credentials',
].join('|');
const AUTH_SCHEME = '(?:Bearer|Basic|Token|Digest|Negotiate|NTLM|ApiKey|AWS4-HMAC-SHA256|OAuth)\\s+';
// key=value / key: value / "key":"value" / \"key\":\"value\" (JSON inside a JSON string) in free text
const KEY_VALUE = new RegExp(
  // not the kind of a reference such as ${secret:scope/key}, nor a reference as the value (docs show `password: ${env:X}`)
  `(^|[^A-Za-z0-9_.])(?<!\\$\\{)((?:\\\\?["'])?[A-Za-z0-9_-]{0,48}?(?:${KEY_CORE})(?:\\\\?["'])?\\s*[:=]\\s*)` +
    `(?:(\\\\")((?:[^"\\\\]|\\\\[^"])*)\\\\"|(")((?:[^"\\\\]|\\\\.)*)"|(')([^']*)'|(?!\\$\\{)(${AUTH_SCHEME}[^\\s"'\\\\,;&]+|[^\\s"'\\\\,;&{}()[\\]<>]+))`,
  'gi',
);

// header lines whose whole value is a credential: everything up to the end of the line (or of a JSON string)
const HEADER_VALUE = /(^|[^A-Za-z0-9_.-])((?:proxy-)?authorization|(?:set-)?cookie)(\s*:[ \t]*)(?![\\"'])([^\r\n"\\]+)/gi;

export class Redactor {
  private readonly values = new Set<string>();
  private readonly keys = new Set<string>();
  private matcher: SecretMatcher | undefined;

  /**
   * Registers a secret value; it and its encodings are scrubbed from now on. A multi-line
   * value (a PEM key) also registers each of its lines. Values shorter than
   * {@link MIN_SECRET_LENGTH} are ignored (returns false): they are redacted by key only.
   */
  addValue(value: string): boolean {
    if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH) return false;
    const before = this.values.size;
    this.values.add(value);
    if (value.includes('\n'))
      for (const line of value.split(/\r?\n/)) {
        const t = line.trim();
        if (t.length >= MIN_LINE_LENGTH) this.values.add(t);
      }
    if (this.values.size !== before) this.matcher = undefined;
    return true;
  }

  /** Registers an option name whose value is secret (from a connector's spec). */
  addKey(key: string): void {
    this.keys.add(normaliseKey(key));
  }

  /** Whether values under this key are redacted: a credential name or ending, or a registered secret option name. */
  isSecretKey(key: string): boolean {
    return this.keys.has(normaliseKey(key)) || isCredentialKey(key);
  }

  /** Number of registered secret values. */
  get size(): number {
    return this.values.size;
  }

  /** Scrubs, then shortens to at most `max` characters: cutting first could leave part of a secret. */
  truncate(text: string, max: number): string {
    const safe = this.scrub(text);
    return safe.length > max ? `${safe.slice(0, Math.max(0, max - 1))}…` : safe;
  }

  /** Scrubs a string: registered values and their encodings, URL passwords and credential key=value pairs. */
  scrub(text: string): string {
    if (typeof text !== 'string') return text;
    if (this.values.size > 0) {
      this.matcher ??= new SecretMatcher(this.values);
      // a replacement can form a new occurrence with its neighbours ("***" + "RED…"): repeat until stable
      for (let i = 0; i < 4; i++) {
        const next = replaceRanges(text, this.matcher.find(text));
        if (next === text) break;
        text = next;
      }
    }
    return text.replace(URL_PASSWORD, `$1${REDACTED}@`).replace(HEADER_VALUE, `$1$2$3${REDACTED}`).replace(KEY_VALUE, keyValueReplacer);
  }

  /**
   * A deep copy with secret keys replaced and every string scrubbed. Errors become
   * plain objects with scrubbed `type`, `message`, `stack`, own properties and `cause`
   * (also non-enumerable ones such as AggregateError's `errors`). Cycles are cut.
   */
  scrubValue(value: unknown, seen = new WeakSet<object>(), depth = 0): unknown {
    if (typeof value === 'string') return this.scrub(value);
    if (value === null || typeof value !== 'object') return typeof value === 'function' ? `[Function ${value.name || 'anonymous'}]` : value;
    if (value instanceof Date) return value;
    if (Decimal.is(value)) return this.scrub(value.text) === value.text ? value : this.scrub(value.text);
    if (seen.has(value)) return '[Circular]';
    if (depth > 32) return '[Too deep]';
    seen.add(value);
    const next = (v: unknown) => this.scrubValue(v, seen, depth + 1);
    if (value instanceof Error) {
      const out: Record<string, unknown> = { type: this.scrub(value.name), message: this.scrub(String(value.message)) };
      if (value.stack) out.stack = this.scrub(String(value.stack));
      for (const k of Object.getOwnPropertyNames(value)) {
        if (k === 'message' || k === 'stack') continue;
        out[k] = this.scrubEntry(k, read(value, k), next);
      }
      if (value.cause !== undefined) out.cause = next(value.cause);
      return out;
    }
    if (Array.isArray(value)) return value.map(next);
    if (value instanceof Uint8Array || value instanceof ArrayBuffer) return `<${value.byteLength} bytes>`;
    if (value instanceof URL) return this.scrub(value.href);
    if (value instanceof Map) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of value) out[String(k)] = this.scrubEntry(String(k), v, next);
      return out;
    }
    if (value instanceof Set) return [...value].map(next);
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value)) out[k] = this.scrubEntry(k, read(value, k), next);
    return out;
  }

  private scrubEntry(key: string, v: unknown, next: (v: unknown) => unknown): unknown {
    return this.isSecretKey(key) && v !== undefined && v !== null && v !== '' ? REDACTED : next(v);
  }

  /** `util.inspect` of anything, scrubbed. */
  inspect(value: unknown): string {
    return this.scrub(inspect(this.scrubValue(value), { depth: 6, breakLength: Number.POSITIVE_INFINITY }));
  }
}

function read(obj: object, key: string): unknown {
  try {
    return (obj as Record<string, unknown>)[key];
  } catch {
    return '[Getter threw]';
  }
}

function replaceRanges(text: string, ranges: readonly [number, number][]): string {
  if (ranges.length === 0) return text;
  let out = '';
  let at = 0;
  for (const [start, end] of ranges) {
    out += text.slice(at, start) + valueReplacer(text.slice(start, end));
    at = end;
  }
  return out + text.slice(at);
}

// A match that ends in backslashes or a quote (a secret cut short right before the quote
// that closes its string, or one ending in such a character) keeps them, so JSON and
// quoted text stay well-formed.
function valueReplacer(match: string): string {
  const tail = /\\*["']?$/.exec(match)?.[0] ?? '';
  return tail && tail.length < match.length ? `${REDACTED}${tail}` : REDACTED;
}

function keyValueReplacer(match: string, lead: string, key: string, ...groups: unknown[]): string {
  const [escQuote, escBody, dQuote, dBody, sQuote, sBody, bare] = groups as (string | undefined)[];
  if (escQuote !== undefined) return escBody ? `${lead}${key}\\"${REDACTED}\\"` : match;
  if (dQuote !== undefined) return dBody ? `${lead}${key}"${REDACTED}"` : match;
  if (sQuote !== undefined) return sBody ? `${lead}${key}'${REDACTED}'` : match;
  if (bare === undefined || bare.startsWith(REDACTED) || bare === '***' || /^(null|true|false|undefined)$/i.test(bare)) return match;
  // MySQL's "Access denied … (using password: YES)" says whether one was sent, not what it is
  if (/^(YES|NO)$/.test(bare) && /^password\s*:\s*$/i.test(key)) return match;
  // a quoted key with an unquoted value is JSON (a number): quote the replacement so it stays JSON
  const quote = /^\\?["']/.exec(key)?.[0] ?? '';
  return `${lead}${key}${quote}${REDACTED}${quote}`;
}

/** The process-wide redactor used by every output of the CLI. */
export const redactor = new Redactor();

// Validation messages built by the SDK (which depends on nothing) show values through this redactor.
setDisplayMasker((text) => redactor.scrub(text));

/**
 * Makes an options object safe to print: `util.inspect`, `console.log` and
 * `JSON.stringify` of it — and of every nested object in it — show secret keys as
 * `***REDACTED***`. The values at `secretPaths` (dotted, from the spec) are also
 * registered with the redactor by value, so they are scrubbed wherever they travel.
 * A copy made with spread or `structuredClone` loses the protection of `inspect`
 * and `JSON.stringify` but not the scrubbing by value and by key at output.
 */
export function protect<T extends object>(options: T, secretPaths: readonly string[], r: Redactor = redactor): T {
  for (const p of secretPaths) {
    const parts = p.split('.');
    r.addKey(parts[parts.length - 1] as string);
    const v = getPath(options, parts);
    for (const s of typeof v === 'string' ? [v] : collectStrings(v)) r.addValue(s);
  }
  protectObject(options, secretPaths, r, new WeakSet());
  return options;
}

function protectObject(obj: object, secretPaths: readonly string[], r: Redactor, seen: WeakSet<object>): void {
  if (seen.has(obj)) return;
  seen.add(obj);
  const redacted = () => {
    const copy = r.scrubValue(obj) as Record<string, unknown>;
    for (const p of secretPaths) {
      const parts = p.split('.');
      const parent = getPath(copy, parts.slice(0, -1));
      const last = parts[parts.length - 1] as string;
      if (parent && typeof parent === 'object' && last in parent && (parent as Record<string, unknown>)[last] !== undefined)
        (parent as Record<string, unknown>)[last] = REDACTED;
    }
    return copy;
  };
  Object.defineProperty(obj, 'toJSON', { value: redacted, enumerable: false, configurable: true, writable: true });
  Object.defineProperty(obj, inspect.custom, { value: () => redacted(), enumerable: false, configurable: true, writable: true });
  for (const [k, v] of Object.entries(obj)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype) {
      const prefix = `${k}.`;
      protectObject(
        v,
        secretPaths.filter((p) => p.startsWith(prefix)).map((p) => p.slice(prefix.length)),
        r,
        seen,
      );
    }
  }
}

function getPath(obj: unknown, parts: readonly string[]): unknown {
  let cur = obj;
  for (const part of parts) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function collectStrings(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) collectStrings(x, out);
  else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) collectStrings(x, out);
  return out;
}
