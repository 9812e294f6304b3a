/**
 * CSV records → the text format of LOAD DATA (tab-separated, backslash escapes,
 * `\N` for NULL), byte by byte, for the sink's encoded fast path (worker, once per
 * batch). No row objects are built and no value is converted in JavaScript.
 *
 * The csv source's chunks carry, for every field, the text of the value the row
 * path would hand the sink (see `src/connectors/csv/encoded.ts`). What the row path
 * then sends to LOAD DATA is that value through the column's encoder
 * ({@link encoderFor}) and `tsvField`; for the pairs of source type and target
 * column listed in {@link loadKindOf} that is the same text (or, for DECIMAL, a text
 * the server reads as the same value), except for two rewrites done here:
 * booleans become `1`/`0`, and ISO timestamps into DATETIME/TIMESTAMP go through
 * {@link toDatetimeText}. Any other pair (and every JSON column) is declined, and the writer takes rows.
 * Range and scale checks are left to the server: its strict session turns a value
 * it cannot store exactly into a warning, which fails the batch (and the runtime
 * isolates the bad row on the row path).
 */
import type { ColumnType } from '../../sdk/types.js';
import type { Dialect } from '../shared/csv-text.js';
import type { TableColumn } from './db.js';
import { toDatetimeText } from './encode.js';

/** How one field is carried over: as it is, booleans as 1/0, or ISO timestamps as DATETIME text. */
export type LoadKind = 'text' | 'boolean' | 'datetime';

const INTEGERS = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint']);
const DECIMALS = new Set(['decimal', 'numeric']);
const FLOATS = new Set(['float', 'double', 'real', 'double precision']);
const DATETIMES = new Set(['datetime', 'timestamp']);

/**
 * How a source column of type `source` reaches `target` on the fast path, or
 * undefined when the row path's encoder does more than the server would (e.g. text
 * into an INT column, which the server rounds without a word): then the writer
 * declines the encoded batch.
 */
export function loadKindOf(source: ColumnType, target: TableColumn): LoadKind | undefined {
  const t = target.dataType;
  // JSON: its text cannot tell a JSON string `"true"` (sent as it is) from the boolean `true` (sent as 1)
  if (source === 'json') return undefined;
  if (INTEGERS.has(t)) return source === 'integer' ? 'text' : source === 'boolean' ? 'boolean' : undefined;
  if (DECIMALS.has(t) || FLOATS.has(t))
    return source === 'integer' || source === 'decimal' || source === 'number' ? 'text' : source === 'boolean' ? 'boolean' : undefined;
  if (DATETIMES.has(t)) return source === 'timestamp' || source === 'string' ? 'datetime' : undefined;
  return source === 'boolean' ? 'boolean' : 'text'; // text, JSON and the other types take the value's text
}

const LF = 0x0a;
const CR = 0x0d;
const TAB = 0x09;
const BACKSLASH = 0x5c;
const ESCAPE: Record<number, number> = { 92: 0x5c, 9: 0x74, 10: 0x6e, 13: 0x72, 0: 0x30 };
const NEEDS_ESCAPE = new Uint8Array(256);
for (const c of [BACKSLASH, TAB, LF, CR, 0]) NEEDS_ESCAPE[c] = 1;

/**
 * Rewrites whole CSV records (each ending with LF or CRLF) into LOAD DATA's text
 * format, field `i` carried over as `kinds[i]`. `out` is reused when large enough;
 * the returned buffer holds the result. Throws when a record has another number of
 * fields than `kinds` (the source vouched for the records: this is a bug guard).
 */
export class LoadDataEncoder {
  private out: Buffer = Buffer.allocUnsafe(0);
  private readonly D: number;
  private readonly Q: number;
  private readonly nullBytes: Buffer;

  constructor(
    dialect: Dialect,
    private readonly kinds: readonly LoadKind[],
  ) {
    this.D = dialect.delimiter.charCodeAt(0);
    this.Q = dialect.quote.charCodeAt(0);
    this.nullBytes = Buffer.from(dialect.nullText, 'utf8');
  }

