/**
 * Mapping between Parquet types and weir column types, both ways, with the
 * value conversions each direction needs. Pure functions: used on the planner
 * (schemas) and on workers (values).
 *
 * Reading: INT32/INT64 → integer (INT64 values beyond 2^53 stay bigint, like
 * the csv source), FLOAT/DOUBLE/DECIMAL → number, strings/UUID/ENUM → string,
 * TIMESTAMP/DATE/INT96 → timestamp as ISO-8601 strings (sub-millisecond digits
 * kept), TIME → string `HH:MM:SS.fff`, JSON and nested columns (struct, list,
 * map, variant, geometry) → json, unannotated bytes → string (the text when it
 * is valid UTF-8, else base64; fixed-length bytes always base64).
 *
 * Writing: integer → INT64, number → DOUBLE, string → STRING, boolean →
 * BOOLEAN, timestamp → INT64 TIMESTAMP(MICROS, UTC), json → JSON; all columns
 * OPTIONAL (nullable).
 */
import type { ParquetParsers, SchemaElement, SchemaTree } from 'hyparquet';
import type { SchemaElement as WriterSchemaElement } from 'hyparquet-writer';
import { RowError } from '../../sdk/errors.js';
import type { ColumnType, Row } from '../../sdk/types.js';
import { convertText, JsonTypeGuess, show } from '../shared/columns.js';

// ---------------------------------------------------------------------------
// Reading

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

const base64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Unannotated bytes: text when they are valid UTF-8 (many writers omit the STRING annotation), else base64. Never lossy. */
function textOrBase64(v: unknown): unknown {
  if (!(v instanceof Uint8Array)) return v ?? null;
  try {
    return utf8.decode(v);
  } catch {
    return base64(v);
  }
}

/** bigint → number when exact, else kept as bigint. */
export function fromInt64(v: unknown): unknown {
  if (typeof v !== 'bigint') return v ?? null;
  return v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : v;
}

/** Makes a decoded nested value plain JSON: bigint → number (or string when not exact), Date → ISO, bytes → base64. */
export function jsonSafe(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (typeof v) {
    case 'bigint':
      return v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : v.toString();
    case 'number':
      return Number.isFinite(v) ? v : null;
    case 'object': {
      if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
      if (v instanceof Uint8Array) return base64(v);
      if (Array.isArray(v) || ArrayBuffer.isView(v)) return Array.from(v as ArrayLike<unknown>, jsonSafe);
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = jsonSafe(x);
      return out;
    }
    default:
      return v;
  }
}

const floorDiv = (a: bigint, b: bigint) => {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
};

const MAX_EXACT = 2 ** 53;

/** `iso` (which ends in `.mmmZ`) with the sub-millisecond digits `rest` (of `digits` digits) added when non-zero. */
const withSubMillis = (iso: string, rest: number | bigint, digits: number) =>
  rest ? `${iso.slice(0, -1)}${rest.toString().padStart(digits, '0').replace(/0+$/, '')}Z` : iso;

/** An instant counted in `perMs` units per millisecond since the epoch, as ISO-8601 (sub-ms digits only when non-zero). */
function isoFromUnits(raw: bigint | number, perMs: number, digits: number): string {
  const n = Number(raw);
  if (Math.abs(n) < MAX_EXACT) {
    // Exact in floating point: no bigint arithmetic (the common case for millis and micros).
    const ms = Math.floor(n / perMs);
    const date = new Date(ms);
    if (Number.isNaN(date.getTime())) return String(raw);
    return withSubMillis(date.toISOString(), n - ms * perMs, digits);
  }
  const v = BigInt(raw);
  const per = BigInt(perMs);
  const ms = floorDiv(v, per);
  const date = new Date(Number(ms));
  if (Number.isNaN(date.getTime())) return v.toString();
  return withSubMillis(date.toISOString(), v - ms * per, digits);
}

/** hyparquet parsers that produce ISO-8601 strings instead of Dates (no precision lost). */
export const PARSERS: Partial<ParquetParsers> = {
  timestampFromMilliseconds: (v) => isoFromUnits(v, 1, 0),
  timestampFromMicroseconds: (v) => isoFromUnits(v, 1000, 3),
  timestampFromNanoseconds: (v) => isoFromUnits(v, 1_000_000, 6),
  dateFromDays: (days: number) => {
    const d = new Date(days * 86_400_000);
    return Number.isNaN(d.getTime()) ? String(days) : d.toISOString().slice(0, 10);
  },
};

