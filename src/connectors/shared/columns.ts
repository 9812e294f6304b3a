/**
 * Column typing shared by the connectors: converting text fields to column types
 * (csv; jsonl for declared columns), inferring a schema from a sample, and a
 * value's text (postgres COPY, the csv passthrough). Runs on the planner
 * (inference) and on workers (conversion).
 */
import { RowError } from '../../sdk/errors.js';
import type { Column, ColumnType } from '../../sdk/types.js';
import { Decimal, parseJsonExact, stringifyJson } from '../../sdk/values.js';

/** A conversion outcome: the value, or why the text does not fit the type. */
export type Converted = { ok: true; value: unknown } | { ok: false; reason: string };

const INT = /^[+-]?\d+$/;
const NUM = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
/**
 * ISO-8601 date or date-time with field ranges checked: optional seconds,
 * fraction and zone; `T` or a space between date and time.
 */
export const ISO_TIMESTAMP =
  /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])([T ]([01]\d|2[0-3]):[0-5]\d(:([0-5]\d|60)(\.\d+)?)?(Z|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)?)?$/;
const TRUE = new Set(['true', 't', 'yes', 'y', '1']);
const FALSE = new Set(['false', 'f', 'no', 'n', '0']);

const ok = (value: unknown): Converted => ({ ok: true, value });
const fail = (reason: string): Converted => ({ ok: false, reason });

