/**
 * The option-spec builders: one declarative spec per connector drives its
 * TypeScript type ({@link OptionsOf}), validation ({@link validateOptions}),
 * JSON Schema, Markdown docs and the list of keys to redact.
 *
 * Builders are immutable values, like Benthos' config-spec fields:
 *
 * @example
 * const options = {
 *   host: o.host().describe('Server name or IP address.').default('127.0.0.1'),
 *   port: o.port().describe('TCP port.').default(5432),
 *   table: o.identifier().describe('Target table.').required().example('events'),
 *   password: o.secret().describe('Password of `user`.'),
 *   batch_size: o.int({ min: 1, max: 100_000 }).describe('Rows per COPY batch.').default(5000),
 * };
 * type Options = OptionsOf<typeof options>; // { host: string; port: number; table: string; password?: string; batch_size: number }
 */
import { isIP } from 'node:net';
import bytesLib from 'bytes';
import { closest, distance } from 'fastest-levenshtein';
import ms from 'ms';
import type { ConfigIssue } from './errors.js';
import { DEFAULT_MAX_JSON_DEPTH } from './values.js';

export type OptionKind =
  | 'string'
  | 'int'
  | 'number'
  | 'bool'
  | 'enum'
  | 'duration'
  | 'bytes'
  | 'url'
  | 'path'
  | 'host'
  | 'port'
  | 'identifier'
  | 'secret'
  | 'list'
  | 'map'
  | 'object'
  /** A `{ type, ...options }` section naming a connector (pipeline files only). */
  | 'connector';

export interface OptionMeta {
  readonly kind: OptionKind;
  readonly description?: string;
  /** The default in its parsed form (what the connector receives). */
  readonly default?: unknown;
  /** The default as a user would write it (`"30s"`), for docs and schema. */
  readonly defaultInput?: unknown;
  readonly required: boolean;
  /** Never printed: not in errors, logs, docs examples or summaries. */
  readonly secret: boolean;
  readonly advanced: boolean;
  readonly examples: readonly unknown[];
  readonly min?: number;
  readonly max?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly pattern?: RegExp;
  readonly patternHint?: string;
  readonly values?: readonly string[];
  readonly schemes?: readonly string[];
  readonly item?: Opt<unknown, boolean>;
  readonly spec?: Spec;
  readonly rules?: readonly Rule[];
  readonly role?: 'source' | 'sink';
  /** A shorter way to write the value (a transform step's `filter: amount > 0`): shown in docs, accepted by the JSON Schema. */
  readonly shorthand?: Opt<unknown, boolean>;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; message: string };
export type Parser<T> = (value: unknown, meta: OptionMeta, path: string) => ParseResult<T> | ParseIssues;

/** Nested values (lists, maps, objects) report their own issues at deeper paths. */
export interface ParseIssues {
  ok: false;
  issues: ConfigIssue[];
}

/** One option of a spec. `R` records whether the parsed value is always present. */
export class Opt<T, R extends boolean = false> {
  declare readonly __type: T;
  declare readonly __present: R;

  constructor(
    readonly meta: OptionMeta,
    private readonly parser: Parser<T>,
  ) {}

  private with(patch: Partial<OptionMeta>): Opt<T, R> {
    return new Opt<T, R>({ ...this.meta, ...patch }, this.parser);
  }

  /** What the option does, in one or two sentences. Required: the docs test fails options without one. */
  describe(description: string): Opt<T, R> {
    return this.with({ description });
  }

  /** The value used when the option is absent, written as a user would write it (`"30s"`, `5000`). */
  default(value: unknown): Opt<T, true> {
    const parsed = this.parse(value, '(default)');
    if ('issues' in parsed || !parsed.ok) {
      const msg = 'issues' in parsed ? parsed.issues.map((i) => i.message).join('; ') : parsed.message;
      throw new Error(`invalid default ${JSON.stringify(value)} for a ${this.meta.kind} option: ${msg}`);
    }
    return new Opt<T, true>({ ...this.meta, default: parsed.value, defaultInput: value }, this.parser);
  }

  /** The option must be given. */
  required(): Opt<T, true> {
    return new Opt<T, true>({ ...this.meta, required: true }, this.parser);
  }