/** A time of day counted in `perSecond` units since midnight, as `HH:MM:SS[.fraction]`. */
function timeOfDay(raw: unknown, perSecond: bigint): unknown {
  if (raw === null || raw === undefined) return null;
  const v = BigInt(raw as number | bigint);
  const seconds = v / perSecond;
  const frac = v % perSecond;
  const hh = (seconds / 3600n).toString().padStart(2, '0');
  const mm = ((seconds / 60n) % 60n).toString().padStart(2, '0');
  const ss = (seconds % 60n).toString().padStart(2, '0');
  const digits = perSecond.toString().length - 1;
  const f = frac === 0n ? '' : `.${frac.toString().padStart(digits, '0').replace(/0+$/, '')}`;
  return `${hh}:${mm}:${ss}${f}`;
}

/** One top-level column of a Parquet file as weir sees it. */
export interface SourceColumn {
  name: string;
  type: ColumnType;
  nullable: boolean;
  /** Converts one decoded value to its weir form; absent when hyparquet's value is already right. */
  convert?: (value: unknown) => unknown;
  /** Why weir cannot read this column, when it cannot. */
  unsupported?: string;
  /** The Parquet type, for messages. */
  parquetType: string;
}

function leafColumn(e: SchemaElement): Omit<SourceColumn, 'name' | 'nullable'> {
  const ct = e.converted_type;
  const lt = e.logical_type;
  const parquetType = [e.type, lt?.type ?? ct].filter(Boolean).join('/');
  const col = (type: ColumnType, convert?: (v: unknown) => unknown) => ({ type, convert, parquetType });
  if (ct === 'BSON' || lt?.type === 'BSON') return { ...col('json'), unsupported: 'BSON' };
  if (ct === 'INTERVAL' || lt?.type === 'INTERVAL') return { ...col('string'), unsupported: 'INTERVAL' };
  if (lt?.type === 'TIME') {
    const per = lt.unit === 'MILLIS' ? 1000n : lt.unit === 'MICROS' ? 1_000_000n : 1_000_000_000n;
    return col('string', (v) => timeOfDay(v, per));
  }
  if (ct === 'TIME_MILLIS') return col('string', (v) => timeOfDay(v, 1000n));
  if (ct === 'TIME_MICROS') return col('string', (v) => timeOfDay(v, 1_000_000n));
  if (lt?.type === 'TIMESTAMP' || ct === 'TIMESTAMP_MILLIS' || ct === 'TIMESTAMP_MICROS' || ct === 'DATE' || lt?.type === 'DATE')
    return col('timestamp', jsonSafe);
  if (e.type === 'INT96' && !ct) return col('timestamp', jsonSafe);
  if (ct === 'JSON' || lt?.type === 'JSON') return col('json');
  if (lt?.type === 'GEOMETRY' || lt?.type === 'GEOGRAPHY' || lt?.type === 'VARIANT') return col('json', jsonSafe);
  if (ct === 'DECIMAL' || lt?.type === 'DECIMAL' || lt?.type === 'FLOAT16') return col('number');
  switch (e.type) {
    case 'BOOLEAN':
      return col('boolean');
    case 'INT32':
      return col('integer');
    case 'INT64':
      return col('integer', fromInt64);
    case 'FLOAT':
    case 'DOUBLE':
      return col('number');
    case 'FIXED_LEN_BYTE_ARRAY':
      if (lt?.type === 'UUID') return col('string');
      return col('string', (v) => (v instanceof Uint8Array ? base64(v) : (v ?? null)));
    default:
      return col('string', textOrBase64); // read with utf8: false, so bytes arrive undecoded
  }
}

/** The top-level columns of a Parquet schema tree. */
export function sourceColumns(tree: SchemaTree): SourceColumn[] {
  return tree.children.map((node) => {
    const e = node.element;
    const nullable = e.repetition_type !== 'REQUIRED';
    if (node.children.length > 0 || e.repetition_type === 'REPEATED') {
      const kind = e.logical_type?.type ?? e.converted_type ?? 'group';
      return { name: e.name, type: 'json', nullable, convert: jsonSafe, parquetType: kind };
    }
    return { name: e.name, nullable, ...leafColumn(e) };
  });
}

// ---------------------------------------------------------------------------
// Writing

/** One column the sink writes. */
export interface SinkColumn {
  name: string;
  type: ColumnType;
}

/** The Parquet schema (root first) for the sink's columns. */
export function schemaElements(columns: readonly SinkColumn[]): WriterSchemaElement[] {
  const root: WriterSchemaElement = { name: 'root', num_children: columns.length };
  return [root, ...columns.map((c): WriterSchemaElement => ({ name: c.name, repetition_type: 'OPTIONAL', ...PHYSICAL[c.type] }))];
}