/** A short, quoted rendering of a bad value for error messages. */
export function show(value: unknown): string {
  let text: string;
  try {
    text = stringifyJson(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * The row error for a value with more digits after the point than its target
 * column keeps (which would round it without a word, as PostgreSQL's
 * `numeric(p,s)` does): for the sinks' row path and the csv passthrough alike.
 */
export function fractionError(column: string, value: string | null, digits: number, rowIndex?: number): RowError {
  return new RowError(
    `column "${column}": ${show(value)} has more digits after the point than the target column keeps (${digits}), so it would be rounded; widen the column's scale, or round the value in the source`,
    { code: 'value_rounded', ...(rowIndex !== undefined ? { rowIndex } : {}) },
  );
}

/**
 * Whether a numeric value (a Decimal, a number, or number text) is exact with
 * `digits` digits after the point; anything that is no number passes (the target
 * reports it).
 */
export function fitsFraction(value: unknown, digits: number): boolean {
  const d = Decimal.is(value) ? value : typeof value === 'number' || typeof value === 'string' ? Decimal.parse(String(value)) : undefined;
  return d === undefined || d.unscaled(digits) !== undefined;
}

/** Whether the text is an ISO-8601 date or date-time. */
export function isIsoTimestamp(text: string): boolean {
  return ISO_TIMESTAMP.test(text);
}

/** Integers beyond 2^53 become bigint rather than lose digits. */
function toInteger(text: string): unknown {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : BigInt(text);
}

/**
 * Converts one non-null text field to a column type. Lenient where it is safe
 * (surrounding spaces, `+`, leading zeros, `yes`/`no`); timestamps stay strings.
 */
export function convertText(text: string, type: ColumnType): Converted {
  switch (type) {
    case 'string':
      return ok(text);
    case 'integer': {
      const t = text.trim();
      return INT.test(t) ? ok(toInteger(t)) : fail(`${show(text)} is not an integer`);
    }
    case 'number': {
      const t = text.trim();
      return NUM.test(t) ? ok(Number(t)) : fail(`${show(text)} is not a number`);
    }
    case 'decimal': {
      const d = Decimal.parse(text);
      return d ? ok(d) : fail(`${show(text)} is not a decimal number`);
    }
    case 'boolean': {
      const t = text.trim().toLowerCase();
      if (TRUE.has(t)) return ok(true);
      if (FALSE.has(t)) return ok(false);
      return fail(`${show(text)} is not a boolean (true or false)`);
    }
    case 'timestamp': {
      const t = text.trim();
      return isIsoTimestamp(t) ? ok(t) : fail(`${show(text)} is not an ISO-8601 timestamp such as 2024-05-01T12:00:00Z`);
    }
    case 'json':
      try {
        return ok(parseJsonExact(text));
      } catch {
        return fail(`${show(text)} is not valid JSON`);
      }
  }
}

/**
 * Converts an already-typed value (from JSON) to a declared column type. Text is
 * converted as in {@link convertText}; numbers and booleans are checked.
 */
export function convertValue(value: unknown, type: ColumnType): Converted {
  if (value === null || value === undefined) return ok(null);
  if (type === 'json') return ok(value);
  if (typeof value === 'string') return type === 'string' ? ok(value) : convertText(value, type);
  const decimal = Decimal.is(value);
  switch (type) {
    case 'string':
      return typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' || decimal
        ? ok(valueText(value))
        : fail(`${show(value)} is not a string`);
    case 'integer':
      if (typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value))) return ok(value);
      if (decimal && value.scale === 0) return ok(toInteger(String(value.unscaled(0))));
      return fail(`${show(value)} is not an integer`);
    case 'number':
      if (typeof value === 'number') return ok(value);
      if (typeof value === 'bigint' || decimal) return ok(Number(valueText(value)));
      return fail(`${show(value)} is not a number`);
    case 'decimal':
      if (decimal) return ok(value);
      if (typeof value === 'bigint' || (typeof value === 'number' && Number.isFinite(value))) return convertText(String(value), 'decimal');
      return fail(`${show(value)} is not a decimal number`);
    case 'boolean':
      return typeof value === 'boolean' ? ok(value) : fail(`${show(value)} is not a boolean (true or false)`);
    case 'timestamp':
      return fail(`${show(value)} is not an ISO-8601 timestamp string`);
  }
}

// ---------------------------------------------------------------------------
// Inference from text (csv)

/** Integers in their one canonical text (no `+`, no leading zeros, not `-0`): converting keeps the text. */
const INFER_INT = /^(0|-?[1-9]\d*)$/;
/** Numbers in JSON number grammar: a {@link Decimal} keeps this text as it is. */
const INFER_NUM = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;
/** Only the spelling `valueText` writes back: a column of `TRUE`/`yes` stays text, as it came. */
const INFER_BOOL = /^(true|false)$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Infers a column's type from text samples (non-null values only), choosing only
 * types whose values give back the sample's exact text: integer (within 64 bits),
 * decimal (any other number, with the precision and scale seen), boolean
 * (`true`/`false`), ISO-8601 timestamp, else string. Values with leading zeros
 * (`007`, zip codes) stay strings; no samples means string.
 */
export class TextTypeGuess {
  private integer = true;
  private number = true;
  private boolean = true;
  private timestamp = true;
  private seen = false;
  private wide = false;
  private integerDigits = 0;
  private scale = 0;

  add(text: string): void {
    this.seen = true;
    if (this.integer && !INFER_INT.test(text)) this.integer = false;
    if (this.number) {
      if (!INFER_NUM.test(text)) this.number = false;
      else this.measure(text);
    }
    if (this.boolean && !INFER_BOOL.test(text)) this.boolean = false;
    if (this.timestamp && !isIsoTimestamp(text)) this.timestamp = false;
  }

  private measure(text: string): void {
    if (this.integer && text.length >= 19) {
      const n = BigInt(text);
      if (n < INT64_MIN || n > INT64_MAX) this.wide = true;
    }
    const d = Decimal.parse(text) as Decimal;
    this.integerDigits = Math.max(this.integerDigits, d.integerDigits);
    this.scale = Math.max(this.scale, d.scale);
  }

  get type(): ColumnType {
    return this.column('').type;
  }

  /** The column for the samples seen: its type, and for decimals the precision and scale they need. */
  column(name: string): Column {
    const c = (type: ColumnType): Column => ({ name, type, nullable: true });
    if (!this.seen) return c('string');
    if (this.integer && !this.wide) return c('integer');
    if (this.number) return { ...c('decimal'), precision: Math.max(1, this.integerDigits + this.scale), scale: this.scale };
    if (this.boolean) return c('boolean');
    if (this.timestamp) return c('timestamp');
    return c('string');
  }
}

// ---------------------------------------------------------------------------
// Inference from JSON values (jsonl)

/**
 * Infers a column's type from JSON values: all integers → integer, decimals
 * (with integers) → decimal, doubles (with integers) → number, booleans →
 * boolean, ISO-8601 strings → timestamp, other strings → string, anything else
 * or a mix → json. Nulls are ignored.
 */
export class JsonTypeGuess {
  private kinds = new Set<ColumnType>();

  add(value: unknown): void {
    if (value === null || value === undefined) return;
    switch (typeof value) {
      case 'number':
        this.kinds.add(Number.isInteger(value) ? 'integer' : 'number');
        break;
      case 'bigint':
        this.kinds.add('integer');
        break;
      case 'boolean':
        this.kinds.add('boolean');
        break;
      case 'string':
        this.kinds.add(isIsoTimestamp(value) ? 'timestamp' : 'string');
        break;
      default:
        this.kinds.add(Decimal.is(value) ? 'decimal' : 'json');
    }
  }

  get type(): ColumnType {
    const k = this.kinds;
    if (k.size === 0) return 'string';
    if (k.size === 1) return [...k][0] as ColumnType;
    if (k.size === 2 && k.has('integer') && k.has('number')) return 'number';
    if (k.size === 2 && k.has('integer') && k.has('decimal')) return 'decimal';
    if (k.size === 2 && k.has('timestamp') && k.has('string')) return 'string';
    return 'json';
  }
}

/**
 * A value as text (null for null), the inverse of {@link convertText}: integers in
 * decimal, decimals as their digits, numbers as JavaScript prints them, booleans
 * `true`/`false`, dates in ISO-8601 UTC, bytes as bytea hex (`\x…`), lists and
 * objects as exact JSON.
 * The one rendering behind PostgreSQL COPY's text format (before escaping) and the
 * csv passthrough's rewrites, which must agree.
 */
export function valueText(v: unknown): string | null {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
      return Number.isFinite(v) ? String(v) : Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      return v.toString();
    case 'undefined':
      return null;
    case 'object':
      if (v === null) return null;
      if (v instanceof Date) return Number.isNaN(v.getTime()) ? 'invalid date' : v.toISOString();
      if (v instanceof Uint8Array) return `\\x${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`;
      if (Decimal.is(v)) return v.text;
      return stringifyJson(v);
    default:
      return String(v);
  }
}