  /** Example values, shown in docs and JSON Schema. */
  example(...values: unknown[]): Opt<T, R> {
    return this.with({ examples: [...this.meta.examples, ...values] });
  }

  /** Rarely needed; listed after the common options in docs. */
  advanced(): Opt<T, R> {
    return this.with({ advanced: true });
  }

  /** The value is a credential: redacted everywhere, never echoed in errors. */
  secret(): Opt<T, R> {
    return this.with({ secret: true });
  }

  /** Parses a raw value (YAML or a resolved `${env:…}` string). */
  parse(value: unknown, path: string): ParseResult<T> | ParseIssues {
    return this.parser(value, this.meta, path);
  }
}

export type Spec = Record<string, Opt<unknown, boolean>>;
type ValueOf<O> = O extends Opt<infer T, boolean> ? T : never;
type PresentKeys<S extends Spec> = { [K in keyof S]: S[K] extends Opt<unknown, true> ? K : never }[keyof S];
type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The TypeScript type of a validated options object for a spec. */
export type OptionsOf<S extends Spec> = Simplify<
  { [K in PresentKeys<S>]: ValueOf<S[K]> } & { [K in Exclude<keyof S, PresentKeys<S>>]?: ValueOf<S[K]> }
>;

// ---------------------------------------------------------------------------
// Cross-field rules

/** A rule across several options of one spec, checked after each option is valid. */
export interface Rule {
  /** Human description for docs, e.g. "`ssl_ca_cert` is required when `ssl_enabled` is true". */
  readonly description: string;
  /** Fields the rule reads; it is skipped when any of them is invalid. */
  readonly fields: readonly string[];
  check(options: Record<string, unknown>): string | undefined;
}

const isSet = (v: unknown) => v !== undefined && v !== null && v !== '';

