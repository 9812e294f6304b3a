/**
 * Writing: the Parquet schema of the sink's columns and the conversion of weir
 * values to what hyparquet-writer encodes. Pure functions, used on workers
 * (once per writer for the schema, per value for the rest).
 *
 * integer → INT64, number → DOUBLE, string → STRING, boolean → BOOLEAN,
 * timestamp → INT64 TIMESTAMP(MICROS, UTC) — NANOS (UTC values, not flagged
 * as UTC: see {@link physical}) when the first batch has sub-microsecond
 * digits, DATE when it holds only dates (`YYYY-MM-DD`) — json → JSON (exact text, weir's own encoding),
 * decimal → DECIMAL(precision, scale) as INT32 (precision ≤ 9), INT64 (≤ 18)
 * or FIXED_LEN_BYTE_ARRAY (≤ 38), with the precision and scale the schema
 * declares or, failing that, precision 38 and the largest scale of the first
 * batch; wider decimals (precision over 38, which Parquet readers cannot
 * hold) are written as their exact text (STRING). A value that does not fit
 * its column — more fraction digits than the scale, more digits than the
 * precision, sub-second digits beyond the unit — is a RowError, never rounded.
 * All columns OPTIONAL (nullable).
 */
import type { SchemaElement as WriterSchemaElement } from 'hyparquet-writer';
import { RowError } from '../../sdk/errors.js';
import type { Column, ColumnType, Row } from '../../sdk/types.js';
import { Decimal, stringifyJson } from '../../sdk/values.js';
import { convertText, JsonTypeGuess, show } from '../shared/columns.js';
import { base64 } from './read-values.js';

/** One column the sink writes, with what its Parquet type needs. */
export interface SinkColumn {
  name: string;
  type: ColumnType;
  /** `decimal`: digits in all; over 38, the values are written as text. */
  precision?: number;
  /** `decimal`: digits after the point. */
  scale?: number;
  /** `timestamp`: MICROS; NANOS when the first batch had sub-microsecond digits, DATE when it had only dates. */
  unit?: TimeUnit;
}

export type TimeUnit = 'DATE' | 'MICROS' | 'NANOS';

/** The widest DECIMAL Parquet readers hold (128-bit): DuckDB, Spark, Arrow, Polars. */
export const MAX_DECIMAL_PRECISION = 38;

/** Whether a column's decimals are written as text (wider than any Parquet reader's DECIMAL). */
export const decimalAsText = (c: SinkColumn) => c.type === 'decimal' && (c.precision ?? 0) > MAX_DECIMAL_PRECISION;

/** A column's type as the commit messages compare it: `decimal(38,10)`, `timestamp(NANOS)`, `integer`. */
export function typeLabel(c: SinkColumn): string {
  if (c.type === 'decimal') return `decimal(${c.precision},${c.scale})`;
  if (c.type === 'timestamp' && c.unit && c.unit !== 'MICROS') return `timestamp(${c.unit})`;
  return c.type;
}

/** Bytes of a FIXED_LEN_BYTE_ARRAY that holds every unscaled value of `precision` digits (two's complement). */
function decimalBytes(precision: number): number {
  const max = 10n ** BigInt(precision) - 1n;
  let n = 1;
  while (max >= 1n << BigInt(8 * n - 1)) n++;
  return n;
}

const STRING: Omit<WriterSchemaElement, 'name'> = { type: 'BYTE_ARRAY', converted_type: 'UTF8', logical_type: { type: 'STRING' } };
const JSON_TEXT: Omit<WriterSchemaElement, 'name'> = { type: 'BYTE_ARRAY', converted_type: 'JSON', logical_type: { type: 'JSON' } };

