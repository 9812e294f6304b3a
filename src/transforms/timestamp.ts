/**
 * `timestamp`: parses text to a timestamp with a format and a zone, or formats a
 * timestamp as text in a zone. Formats are built of `yyyy MM dd HH mm ss SSS`
 * and literal characters (`-`, `/`, `:`, space, `T`…); or `iso`, `epoch_seconds`,
 * `epoch_millis`. Zones are IANA names (`Europe/Berlin`) or offsets (`+02:00`).
 */
import { RowError } from '../sdk/errors.js';
import { o } from '../sdk/options.js';
import { defineTransform } from '../sdk/transform.js';
import type { Row } from '../sdk/types.js';
import { castValue } from './cast.js';
import { typeOf } from './expr.js';
import { requireColumns, StepOptionError } from './step.js';

const TOKENS = ['yyyy', 'SSS', 'MM', 'dd', 'HH', 'mm', 'ss'] as const;
type Tok = (typeof TOKENS)[number];
type Part = { tok: Tok } | { lit: string };
const WIDTH: Record<Tok, number> = { yyyy: 4, MM: 2, dd: 2, HH: 2, mm: 2, ss: 2, SSS: 3 };
const SPECIAL = ['iso', 'epoch_seconds', 'epoch_millis'];

export function parseFormat(format: string): Part[] {
  const parts: Part[] = [];
  for (let i = 0; i < format.length; ) {
    const tok = TOKENS.find((t) => format.startsWith(t, i));
    if (tok) {
      parts.push({ tok });
      i += tok.length;
      continue;
    }
    const c = format[i] as string;
    if (/[A-Za-z]/.test(c) && c !== 'T')
      throw new StepOptionError(
        'format',
        `unknown pattern letter ${JSON.stringify(c)} at position ${i + 1}; use yyyy MM dd HH mm ss SSS, or iso, epoch_seconds, epoch_millis`,
      );
    parts.push({ lit: c });
    i++;
  }
  if (!parts.some((p) => 'tok' in p && p.tok === 'yyyy'))
    throw new StepOptionError('format', 'a format needs at least yyyy (e.g. yyyy-MM-dd HH:mm:ss)');
  return parts;
}

const OFFSET = /^([+-])(\d{2}):?(\d{2})$/;