/** The Parquet type annotations of each weir column type. */
const PHYSICAL: Record<ColumnType, Omit<WriterSchemaElement, 'name'>> = {
  integer: { type: 'INT64' },
  number: { type: 'DOUBLE' },
  boolean: { type: 'BOOLEAN' },
  string: { type: 'BYTE_ARRAY', converted_type: 'UTF8', logical_type: { type: 'STRING' } },
  timestamp: {
    type: 'INT64',
    converted_type: 'TIMESTAMP_MICROS',
    logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' },
  },
  json: { type: 'BYTE_ARRAY', converted_type: 'JSON', logical_type: { type: 'JSON' } },
};

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INT_TEXT = /^\s*[+-]?\d+\s*$/;
/** Date, optional time (T or space), optional fraction, optional zone: the forms the csv and jsonl sources call timestamps. */
const ISO = /^\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?\s*$/;
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

export type ToParquet = (value: unknown, column: string) => unknown;

const bad = (column: string, value: unknown, what: string, code = 'bad_field') =>
  new RowError(`column "${column}": ${show(value)} is not ${what}`, { code });

function int64(value: bigint, column: string): bigint {
  if (value < INT64_MIN || value > INT64_MAX) throw bad(column, value, 'a 64-bit integer (out of range)');
  return value;
}

/**
 * An ISO-8601 text as microseconds since the epoch (digits beyond microseconds
 * are dropped); times without a zone are taken as UTC. Undefined when the text
 * is not a valid timestamp.
 */
export function isoToMicros(text: string): bigint | undefined {
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
    if (!Number.isNaN(ms) && Math.abs(ms) < 9e12) return BigInt(ms * 1000);
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
    const digits = zone.replace(':', '');
    const oh = Number(digits.slice(1, 3));
    const om = Number(digits.slice(3, 5) || 0);
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (zone[0] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const fraction = m[7] ?? '';
  const micros = fraction ? Number(fraction.slice(0, 6).padEnd(6, '0')) : 0;
  let utc = Date.UTC(year, month - 1, day, hour, minute, second);
  if (year < 100) utc = new Date(utc).setUTCFullYear(year); // Date.UTC maps years 0-99 to 1900-1999
  const ms = utc - offsetMinutes * 60_000;
  return Math.abs(ms) < 9e12 ? BigInt(ms * 1000 + micros) : BigInt(ms) * 1000n + BigInt(micros);
}

/** Converts values of one weir type to what hyparquet-writer expects for the column's Parquet type. */
export const TO_PARQUET: Record<ColumnType, ToParquet> = {
  integer(v, column) {
    if (typeof v === 'bigint') return int64(v, column);
    if (typeof v === 'number') {
      if (!Number.isInteger(v)) throw bad(column, v, 'an integer');
      return int64(BigInt(v), column);
    }
    if (typeof v === 'string' && INT_TEXT.test(v)) return int64(BigInt(v.trim()), column);
    throw bad(column, v, 'an integer');
  },
  number(v, column) {
    if (typeof v === 'number') return v;
    if (typeof v === 'bigint') return Number(v);
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
  string(v, column) {
    switch (typeof v) {
      case 'string':
        return v;
      case 'number':
      case 'bigint':
      case 'boolean':
        return String(v);
      default:
        if (v instanceof Date) {
          if (Number.isNaN(v.getTime())) throw bad(column, v, 'a valid Date');
          return v.toISOString();
        }
        if (v instanceof Uint8Array) return base64(v);
        if (typeof v === 'object') return JSON.stringify(jsonSafe(v));
        throw bad(column, v, 'a string');
    }
  },
  timestamp(v, column) {
    if (v instanceof Date) {
      const ms = v.getTime();
      if (Number.isNaN(ms)) throw bad(column, v, 'a valid Date');
      return BigInt(ms) * 1000n;
    }
    if (typeof v === 'string') {
      const us = isoToMicros(v);
      if (us !== undefined) return us;
      throw bad(column, v, 'an ISO-8601 timestamp such as 2024-05-01T12:00:00Z');
    }
    if (typeof v === 'number' && Number.isFinite(v)) return BigInt(Math.round(v * 1000)); // epoch milliseconds
    throw bad(column, v, 'a timestamp (ISO-8601 text, Date or epoch milliseconds)');
  },
  json(v) {
    return jsonSafe(v);
  },
};

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
