/**
 * Resolves secret references anywhere in a pipeline file, once, before anything runs
 * (planner, and each worker resolves its own: resolved values never travel):
 *
 * - `${env:NAME}`          an environment variable; `${env:NAME:-default}` with a default
 *                          (used when NAME is unset or empty; written in the file, so no secret)
 * - `${file:PATH}`         a whole file, trimmed (Docker/Kubernetes secrets)
 * - `${file:PATH#key}`     a key of a JSON (`db.password` reaches nested keys) or dotenv file
 * - `${secret:scope/key}`  a key of a named scope from the `secrets:` section
 *
 * `$${` writes a literal `${`; any other `${` that is not a reference is an error
 * (a shell-style `${NAME}` gets a hint). `env` and `file` references also work inside
 * the `secrets:` section (e.g. a scope's path). Every resolved value is registered with
 * the redactor before it can be printed. Errors name the reference, never a value.
 */
import { isAbsolute, resolve as resolvePath } from 'node:path';
import type { ConfigIssue } from '../sdk/errors.js';
import { isPlainObject, suggest } from '../sdk/options.js';
import { PROVIDERS, parseKeyFile, permissionWarning, readSecretFile, type ScopeConfig, type SecretProvider } from '../secrets/providers.js';
import { isCredentialKey, type Redactor, SHORT_SECRET_LENGTH } from '../secrets/redactor.js';