/** Minutes east of UTC of `zone` at `utcMs`. */
function offsetMinutes(zone: Intl.DateTimeFormat | number, utcMs: number): number {
  if (typeof zone === 'number') return zone;
  const p: Record<string, number> = {};
  for (const part of zone.formatToParts(new Date(utcMs))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  const wall = Date.UTC(p.year as number, (p.month as number) - 1, p.day, p.hour === 24 ? 0 : p.hour, p.minute, p.second);
  return Math.round((wall - Math.floor(utcMs / 1000) * 1000) / 60_000);
}

function zoneOf(zone: string): Intl.DateTimeFormat | number {
  const m = OFFSET.exec(zone);
  if (m) return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
  if (zone === 'UTC' || zone === 'Z') return 0;
  try {
    return new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  } catch {
    throw new StepOptionError(
      'zone',
      `${JSON.stringify(zone)} is not a time zone; use an IANA name such as Europe/Berlin, UTC, or an offset such as +02:00`,
    );
  }
}

export default defineTransform({
  name: 'timestamp',
  description:
    'Parses a text column to a timestamp with a format and a zone (`mode: parse`), or formats a timestamp as text in a zone (`mode: format`).',
  options: {
    field: o.string({ minLength: 1, maxLength: 1024 }).describe('The column to parse or format.').required().example('created'),
    format: o
      .string({ minLength: 1, maxLength: 64 })
      .describe('`yyyy MM dd HH mm ss SSS` and literal characters, e.g. `dd.MM.yyyy HH:mm`; or `iso`, `epoch_seconds`, `epoch_millis`.')
      .default('iso')
      .example('dd.MM.yyyy HH:mm'),
    zone: o
      .string({ minLength: 1, maxLength: 64 })
      .describe(
        'The zone wall-clock text is in (parse) or is written in (format): an IANA name such as `Europe/Berlin`, `UTC`, or `+02:00`.',
      )
      .default('UTC'),
    mode: o
      .enum(['parse', 'format'] as const)
      .describe('`parse`: text → timestamp. `format`: timestamp → text.')
      .default('parse'),
    target: o.string({ minLength: 1, maxLength: 1024 }).describe('Where the result goes; default: `field` itself.'),
  },
  create(opts) {
    const zone = zoneOf(opts.zone);
    const special = SPECIAL.includes(opts.format) ? opts.format : undefined;
    const parts = special ? [] : parseFormat(opts.format);
    const target = opts.target ?? opts.field;
    const pattern = new RegExp(
      `^${parts.map((p) => ('tok' in p ? `(\\d{${WIDTH[p.tok]}})` : p.lit.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('')}$`,
    );
    const bad = (_v: unknown, why: string): never => {
      throw new RowError(`timestamp: column ${JSON.stringify(opts.field)}: ${why}`, { code: 'timestamp_failed' });
    };

    const parse = (v: unknown): Date | null => {
      if (v === null || v === undefined) return null;
      if (v instanceof Date) return v;
      if (special === 'epoch_seconds' || special === 'epoch_millis') {
        const n = typeof v === 'string' ? Number(v.trim()) : typeof v === 'number' ? v : Number.NaN;
        if (!Number.isFinite(n) || (typeof v === 'string' && v.trim() === ''))
          bad(v, `${typeOf(v)} is not a number of ${special === 'epoch_seconds' ? 'seconds' : 'milliseconds'}`);
        return new Date(special === 'epoch_seconds' ? n * 1000 : n);
      }
      if (typeof v !== 'string') return bad(v, `a ${typeOf(v)} is not text to parse`);
      if (special === 'iso') {
        try {
          const d = castValue(v, 'timestamp') as Date;
          // an ISO text without an offset is wall-clock time in `zone`
          if (!/(Z|[+-]\d{2}:?\d{2})$/i.test(v.trim()) && /\d{2}:\d{2}/.test(v))
            return new Date(d.getTime() - offsetMinutes(zone, d.getTime()) * 60_000);
          return d;
        } catch {
          return bad(v, `the text does not match the format iso (e.g. 2024-03-01T12:00:00Z)`);
        }
      }
      const m = pattern.exec(v.trim());
      if (!m) return bad(v, `the text does not match the format ${JSON.stringify(opts.format)}`);
      const f: Record<string, number> = { MM: 1, dd: 1, HH: 0, mm: 0, ss: 0, SSS: 0 };
      let g = 1;
      for (const p of parts) if ('tok' in p) f[p.tok] = Number(m[g++]);
      const [y, mo, d, h, mi, s, ms] = [f.yyyy, f.MM, f.dd, f.HH, f.mm, f.ss, f.SSS] as number[];
      const wall = Date.UTC(y as number, (mo as number) - 1, d, h, mi, s, ms);
      const check = new Date(wall);
      if (
        check.getUTCMonth() !== (mo as number) - 1 ||
        check.getUTCDate() !== d ||
        (h as number) > 23 ||
        (mi as number) > 59 ||
        (s as number) > 59
      )
        return bad(v, 'the text is not a real date and time');
      // the wall-clock time in the zone: the offset at the guess, then once more at the corrected time
      let utc = wall - offsetMinutes(zone, wall) * 60_000;
      utc = wall - offsetMinutes(zone, utc) * 60_000;
      return new Date(utc);
    };

    const format = (v: unknown): string | null => {
      if (v === null || v === undefined) return null;
      let d: Date;
      try {
        d = castValue(v, 'timestamp') as Date;
      } catch {
        return bad(v, `a ${typeOf(v)} is not a timestamp to format; parse it first (mode: parse)`);
      }
      if (special === 'epoch_seconds') return String(Math.floor(d.getTime() / 1000));
      if (special === 'epoch_millis') return String(d.getTime());
      const offset = offsetMinutes(zone, d.getTime());
      const w = new Date(d.getTime() + offset * 60_000);
      if (special === 'iso') {
        const sign = offset < 0 ? '-' : '+';
        const abs = Math.abs(offset);
        const tz = offset === 0 ? 'Z' : `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
        return `${w.toISOString().slice(0, 23)}${tz}`;
      }
      const val: Record<Tok, number> = {
        yyyy: w.getUTCFullYear(),
        MM: w.getUTCMonth() + 1,
        dd: w.getUTCDate(),
        HH: w.getUTCHours(),
        mm: w.getUTCMinutes(),
        ss: w.getUTCSeconds(),
        SSS: w.getUTCMilliseconds(),
      };
      return parts.map((p) => ('tok' in p ? String(val[p.tok]).padStart(WIDTH[p.tok], '0') : p.lit)).join('');
    };

    const apply = opts.mode === 'parse' ? parse : format;
    return {
      row(row: Row) {
        if (Object.hasOwn(row, opts.field)) row[target] = apply(row[opts.field]);
        return row;
      },
      schema(input) {
        requireColumns('timestamp', 'field', [opts.field], input);
        const col = { name: target, type: opts.mode === 'parse' ? ('timestamp' as const) : ('string' as const), nullable: true };
        const out = input.map((c) => (c.name === target ? col : c));
        if (!out.some((c) => c.name === target)) out.push(col);
        return out;
      },
    };
  },
});
