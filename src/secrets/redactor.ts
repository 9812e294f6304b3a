/**
 * The one place that scrubs secrets, by key and by value. Every output a user
 * sees — log lines, error messages, stack traces, summaries, dead-letter records,
 * metric labels — passes through a {@link Redactor} before it is written.
 */
import { inspect } from 'node:util';

export const REDACTED = '***REDACTED***';

/** Keys whose values are credentials wherever they appear. */
export const CREDENTIAL_KEY_NAMES = [
  'password',
  'passwd',
  'pwd',
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
  'authorization',
  'proxy_authorization',
  'private_key',
  'x_api_key',
  'cookie',
  'set_cookie',
] as const;

const normaliseKey = (key: string) => key.toLowerCase().replace(/[-\s]/g, '_');
const CREDENTIAL_KEYS = new Set<string>(CREDENTIAL_KEY_NAMES);

/** Minimum length of a value to be scrubbed by value; shorter secrets are still redacted by key. */
export const MIN_SECRET_LENGTH = 3;

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// user:password@ in any URL-like text
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^/\s:@'"]*:)([^@\s/'"]+)@/gi;
// key=value / key: value / "key":"value" pairs in free text (connection strings, JSON, headers)
const KEY_VALUE = new RegExp(
  `((?:^|[\\s,;&?{("'])["']?(?:${CREDENTIAL_KEY_NAMES.map((k) => k.replace(/_/g, '[_-]?')).join('|')})["']?\\s*[:=]\\s*["']?)(?!\\*\\*\\*REDACTED)((?:Bearer |Basic )?[^\\s"',;&})]+)`,
  'gi',
);

export class Redactor {
  private readonly values = new Set<string>();
  private readonly keys = new Set<string>(CREDENTIAL_KEYS);
  private valuePattern: RegExp | undefined;

  /** Registers a secret value; it and its URL-encoded and JSON-escaped forms are scrubbed from now on. */
  addValue(value: string): void {
    if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH) return;
    const forms = [value, encodeURIComponent(value), JSON.stringify(value).slice(1, -1), Buffer.from(value).toString('base64')];
    let changed = false;
    for (const form of forms) {
      if (form.length >= MIN_SECRET_LENGTH && !this.values.has(form)) {
        this.values.add(form);
        changed = true;
      }
    }
    if (changed) this.valuePattern = undefined;
  }

  /** Registers an option name whose value is secret (from a connector's spec). */
  addKey(key: string): void {
    this.keys.add(normaliseKey(key));
  }

  isSecretKey(key: string): boolean {
    return this.keys.has(normaliseKey(key));
  }

  get size(): number {
    return this.values.size;
  }

  /** Scrubs a string: registered values, URL passwords and credential key=value pairs. */
  scrub(text: string): string {
    if (this.values.size > 0) {
      this.valuePattern ??= new RegExp(
        [...this.values]
          .sort((a, b) => b.length - a.length)
          .map(escapeRegExp)
          .join('|'),
        'g',
      );
      text = text.replace(this.valuePattern, REDACTED);
    }
    return text.replace(URL_PASSWORD, `$1${REDACTED}@`).replace(KEY_VALUE, `$1${REDACTED}`);
  }

  /**
   * A deep copy with secret keys replaced and every string scrubbed. Errors become
   * plain objects with scrubbed `message`, `stack` and `cause`. Cycles are cut.
   */
  scrubValue(value: unknown, seen = new WeakSet<object>()): unknown {
    if (typeof value === 'string') return this.scrub(value);
    if (value === null || typeof value !== 'object') return value;
    if (value instanceof Date) return value;
    if (seen.has(value)) return '[Circular]';
    seen.add(value);
    if (value instanceof Error) {
      const out: Record<string, unknown> = {
        type: value.name,
        message: this.scrub(value.message),
      };
      if (value.stack) out.stack = this.scrub(value.stack);
      for (const [k, v] of Object.entries(value)) {
        if (k === 'message' || k === 'stack') continue;
        out[k] = this.isSecretKey(k) ? REDACTED : this.scrubValue(v, seen);
      }
      if (value.cause !== undefined) out.cause = this.scrubValue(value.cause, seen);
      return out;
    }
    if (Array.isArray(value)) return value.map((v) => this.scrubValue(v, seen));
    if (value instanceof Uint8Array) return `<${value.byteLength} bytes>`;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = this.isSecretKey(k) && v !== undefined && v !== null && v !== '' ? REDACTED : this.scrubValue(v, seen);
    }
    return out;
  }

  /** `util.inspect` of anything, scrubbed. */
  inspect(value: unknown): string {
    return this.scrub(inspect(this.scrubValue(value), { depth: 6, breakLength: Number.POSITIVE_INFINITY }));
  }
}

/** The process-wide redactor used by every output of the CLI. */
export const redactor = new Redactor();

/**
 * Makes an options object safe to print: `util.inspect`, `console.log` and
 * `JSON.stringify` of it show secret keys as `***REDACTED***`.
 */
export function protect<T extends object>(options: T, secretKeys: readonly string[], r: Redactor = redactor): T {
  const redacted = () => {
    const copy = r.scrubValue(options) as Record<string, unknown>;
    for (const k of secretKeys) if (k in copy && copy[k] !== undefined) copy[k] = REDACTED;
    return copy;
  };
  Object.defineProperty(options, 'toJSON', { value: redacted, enumerable: false });
  Object.defineProperty(options, inspect.custom, { value: () => redacted(), enumerable: false });
  return options;
}