/** `$${` (escape), `${…}` (a reference or a mistake), or a `${` that is never closed. */
const REFERENCE = /\$\$\{|\$\{([^{}]*)\}|\$\{/g;
const KINDS = ['env', 'file', 'secret'] as const;

export interface ResolveResult {
  /**
   * The pipeline data with every reference replaced. A reference that fails becomes ''
   * (its issue is reported at that path): left as written, the reference text would be
   * registered as a secret value when it sits in a secret option and hide its own error.
   */
  data: unknown;
  issues: ConfigIssue[];
  warnings: string[];
}

/**
 * Resolves every reference in `data` (the parsed pipeline file). Runs once per run on
 * the planner and once per worker process. Never throws: problems come back as issues
 * (each naming the path and the reference) and warnings (insecure secret files,
 * secrets too short to be redacted by value).
 */
export function resolveReferences(data: unknown, baseDir: string, redactor: Redactor): ResolveResult {
  const issues: ConfigIssue[] = [];
  const warnings: string[] = [];
  const warn = (msg: string) => {
    if (!warnings.includes(msg)) warnings.push(msg);
  };
  const abs = (p: string) => (isAbsolute(p) ? p : resolvePath(baseDir, p));
  const fileCache = new Map<string, string>();
  let scopes = new Map<string, SecretProvider>();

  /** A resolved value, and whether it came from the environment or a file (a default written in the pipeline file is no secret). */
  const lookup = (kind: string, ref: string, show: string): { value: string; fromFile?: true } => {
    if (kind === 'env') {
      // `${env:NAME:-default}`: as the shell's, the default when NAME is unset or empty
      const dash = ref.indexOf(':-');
      const name = dash >= 0 ? ref.slice(0, dash) : ref;
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
        throw new Error(`${show} is not a valid environment variable name (letters, digits and underscores)`);
      const v = Object.hasOwn(process.env, name) ? process.env[name] : undefined;
      if (dash >= 0 && (v === undefined || v === '')) return { value: ref.slice(dash + 2), fromFile: true };
      if (v === undefined)
        throw new Error(
          `${show}: environment variable ${name} is not set; export it, give a default (\${env:${name}:-VALUE}) or change the reference`,
        );
      return { value: v };
    }
    if (kind === 'file') {
      const hash = ref.lastIndexOf('#');
      const rel = hash >= 0 ? ref.slice(0, hash) : ref;
      if (rel === '') throw new Error(`${show} names no file; write \${file:PATH} or \${file:PATH#key}`);
      const file = abs(rel);
      const key = hash >= 0 ? ref.slice(hash + 1) : undefined;
      let text = fileCache.get(file);
      if (text === undefined) {
        text = readSecretFile(file);
        const w = permissionWarning(file);
        if (w) warn(w);
        fileCache.set(file, text);
      }
      if (key === undefined) return { value: text.trim() };
      if (key === '') throw new Error(`${show} names no key after #`);
      const entries = parseKeyFile(text, file);
      const value = Object.hasOwn(entries, key) ? entries[key] : undefined;
      if (value === undefined) {
        const near = suggest(key, Object.keys(entries));
        throw new Error(`${show}: file ${file} has no key "${key}"${near ? ` (did you mean "${near}"?)` : ''}`);
      }
      return { value };
    }
    if (kind === 'secret') {
      const slash = ref.indexOf('/');
      if (slash <= 0 || slash === ref.length - 1) throw new Error(`${show} must name a scope and a key, like \${secret:vault/db_password}`);
      const scope = ref.slice(0, slash);
      const key = ref.slice(slash + 1);
      const provider = scopes.get(scope);
      if (!provider) {
        const known = [...scopes.keys()];
        const near = suggest(scope, known);
        throw new Error(
          `${show}: no secret scope "${scope}" in the secrets section${near ? ` (did you mean "${near}"?)` : known.length ? ` (known: ${known.join(', ')})` : '; add it under secrets:'}`,
        );
      }
      const value = provider.get(key);
      if (value === undefined) throw new Error(`${show}: scope "${scope}" has no key "${key}"`);
      return { value };
    }
    const near = suggest(kind, KINDS);
    throw new Error(`${show}: unknown reference kind "${kind}"${near ? ` (did you mean "${near}"?)` : ''}; use env, file or secret`);
  };

  const walk = (value: unknown, path: string, allowed: readonly string[]): unknown => {
    if (typeof value === 'string') return value.includes('${') ? resolveString(value, path, allowed) : value;
    if (Array.isArray(value)) return value.map((v, i) => walk(v, `${path}[${i}]`, allowed));
    if (isPlainObject(value)) {
      // no prototype: a key named __proto__ stays a key (validation reports it), it does not become the prototype
      const out: Record<string, unknown> = Object.create(null);
      for (const [k, v] of Object.entries(value)) out[k] = walk(v, path ? `${path}.${k}` : k, allowed);
      return out;
    }
    return value;
  };

  const resolveString = (value: string, path: string, allowed: readonly string[]): string =>
    value.replace(REFERENCE, (match: string, inner: string | undefined): string => {
      if (match === '$${') return '${';
      if (inner === undefined) {
        issues.push({ path, message: 'has a "${" that is never closed; write $${ for a literal ${' });
        return '';
      }
      const colon = inner.indexOf(':');
      if (colon < 0) {
        const name = inner.trim();
        issues.push({
          path,
          message: /^[A-Za-z_][A-Za-z0-9_]*$/.test(name)
            ? `\${${name}} is not a reference; write \${env:${name}} for an environment variable, or $\${${name}} for a literal`
            : 'has a "${…}" that is not a reference; use ${env:NAME}, ${file:PATH} or ${secret:scope/key}, or write $${ for a literal ${',
        });
        return '';
      }
      const kind = inner.slice(0, colon).trim();
      const ref = inner.slice(colon + 1).trim();
      const show = `\${${kind}:${ref}}`;
      try {
        if (!allowed.includes(kind) && (KINDS as readonly string[]).includes(kind))
          throw new Error(`${show}: ${kind} references cannot be used here (the secrets section may use env and file)`);
        const found = lookup(kind, ref, show);
        const resolved = found.value;
        if (found.fromFile) return resolved;
        redactor.addValue(resolved);
        const key =
          path
            .replace(/\[\d+\]$/, '')
            .split('.')
            .pop() ?? '';
        if (resolved.length > 0 && resolved.length < SHORT_SECRET_LENGTH && isCredentialKey(key))
          warn(
            `${show} (${path}) is shorter than ${SHORT_SECRET_LENGTH} characters: weir scrubs it only as a whole word, or under a credential key when shorter than 3; use a longer secret`,
          );
        return resolved;
      } catch (error) {
        const message = (error as Error).message;
        issues.push({ path, message: message.includes(show) ? message : `${show}: ${message}` });
        return '';
      }
    });

  const root = isPlainObject(data) ? data : undefined;
  const secretsSection = root && 'secrets' in root ? walk(root.secrets, 'secrets', ['env', 'file']) : undefined;
  scopes = buildScopes(secretsSection, abs, warn, issues);
  if (!root) return { data: walk(data, '', KINDS), issues, warnings };
  const out: Record<string, unknown> = Object.create(null);
  for (const [k, v] of Object.entries(root)) out[k] = k === 'secrets' ? secretsSection : walk(v, k, KINDS);
  return { data: out, issues, warnings };
}

function buildScopes(
  section: unknown,
  abs: (p: string) => string,
  warn: (m: string) => void,
  issues: ConfigIssue[],
): Map<string, SecretProvider> {
  const scopes = new Map<string, SecretProvider>();
  if (section === undefined || section === null) return scopes;
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
    const factory = typeof scope.provider === 'string' && Object.hasOwn(PROVIDERS, scope.provider) ? PROVIDERS[scope.provider] : undefined;
    if (!factory) {
      const near = typeof scope.provider === 'string' ? suggest(scope.provider, Object.keys(PROVIDERS)) : undefined;
      issues.push({
        path: `${path}.provider`,
        message: `must be one of ${Object.keys(PROVIDERS).join(', ')}${near ? ` (did you mean "${near}"?)` : ''}; got ${JSON.stringify(scope.provider ?? null)}`,
      });
      continue;
    }
    if (scope.provider !== 'env' && typeof scope.path !== 'string') {
      issues.push({ path: `${path}.path`, message: `is required for the ${scope.provider} provider` });
      continue;
    }
    scopes.set(name, factory({ ...scope, path: typeof scope.path === 'string' ? abs(scope.path) : undefined }, warn));
  }
  return scopes;
}
