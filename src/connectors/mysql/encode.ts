/**
 * Row values → what the MySQL/MariaDB sink sends, chosen per target column from
 * its information_schema type (worker, once per column per partition; the
 * encoders run once per value).
 *
 * The server is strict for weir's sessions (STRICT_TRANS_TABLES), but even strict
 * mode rounds a DECIMAL value with more fraction digits than the column's scale
 * with only a note, and rounds `'1.5'` into an INT column without one. So values
 * for numeric columns are checked here, and whatever would not arrive exactly is a
 * {@link RowError} (dead-lettered or failing the run, per `errors.tolerance`):
 *
 * - integer columns take integers only (numbers, bigints, decimals and text without
 *   a fraction), within the column's range;
 * - DECIMAL(p,s) takes numbers with at most s fraction digits and p-s integer
 *   digits, sent as exact text (a decimal never passes through a double);
 * - FLOAT/DOUBLE take any number (the server reads decimal text to the nearest
 *   double, as its own LOAD DATA does);
 * - text columns get a value's text byte for byte (`1305.020020` stays so).
 *
 * The encoded values are what mysql2 escapes into a multi-row INSERT and what
 * LOAD DATA's field text is written from, so both paths check and send the same.
 */
import { RowError } from '../../sdk/errors.js';
import { Decimal, stringifyJson } from '../../sdk/values.js';
import { show } from '../shared/columns.js';
import type { TableColumn } from './db.js';

/** One value of a row → what mysql2 escapes (string, number, boolean, Date, Buffer or null). */
export type Encode = (v: unknown) => unknown;

const INTEGER_BITS: Record<string, number> = { tinyint: 8, smallint: 16, mediumint: 24, int: 32, integer: 32, bigint: 64 };
const FLOATS = new Set(['float', 'double', 'real', 'double precision']);
const TEXTS = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'enum', 'set']);
const DATETIMES = new Set(['datetime', 'timestamp']);

/** The encoder of a target column; `column` names it in errors. */
export function encoderFor(column: string, target: TableColumn): Encode {
  if (target.json) return jsonEncoder(column);
  const bits = INTEGER_BITS[target.dataType];
  if (bits !== undefined) return integerEncoder(column, target, bits);
  if (target.dataType === 'decimal' || target.dataType === 'numeric') return decimalEncoder(column, target);
  if (FLOATS.has(target.dataType)) return floatEncoder(column);
  if (TEXTS.has(target.dataType)) return textEncoder(column);
  if (DATETIMES.has(target.dataType)) return datetimeEncoder(column);
  return generic(column);
}

/** The type as a user declared it, for messages: `INT UNSIGNED`, `DECIMAL(10,2)`. */
function typeName(target: TableColumn): string {
  const unsigned = target.columnType.includes('unsigned') ? ' UNSIGNED' : '';
  if (target.dataType === 'decimal' || target.dataType === 'numeric')
    return `DECIMAL(${target.precision ?? 10},${target.scale ?? 0})${unsigned}`;
  return `${target.dataType.toUpperCase()}${unsigned}`;
}

function finite(column: string, v: number): number {
  if (!Number.isFinite(v))
    throw new RowError(`column ${column}: ${v} cannot be stored in MySQL/MariaDB; use null or a finite number`, { code: 'invalid_number' });
  return v;
}

/** What every column type gets for values it has no rule of its own for. */
function base(column: string, v: unknown): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return finite(column, v);
    case 'bigint':
      return v.toString();
    case 'undefined':
      return null;
    case 'object':
      if (v === null || v instanceof Date) return v;
      if (Decimal.is(v)) return v.text;
      if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      return stringifyJson(v);
    default:
      return String(v);
  }
}

const generic =
  (column: string): Encode =>
  (v) =>
    base(column, v);

/** JSON columns: objects and lists as JSON text with decimals and bigints as exact numbers. */
const jsonEncoder = generic;

/** Text columns: the value's text, exactly (numbers as JavaScript prints them, decimals as their digits). */
function textEncoder(column: string): Encode {
  return (v) => (typeof v === 'number' ? String(finite(column, v)) : base(column, v));
}

/** DATETIME/TIMESTAMP columns: ISO-8601 text becomes `YYYY-MM-DD HH:MM:SS.ffffff` in UTC. */
function datetimeEncoder(column: string): Encode {
  return (v) => (typeof v === 'string' ? toDatetimeText(v) : base(column, v));
}

/** The number a value means, exactly, or undefined when it is not a number (text that is not one, objects). */
function decimalOf(v: unknown): Decimal | undefined {
  if (Decimal.is(v)) return v;
  switch (typeof v) {
    case 'string':
      return Decimal.parse(v);
    case 'number':
      return Number.isFinite(v) ? Decimal.parse(String(v)) : undefined;
    case 'bigint':
      return Decimal.parse(v.toString());
    case 'boolean':
      return Decimal.parse(v ? '1' : '0');
    default:
      return undefined;
  }
}