/** The Parquet type annotations of one column. */
function physical(c: SinkColumn, json: typeof JSON_TEXT): Omit<WriterSchemaElement, 'name'> {
  switch (c.type) {
    case 'integer':
      return { type: 'INT64' };
    case 'number':
      return { type: 'DOUBLE' };
    case 'boolean':
      return { type: 'BOOLEAN' };
    case 'string':
      return STRING;
    case 'json':
      return json;
    case 'timestamp':
      if (c.unit === 'DATE') return { type: 'INT32', converted_type: 'DATE', logical_type: { type: 'DATE' } };
      return c.unit === 'NANOS'
        ? // Not flagged UTC (the values are UTC all the same): DuckDB reads UTC-flagged nanoseconds as its
          // microsecond TIMESTAMPTZ and drops the last three digits; unflagged ones as TIMESTAMP_NS, exactly.
          { type: 'INT64', logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: false, unit: 'NANOS' } }
        : { type: 'INT64', converted_type: 'TIMESTAMP_MICROS', logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' } };
    case 'decimal': {
      if (decimalAsText(c)) return STRING;
      const precision = c.precision as number;
      const scale = c.scale as number;
      const annotation = { converted_type: 'DECIMAL', logical_type: { type: 'DECIMAL', precision, scale }, precision, scale } as const;
      if (precision <= 9) return { type: 'INT32', ...annotation };
      if (precision <= 18) return { type: 'INT64', ...annotation };
      return { type: 'FIXED_LEN_BYTE_ARRAY', type_length: decimalBytes(precision), ...annotation };
    }
  }
}

/**
 * The Parquet schema (root first) for the sink's columns. `encoding: true` gives
 * the schema the pages are encoded with, where JSON columns are plain text (weir
 * writes their exact JSON itself: hyparquet-writer's JSON conversion makes
 * bigints doubles); the file's footer carries the other, with the JSON annotation.
 */
export function schemaElements(columns: readonly SinkColumn[], { encoding = false } = {}): WriterSchemaElement[] {
  const root: WriterSchemaElement = { name: 'root', num_children: columns.length };
  const json = encoding ? STRING : JSON_TEXT;
  return [root, ...columns.map((c): WriterSchemaElement => ({ name: c.name, repetition_type: 'OPTIONAL', ...physical(c, json) }))];
}

/** A decimal value (Decimal, number, bigint or its text), or undefined when it is none. */
function asDecimal(v: unknown): Decimal | undefined {
  if (Decimal.is(v)) return v;
  if (typeof v === 'bigint') return Decimal.parse(v.toString());
  if (typeof v === 'number') return Number.isFinite(v) ? Decimal.parse(String(v)) : undefined;
  if (typeof v === 'string') return Decimal.parse(v);
  return undefined;
}

/** Sub-second digits of an ISO-8601 timestamp text (0 when it has none or is not one). */
function fractionDigits(v: unknown): number {
  if (typeof v !== 'string') return 0;
  const m = /T?\d{2}:\d{2}:\d{2}\.(\d+)/.exec(v);
  return m ? (m[1] as string).replace(/0+$/, '').length : 0;
}

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

/** The unit a timestamp column is written in, from its first batch: DATE for dates only, NANOS for sub-microsecond digits. */
function timeUnit(values: readonly unknown[]): TimeUnit {
  const present = values.filter((v) => v !== null && v !== undefined);
  if (present.length && present.every((v) => typeof v === 'string' && DATE_ONLY.test(v))) return 'DATE';
  return present.some((v) => fractionDigits(v) > 6) ? 'NANOS' : 'MICROS';
}

/**
 * The column the sink writes for a field: its declared type (from the run's
 * schema) or the type its first-batch values suggest, with a decimal's precision
 * and scale (declared, else precision 38 and the first batch's largest scale)
 * and a timestamp's unit.
 */
