/**
 * The csv source's passthrough fast path (worker, once per chunk of a partition):
 * cuts the file's bytes into chunks of whole records and hands them on still
 * encoded, so a sink that takes CSV (PostgreSQL COPY) does not pay for rows being
 * built in Node.
 *
 * The invariant: a chunk's `data`, read as CSV with `DELIMITER`, `QUOTE` (doubled
 * to escape) and `NULL` = the unquoted `nullText`, gives for every field exactly
 * the text the row path would hand on — the field parsed by csv-parse, converted
 * to its column type and rendered as text (integers in decimal, decimals with
 * their digits, numbers as JavaScript prints them, booleans `true`/`false`,
 * timestamps as they are, JSON as JSON) — and NULL where the row path gives null.
 * Inferred types are chosen so that their text is the source's, so most fields
 * pass through untouched; the {@link ChunkScanner} rewrites the few that would
 * read differently (`1.50` → `1.5` in a declared `number` column, a quoted null
 * text in a non-string column → NULL), re-encodes records the
 * fast checks cannot vouch for from the row path's own conversion, and hands
 * records that the row path rejects to `reject` with the row path's error. In the
 * reader's `valueColumns` (EncodingHints) the invariant is about values, not text:
 * booleans and numbers the row path accepts pass as they are (`yes`, `1.50`),
 * since that reader's column type reads them as the row path's value. Quoting
 * that csv-parse reads leniently (a stray quote after a closing quote, an
 * unclosed quote at the end of the file) and overlong records make the caller
 * switch to the row path for the rest of the file.
 */
import { isUtf8 } from 'node:buffer';
import type { ColumnType, EncodedRows, EncodingHints, Row } from '../../sdk/types.js';
import { convertText, fitsFraction, fractionError, valueText } from '../shared/columns.js';
import { csvField, type Dialect } from '../shared/csv-text.js';
import { MAX_RECORD_BYTES } from './limits.js';

const LF = 0x0a;
const CR = 0x0d;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
const MINUS = 0x2d;
const ZERO = 0x30;

/** Column types as small integers for the scanner's hot loop. */
export type Kind = 0 | 1 | 2 | 3 | 4 | 5 | 6;
const STRING = 0;
const INTEGER = 1;
const NUMBER = 2;
const BOOLEAN = 3;
const TIMESTAMP = 4;
const DECIMAL = 6;

export const KIND_OF: Record<ColumnType, Kind> = { string: 0, integer: 1, number: 2, boolean: 3, timestamp: 4, json: 5, decimal: 6 };

/** Record delimiter of a file, as csv-parse discovers it: unknown until the first line break outside quotes. */
export type LineEnding = 'lf' | 'crlf' | undefined;

// ---------------------------------------------------------------------------
// field checks on bytes: each answers whether the raw text is already the row
// path's text, or which cheap rewrite makes it so; anything else goes the slow way

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/** `-?(0|[1-9]\d*)` of at most 15 digits (not `-0`): the text of the safe integer it converts to. */
function canonicalInteger(buf: Buffer, a: number, b: number): boolean {
  let p = a;
  if (buf[p] === MINUS) p++;
  const digits = b - p;
  if (digits < 1 || digits > 15) return false;
  if (buf[p] === ZERO) return digits === 1 && p === a;
  for (; p < b; p++) if (!isDigit(buf[p] as number)) return false;
  return true;
}

/** Number check result: -1 slow way; otherwise the end of the prefix of [a, b) that is the number's text. */
function canonicalNumber(buf: Buffer, a: number, b: number): number {
  let p = a;
  const negative = buf[p] === MINUS;
  if (negative) p++;
  const intStart = p;
  while (p < b && isDigit(buf[p] as number)) p++;
  const intEnd = p;
  const intLen = intEnd - intStart;
  if (intLen === 0 || intLen > 21 || (intLen > 1 && buf[intStart] === ZERO)) return -1;
  const intZero = intLen === 1 && buf[intStart] === ZERO;
  // significant digits of the integer part (its trailing zeros are not, unless a fraction follows)
  let intSig = intZero ? 0 : intLen;
  if (p === b) {
    if (negative && intZero) return -1; // -0 prints as 0
    let t = intEnd;
    while (t > intStart + 1 && buf[t - 1] === ZERO) t--;
    intSig = intZero ? 0 : t - intStart;
    return intSig <= 15 ? b : -1;
  }
  if (buf[p] !== DOT) return -1;
  p++;
  const fracStart = p;
  while (p < b && isDigit(buf[p] as number)) p++;
  if (p !== b) return -1;
  let fracEnd = b;
  while (fracEnd > fracStart && buf[fracEnd - 1] === ZERO) fracEnd--;
  if (fracEnd === fracStart) {
    // no fraction left: the integer part is the text
    if (negative && intZero) return -1;
    let t = intEnd;
    while (t > intStart + 1 && buf[t - 1] === ZERO) t--;
    return (intZero ? 0 : t - intStart) <= 15 ? intEnd : -1;
  }
  let sig: number;
  if (intZero) {
    let z = fracStart;
    while (buf[z] === ZERO) z++;
    if (z - fracStart > 5) return -1; // below 1e-6 JavaScript prints an exponent
    sig = fracEnd - z;
  } else sig = intSig + (fracEnd - fracStart);
  return sig <= 15 ? fracEnd : -1;
}

