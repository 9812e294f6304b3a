/**
 * `cast`: converts columns to weir's types, exactly. A decimal stays exact (text
 * to `decimal` keeps every digit), a number becomes a double only when the double
 * holds it exactly; a value that does not convert is a row error (the dead-letter
 * policy applies), never a silent rounding.
 */
import { RowError } from '../sdk/errors.js';
import { o } from '../sdk/options.js';
import { defineTransform } from '../sdk/transform.js';
import { COLUMN_TYPES, type ColumnType, type Row } from '../sdk/types.js';
import { Decimal, parseJsonExact } from '../sdk/values.js';
import { stringOf, typeOf } from './expr.js';
import { requireColumns } from './step.js';

const INTEGER = /^[+-]?\d+$/;
const TRUE = new Set(['true', 't', 'yes', 'y', '1']);
const FALSE = new Set(['false', 'f', 'no', 'n', '0']);
/** ISO 8601 date or date-time, with an optional zone (a time without a zone is UTC). */
const ISO = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;

class CastProblem extends Error {}

const integer = (n: bigint): number | bigint => (n >= -9007199254740991n && n <= 9007199254740991n ? Number(n) : n);

function show(v: unknown): string {
  const s = stringOf(v) ?? typeOf(v);
  return typeof v === 'string' ? JSON.stringify(s.length > 40 ? `${s.slice(0, 37)}...` : s) : s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

function toDecimal(v: unknown): Decimal {
  if (Decimal.is(v)) return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new CastProblem(`${v} is not a decimal number`);
    return Decimal.parse(String(v)) as Decimal;
  }
  if (typeof v === 'bigint') return Decimal.parse(v.toString()) as Decimal;
  if (typeof v === 'string') {
    const d = v.length <= 1000 ? Decimal.parse(v.trim()) : undefined;
    if (d) return d;
  }
  throw new CastProblem(`${typeOf(v)} ${show(v)} is not a decimal number`);
}

/** Converts one value; null stays null. Throws a CastProblem naming the value. */
export function castValue(v: unknown, to: ColumnType): unknown {
  if (v === null || v === undefined) return null;
  switch (to) {
    case 'string':
      return stringOf(v);
    case 'integer': {
      if (typeof v === 'bigint') return v;
      if (typeof v === 'number') {
        if (Number.isSafeInteger(v)) return v;
        throw new CastProblem(`${v} is not a whole number${Number.isInteger(v) ? ' that a double holds exactly' : ''}`);
      }
      if (typeof v === 'string' && INTEGER.test(v.trim()) && v.length <= 1000) return integer(BigInt(v.trim()));
      if (typeof v === 'boolean') throw new CastProblem(`boolean ${v} is not a whole number`);
      const d = toDecimal(v);
      const whole = d.integerDigits <= 1000 ? d.unscaled(0) : undefined;
      if (whole === undefined) throw new CastProblem(`${d.text} has a fraction; round it first (set: { x: round(x) })`);
      return integer(whole);
    }
    case 'decimal':
      return toDecimal(v);
    case 'number': {
      if (typeof v === 'number') return v;
      const d = toDecimal(v);
      const n = d.toNumber();
      const back = Number.isFinite(n) ? Decimal.parse(String(n)) : undefined;
      const same = back && back.scale <= 1000 && d.scale <= 1000 && sameValue(back, d);
      if (!same) throw new CastProblem(`${d.text} cannot be held exactly by a number (a double); cast it to decimal`);
      return n;
    }
    case 'boolean': {
      if (typeof v === 'boolean') return v;
      if (typeof v === 'number' && (v === 0 || v === 1)) return v === 1;
      if (typeof v === 'string') {
        const t = v.trim().toLowerCase();
        if (TRUE.has(t)) return true;
        if (FALSE.has(t)) return false;
      }
      throw new CastProblem(`${typeOf(v)} ${show(v)} is not a boolean (true/false, t/f, yes/no, 1/0)`);
    }
    case 'timestamp': {
      if (v instanceof Date) return v;
      if (typeof v === 'string' && ISO.test(v.trim())) {
        let t = v.trim().replace(' ', 'T');
        if (/T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/i.test(t)) t += 'Z';
        const ms = Date.parse(t);
        if (!Number.isNaN(ms)) return new Date(ms);
      }
      throw new CastProblem(`${typeOf(v)} ${show(v)} is not an ISO 8601 timestamp; use the timestamp step with a format`);
    }
    case 'json': {
      if (typeof v !== 'string') return v;
      try {
        return parseJsonExact(v);
      } catch (error) {
        throw new CastProblem(`the text is not JSON (${(error as Error).message})`);
      }
    }
  }
}

function sameValue(a: Decimal, b: Decimal): boolean {
  const s = Math.max(a.scale, b.scale);
  return a.unscaled(s) === b.unscaled(s);
}

export default defineTransform({
  name: 'cast',
  description: `Converts columns to one of weir's types (${COLUMN_TYPES.join(', ')}), exactly: a value that does not convert is a row error.`,
  options: {
    fields: o
      .map(o.enum(COLUMN_TYPES))
      .describe('Column → type. `decimal` keeps every digit; `number` (a double) only takes values a double holds exactly.')
      .required()
      .example({ amount: 'decimal', quantity: 'integer' }),
  },
  shorthand: {
    of: o.map(o.enum(COLUMN_TYPES)).describe('`cast: { amount: decimal }` is short for `cast: { fields: { amount: decimal } }`.'),
    expand: (v) => ({ fields: v }),
  },
  create(opts) {
    const fields = Object.entries(opts.fields) as [string, ColumnType][];
    return {
      row(row: Row): Row {
        for (const [name, type] of fields) {
          if (!Object.hasOwn(row, name)) continue;
          try {
            row[name] = castValue(row[name], type);
          } catch (error) {
            if (!(error instanceof CastProblem)) throw error;
            throw new RowError(`cast: column ${JSON.stringify(name)} to ${type}: ${error.message}`, { code: 'cast_failed' });
          }
        }
        return row;
      },
      schema(input) {
        requireColumns(
          'cast',
          'fields',
          fields.map(([n]) => n),
          input,
        );
        const types = new Map(fields);
        return input.map((c) => {
          const type = types.get(c.name);
          return type ? { name: c.name, type, nullable: c.nullable ?? true } : c;
        });
      },
    };
  },
});