export function planColumn(name: string, declared: Column | undefined, values: readonly unknown[]): SinkColumn {
  const type = declared?.type ?? inferType(values);
  if (type === 'timestamp') return { name, type, unit: timeUnit(values) };
  if (type !== 'decimal') return { name, type };
  let scale = declared?.scale;
  if (scale === undefined) {
    scale = 0;
    for (const v of values) scale = Math.max(scale, asDecimal(v)?.scale ?? 0);
  }
  let precision = declared?.precision ?? MAX_DECIMAL_PRECISION;
  if (precision <= MAX_DECIMAL_PRECISION && scale > precision) precision = MAX_DECIMAL_PRECISION + 1; // no DECIMAL holds it: text
  return { name, type, precision: Math.max(precision, 1), scale };
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INT_TEXT = /^\s*[+-]?\d+\s*$/;
/** Date, optional time (T or space), optional fraction, optional zone: the forms the csv and jsonl sources call timestamps. */
const ISO = /^\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?\s*$/;
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Converts one non-null value of a column to what hyparquet-writer encodes for its Parquet type; throws a RowError. */
export type ToParquet = (value: unknown, column: string) => unknown;

const bad = (column: string, value: unknown, what: string, code = 'bad_field') =>
  new RowError(`column "${column}": ${show(value)} is not ${what}`, { code });

function int64(value: bigint, column: string): bigint {
  if (value < INT64_MIN || value > INT64_MAX) throw bad(column, value, 'a 64-bit integer (out of range)');
  return value;
}

/**
 * An ISO-8601 text as units since the epoch, `digits` sub-second digits per
 * second (6: microseconds, 9: nanoseconds); times without a zone are taken as
 * UTC. Undefined when the text is not a valid timestamp; `'too_precise'` when
 * it has non-zero digits beyond the unit.
 */
export function isoToUnits(text: string, digits: 6 | 9): bigint | undefined | 'too_precise' {
  const perMs = digits === 6 ? 1000n : 1_000_000n;
  // Fast path: the canonical form Date#toISOString writes (Date.parse is lenient about
  // day-of-month overflow, so days past the 28th take the checked path).
  if (
    text.length === 24 &&
    text.charCodeAt(23) === 90 /* Z */ &&
    text.charCodeAt(10) === 84 /* T */ &&
    text.charCodeAt(19) === 46 /* . */ &&
    (text.charCodeAt(8) - 48) * 10 + (text.charCodeAt(9) - 48) <= 28
  ) {
    const ms = Date.parse(text);
    if (!Number.isNaN(ms)) return BigInt(ms) * perMs;
  }
  const m = ISO.exec(text);
  if (!m) return undefined;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4] ?? 0);
  const minute = Number(m[5] ?? 0);
  const second = Number(m[6] ?? 0);
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 1 : 0;
  if (month < 1 || month > 12 || day < 1 || day > (DAYS[month - 1] as number) + leap) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMinutes = 0;
  const zone = m[8];
  if (zone && zone !== 'Z') {
    const zoneDigits = zone.replace(':', '');
    const oh = Number(zoneDigits.slice(1, 3));
    const om = Number(zoneDigits.slice(3, 5) || 0);
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (zone[0] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const fraction = m[7] ?? '';
  if (/[^0]/.test(fraction.slice(digits))) return 'too_precise';
  const sub = BigInt(fraction.slice(0, digits).padEnd(digits, '0'));
  let utc = Date.UTC(year, month - 1, day, hour, minute, second);
  if (year < 100) utc = new Date(utc).setUTCFullYear(year); // Date.UTC maps years 0-99 to 1900-1999
  const ms = utc - offsetMinutes * 60_000;
  return BigInt(ms) * perMs + sub;
}

const MS_PER_DAY = 86_400_000;

/** Converts dates (`YYYY-MM-DD`, or timestamps at midnight UTC) to days since the epoch. */
const toDays: ToParquet = (v, column) => {
  const ms = v instanceof Date ? v.getTime() : typeof v === 'string' ? isoToUnits(v, 6) : typeof v === 'number' ? v : undefined;
  const millis = typeof ms === 'bigint' ? Number(ms / 1000n) : ms;
  if (typeof millis !== 'number' || !Number.isFinite(millis)) throw bad(column, v, 'a date such as 2024-05-01');
  if (millis % MS_PER_DAY !== 0)
    throw new RowError(
      `column "${column}": ${show(v)} has a time of day, and the column is a DATE (its first batch held only dates); give the source a schema, or write dates only`,
      { code: 'bad_field' },
    );
  return millis / MS_PER_DAY;
};

/** Converts timestamps (ISO-8601 text, Dates, epoch milliseconds) to the column's unit. */
function timestampConverter(unit: 'MICROS' | 'NANOS'): ToParquet {
  const digits = unit === 'NANOS' ? 9 : 6;
  const perMs = unit === 'NANOS' ? 1_000_000n : 1000n;
  return (v, column) => {
    if (v instanceof Date) {
      const ms = v.getTime();
      if (Number.isNaN(ms)) throw bad(column, v, 'a valid Date');
      return BigInt(ms) * perMs;
    }
    if (typeof v === 'string') {
      const units = isoToUnits(v, digits);
      if (typeof units === 'bigint') return units;
      if (units === 'too_precise')
        throw new RowError(
          `column "${column}": ${show(v)} has more sub-second digits than the column's ${unit === 'NANOS' ? 'nanoseconds' : 'microseconds'} hold; weir does not round timestamps`,
          { code: 'bad_field' },
        );
      throw bad(column, v, 'an ISO-8601 timestamp such as 2024-05-01T12:00:00Z');
    }
    if (typeof v === 'number' && Number.isFinite(v)) return BigInt(Math.round(v * 1000)) * (perMs / 1000n); // epoch milliseconds
    throw bad(column, v, 'a timestamp (ISO-8601 text, Date or epoch milliseconds)');
  };
}

/** Converts decimals to the unscaled integer of DECIMAL(precision, scale), refusing what does not fit exactly. */
function decimalConverter(precision: number, scale: number): ToParquet {
  const limit = 10n ** BigInt(precision);
  return (v, column) => {
    const d = asDecimal(v);
    if (!d) throw bad(column, v, 'a decimal number');
    const unscaled = d.unscaled(scale);
    if (unscaled === undefined)
      throw new RowError(
        `column "${column}": ${show(v)} has more than ${scale} digits after the point, which DECIMAL(${precision},${scale}) holds; weir does not round`,
        { code: 'bad_field' },
      );
    if (unscaled >= limit || unscaled <= -limit)
      throw new RowError(
        `column "${column}": ${show(v)} has more than ${precision - scale} digits before the point, which DECIMAL(${precision},${scale}) holds`,
        { code: 'bad_field' },
      );
    return unscaled;
  };
}

const asText: ToParquet = (v, column) => {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(v);
    default:
      if (Decimal.is(v)) return v.text;
      if (v instanceof Date) {
        if (Number.isNaN(v.getTime())) throw bad(column, v, 'a valid Date');
        return v.toISOString();
      }
      if (v instanceof Uint8Array) return base64(v);
      if (typeof v === 'object') return stringifyJson(v);
      throw bad(column, v, 'a string');
  }
};