/** JSON number grammar, `-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?`: the text a Decimal keeps as it is. */
function canonicalDecimal(buf: Buffer, a: number, b: number): boolean {
  let p = a;
  if (buf[p] === MINUS) p++;
  const intStart = p;
  while (p < b && isDigit(buf[p] as number)) p++;
  if (p === intStart || (p - intStart > 1 && buf[intStart] === ZERO)) return false;
  if (p < b && buf[p] === DOT) {
    const fracStart = ++p;
    while (p < b && isDigit(buf[p] as number)) p++;
    if (p === fracStart) return false;
  }
  if (p < b && (buf[p] === 0x65 || buf[p] === 0x45)) {
    p++;
    if (buf[p] === 0x2b || buf[p] === MINUS) p++;
    const expStart = p;
    while (p < b && isDigit(buf[p] as number)) p++;
    if (p === expStart) return false;
  }
  return p === b;
}

const lower = (buf: Buffer, i: number) => (buf[i] as number) | 0x20;

/** Exactly `true` or `false`: the text the row path writes for a boolean. */
function canonicalBoolean(buf: Buffer, a: number, b: number): boolean {
  const n = b - a;
  return (n === 4 || n === 5) && buf.toString('latin1', a, b) === (n === 4 ? 'true' : 'false');
}

/** 't' / 'f' for the row path's boolean words (any case), else 0. */
function booleanByte(buf: Buffer, a: number, b: number): number {
  const c0 = lower(buf, a);
  switch (b - a) {
    case 1:
      if (c0 === 0x74 || c0 === 0x79 || buf[a] === 0x31) return 0x74; // t y 1
      if (c0 === 0x66 || c0 === 0x6e || buf[a] === ZERO) return 0x66; // f n 0
      return 0;
    case 2:
      return c0 === 0x6e && lower(buf, a + 1) === 0x6f ? 0x66 : 0; // no
    case 3:
      return c0 === 0x79 && lower(buf, a + 1) === 0x65 && lower(buf, a + 2) === 0x73 ? 0x74 : 0; // yes
    case 4:
      return c0 === 0x74 && lower(buf, a + 1) === 0x72 && lower(buf, a + 2) === 0x75 && lower(buf, a + 3) === 0x65 ? 0x74 : 0; // true
    case 5:
      return c0 === 0x66 &&
        lower(buf, a + 1) === 0x61 &&
        lower(buf, a + 2) === 0x6c &&
        lower(buf, a + 3) === 0x73 &&
        lower(buf, a + 4) === 0x65
        ? 0x66
        : 0; // false
    default:
      return 0;
  }
}

const d2 = (buf: Buffer, p: number) => isDigit(buf[p] as number) && isDigit(buf[p + 1] as number);
const num2 = (buf: Buffer, p: number) => ((buf[p] as number) - 0x30) * 10 + ((buf[p + 1] as number) - 0x30);

