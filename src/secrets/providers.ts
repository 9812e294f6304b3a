/**
 * Secret providers: where `${env:…}`, `${file:…}` and `${secret:scope/key}` get their
 * values. A scope in the pipeline's `secrets:` section is a provider plus its location;
 * add a store by implementing {@link SecretProvider} and registering it in {@link PROVIDERS}.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface SecretProvider {
  /** Returns the value of `key`, or undefined when the store has no such key. Throws when the store itself is unreadable. */
  get(key: string): string | undefined;
}

export interface ScopeConfig {
  provider: string;
  path?: string;
  prefix?: string;
}

/** Files holding secrets should be private; like ssh, weir warns when group or others can read them. */
export function permissionWarning(path: string): string | undefined {
  try {
    const mode = statSync(path).mode;
    if (mode & 0o077)
      return `secret file ${path} is ${mode & 0o044 ? 'readable' : 'writable'} by group or others (mode ${(mode & 0o777).toString(8)}); run chmod 600 ${path}`;
  } catch {
    // unreadable files are reported by the caller
  }
  return undefined;
}

/** Secret files larger than this are refused (a mistyped path such as /dev/zero must not hang the run). */
export const MAX_SECRET_FILE_BYTES = 1024 * 1024;

/** Reads a secret file: a regular file (symlinks followed, as Kubernetes mounts them) of at most 1 MB. */
export function readSecretFile(path: string): string {
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new Error(`file ${path} is not a regular file`);
    if (st.size > MAX_SECRET_FILE_BYTES)
      throw new Error(`file ${path} is larger than ${MAX_SECRET_FILE_BYTES} bytes; is it really a secret?`);
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (!code) throw error;
    throw new Error(code === 'ENOENT' ? `file ${path} does not exist` : `file ${path} cannot be read (${code})`);
  }
}

/**
 * Parses a JSON object or a dotenv file into key → value. JSON: nested keys are also
 * reachable by dotted path (`db.password`), non-string values as JSON text. dotenv:
 * `KEY=value`, optional `export `, `#` comments (also after an unquoted value),
 * 'single-quoted' literal and "double-quoted" values with `\n`, `\"` and `\\` escapes.
 * Errors never quote the file's content.
 */
export function parseKeyFile(text: string, path: string): Record<string, string> {
  const trimmed = text.replace(/^\uFEFF/, '').trim();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new Error(`file ${path} looks like JSON but does not parse`);
    }
    const out: Record<string, string> = Object.create(null);
    flatten(parsed as Record<string, unknown>, '', out);
    return out;
  }
  // no prototype: a key is found only when the file has it (never `constructor` or `toString` of Object.prototype)
  const out: Record<string, string> = Object.create(null);
  for (const line of trimmed.split(/\r?\n/)) {
    if (line.trim().startsWith('#')) continue;
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    let value = m[2] ?? '';
    const dq = /^"((?:[^"\\]|\\.)*)"(\s+#.*)?$/.exec(value);
    const sq = /^'([^']*)'(\s+#.*)?$/.exec(value);
    if (dq) value = (dq[1] ?? '').replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c === 't' ? '\t' : c));
    else if (sq) value = sq[1] ?? '';
    else value = value.replace(/\s+#.*$/, '');
    out[m[1] as string] = value;
  }
  return out;
}

function flatten(obj: Record<string, unknown>, prefix: string, out: Record<string, string>): void {
  for (const [k, v] of Object.entries(obj)) {
    if (v === null || v === undefined) continue;
    const key = prefix ? `${prefix}.${k}` : k;
    out[key] = typeof v === 'string' ? v : JSON.stringify(v);
    if (typeof v === 'object' && !Array.isArray(v)) flatten(v as Record<string, unknown>, key, out);
  }
}

/**
 * Makes a provider for one scope. Runs on the planner (and on each worker, which
 * resolves its own secrets), once per scope per run; `warn` reports insecure
 * storage such as a world-readable file.
 */
export type ProviderFactory = (scope: ScopeConfig, warn: (msg: string) => void) => SecretProvider;

/**
 * The secret stores a `secrets:` scope can name. Add one with {@link registerSecretProvider}
 * (its name must also be accepted by the pipeline spec's `provider` option).
 */
export const PROVIDERS: Record<string, ProviderFactory> = {
  /** Environment variables, optionally with a prefix: key `db_password` with prefix `APP_` reads `APP_db_password`. */
  env: (scope) => ({
    get: (key) => {
      const name = `${scope.prefix ?? ''}${key}`;
      return Object.hasOwn(process.env, name) ? process.env[name] : undefined;
    },
  }),
  /** One JSON or dotenv file holding many keys. */
  file: (scope, warn) => {
    let cache: Record<string, string> | undefined;
    return {
      get: (key) => {
        if (!cache) {
          const path = scope.path as string;
          const w = permissionWarning(path);
          if (w) warn(w);
          cache = parseKeyFile(readSecretFile(path), path);
        }
        return cache[key];
      },
    };
  },
  /** A directory with one file per key (Docker and Kubernetes secrets); values are trimmed. */
  dir: (scope, warn) => ({
    get: (key) => {
      if (!/^[A-Za-z0-9_.-]+$/.test(key) || key.startsWith('.')) throw new Error(`secret key "${key}" is not a plain file name`);
      const path = join(scope.path as string, key);
      try {
        statSync(path);
      } catch {
        return undefined;
      }
      const w = permissionWarning(path);
      if (w) warn(w);
      return readSecretFile(path).trim();
    },
  }),
};

/**
 * Adds a secret store, e.g. a Vault or cloud secret-manager client that fetched its
 * values beforehand (resolution is synchronous: fetch in the factory's caller).
 */
export function registerSecretProvider(name: string, factory: ProviderFactory): void {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`secret provider name "${name}" must be lowercase letters, digits and hyphens`);
  if (PROVIDERS[name]) throw new Error(`secret provider "${name}" is already registered`);
  PROVIDERS[name] = factory;
}