export const rules = {
  /** `field` must be set when `when` holds, e.g. `requiredWhen('ssl_ca_cert', 'ssl_enabled', true)`. */
  requiredWhen(field: string, other: string, equals: unknown): Rule {
    return {
      description: `\`${field}\` is required when \`${other}\` is ${JSON.stringify(equals)}`,
      fields: [field, other],
      check: (o) =>
        o[other] === equals && !isSet(o[field])
          ? `${field} is required when ${other} is ${JSON.stringify(equals)}; set ${field} or change ${other}`
          : undefined,
    };
  },
  /** At most one of the fields may be set. */
  mutuallyExclusive(...fields: string[]): Rule {
    return {
      description: `only one of ${fields.map((f) => `\`${f}\``).join(', ')} may be set`,
      fields,
      check: (o) => {
        const set = fields.filter((f) => isSet(o[f]));
        return set.length > 1 ? `${set.join(' and ')} cannot be used together; keep only one of them` : undefined;
      },
    };
  },
  /** Exactly one of the fields must be set. */
  exactlyOne(...fields: string[]): Rule {
    return {
      description: `exactly one of ${fields.map((f) => `\`${f}\``).join(', ')} must be set`,
      fields,
      check: (o) => {
        const set = fields.filter((f) => isSet(o[f]));
        if (set.length === 1) return undefined;
        return set.length === 0
          ? `one of ${fields.join(', ')} is required`
          : `${set.join(' and ')} cannot be used together; keep only one of them`;
      },
    };
  },
  /** A custom rule. Return an error message, or undefined when the options are fine. */
  custom(description: string, fields: string[], check: (o: Record<string, unknown>) => string | undefined): Rule {
    return { description, fields, check };
  },
};

// ---------------------------------------------------------------------------
// Value display (never a secret's value)

/** Masks `user:password@` in URL-like text. */
export function maskUrlPassword(text: string): string {
  // the scheme must start a word and repetitions are bounded: linear on hostile input
  return text.replace(/(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,30}:\/\/[^/\s:@]{0,256}:)([^@\s/]{0,512})@/gi, '$1***REDACTED***@');
}

let displayMasker: ((text: string) => string) | undefined;

/**
 * Installs the function that masks registered secret values in {@link displayValue}
 * (weir's redactor installs itself). Masking happens before a long value is shortened,
 * so a secret that is part of a longer value is never shown in part.
 */
export function setDisplayMasker(mask: ((text: string) => string) | undefined): void {
  displayMasker = mask;
}

/** A bad value as shown in a validation message: JSON, URL passwords and registered secrets masked, at most 80 characters. */
export function displayValue(value: unknown, meta?: OptionMeta): string {
  if (meta?.secret) return '(secret value hidden)';
  let text: string;
  try {
    text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  // only the start is shown: bound the work on a huge value (the cut is far beyond what is shown)
  if (text.length > 4096) text = text.slice(0, 4096);
  text = maskUrlPassword(text);
  if (displayMasker) text = displayMasker(text);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

// ---------------------------------------------------------------------------
// Parsers

const ok = <T>(value: T): ParseResult<T> => ({ ok: true, value });
const fail = (message: string): ParseResult<never> => ({ ok: false, message });

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `a ${typeof v}`;
}

function rangeText(meta: OptionMeta): string {
  if (meta.min !== undefined && meta.max !== undefined) return ` between ${meta.min} and ${meta.max}`;
  if (meta.min !== undefined) return ` of at least ${meta.min}`;
  if (meta.max !== undefined) return ` of at most ${meta.max}`;
  return '';
}

function checkRange(n: number, meta: OptionMeta, what: string, fmt: (n: number) => string = String) {
  if ((meta.min !== undefined && n < meta.min) || (meta.max !== undefined && n > meta.max)) {
    const lo = meta.min !== undefined ? fmt(meta.min) : undefined;
    const hi = meta.max !== undefined ? fmt(meta.max) : undefined;
    const range = lo && hi ? `between ${lo} and ${hi}` : lo ? `at least ${lo}` : `at most ${hi}`;
    // the bad value is added by the caller, unless the option is secret
    return fail(`must be ${what} ${range}`);
  }
  return undefined;
}

const parseString: Parser<string> = (v, meta) => {
  if (typeof v === 'number' || typeof v === 'boolean') v = String(v);
  if (typeof v !== 'string') return fail(`must be a string, got ${typeName(v)}`);
  if (meta.minLength !== undefined && v.length < meta.minLength) return fail(`must be at least ${meta.minLength} character(s) long`);
  if (meta.maxLength !== undefined && v.length > meta.maxLength) return fail(`must be at most ${meta.maxLength} characters long`);
  if (meta.pattern && !meta.pattern.test(v)) return fail(meta.patternHint ?? `must match ${meta.pattern}`);
  return ok(v);
};

const INT_TEXT = /^[+-]?\d+$/;
const NUM_TEXT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

const parseInt_: Parser<number> = (v, meta) => {
  const n = typeof v === 'string' && INT_TEXT.test(v.trim()) ? Number(v.trim()) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) return fail(`must be a whole number${rangeText(meta)}, got ${typeName(v)}`);
  return checkRange(n, meta, 'a whole number') ?? ok(n);
};

const parseNumber: Parser<number> = (v, meta) => {
  const n = typeof v === 'string' && NUM_TEXT.test(v.trim()) ? Number(v.trim()) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) return fail(`must be a number${rangeText(meta)}, got ${typeName(v)}`);
  return checkRange(n, meta, 'a number') ?? ok(n);
};

const parseBool: Parser<boolean> = (v) => {
  if (typeof v === 'boolean') return ok(v);
  if (v === 'true') return ok(true);
  if (v === 'false') return ok(false);
  return fail(`must be true or false, got ${typeName(v)}`);
};

const parseEnum: Parser<string> = (v, meta) => {
  const values = meta.values ?? [];
  if (typeof v === 'string' && values.includes(v)) return ok(v);
  const near = typeof v === 'string' ? suggest(v, values) : undefined;
  return fail(`must be one of ${values.map((x) => JSON.stringify(x)).join(', ')}${near ? ` (did you mean "${near}"?)` : ''}`);
};

const DURATION_TEXT = /^\d+(\.\d+)?\s*(ms|s|m|h|d)$/i;
const BARE_NUMBER = /^\d+(\.\d+)?$/;
const fmtDuration = (n: number) => ms(n);

const parseDuration: Parser<number> = (v, meta) => {
  let n: number | undefined;
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) n = v;
  else if (typeof v === 'string' && BARE_NUMBER.test(v.trim())) n = Number(v.trim());
  else if (typeof v === 'string' && DURATION_TEXT.test(v.trim())) n = ms(v.trim() as ms.StringValue);
  if (n === undefined || !Number.isFinite(n) || n > Number.MAX_SAFE_INTEGER)
    return fail('must be a duration with a unit, such as 100ms, 30s, 5m, 2h or 1d (a bare number means milliseconds)');
  return checkRange(n, meta, 'a duration', fmtDuration) ?? ok(n);
};

const BYTES_TEXT = /^\d+(\.\d+)?\s*(b|kb|mb|gb|tb)$/i;
const fmtBytes = (n: number) => bytesLib.format(n) ?? String(n);

const parseBytes: Parser<number> = (v, meta) => {
  let n: number | null = null;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) n = v;
  else if (typeof v === 'string' && /^\d+$/.test(v.trim())) n = Number(v.trim());
  else if (typeof v === 'string' && BYTES_TEXT.test(v.trim())) n = bytesLib.parse(v.trim());
  if (n === null || !Number.isSafeInteger(n))
    return fail('must be a size such as 512KB, 16MB or 1GB (1KB = 1024 bytes; a bare number means bytes)');
  return checkRange(n, meta, 'a size', fmtBytes) ?? ok(n);
};

const parseUrl: Parser<string> = (v, meta) => {
  if (typeof v !== 'string') return fail(`must be a URL, got ${typeName(v)}`);
  if (/[\u0000-\u0020\u007f-\u009f]/.test(v)) return fail('must not contain spaces or control characters (encode them, e.g. %20)');
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    return fail('must be an absolute URL such as https://api.example.com/v1');
  }
  const scheme = url.protocol.replace(/:$/, '');
  const schemes = meta.schemes ?? ['http', 'https'];
  if (!schemes.includes(scheme)) return fail(`must use one of the schemes ${schemes.join(', ')}; got ${scheme}`);
  return ok(v);
};

const parsePath: Parser<string> = (v) => {
  if (typeof v !== 'string' || v.length === 0) return fail('must be a non-empty file path');
  if (v.includes('\0')) return fail('must not contain a NUL byte');
  return ok(v);
};

const HOST_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** True for an IPv4 or IPv6 address or an RFC 1123 host name. */
export function isValidHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIP(bare) !== 0) return true;
  const name = bare.endsWith('.') ? bare.slice(0, -1) : bare;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (/^\d+$/.test(labels[labels.length - 1] as string)) return false;
  return labels.every((label) => HOST_LABEL.test(label));
}

const parseHost: Parser<string> = (v) => {
  if (typeof v !== 'string' || !isValidHost(v))
    return fail('must be an IPv4 address, an IPv6 address or a host name (letters, digits, hyphens and dots; no scheme, port or path)');
  return ok(v.startsWith('[') && v.endsWith(']') ? v.slice(1, -1) : v);
};

/** SQL identifiers weir accepts: letters, digits and underscores, not starting with a digit, at most 63 characters. */
export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

const parseIdentifier: Parser<string> = (v) => {
  if (typeof v !== 'string' || !IDENTIFIER.test(v))
    return fail(
      'must be a plain SQL identifier: letters, digits and underscores, starting with a letter or underscore, at most 63 characters',
    );
  return ok(v);
};

const parseSecret: Parser<string> = (v) => {
  if (typeof v === 'number') v = String(v);
  if (typeof v !== 'string') return fail(`must be a string (a secret reference such as \${env:NAME} is best), got ${typeName(v)}`);
  return ok(v);
};

function parseList(v: unknown, meta: OptionMeta, path: string): ParseResult<unknown[]> | ParseIssues {
  let items: unknown[];
  if (Array.isArray(v)) items = v;
  else if (typeof v === 'string')
    items = v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  else return fail(`must be a list, got ${typeName(v)}`);
  if (meta.min !== undefined && items.length < meta.min) return fail(`must have at least ${meta.min} item(s)`);
  if (meta.max !== undefined && items.length > meta.max) return fail(`must have at most ${meta.max} items`);
  const item = meta.secret ? (meta.item as Opt<unknown, boolean>).secret() : (meta.item as Opt<unknown, boolean>);
  const out: unknown[] = [];
  const issues: ConfigIssue[] = [];
  items.forEach((raw, i) => {
    const r = item.parse(raw, `${path}[${i}]`);
    collect(r, `${path}[${i}]`, raw, item.meta, issues, (x) => out.push(x));
  });
  return issues.length ? { ok: false, issues } : ok(out);
}

function parseMap(v: unknown, meta: OptionMeta, path: string): ParseResult<Record<string, unknown>> | ParseIssues {
  if (!isPlainObject(v)) return fail(`must be a mapping of name: value, got ${typeName(v)}`);
  const item = meta.secret ? (meta.item as Opt<unknown, boolean>).secret() : (meta.item as Opt<unknown, boolean>);
  // no prototype: a key named __proto__ or toString is an entry like any other, and no lookup finds an inherited one
  const out: Record<string, unknown> = Object.create(null);
  const issues: ConfigIssue[] = [];
  for (const [k, raw] of Object.entries(v)) {
    const r = item.parse(raw, joinPath(path, k));
    collect(r, joinPath(path, k), raw, item.meta, issues, (x) => {
      out[k] = x;
    });
  }
  return issues.length ? { ok: false, issues } : ok(out);
}

function parseObject(v: unknown, meta: OptionMeta, path: string): ParseResult<Record<string, unknown>> | ParseIssues {
  const spec = meta.secret
    ? Object.fromEntries(Object.entries(meta.spec as Spec).map(([k, opt]) => [k, opt.secret()]))
    : (meta.spec as Spec);
  const r = validateOptions(spec, v, path, meta.rules);
  return r.issues.length ? { ok: false, issues: r.issues } : ok(r.value as Record<string, unknown>);
}

function collect(
  r: ParseResult<unknown> | ParseIssues,
  path: string,
  raw: unknown,
  meta: OptionMeta,
  issues: ConfigIssue[],
  onValue: (v: unknown) => void,
) {
  if ('issues' in r) issues.push(...r.issues);
  else if (!r.ok) issues.push({ path, message: `${r.message}${meta.secret ? '' : `; got ${displayValue(raw, meta)}`}` });
  else onValue(r.value);
}

export function base(kind: OptionKind, extra: Partial<OptionMeta> = {}): OptionMeta {
  return { kind, required: false, secret: false, advanced: false, examples: [], ...extra };
}

/** The option builders. */
export const o = {
  string: (c: { minLength?: number; maxLength?: number; pattern?: RegExp; patternHint?: string } = {}) =>
    new Opt<string>(base('string', c), parseString),
  int: (c: { min?: number; max?: number } = {}) => new Opt<number>(base('int', c), parseInt_),
  number: (c: { min?: number; max?: number } = {}) => new Opt<number>(base('number', c), parseNumber),
  bool: () => new Opt<boolean>(base('bool'), parseBool),
  enum: <const V extends readonly string[]>(values: V) => new Opt<V[number]>(base('enum', { values }), parseEnum as Parser<V[number]>),
  /** A duration: `"100ms"`, `"30s"`, `"5m"`; parsed to milliseconds. Bounds are in milliseconds. */
  duration: (c: { min?: number; max?: number } = {}) => new Opt<number>(base('duration', c), parseDuration),
  /** A size: `"512KB"`, `"16MB"`; parsed to bytes. */
  bytes: (c: { min?: number; max?: number } = {}) => new Opt<number>(base('bytes', c), parseBytes),
  url: (c: { schemes?: readonly string[] } = {}) => new Opt<string>(base('url', c), parseUrl),
  path: () => new Opt<string>(base('path'), parsePath),
  host: () => new Opt<string>(base('host'), parseHost),
  port: () => new Opt<number>(base('port', { min: 1, max: 65535 }), parseInt_),
  identifier: () => new Opt<string>(base('identifier'), parseIdentifier),
  secret: () => new Opt<string>(base('secret', { secret: true }), parseSecret),
  list: <T>(item: Opt<T, boolean>, c: { min?: number; max?: number } = {}) =>
    new Opt<T[]>(base('list', { ...c, item: item as Opt<unknown, boolean> }), parseList as Parser<T[]>),
  map: <T>(item: Opt<T, boolean>) =>
    new Opt<Record<string, T>>(base('map', { item: item as Opt<unknown, boolean> }), parseMap as Parser<Record<string, T>>),
  object: <S extends Spec>(spec: S, objectRules: Rule[] = []) =>
    new Opt<OptionsOf<S>>(base('object', { spec, rules: objectRules }), parseObject as Parser<OptionsOf<S>>),
};

/**
 * The `max_depth` option of a source that parses JSON (one definition for every
 * such source, so its docs and schema are the same everywhere).
 */
export const jsonDepthOption = () =>
  o
    .int({ min: 1, max: 1000 })
    .describe(
      'Source only. How deeply arrays and objects may nest inside a JSON value read from the source. A value nested deeper is a row error (dead-lettered with `errors.tolerance: all`), so one hostile line cannot exhaust the stack and fail the run.',
    )
    .default(DEFAULT_MAX_JSON_DEPTH)
    .advanced();

// ---------------------------------------------------------------------------
// Validation of a whole options object

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function joinPath(base: string, key: string): string {
  return base ? `${base}.${key}` : key;
}

/** The closest candidate within a small edit distance, for did-you-mean hints. */
export function suggest(input: string, candidates: readonly string[]): string | undefined {
  if (candidates.length === 0) return undefined;
  const lower = input.toLowerCase();
  const best = closest(lower, candidates as string[]);
  const limit = Math.max(2, Math.floor(best.length / 3));
  return distance(lower, best) <= limit ? best : undefined;
}

export interface ValidationResult<T> {
  value: T | undefined;
  issues: ConfigIssue[];
}

/**
 * Validates `input` against `spec`, reporting every problem at once, each with its
 * path, the bad value (never a secret's), what is allowed, and did-you-mean hints.
 * `ignoreKeys` are handled by the caller (such as `type` in a source section).
 */
export function validateOptions<S extends Spec>(
  spec: S,
  input: unknown,
  path: string,
  specRules: readonly Rule[] = [],
  ignoreKeys: readonly string[] = [],
): ValidationResult<OptionsOf<S>> {
  const issues: ConfigIssue[] = [];
  if (input === undefined || input === null) input = {};
  if (!isPlainObject(input)) {
    return { value: undefined, issues: [{ path, message: `must be a mapping of options, got ${typeName(input)}` }] };
  }
  const known = Object.keys(spec);
  for (const key of Object.keys(input)) {
    if (Object.hasOwn(spec, key) || ignoreKeys.includes(key)) continue;
    const near = suggest(key, known);
    issues.push({
      path: joinPath(path, key),
      message: near ? `unknown option (did you mean "${near}"?)` : `unknown option; known options are ${known.join(', ') || '(none)'}`,
    });
  }
  const out: Record<string, unknown> = {};
  const bad = new Set<string>();
  for (const [key, opt] of Object.entries(spec)) {
    const raw = Object.hasOwn(input, key) ? input[key] : undefined;
    const p = joinPath(path, key);
    if (raw === undefined || raw === null) {
      if (opt.meta.default !== undefined) out[key] = structuredClone(opt.meta.default);
      else if (opt.meta.required) {
        bad.add(key);
        issues.push({ path: p, message: `is required${opt.meta.description ? ` (${firstSentence(opt.meta.description)})` : ''}` });
      }
      continue;
    }
    const before = issues.length;
    collect(opt.parse(raw, p), p, raw, opt.meta, issues, (v) => {
      out[key] = v;
    });
    if (issues.length > before) bad.add(key);
  }
  for (const rule of specRules) {
    if (rule.fields.some((f) => bad.has(f))) continue;
    const message = rule.check(out);
    if (message) issues.push({ path, message });
  }
  return { value: issues.length ? undefined : (out as OptionsOf<S>), issues };
}

function firstSentence(text: string): string {
  const m = /^(.*?[.!?])(\s|$)/.exec(text);
  return (m?.[1] ?? text).replace(/\.$/, '');
}

/** Names of the options a spec declares secret, at any depth (dotted). */
export function secretPaths(spec: Spec, prefix = ''): string[] {
  const out: string[] = [];
  for (const [key, opt] of Object.entries(spec)) {
    if (opt.meta.secret) out.push(joinPath(prefix, key));
    if (opt.meta.spec) out.push(...secretPaths(opt.meta.spec, joinPath(prefix, key)));
  }
  return out;
}