/** Zero in any spelling (`0`, `-0.00`, `0e999999999`): its digits need no scaling to compare. */
const ZERO = /^-?0(?:\.0+)?(?:[eE][+-]?\d+)?$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function integerEncoder(column: string, target: TableColumn, bits: number): Encode {
  const unsigned = target.columnType.includes('unsigned');
  const min = unsigned ? 0n : -(2n ** BigInt(bits - 1));
  const max = unsigned ? 2n ** BigInt(bits) - 1n : 2n ** BigInt(bits - 1) - 1n;
  const type = typeName(target);
  return (v) => {
    if (v === null || v === undefined) return null;
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max) return v; // the common case
    if (typeof v === 'boolean') return v;
    const d = decimalOf(v);
    if (!d)
      throw new RowError(`column ${column}: ${show(v)} is not an integer, which the ${type} column needs`, { code: 'invalid_integer' });
    // a 20-digit bound: beyond it no unscaled value is needed to know the answer (and 1e999999999 is not expanded)
    const n = ZERO.test(d.text) ? 0n : d.integerDigits > 20 ? undefined : d.unscaled(0);
    if (n === undefined && d.integerDigits <= 20)
      throw new RowError(
        `column ${column}: ${show(v)} has a fraction, which the ${type} column would round away; write it to a DECIMAL or DOUBLE column`,
        { code: 'invalid_integer' },
      );
    if (n === undefined || n < min || n > max) {
      const wider = n !== undefined && n >= INT64_MIN && n <= INT64_MAX ? 'BIGINT' : `DECIMAL(${Math.max(d.integerDigits, 20)},0)`;
      throw new RowError(
        `column ${column}: ${show(v)} is out of range for ${type} (${min} to ${max}); a ${wider} column holds it exactly`,
        {
          code: 'out_of_range',
        },
      );
    }
    return Number.isSafeInteger(Number(n)) ? Number(n) : n.toString();
  };
}

function decimalEncoder(column: string, target: TableColumn): Encode {
  const scale = target.scale ?? 0;
  const precision = target.precision ?? 10;
  const unsigned = target.columnType.includes('unsigned');
  const type = typeName(target);
  return (v) => {
    if (v === null || v === undefined) return null;
    const d = decimalOf(v);
    if (!d)
      throw new RowError(`column ${column}: ${show(v)} is not a decimal number, which the ${type} column needs`, {
        code: 'invalid_decimal',
      });
    if (ZERO.test(d.text)) return Decimal.fromUnscaled(0n, scale).text;
    if (d.integerDigits > precision - scale)
      throw new RowError(
        `column ${column}: ${show(v)} has ${d.integerDigits} digit(s) before the point; ${type} holds ${precision - scale}, so it does not fit`,
        { code: 'out_of_range' },
      );
    const unscaled = d.unscaled(scale);
    if (unscaled === undefined)
      throw new RowError(
        `column ${column}: ${show(v)} has ${d.scale} digit(s) after the point; ${type} keeps ${scale}, so MySQL/MariaDB would round it`,
        { code: 'decimal_scale' },
      );
    if (unsigned && unscaled < 0n)
      throw new RowError(`column ${column}: ${show(v)} is negative; the ${type} column holds no negative numbers`, {
        code: 'out_of_range',
      });
    return Decimal.fromUnscaled(unscaled, scale).text;
  };
}

/** FLOAT/DOUBLE: any number; decimal text is read by the server to the nearest double. */
function floatEncoder(column: string): Encode {
  return (v) => {
    if (typeof v === 'number') return finite(column, v);
    if (v === null || v === undefined) return null;
    if (typeof v === 'boolean') return v;
    const d = decimalOf(v);
    if (!d)
      throw new RowError(`column ${column}: ${show(v)} is not a number, which a floating-point column needs`, { code: 'invalid_number' });
    return d.text;
  };
}

// ---------------------------------------------------------------------------
// Timestamps

const ISO_ZONED = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$/;
const ISO_LOCAL = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)$/;

/**
 * `2024-03-05T10:00:00.123456Z` → `2024-03-05 10:00:00.123456` (UTC; an offset is
 * applied, the fraction kept digit for digit); other text is left to the server.
 */
export function toDatetimeText(text: string): string {
  if (text.length > 19 && text.endsWith('Z') && text[10] === 'T' && !text.includes('+')) {
    const frac = text.length > 20 ? text.slice(20, -1) : '';
    if (/^\d{0,6}$/.test(frac) && text[19] === (frac ? '.' : 'Z'))
      return `${text.slice(0, 10)} ${text.slice(11, 19)}${frac ? `.${frac}` : ''}`;
  }
  const zoned = ISO_ZONED.exec(text);
  if (zoned) {
    const [, date, time, frac, zone] = zoned as unknown as [string, string, string, string | undefined, string];
    const offset = zone === 'Z' ? 'Z' : `${zone.slice(0, 3)}:${zone.slice(-2)}`;
    const d = new Date(`${date}T${time}${offset}`);
    if (!Number.isNaN(d.getTime())) return `${d.toISOString().slice(0, 19).replace('T', ' ')}${frac ? `.${frac}` : ''}`;
  }
  const local = ISO_LOCAL.exec(text);
  if (local) return `${local[1]} ${local[2]}`;
  return text;
}

/** `2024-05-01 10:00:00.125` as the server sends it → ISO-8601 (`…T…`, with `Z` for TIMESTAMP, which the UTC session reads in UTC). */
export function isoDatetime(text: string, utc: boolean): string {
  return `${text.slice(0, 10)}T${text.slice(11)}${utc ? 'Z' : ''}`;
}

/** BIGINT text → number, or bigint beyond 2^53. */
export function int64(text: string): number | bigint {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : BigInt(text);
}