  encode(data: Buffer): Buffer {
    // Most text needs no escapes: a buffer an eighth larger than the input is enough. A
    // typed array drops writes past its end while `o` counts on, so a batch that needs
    // more is known at the end, and encoded again into a buffer of the size it needs.
    const guess = data.length + (data.length >> 3) + 64;
    if (this.out.length < guess) this.out = Buffer.allocUnsafe(guess);
    const needed = this.encodeInto(data, this.out);
    if (needed <= this.out.length) return this.out.subarray(0, needed);
    this.out = Buffer.allocUnsafe(needed);
    return this.out.subarray(0, this.encodeInto(data, this.out));
  }

  /** Encodes `data` into `out`; returns the length of the result, which is larger than `out` when it did not fit. */
  private encodeInto(data: Buffer, out: Buffer): number {
    const { D, Q, kinds, nullBytes } = this;
    const fields = kinds.length;
    const n = data.length;
    let i = 0;
    let o = 0;
    while (i < n) {
      for (let f = 0; ; f++) {
        if (f >= fields) throw new Error(`LOAD DATA encoder: a record has more than ${fields} field(s) at byte ${i}`);
        const start = o;
        let quoted = false;
        let c = data[i] as number;
        if (c === Q) {
          quoted = true;
          i++;
          for (;;) {
            if (i >= n) throw new Error('LOAD DATA encoder: unclosed quote at the end of the batch');
            c = data[i] as number;
            if (c === Q) {
              if (data[i + 1] === Q) {
                out[o++] = Q;
                i += 2;
                continue;
              }
              i++;
              break;
            }
            if (NEEDS_ESCAPE[c]) {
              out[o++] = BACKSLASH;
              out[o++] = ESCAPE[c] as number;
            } else out[o++] = c;
            i++;
          }
          c = data[i] as number;
          if (c === CR && data[i + 1] === LF) c = data[++i] as number;
        } else {
          const fieldStart = i;
          for (; i < n; i++) {
            c = data[i] as number;
            if (c === D || c === LF) break;
            if (c === CR && data[i + 1] === LF) {
              c = data[++i] as number;
              break;
            }
            if (NEEDS_ESCAPE[c]) {
              out[o++] = BACKSLASH;
              out[o++] = ESCAPE[c] as number;
            } else out[o++] = c;
          }
          const fieldEnd = c === LF && data[i - 1] === CR ? i - 1 : i;
          if (fieldEnd - fieldStart === nullBytes.length && data.compare(nullBytes, 0, nullBytes.length, fieldStart, fieldEnd) === 0) {
            o = start;
            out[o++] = BACKSLASH;
            out[o++] = 0x4e; // N
          }
        }
        const kind = kinds[f];
        if (o > out.length) {
          // out of room: only the length counts now (the caller encodes again)
        } else if (kind === 'boolean') o = booleanDigit(out, start, o);
        else if (kind === 'datetime' && (quoted || out[start] !== BACKSLASH || o - start !== 2)) {
          const text = out.toString('utf8', start, o);
          const converted = toDatetimeText(text);
          if (converted !== text) o = start + out.write(converted, start, 'utf8');
        }
        if (c === D) {
          out[o++] = TAB;
          i++;
          continue;
        }
        if (c !== LF) throw new Error(`LOAD DATA encoder: expected a delimiter or a line break at byte ${i}`);
        if (f !== fields - 1) throw new Error(`LOAD DATA encoder: a record has ${f + 1} field(s), not ${fields}`);
        out[o++] = LF;
        i++;
        break;
      }
    }
    return o;
  }
}

/** `true` → `1`, `false` → `0` in out[start, end); returns the new end. */
function booleanDigit(out: Buffer, start: number, end: number): number {
  const len = end - start;
  if (len === 4 && out[start] === 0x74 && out[start + 1] === 0x72 && out[start + 2] === 0x75 && out[start + 3] === 0x65) {
    out[start] = 0x31;
    return start + 1;
  }
  if (
    len === 5 &&
    out[start] === 0x66 &&
    out[start + 1] === 0x61 &&
    out[start + 2] === 0x6c &&
    out[start + 3] === 0x73 &&
    out[start + 4] === 0x65
  ) {
    out[start] = 0x30;
    return start + 1;
  }
  return end;
}