/** The bytes match the row path's ISO-8601 pattern exactly (no surrounding spaces). */
export function isoTimestampBytes(buf: Buffer, a: number, b: number): boolean {
  if (b - a < 10) return false;
  if (!(d2(buf, a) && d2(buf, a + 2) && buf[a + 4] === MINUS && d2(buf, a + 5) && buf[a + 7] === MINUS && d2(buf, a + 8))) return false;
  const month = num2(buf, a + 5);
  const day = num2(buf, a + 8);
  if (month < 1 || month > 12 || day < 1 || day > 31) return false;
  let p = a + 10;
  if (p === b) return true;
  if (buf[p] !== 0x54 && buf[p] !== 0x20) return false; // T or space
  p++;
  if (b - p < 5 || !d2(buf, p) || num2(buf, p) > 23 || buf[p + 2] !== 0x3a || !d2(buf, p + 3) || num2(buf, p + 3) > 59) return false;
  p += 5;
  if (p < b && buf[p] === 0x3a) {
    if (b - p < 3 || !d2(buf, p + 1) || num2(buf, p + 1) > 60) return false;
    p += 3;
    if (p < b && buf[p] === DOT) {
      p++;
      const s = p;
      while (p < b && isDigit(buf[p] as number)) p++;
      if (p === s) return false;
    }
  }
  if (p === b) return true;
  if (buf[p] === 0x5a) return p + 1 === b; // Z
  if (buf[p] !== 0x2b && buf[p] !== MINUS) return false;
  p++;
  if (b - p < 2 || !d2(buf, p) || num2(buf, p) > 23) return false;
  p += 2;
  if (p === b) return true;
  if (buf[p] === 0x3a) p++;
  return b - p === 2 && d2(buf, p) && num2(buf, p) <= 59;
}

/**
 * The value the row path gives for a field of a chunk's data ({@link EncodedRows.fieldValue}):
 * by the invariant above, the field's text read as its column's type — except in a
 * json column, whose text of a JSON string is the string itself (undefined: decode).
 */
export function fieldValueOf(types: readonly ColumnType[]): (index: number, text: string | null) => unknown {
  const convert = types.map((type): ((text: string) => unknown) => {
    if (type === 'string') return (text) => text;
    if (type === 'json') return () => undefined;
    if (type === 'number')
      // the common case without trim() and a result object: plain decimal digits, as Number reads them
      return (text) => (PLAIN_NUMBER.test(text) ? Number(text) : converted(text, type));
    return (text) => converted(text, type);
  });
  return (index, text) => (text === null ? null : (convert[index] as (text: string) => unknown)(text));
}

const PLAIN_NUMBER = /^-?\d{1,15}(\.\d{1,15})?$/;

/** 10^k for k ≤ 15, each exact as a double. */
const POW10 = Array.from({ length: 16 }, (_, k) => 10 ** k);

/**
 * {@link EncodedRows.numberAt} for these column types: in a number column, a field of
 * an optional `-`, digits and at most one `.` between digits, 15 digits in all, is
 * `m / 10^k` (its digits as an integer, over 10 to the number of fraction digits).
 * Both are integers below 2^53, exact as doubles, and IEEE division rounds their exact
 * quotient once: the double nearest the decimal, which is what Number(text) (and so
 * the row path, see PLAIN_NUMBER) gives. Any other bytes: undefined.
 */
export function numberAtOf(types: readonly ColumnType[]): (index: number, buf: Buffer, a: number, b: number) => number | undefined {
  const isNumber = types.map((t) => t === 'number');
  return (index, buf, a, b) => {
    if (!isNumber[index]) return undefined;
    let p = a;
    const negative = buf[p] === MINUS;
    if (negative) p++;
    let m = 0;
    let digits = 0;
    let point = -1;
    for (; p < b; p++) {
      const c = buf[p] as number;
      if (c >= 0x30 && c <= 0x39) {
        m = m * 10 + (c - 0x30);
        digits++;
      } else if (c === 0x2e && point < 0 && digits > 0) point = digits;
      else return undefined;
    }
    if (digits === 0 || digits > 15 || point === digits) return undefined;
    const v = point < 0 ? m : m / (POW10[digits - point] as number);
    return negative ? -v : v;
  };
}

function converted(text: string, type: ColumnType): unknown {
  const r = convertText(text, type);
  return r.ok ? r.value : undefined;
}

// ---------------------------------------------------------------------------
// the scanner

/** What the row path makes of a record: a row, or why not (the caller builds the RowError). */
/**
 * A field as the row path sees it: null for an unquoted empty field or an
 * unquoted null text (as PostgreSQL's CSV format reads them), `undefined` for the
 * one field of an empty line; quoted text is always text (`""` is the empty string).
 */
export type Field = string | null | undefined;

export interface RecordCheck {
  /** The record as the row path converts it: the row, or an error to reject it with. */
  convert(fields: Field[]): Row | Error;
}

/** A record the row path rejects, with what `ctx.reject` needs. */
export interface ScanReject {
  /** Index among the chunk's records as csv-parse counts them (empty lines included). */
  index: number;
  line: number;
  fields: Field[];
  error: Error;
}

