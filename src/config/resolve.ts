/**
 * Resolves secret references anywhere in a pipeline file, once, before anything runs:
 *
 * - `${env:NAME}`          an environment variable
 * - `${file:PATH}`         a whole file, trimmed (Docker/Kubernetes secrets)
 * - `${file:PATH#key}`     a key of a JSON or dotenv file
 * - `${secret:scope/key}`  a key of a named scope from the `secrets:` section
 *
 * `$${` writes a literal `${`. Every resolved value is registered with the redactor
 * before it can be printed. Errors name the reference, never a value.
 */
import { isAbsolute, resolve as resolvePath } from 'node:path';
import type { ConfigIssue } from '../sdk/errors.js';
import { isPlainObject } from '../sdk/options.js';
import { PROVIDERS, type ScopeConfig, type SecretProvider, parseKeyFile, permissionWarning, readSecretFile } from '../secrets/providers.js';
import type { Redactor } from '../secrets/redactor.js';

const REFERENCE = /\$\$\{|\$\{([a-z]+):([^}]*)\}/g;

export interface ResolveResult {
  data: unknown;
  issues: ConfigIssue[];
  warnings: string[];
}

export function resolveReferences(data: unknown, baseDir: string, redactor: Redactor): ResolveResult {
  const issues: ConfigIssue[] = [];
  const warnings: string[] = [];
  const warned = new Set<string>();
  const warn = (msg: string) => {
    if (!warned.has(msg)) warnings.push(msg);
    warned.add(msg);
  };
  const abs = (p: string) => (isAbsolute(p) ? p : resolvePath(baseDir, p));
  const scopes = buildScopes(data, abs, warn, issues);
  const fileCache = new Map<string, string>();

  const lookup = (kind: string, ref: string, path: string): string | undefined => {
    const show = `\${${kind}:${ref}}`;
    try {
      if (kind === 'env') {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(ref)) throw new Error(`${show} is not a valid environment variable name`);
        const v = process.env[ref];
        if (v === undefined) throw new Error(`${show}: environment variable ${ref} is not set; export it or change the reference`);
        return v;
      }
      if (kind === 'file') {
        const hash = ref.lastIndexOf('#');
        const file = abs(hash >= 0 ? ref.slice(0, hash) : ref);
        const key = hash >= 0 ? ref.slice(hash + 1) : undefined;
        let text = fileCache.get(file);
        if (text === undefined) {
          const w = permissionWarning(file);
          if (w) warn(w);
          text = readSecretFile(file);
          fileCache.set(file, text);
        }
        if (key === undefined) return text.trim();
        const value = parseKeyFile(text, file)[key];
        if (value === undefined) throw new Error(`${show}: file ${file} has no key "${key}"`);
        return value;
      }
      if (kind === 'secret') {
        const slash = ref.indexOf('/');
        if (slash <= 0) throw new Error(`${show} must name a scope and a key, like \${secret:vault/db_password}`);
        const scope = ref.slice(0, slash);
        const key = ref.slice(slash + 1);
        const provider = scopes.get(scope);
        if (!provider) {
          const known = [...scopes.keys()];
          throw new Error(`${show}: no secret scope "${scope}" in the secrets section${known.length ? ` (known: ${known.join(', ')})` : ''}`);
        }
        const value = provider.get(key);
        if (value === undefined) throw new Error(`${show}: scope "${scope}" has no key "${key}"`);
        return value;
      }
      throw new Error(`${show}: unknown reference kind "${kind}"; use env, file or secret`);
    } catch (error) {
      const message = (error as Error).message;
      issues.push({ path, message: message.includes(show) ? message : `${show}: ${message}` });
      return undefined;
    }
  };

  const walk = (value: unknown, path: string): unknown => {
    if (typeof value === 'string') {
      if (!value.includes('${')) return value;
      return value.replace(REFERENCE, (match, kind: string | undefined, ref: string | undefined) => {
        if (match === '$${') return '${';
        const resolved = lookup(kind as string, ref as string, path);
        if (resolved === undefined) return match;
        redactor.addValue(resolved);
        return resolved;
      });
    }
    if (Array.isArray(value)) return value.map((v, i) => walk(v, `${path}[${i}]`));
    if (isPlainObject(value)) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = path === '' && k === 'secrets' ? v : walk(v, path ? `${path}.${k}` : k);
      return out;
    }
    return value;
  };

  return { data: walk(data, ''), issues, warnings };
}

function buildScopes(
  data: unknown,
  abs: (p: string) => string,
  warn: (m: string) => void,
  issues: ConfigIssue[],
): Map<string, SecretProvider> {
  const scopes = new Map<string, SecretProvider>();
  const section = isPlainObject(data) ? data.secrets : undefined;
  if (section === undefined) return scopes;
  if (!isPlainObject(section)) {
    issues.push({ path: 'secrets', message: 'must be a mapping of scope name to { provider, path }' });
    return scopes;
  }
  for (const [name, raw] of Object.entries(section)) {
    const path = `secrets.${name}`;
    if (!isPlainObject(raw)) {
      issues.push({ path, message: 'must be a mapping such as { provider: file, path: /run/secrets/app.json }' });
      continue;
    }
    const scope = raw as unknown as ScopeConfig;
    const factory = PROVIDERS[scope.provider];
    if (!factory) {
      issues.push({ path: `${path}.provider`, message: `must be one of ${Object.keys(PROVIDERS).join(', ')}; got ${JSON.stringify(scope.provider)}` });
      continue;
    }
    if (scope.provider !== 'env' && typeof scope.path !== 'string') {
      issues.push({ path: `${path}.path`, message: `is required for the ${scope.provider} provider` });
      continue;
    }
    scopes.set(name, factory({ ...scope, path: scope.path ? abs(scope.path) : undefined }, warn));
  }
  return scopes;
}
