/**
 * Reading: how each Parquet column becomes a weir column, and how its values
 * become weir values, exactly. Pure functions, used on the planner (schemas)
 * and on workers (values).
 *
 * Flat columns are decoded by weir's page reader, which hands over each value in
 * its physical form: BOOLEAN boolean, INT32 number, INT64 bigint, INT96 bigint
 * (day << 64 | nanoseconds of the day, as hyparquet), FLOAT/DOUBLE number, and
 * bytes — or text, for columns whose converter asks for text. Nested columns are
 * decoded by hyparquet with its own conversions, except DECIMAL, which weir
 * converts from the unscaled integer (hyparquet's would be a double).
 *
 * The mapping: INT32/INT64 → integer (INT64 beyond 2^53 stays bigint, unsigned
 * kept unsigned), DECIMAL → decimal with its precision and scale (values
 * {@link Decimal}, from INT32, INT64, FIXED_LEN_BYTE_ARRAY or BYTE_ARRAY),
 * FLOAT/DOUBLE/FLOAT16 → number, strings/UUID/ENUM → string, TIMESTAMP (millis,
 * micros, nanos) and INT96 → timestamp as ISO-8601 UTC text with every
 * sub-second digit, DATE → timestamp `YYYY-MM-DD`, TIME → string
 * `HH:MM:SS[.fraction]`, JSON and nested columns (struct, list, map, variant,
 * geometry) → json (decimals and bigints inside stay exact), unannotated bytes
 * → string (the text when it is valid UTF-8, else base64; fixed-length bytes
 * always base64).
 */
import type { ParquetParsers, SchemaElement, SchemaTree } from 'hyparquet';
import { parseFloat16 } from 'hyparquet/src/convert.js';
import { wkbToGeojson } from 'hyparquet/src/wkb.js';
import type { ColumnType } from '../../sdk/types.js';
import { Decimal, parseJsonExact } from '../../sdk/values.js';

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MAX_EXACT = 2 ** 53;
/** Days from 4713 BC (INT96's Julian day 0) to 1970-01-01. */
const JULIAN_EPOCH = 2_440_588n;
const NANOS_PER_DAY = 86_400_000_000_000n;

/** A converter of one value (never null: nulls are handled before). */
export type Convert = (value: never) => unknown;

/** One top-level column of a Parquet file as weir sees it. */
export interface SourceColumn {
  name: string;
  type: ColumnType;
  nullable: boolean;
  /** `decimal` only: digits in all and after the point, from the Parquet schema. */
  precision?: number;
  scale?: number;
  /** The column's schema node (a leaf, or a group for nested columns). */
  node: SchemaTree;
  /** Whether it is a top-level, non-repeated leaf (most columns of a table): the page reader reads it by rows. */
  flat: boolean;
  /**
   * Nested columns: whether weir's page reader streams their leaves, records
   * assembled a slice at a time (every leaf of a type weir reads, no VARIANT);
   * otherwise hyparquet decodes them a row group at a time.
   */
  streamed?: boolean;
  /** Flat columns: whether byte values arrive as text (decoded as UTF-8 by the page reader). */
  text: boolean;
  /** Converts one non-null value (physical for flat columns, hyparquet's for nested ones) to its weir form. */
  convert: Convert;
  /** Why weir cannot read this column, when it cannot. */
  unsupported?: string;
  /** The Parquet type, for messages. */
  parquetType: string;
}

// ---------------------------------------------------------------------------
// Value conversions

export const base64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Unannotated bytes: text when they are valid UTF-8 (many writers omit the STRING annotation), else base64. Never lossy. */
function textOrBase64(v: Uint8Array): string {
  try {
    return utf8.decode(v);
  } catch {
    return base64(v);
  }
}

/** bigint → number when exact, else kept as bigint. */
export function fromInt64(v: bigint): number | bigint {
  return v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : v;
}