/** Where and why the fast path gives up on the rest of the file. */
export interface ScanStop {
  /** Byte offset (in the scanned buffer) of the first record left to the row path. */
  at: number;
  reason: 'quoting' | 'line_ending' | 'record_size';
}

/** Field spans of the current record. */
interface FieldSpans {
  start: Int32Array; // content start
  end: Int32Array; // content end
  next: Int32Array; // where the raw field ends (after a closing quote)
  flags: Uint8Array;
}

const F_QUOTED = 1;
const F_ESCAPED = 2; // doubled quotes inside
const F_SPECIAL = 4; // unquoted with a quote or a stray line-break character: must be quoted
const F_RELAXED = 8; // "a"b: csv-parse keeps the quotes in the value

export interface ScannerOptions {
  delimiter: string;
  quote: string;
  nullText: string;
  /** Column names and kinds, in field order. */
  names: readonly string[];
  kinds: readonly Kind[];
  lineEnding: LineEnding;
  check: RecordCheck;
  /** Columns the reader compares as values ({@link EncodingHints.valueColumns}): booleans and numbers pass as they are there. */
  valueColumns?: readonly string[];
  /** Digits after the point each column's target keeps ({@link EncodingHints.fractionDigits}): more is a rejected record. */
  fractionDigits?: Readonly<Record<string, number>>;
  /** Records larger than this are left to the row path, which rejects them (`max_record_bytes`). */
  maxRecordBytes?: number;
  /** Strict UTF-8: the error that rejects a record with bytes that encode no character (else they read as U+FFFD). */
  invalidUtf8?: () => Error;
}

/**
 * Scans whole records out of a buffer and builds the chunk's data (see the module
 * doc). One scanner per partition; `begin` starts a chunk, `scan` may run several
 * times over a growing buffer, `finish` returns the chunk.
 */
export class ChunkScanner {
  private readonly d: number;
  private readonly q: number;
  private readonly nullBytes: Buffer;
  private readonly kinds: Uint8Array;
  /** 1 for the columns whose reader takes any text of the value (`valueColumns`): no canonical rewrite there. */
  private readonly loose: Uint8Array;
  /** Digits after the point each column's target keeps; -1 for no limit. */
  private readonly scale: Int32Array;
  private readonly ncols: number;
  private readonly dialect: Dialect;
  lineEnding: LineEnding;
  private spans: FieldSpans = { start: new Int32Array(64), end: new Int32Array(64), next: new Int32Array(64), flags: new Uint8Array(64) };

  // chunk state
  private buf: Buffer = Buffer.alloc(0);
  private out: Buffer | undefined;
  private o = 0;
  private emitFrom = 0;
  /** Records (as csv-parse counts them), rows kept, LF and CR bytes, and CRLF record delimiters consumed. */
  records = 0;
  rows = 0;
  lf = 0;
  cr = 0;
  crlfEnds = 0;
  rejects: ScanReject[] = [];
  /** The last record had no line ending (end of file): `finish` appends one. */
  private openEnd = false;
  stop: ScanStop | undefined;
  /** Line (row path numbering) before the chunk's first record. */
  private baseLine = 0;
  /** Re-encode every record from its decoded text (a chunk that is not valid UTF-8). */
  private allSlow = false;

  constructor(private readonly options: ScannerOptions) {
    this.d = options.delimiter.charCodeAt(0);
    this.q = options.quote.charCodeAt(0);
    this.nullBytes = Buffer.from(options.nullText, 'utf8');
    this.kinds = Uint8Array.from(options.kinds);
    this.loose = Uint8Array.from(options.names, (n) => (options.valueColumns?.includes(n) ? 1 : 0));
    this.scale = Int32Array.from(options.names, (n) => options.fractionDigits?.[n] ?? -1);
    this.ncols = options.kinds.length;
    this.lineEnding = options.lineEnding;
    this.dialect = { delimiter: options.delimiter, quote: options.quote, nullText: options.nullText };
  }

  /**
   * Starts a chunk whose records begin at `buf[0]`, the first on the line after
   * `baseLine`. With `allSlow`, every record is re-encoded from its decoded text
   * (for a chunk that is not valid UTF-8: csv-parse reads bad bytes as U+FFFD).
   */
  begin(buf: Buffer, baseLine: number, allSlow = false): void {
    this.allSlow = allSlow;
    this.buf = buf;
    this.out = undefined;
    this.o = 0;
    this.emitFrom = 0;
    this.records = 0;
    this.rows = 0;
    this.lf = 0;
    this.cr = 0;
    this.crlfEnds = 0;
    this.rejects = [];
    this.openEnd = false;
    this.stop = undefined;
    this.baseLine = baseLine;
  }

