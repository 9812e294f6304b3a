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
      return `secret file ${path} is readable by group or others (mode ${(mode & 0o777).toString(8)}); run chmod 600 ${path}`;
  } catch {
    // unreadable files are reported by the caller
  }
  return undefined;
}

export function readSecretFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new Error(code === 'ENOENT' ? `file ${path} does not exist` : `file ${path} cannot be read (${code ?? 'error'})`);
  }
}

/** Parses a JSON object or a dotenv file (KEY=value, # comments, optional quotes). */
export function parseKeyFile(text: string, path: string): Record<string, string> {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new Error(`file ${path} looks like JSON but does not parse`);
    }
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
      if (v !== null && v !== undefined) out[k] = typeof v === 'string' ? v : JSON.stringify(v);
    }
    return out;
  }
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m || line.trim().startsWith('#')) continue;
    let value = m[2] ?? '';
    if (/^(['"]).*\1$/.test(value)) value = value.slice(1, -1);
    out[m[1] as string] = value;
  }
  return out;
}

export const PROVIDERS: Record<string, (scope: ScopeConfig, warn: (msg: string) => void) => SecretProvider> = {
  /** Environment variables, optionally with a prefix: key `db_password` with prefix `APP_` reads `APP_db_password`. */
  env: (scope) => ({ get: (key) => process.env[`${scope.prefix ?? ''}${key}`] }),
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