/** A big-endian two's-complement integer (DECIMAL in bytes). */
export function bigIntFromBytes(b: Uint8Array): bigint {
  if (b.length === 0) return 0n;
  const v = BigInt(`0x${Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')}`);
  return (b[0] as number) & 0x80 ? v - (1n << BigInt(b.length * 8)) : v;
}

/** The unscaled integer of a DECIMAL in any physical form. */
function unscaledOf(v: number | bigint | Uint8Array): bigint {
  return v instanceof Uint8Array ? bigIntFromBytes(v) : BigInt(v);
}

const floorDiv = (a: bigint, b: bigint) => {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
};

/** `iso` (which ends in `.mmmZ`) with the sub-millisecond digits `rest` (of `digits` digits) added when non-zero. */
const withSubMillis = (iso: string, rest: number | bigint, digits: number) =>
  rest ? `${iso.slice(0, -1)}${rest.toString().padStart(digits, '0').replace(/0+$/, '')}Z` : iso;

const DAY_MS = 86_400_000;
const pad2 = (n: number) => (n < 10 ? `0${n}` : `${n}`);
const pad3 = (n: number) => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : `${n}`);
/** The date part (`YYYY-MM-DDT`) of the last day formatted: a column's timestamps mostly share their day. */
let lastDay = Number.NaN;
let lastDayPrefix = '';

/** Milliseconds since the epoch as `Date#toISOString` writes them, without a Date per value; undefined out of its range. */
function isoMillis(ms: number): string | undefined {
  const day = Math.floor(ms / DAY_MS);
  if (day !== lastDay) {
    const date = new Date(day * DAY_MS);
    if (Number.isNaN(date.getTime()) || Number.isNaN(new Date(ms).getTime())) return undefined;
    const iso = date.toISOString();
    lastDayPrefix = iso.slice(0, iso.indexOf('T') + 1);
    lastDay = day;
  }
  let rest = ms - day * DAY_MS;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const sec = Math.floor(rest / 1000);
  return `${lastDayPrefix}${pad2(h)}:${pad2(m)}:${pad2(sec)}.${pad3(rest - sec * 1000)}Z`;
}

/** An instant counted in `perMs` units per millisecond since the epoch, as ISO-8601 (sub-ms digits only when non-zero). */
export function isoFromUnits(raw: bigint | number, perMs: number, digits: number): string {
  const n = Number(raw);
  if (Math.abs(n) < MAX_EXACT) {
    // Exact in floating point: no bigint arithmetic (the common case for millis and micros).
    const ms = Math.floor(n / perMs);
    const iso = isoMillis(ms);
    if (iso === undefined) return String(raw);
    return withSubMillis(iso, n - ms * perMs, digits);
  }
  const v = BigInt(raw);
  const per = BigInt(perMs);
  const ms = floorDiv(v, per);
  const date = new Date(Number(ms));
  if (Number.isNaN(date.getTime())) return v.toString();
  return withSubMillis(date.toISOString(), v - ms * per, digits);
}

/** INT96 (Impala/Spark timestamps): Julian day in the high 32 bits, nanoseconds of the day in the low 64. */
function isoFromInt96(v: bigint): string {
  const nanos = ((v >> 64n) - JULIAN_EPOCH) * NANOS_PER_DAY + BigInt.asUintN(64, v);
  return isoFromUnits(nanos, 1_000_000, 6);
}

/** Days since the epoch as `YYYY-MM-DD`. */
function dateFromDays(days: number): string {
  const d = new Date(days * 86_400_000);
  return Number.isNaN(d.getTime()) ? String(days) : d.toISOString().slice(0, 10);
}

/** A time of day counted in `perSecond` units since midnight, as `HH:MM:SS[.fraction]`. */
function timeOfDay(raw: number | bigint, perSecond: bigint): string {
  const v = BigInt(raw);
  const seconds = v / perSecond;
  const frac = v % perSecond;
  const hh = (seconds / 3600n).toString().padStart(2, '0');
  const mm = ((seconds / 60n) % 60n).toString().padStart(2, '0');
  const ss = (seconds % 60n).toString().padStart(2, '0');
  const digits = perSecond.toString().length - 1;
  const f = frac === 0n ? '' : `.${frac.toString().padStart(digits, '0').replace(/0+$/, '')}`;
  return `${hh}:${mm}:${ss}${f}`;
}