  /** Replaces the chunk's buffer by a larger copy (same content up to what was read). */
  rebase(buf: Buffer): void {
    this.buf = buf;
  }

  private ensure(extra: number): Buffer {
    let out = this.out;
    if (!out) {
      out = Buffer.allocUnsafe(Math.max(this.buf.length + 1024, extra + 1024));
      this.out = out;
    } else if (this.o + extra > out.length) {
      const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, this.o + extra + 1024));
      out.copy(bigger, 0, 0, this.o);
      this.out = bigger;
      out = bigger;
    }
    return out;
  }

  private flush(to: number): void {
    const n = to - this.emitFrom;
    if (n <= 0) return;
    const out = this.ensure(n);
    if (n < 64) {
      const buf = this.buf;
      let o = this.o;
      for (let i = this.emitFrom; i < to; i++) out[o++] = buf[i] as number;
      this.o = o;
    } else this.o += this.buf.copy(out, this.o, this.emitFrom, to);
    this.emitFrom = to;
  }

  private writeText(text: string): void {
    const out = this.ensure(Buffer.byteLength(text) + 2);
    this.o += out.write(text, this.o, 'utf8');
  }

  /** The field's value as the row path's parser gives it (null for an unquoted empty field or null text). */
  private fieldText(i: number): Field {
    const { start, end, next, flags } = this.spans;
    const buf = this.buf;
    const f = flags[i] as number;
    const s = start[i] as number;
    const e = end[i] as number;
    if (!(f & F_QUOTED)) return s === e || this.equalsNull(s, e) ? null : buf.toString('utf8', s, e);
    const quote = this.options.quote;
    let text = buf.toString('utf8', s, e);
    if (f & F_ESCAPED) text = text.split(quote + quote).join(quote);
    if (f & F_RELAXED) text = `${quote}${text}${quote}${buf.toString('utf8', e + 1, next[i] as number)}`;
    return text;
  }

  private recordFields(n: number): Field[] {
    const fields = new Array<Field>(n);
    for (let i = 0; i < n; i++) fields[i] = this.fieldText(i);
    return fields;
  }

  private equalsNull(a: number, b: number): boolean {
    const nb = this.nullBytes;
    if (b - a !== nb.length) return false;
    for (let i = 0; i < nb.length; i++) if (this.buf[a + i] !== nb[i]) return false;
    return true;
  }

  /**
   * Scans records from `pos` up to `end` (`eof`: the file ends there) and returns
   * the offset after the last whole record. Stops early (setting `stop`) where the
   * row path must take over.
   */
  scan(pos: number, end: number, eof: boolean): number {
    const buf = this.buf;
    const D = this.d;
    const Q = this.q;
    const kinds = this.kinds;
    const loose = this.loose;
    const ncols = this.ncols;
    let { start, end: ends, next, flags } = this.spans;
    // The common case gets a shorter pass 1: an LF file with no CR in what is left to
    // scan, and a record without quotes: its end is the next LF (found natively) and
    // its fields are cut at each delimiter. Anything else takes the full pass 1.
    const plain = this.lineEnding === 'lf' && !this.allSlow && buf.subarray(pos, end).indexOf(CR) < 0;
    let nextQuote = -1; // the next quote at or after the record (valid in this call only: bytes past `end` are not data yet)
    for (;;) {
      if (pos >= end || this.stop) return pos;
      const recStart = pos;
      const lfAtStart = this.lf;
      const crAtStart = this.cr;
      let p = pos;
      let nf = 0;
      let lineEnd = 0; // length of the record's line ending (0 at end of file)
      let lf = plain ? buf.indexOf(LF, p) : -1;
      if (lf >= end) lf = -1;
      if (lf >= 0 && nextQuote < p) {
        nextQuote = buf.indexOf(Q, p);
        if (nextQuote < 0) nextQuote = Number.MAX_SAFE_INTEGER;
      }
      if (lf >= 0 && nextQuote > lf) {
        // a record of n bytes has at most n + 1 fields
        if (lf - p >= start.length) {
          this.growSpans(lf - p + 1);
          ({ start, end: ends, next, flags } = this.spans);
        }
        let a = p;
        for (let k = p; k < lf; k++) {
          if (buf[k] !== D) continue;
          start[nf] = a;
          ends[nf] = k;
          next[nf] = k;
          flags[nf] = 0;
          nf++;
          a = k + 1;
        }
        start[nf] = a;
        ends[nf] = lf;
        next[nf] = lf;
        flags[nf] = 0;
        nf++;
        p = lf;
        lineEnd = 1;
      }
      // pass 1: field spans
      for (; lineEnd === 0; ) {
        if (nf === start.length) {
          this.growSpans();
          ({ start, end: ends, next, flags } = this.spans);
        }
        let f = 0;
        if (p < end && buf[p] === Q) {
          f = F_QUOTED;
          p++;
          start[nf] = p;
          for (;;) {
            if (p >= end) {
              if (!eof) return this.incomplete(recStart, lfAtStart, crAtStart);
              return this.giveUp(recStart, lfAtStart, crAtStart, 'quoting'); // quote not closed
            }
            const c = buf[p] as number;
            if (c === Q) {
              if (p + 1 >= end) {
                if (!eof) return this.incomplete(recStart, lfAtStart, crAtStart);
                break;
              }
              if (buf[p + 1] === Q) {
                f |= F_ESCAPED;
                p += 2;
                continue;
              }
              break;
            }
            if (c === LF) this.lf++;
            else if (c === CR) this.cr++;
            p++;
          }
          ends[nf] = p;
          p++; // the closing quote
          if (p < end) {
            const c = buf[p] as number;
            let ok = c === D;
            if (!ok) {
              const le = this.lineEndingAt(p, end, eof);
              if (le < 0)
                return le === -1
                  ? this.incomplete(recStart, lfAtStart, crAtStart)
                  : this.giveUp(recStart, lfAtStart, crAtStart, 'line_ending');
              ok = le > 0;
            }
            if (!ok) {
              // csv-parse keeps `"a"b` as the text `"a"b`, reading on as an unquoted field
              f |= F_RELAXED;
              const r = this.unquotedRest(p, end, eof); // quotes are plain text there
              if (r < 0)
                return r === -1
                  ? this.incomplete(recStart, lfAtStart, crAtStart)
                  : this.giveUp(recStart, lfAtStart, crAtStart, 'line_ending');
              p = r;
            }
          } else if (!eof) return this.incomplete(recStart, lfAtStart, crAtStart);
        } else {
          start[nf] = p;
          // the hot loop: plain bytes up to the delimiter or a line break
          while (p < end) {
            const c = buf[p] as number;
            if (c === D || c === LF || c === CR || c === Q) break;
            p++;
          }
          if (p < end && buf[p] !== D) {
            const r = this.unquotedRest(p, end, eof);
            if (r < 0)
              return r === -1
                ? this.incomplete(recStart, lfAtStart, crAtStart)
                : this.giveUp(recStart, lfAtStart, crAtStart, 'line_ending');
            if (r !== p) f |= F_SPECIAL;
            p = r;
          } else if (p >= end && !eof) return this.incomplete(recStart, lfAtStart, crAtStart);
          ends[nf] = p;
        }
        next[nf] = p;
        flags[nf] = f;
        nf++;
        if (p >= end) break; // end of file
        if (buf[p] === D) {
          p++;
          continue;
        }
        lineEnd = this.lineEndingAt(p, end, eof);
        if (lineEnd <= 0)
          return lineEnd === -1
            ? this.incomplete(recStart, lfAtStart, crAtStart)
            : this.giveUp(recStart, lfAtStart, crAtStart, 'line_ending');
        break;
      }
      const recEnd = p + lineEnd;
      if (recEnd - recStart > (this.options.maxRecordBytes ?? MAX_RECORD_BYTES))
        return this.giveUp(recStart, lfAtStart, crAtStart, 'record_size');
      if (lineEnd > 0) {
        this.lf++;
        if (lineEnd === 2) {
          this.cr++;
          this.crlfEnds++;
        }
      }
      const index = this.records++;
      // pass 2: what to send
      if (nf === 1 && flags[0] === 0 && ends[0] === start[0]) {
        this.drop(recStart, recEnd); // an empty line: the row path skips it
      } else if (nf === 1 && (flags[0] as number) === F_QUOTED && ends[0] === start[0]) {
        this.drop(recStart, recEnd); // `""` alone: csv-parse gives [''], skipped too
      } else if (nf !== ncols || buf[recStart] === BACKSLASH || this.allSlow) {
        // a line starting with a backslash may read as `\.` (end of data) to PostgreSQL: re-encoded quoted
        this.slowRecord(recStart, recEnd, nf, index, lfAtStart);
      } else {
        let dirty = false;
        let oRec = 0;
        let slow = false;
        let rounds = -1; // a field the target would round
        for (let i = 0; i < nf && !slow; i++) {
          const f = flags[i] as number;
          const a = start[i] as number;
          const b = ends[i] as number;
          const kind = kinds[i] as Kind;
          // 0 keep, 1 write `text`, 3 write [a, cut), 4 write NULL
          let text = '';
          let action = 0;
          let cut = 0;
          if (f & (F_SPECIAL | F_RELAXED)) slow = true;
          else if (kind === STRING) {
            // quoted text is never null (`""` is the empty string); unquoted empty is null whatever the null text
            if (a === b && !(f & F_QUOTED) && this.nullBytes.length !== 0) action = 4;
          } else if (this.equalsNull(a, b)) {
            if (f & F_QUOTED) action = 4;
          } else if (a === b) {
            if (f & F_QUOTED || this.nullBytes.length !== 0) action = 4; // empty: null
          } else if (f & F_ESCAPED) slow = true;
          else if (kind === INTEGER) {
            if (!canonicalInteger(buf, a, b)) slow = true;
          } else if (kind === NUMBER) {
            const e = canonicalNumber(buf, a, b);
            if (e < 0) slow = true;
            else if (e !== b && loose[i] === 0) {
              if (this.equalsNull(a, e))
                slow = true; // a rewrite that reads as NULL must be quoted
              else {
                action = 3;
                cut = e;
              }
            }
          } else if (kind === DECIMAL) {
            if (!canonicalDecimal(buf, a, b)) slow = true;
          } else if (kind === BOOLEAN) {
            // where the target reads `yes` as it reads `true` (loose) any word passes; elsewhere the row path's text
            const byte = booleanByte(buf, a, b);
            if (byte === 0) slow = true;
            else if (loose[i] === 0 && (f & F_QUOTED || !canonicalBoolean(buf, a, b))) {
              text = byte === 0x74 ? 'true' : 'false';
              if (text === this.options.nullText) slow = true;
              else action = 1;
            }
          } else if (kind === TIMESTAMP) {
            if (!isoTimestampBytes(buf, a, b)) slow = true;
          } else slow = true; // json
          const limit = this.scale[i] as number;
          if (!slow && limit >= 0 && kind !== STRING && a !== b && !this.fits(i, limit)) {
            rounds = i;
            break;
          }
          if (slow || action === 0) continue;
          const rawStart = f & F_QUOTED ? a - 1 : a;
          if (!dirty) {
            oRec = this.o + (recStart - this.emitFrom); // where the record starts in the data once flushed
            dirty = true;
          }
          this.flush(rawStart);
          if (action === 1) this.writeText(text);
          else if (action === 3) {
            this.emitFrom = a;
            this.flush(cut);
          } else if (action === 4) this.writeText(this.options.nullText);
          this.emitFrom = next[i] as number;
        }
        if (slow || rounds >= 0) {
          if (dirty) {
            this.o = oRec;
            this.emitFrom = recStart;
          }
          if (rounds >= 0) this.rejectRounding(recStart, recEnd, nf, index, lfAtStart, rounds);
          else this.slowRecord(recStart, recEnd, nf, index, lfAtStart);
        } else {
          this.rows++;
          if (lineEnd === 0) this.openEnd = true;
          else if (lineEnd !== this.lineEndingLength) {
            // the other line ending: the record's text as it is, ended the way the rest of the data is
            this.flush(recEnd - lineEnd);
            this.writeText(this.lineEnding === 'crlf' ? '\r\n' : '\n');
            this.emitFrom = recEnd;
          }
        }
      }
      pos = recEnd;
    }
  }

  /** The rest of an unquoted field from a byte that is a quote or a line-break character; returns its end, -1 for more data, -2 to give up. */
  private unquotedRest(p: number, end: number, eof: boolean): number {
    const buf = this.buf;
    const D = this.d;
    for (;;) {
      if (p >= end) return eof ? p : -1;
      const c = buf[p] as number;
      if (c === D) return p;
      if (c === LF || c === CR) {
        const le = this.lineEndingAt(p, end, eof);
        if (le === -1) return -1;
        if (le === -2) return -2;
        if (le > 0) return p;
        if (c === LF) this.lf++;
        else this.cr++;
      }
      p++;
    }
  }

  /**
   * Length of the record delimiter at `p` (1 LF, 2 CRLF), 0 when the byte is not
   * one (a line-break character inside a field), -1 when more data is needed, -2
   * when the file's line ending cannot be handled here (bare CR).
   */
  private lineEndingAt(p: number, end: number, eof: boolean): number {
    const buf = this.buf;
    const c = buf[p];
    if (c !== LF && c !== CR) return 0;
    let le = this.lineEnding;
    if (le === undefined) {
      // csv-parse settles the record delimiter at the first line break outside quotes
      if (c === LF) le = 'lf';
      else if (p + 1 >= end) return eof ? -2 : -1;
      else if (buf[p + 1] === LF) le = 'crlf';
      else return -2;
      this.lineEnding = le;
    }
    // LF and CRLF both end a record, whichever the file started with (as csv-parse reads it); a bare CR is text
    if (c === LF) return 1;
    if (p + 1 >= end) return eof ? 0 : -1;
    return buf[p + 1] === LF ? 2 : 0;
  }

  /** The line ending the chunk's data uses for every record: the file's first (COPY takes one kind only). */
  private get lineEndingLength(): number {
    return this.lineEnding === 'crlf' ? 2 : 1;
  }

  private incomplete(recStart: number, lf: number, cr: number): number {
    this.lf = lf;
    this.cr = cr;
    return recStart;
  }

  private giveUp(recStart: number, lf: number, cr: number, reason: ScanStop['reason']): number {
    this.lf = lf;
    this.cr = cr;
    this.stop = { at: recStart, reason };
    return recStart;
  }

  /** Doubles the span arrays, or grows them to `atLeast` fields. */
  private growSpans(atLeast = 0): void {
    const n = Math.max(this.spans.start.length * 2, atLeast);
    const grow = <T extends Int32Array | Uint8Array>(a: T, make: (n: number) => T) => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.spans = {
      start: grow(this.spans.start, (k) => new Int32Array(k)),
      end: grow(this.spans.end, (k) => new Int32Array(k)),
      next: grow(this.spans.next, (k) => new Int32Array(k)),
      flags: grow(this.spans.flags, (k) => new Uint8Array(k)),
    };
  }

  /** Leaves a record out of the data. */
  private drop(recStart: number, recEnd: number): void {
    this.flush(recStart);
    this.emitFrom = recEnd;
  }

  /** Whether field `i` (a number) is exact with `limit` digits after the point. */
  private fits(i: number, limit: number): boolean {
    const text = this.fieldText(i);
    return text === null || text === undefined || fitsFraction(text, limit);
  }

  /** Rejects a record whose field `i` has more fraction digits than its target column keeps. */
  private rejectRounding(recStart: number, recEnd: number, nf: number, index: number, lfAtStart: number, i: number): void {
    const fields = this.recordFields(nf);
    this.drop(recStart, recEnd);
    const name = this.options.names[i] as string;
    const limit = this.scale[i] as number;
    this.rejects.push({ index, line: this.baseLine + 1 + lfAtStart, fields, error: fractionError(name, fields[i] ?? '', limit) });
  }

  /** Converts a record the row path's way: rejected, or re-encoded from its row. */
  private slowRecord(recStart: number, recEnd: number, nf: number, index: number, lfAtStart: number): void {
    const fields = this.recordFields(nf);
    const strict = this.options.invalidUtf8;
    const result = strict && this.allSlow && !isUtf8(this.buf.subarray(recStart, recEnd)) ? strict() : this.options.check.convert(fields);
    this.drop(recStart, recEnd);
    if (result instanceof Error) {
      this.rejects.push({ index, line: this.baseLine + 1 + lfAtStart, fields, error: result });
      return;
    }
    const names = this.options.names;
    let line = '';
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const field = csvField(valueText(result[name]), this.dialect, i === 0);
      line = i === 0 ? field : `${line}${this.options.delimiter}${field}`;
    }
    this.writeText(`${line}${this.lineEnding === 'crlf' ? '\r\n' : '\n'}`);
    this.rows++;
  }

  /** The chunk's data for the records scanned up to `end` (adds the line ending a last record lacks). */
  finish(end: number): Buffer {
    if (!this.out && !this.openEnd) return this.buf.subarray(this.emitFrom, end); // nothing rewritten: the bytes as read
    this.flush(end);
    if (this.openEnd) this.writeText(this.lineEnding === 'crlf' ? '\r\n' : '\n');
    return (this.out as Buffer).subarray(0, this.o);
  }

  /** csv-parse's line counter after the chunk's records (it counts CR and LF, a CRLF record delimiter once). */
  get csvParseLines(): number {
    return this.lf + this.cr - this.crlfEnds;
  }
}