/** Converts values of each simple weir type to what hyparquet-writer expects for the column's Parquet type. */
const SIMPLE: Record<'integer' | 'number' | 'boolean' | 'string' | 'json', ToParquet> = {
  integer(v, column) {
    if (typeof v === 'bigint') return int64(v, column);
    if (typeof v === 'number') {
      if (!Number.isInteger(v)) throw bad(column, v, 'an integer');
      return int64(BigInt(v), column);
    }
    if (Decimal.is(v) && v.unscaled(0) !== undefined) return int64(v.unscaled(0) as bigint, column);
    if (typeof v === 'string' && INT_TEXT.test(v)) return int64(BigInt(v.trim()), column);
    throw bad(column, v, 'an integer');
  },
  number(v, column) {
    if (typeof v === 'number') return v;
    if (typeof v === 'bigint') return Number(v);
    if (Decimal.is(v)) return v.toNumber();
    if (typeof v === 'string') {
      const r = convertText(v, 'number');
      if (r.ok) return r.value;
    }
    throw bad(column, v, 'a number');
  },
  boolean(v, column) {
    if (typeof v === 'boolean') return v;
    if (v === 0 || v === 1) return v === 1;
    if (typeof v === 'string') {
      const r = convertText(v, 'boolean');
      if (r.ok) return r.value;
    }
    throw bad(column, v, 'a boolean (true or false)');
  },
  string: asText,
  /** Exact JSON text (decimals and bigints as number literals); the column is encoded as text. */
  json(v, column) {
    try {
      return stringifyJson(v);
    } catch (error) {
      throw bad(column, v, `JSON (${(error as Error).message})`);
    }
  },
};

/** The converter of one column's values. */
export function toParquet(c: SinkColumn): ToParquet {
  switch (c.type) {
    case 'timestamp':
      return c.unit === 'DATE' ? toDays : timestampConverter(c.unit ?? 'MICROS');
    case 'decimal':
      return decimalAsText(c)
        ? (v, column) => {
            const d = asDecimal(v);
            if (!d) throw bad(column, v, 'a decimal number');
            return d.text;
          }
        : decimalConverter(c.precision as number, c.scale as number);
    default:
      return SIMPLE[c.type];
  }
}

/** The type of a column inferred from values (the first batch) when no schema declares it. */
export function inferType(values: Iterable<unknown>): ColumnType {
  const guess = new JsonTypeGuess();
  for (const v of values) {
    if (v instanceof Date) guess.add(Number.isNaN(v.getTime()) ? {} : v.toISOString());
    else if (typeof v === 'bigint') guess.add(0);
    else if (v instanceof Uint8Array) guess.add('');
    else guess.add(v);
  }
  return guess.type;
}

/** Field names of a batch in first-seen order. */
export function fieldNames(batch: readonly Row[]): string[] {
  const seen = new Set<string>();
  for (const row of batch) for (const key in row) seen.add(key);
  return [...seen];
}