function uuidText(b: Uint8Array): string {
  const hex = Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** JSON text as exact values; text that is not JSON stays the text (a JSON string). */
function jsonFromText(text: string): unknown {
  try {
    return parseJsonExact(text);
  } catch {
    return text;
  }
}

/**
 * A decoded nested value as a weir JSON value: bigints kept (numbers when exact),
 * Decimals kept, Dates as ISO text, bytes as base64, non-finite numbers as null.
 */
export function jsonValue(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (typeof v) {
    case 'bigint':
      return fromInt64(v);
    case 'number':
      return Number.isFinite(v) ? v : null;
    case 'object': {
      if (Decimal.is(v)) return v;
      if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
      if (v instanceof Uint8Array) return base64(v);
      if (Array.isArray(v) || ArrayBuffer.isView(v)) return Array.from(v as ArrayLike<unknown>, jsonValue);
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = jsonValue(x);
      return out;
    }
    default:
      return v;
  }
}

// ---------------------------------------------------------------------------
// Leaf columns

export interface LeafType {
  type: ColumnType;
  /** Byte values arrive as UTF-8 text. */
  text?: boolean;
  convert: Convert;
  precision?: number;
  scale?: number;
  unsupported?: string;
}

const same: Convert = (v: unknown) => v;
const leaf = (type: ColumnType, convert: Convert = same, text = false): LeafType => ({ type, convert, text });

function timeUnitsPerSecond(unit: string | undefined): bigint {
  return unit === 'MILLIS' ? 1000n : unit === 'MICROS' ? 1_000_000n : 1_000_000_000n;
}

/** How a DECIMAL leaf is read: its precision and scale, values from the unscaled integer. */
function decimalLeaf(e: SchemaElement): LeafType {
  const scale = (e.logical_type?.type === 'DECIMAL' ? e.logical_type.scale : e.scale) ?? 0;
  const precision = (e.logical_type?.type === 'DECIMAL' ? e.logical_type.precision : e.precision) ?? undefined;
  return {
    type: 'decimal',
    precision,
    scale,
    convert: ((v: number | bigint | Uint8Array) => Decimal.fromUnscaled(unscaledOf(v), scale)) as Convert,
  };
}

/** Whether a leaf holds a DECIMAL (converted or logical annotation). */
export const isDecimal = (e: SchemaElement) => e.converted_type === 'DECIMAL' || e.logical_type?.type === 'DECIMAL';

/** How a leaf of physical values (weir's page reader) is read: the flat columns, and the leaves of nested ones. */
export function physicalLeaf(e: SchemaElement): LeafType {
  const ct = e.converted_type;
  const lt = e.logical_type;
  if (ct === 'BSON' || lt?.type === 'BSON') return { ...leaf('json'), unsupported: 'BSON' };
  if (ct === 'INTERVAL' || lt?.type === 'INTERVAL') return { ...leaf('string'), unsupported: 'INTERVAL' };
  if (isDecimal(e)) return decimalLeaf(e);
  if (lt?.type === 'TIME' || ct === 'TIME_MILLIS' || ct === 'TIME_MICROS') {
    const per = timeUnitsPerSecond(lt?.type === 'TIME' ? lt.unit : ct === 'TIME_MILLIS' ? 'MILLIS' : 'MICROS');
    return leaf('string', ((v: number | bigint) => timeOfDay(v, per)) as Convert);
  }
  if (lt?.type === 'TIMESTAMP' || ct === 'TIMESTAMP_MILLIS' || ct === 'TIMESTAMP_MICROS') {
    const unit = lt?.type === 'TIMESTAMP' ? lt.unit : ct === 'TIMESTAMP_MILLIS' ? 'MILLIS' : 'MICROS';
    const [perMs, digits] = unit === 'MILLIS' ? [1, 0] : unit === 'MICROS' ? [1000, 3] : [1_000_000, 6];
    return leaf('timestamp', ((v: bigint) => isoFromUnits(v, perMs, digits)) as Convert);
  }
  if (ct === 'DATE' || lt?.type === 'DATE') return leaf('timestamp', dateFromDays as Convert);
  if (e.type === 'INT96') return leaf('timestamp', isoFromInt96 as Convert);
  if (ct === 'JSON' || lt?.type === 'JSON') return leaf('json', jsonFromText as Convert, true);
  if (lt?.type === 'GEOMETRY' || lt?.type === 'GEOGRAPHY')
    return leaf('json', ((b: Uint8Array) =>
      wkbToGeojson({ view: new DataView(b.buffer, b.byteOffset, b.byteLength), offset: 0 })) as Convert);
  if (lt?.type === 'FLOAT16') return leaf('number', parseFloat16 as Convert);
  const unsigned = ct === 'UINT_8' || ct === 'UINT_16' || ct === 'UINT_32' || ct === 'UINT_64' || (lt?.type === 'INTEGER' && !lt.isSigned);
  switch (e.type) {
    case 'BOOLEAN':
      return leaf('boolean');
    case 'INT32':
      return leaf('integer', unsigned ? (((v: number) => v >>> 0) as Convert) : same);
    case 'INT64':
      return leaf('integer', (unsigned ? (v: bigint) => fromInt64(BigInt.asUintN(64, v)) : fromInt64) as Convert);
    case 'FLOAT':
    case 'DOUBLE':
      return leaf('number');
    case 'FIXED_LEN_BYTE_ARRAY':
      return leaf('string', (lt?.type === 'UUID' ? uuidText : base64) as Convert);
    default:
      if (ct === 'UTF8' || ct === 'ENUM' || lt?.type === 'STRING' || lt?.type === 'ENUM') return leaf('string', same, true);
      return leaf('string', textOrBase64 as Convert);
  }
}

/**
 * How a leaf inside a nested column is read from hyparquet's value: DECIMAL from
 * the unscaled integer (see {@link nestedReadSchema}), the rest as hyparquet
 * converted it (with {@link NESTED_PARSERS}), made a weir JSON value.
 */
function nestedLeafConvert(e: SchemaElement): Convert {
  if (isDecimal(e)) return decimalLeaf(e).convert;
  if (e.type === 'FIXED_LEN_BYTE_ARRAY' && e.logical_type?.type === 'FLOAT16') return same;
  return jsonValue as Convert;
}

/** hyparquet parsers for nested columns: ISO text for instants and dates (no Date, which loses microseconds), exact JSON. */
export const NESTED_PARSERS: Partial<ParquetParsers> = {
  timestampFromMilliseconds: (v) => isoFromUnits(v, 1, 0),
  timestampFromMicroseconds: (v) => isoFromUnits(v, 1000, 3),
  timestampFromNanoseconds: (v) => isoFromUnits(v, 1_000_000, 6),
  dateFromDays,
  jsonFromBytes: (b) => (b ? jsonFromText(Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8')) : b),
};

const isListLike = (n: SchemaTree) =>
  n.element.converted_type === 'LIST' && n.children.length === 1 && n.children[0]?.element.repetition_type === 'REPEATED';
const isMapLike = (n: SchemaTree) =>
  (n.element.converted_type === 'MAP' || n.element.converted_type === 'MAP_KEY_VALUE') &&
  n.children.length === 1 &&
  n.children[0]?.children.length === 2;

/** A converter for a nested value that follows the schema (as hyparquet assembled it) to find the decimal leaves. */
function nestedConvert(node: SchemaTree): Convert {
  const e = node.element;
  let convert: Convert;
  if (node.children.length === 0) convert = nestedLeafConvert(e);
  else if (e.logical_type?.type === 'VARIANT') convert = jsonValue as Convert;
  else if (isListLike(node)) {
    const repeated = node.children[0] as SchemaTree;
    const item = nestedConvert(repeated.children.length === 1 ? (repeated.children[0] as SchemaTree) : repeated);
    return ((v: unknown[]) => Array.from(v, (x) => (x === null || x === undefined ? null : item(x as never)))) as Convert;
  } else if (isMapLike(node)) {
    const entry = node.children[0] as SchemaTree;
    const valueNode = entry.children.find((c) => c.element.name === 'value') ?? (entry.children[1] as SchemaTree);
    const value = nestedConvert(valueNode);
    return ((v: Record<string, unknown>) => {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = x === null || x === undefined ? null : value(x as never);
      return out;
    }) as Convert;
  } else {
    const fields = node.children.map((c) => [c.element.name, nestedConvert(c)] as const);
    convert = ((v: Record<string, unknown>) => {
      const out: Record<string, unknown> = {};
      for (const [name, c] of fields) {
        const x = v[name];
        if (x !== undefined) out[name] = x === null ? null : c(x as never);
      }
      return out;
    }) as Convert;
  }
  if (e.repetition_type !== 'REPEATED') return convert;
  // A repeated field without a LIST annotation (the legacy form): hyparquet gives an array.
  return ((v: unknown) =>
    Array.isArray(v) ? v.map((x) => (x === null || x === undefined ? null : convert(x as never))) : convert(v as never)) as Convert;
}

/** The leaves under a schema node, in column-chunk order. */
export function leavesOf(node: SchemaTree): SchemaTree[] {
  return node.children.length ? node.children.flatMap(leavesOf) : [node];
}

const hasVariant = (node: SchemaTree): boolean => node.element.logical_type?.type === 'VARIANT' || node.children.some(hasVariant);

/** The top-level columns of a Parquet schema tree. */
export function sourceColumns(tree: SchemaTree): SourceColumn[] {
  return tree.children.map((node) => {
    const e = node.element;
    const nullable = e.repetition_type !== 'REQUIRED';
    if (node.children.length > 0 || e.repetition_type === 'REPEATED') {
      const kind = e.logical_type?.type ?? e.converted_type ?? (node.children.length ? 'group' : `repeated ${e.type}`);
      const streamed = leavesOf(node).every((l) => !physicalLeaf(l.element).unsupported) && !hasVariant(node);
      return {
        name: e.name,
        type: 'json',
        nullable,
        node,
        flat: false,
        streamed,
        text: false,
        convert: nestedConvert(node),
        parquetType: kind,
      };
    }
    const l = physicalLeaf(e);
    const parquetType = [e.type, e.logical_type?.type ?? e.converted_type].filter(Boolean).join('/');
    const column: SourceColumn = {
      name: e.name,
      type: l.type,
      nullable,
      node,
      flat: true,
      text: l.text ?? false,
      convert: l.convert,
      parquetType,
    };
    if (l.type === 'decimal') Object.assign(column, { precision: l.precision, scale: l.scale });
    if (l.unsupported) column.unsupported = l.unsupported;
    return column;
  });
}

/**
 * The schema hyparquet decodes nested columns with: DECIMAL leaves stripped of
 * their annotation, so hyparquet hands over the unscaled integer (or its bytes)
 * instead of a double. Map keys keep theirs (hyparquet makes them property names).
 */
export function nestedReadSchema(schema: readonly SchemaElement[], tree: SchemaTree): SchemaElement[] {
  const strip = new Set<SchemaElement>();
  const walk = (n: SchemaTree, isKey: boolean): void => {
    if (n.children.length === 0) {
      if (!isKey && isDecimal(n.element)) strip.add(n.element);
      return;
    }
    const entry = isMapLike(n) ? (n.children[0] as SchemaTree) : undefined;
    for (const c of entry?.children ?? n.children) walk(c, entry !== undefined && c === entry.children[0]);
  };
  for (const top of tree.children) if (top.children.length) walk(top, false);
  return schema.map((e) => {
    if (!strip.has(e)) return e;
    const { converted_type: _c, logical_type: _l, ...plain } = e;
    return plain;
  });
}
