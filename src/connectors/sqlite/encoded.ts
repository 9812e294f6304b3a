/**
 * CSV records → the values better-sqlite3 binds, field by field from the bytes, for
 * the sink's encoded fast path (worker, once per batch): no csv-parse, no row
 * objects, one reused array of values per record.
 *
 * The csv source's chunks carry, for every field, the text of the value its row
 * path would hand the sink (see `src/connectors/csv/encoded.ts`): integers in
 * decimal, numbers as JavaScript prints them, booleans `true`/`false`, decimals
 * with their digits, timestamps and text as they are, and the unquoted null text
 * for NULL. The row path binds `toSqlite(value)`; read back from that text the
 * values are the same: `Number(text)` of a number's text is the number, an integer
 * beyond 2^53 is a BigInt of its digits, a boolean is 1 or 0, and the other types
 * bind their text. JSON columns are declined (the text `5` could be the number 5
 * or, unquoted by CSV, the JSON string "5"): the writer then takes rows.
 */
import type { ColumnType } from '../../sdk/types.js';
import type { Dialect } from '../shared/csv-text.js';

/** How one field is bound. */
export type BindKind = 'text' | 'integer' | 'number' | 'boolean';

/** The bind kind of a source column type, or undefined when the fast path declines it. */
export function bindKindOf(type: ColumnType): BindKind | undefined {
  switch (type) {
    case 'integer':
      return 'integer';
    case 'number':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'json':
      return undefined;
    default:
      return 'text'; // string, decimal, timestamp: the row path binds their text
  }
}

const LF = 0x0a;
const CR = 0x0d;

/** Reads whole CSV records (each ending with LF or CRLF) and calls `onRecord` with the values of each, in field order. */
export class CsvBinder {
  private readonly D: number;
  private readonly Q: number;
  private readonly nullBytes: Buffer;
  private readonly values: unknown[];

  constructor(
    dialect: Dialect,
    private readonly kinds: readonly BindKind[],
  ) {
    this.D = dialect.delimiter.charCodeAt(0);
    this.Q = dialect.quote.charCodeAt(0);
    this.nullBytes = Buffer.from(dialect.nullText, 'utf8');
    this.values = new Array(kinds.length);
  }

  /** Calls `onRecord` once per record with the reused array of its values; returns the number of records. */
  each(data: Buffer, onRecord: (values: unknown[]) => void): number {
    const { D, Q, kinds, nullBytes, values } = this;
    const fields = kinds.length;
    const quoteText = String.fromCharCode(Q);
    const doubled = quoteText + quoteText;
    const n = data.length;
    let records = 0;
    let i = 0;
    while (i < n) {
      for (let f = 0; ; f++) {
        if (f >= fields) throw new Error(`CSV binder: a record has more than ${fields} field(s) at byte ${i}`);
        let text: string | null;
        let c: number;
        if (data[i] === Q) {
          const start = ++i;
          let escaped = false;
          for (;;) {
            if (i >= n) throw new Error('CSV binder: unclosed quote at the end of the batch');
            if (data[i] === Q) {
              if (data[i + 1] === Q) {
                escaped = true;
                i += 2;
                continue;
              }
              break;
            }
            i++;
          }
          text = data.toString('utf8', start, i);
          if (escaped) text = text.replaceAll(doubled, quoteText);
          i++;
          c = data[i] as number;
          if (c === CR && data[i + 1] === LF) c = data[++i] as number;
        } else {
          const start = i;
          c = data[i] as number;
          while (i < n && c !== D && c !== LF) c = data[++i] as number;
          const end = c === LF && data[i - 1] === CR ? i - 1 : i;
          text =
            end - start === nullBytes.length && data.compare(nullBytes, 0, nullBytes.length, start, end) === 0
              ? null
              : data.toString('utf8', start, end);
        }
        values[f] = text === null ? null : bind(kinds[f] as BindKind, text);
        if (c === D) {
          i++;
          continue;
        }
        if (c !== LF) throw new Error(`CSV binder: expected a delimiter or a line break at byte ${i}`);
        if (f !== fields - 1) throw new Error(`CSV binder: a record has ${f + 1} field(s), not ${fields}`);
        i++;
        break;
      }
      onRecord(values);
      records++;
    }
    return records;
  }
}

function bind(kind: BindKind, text: string): unknown {
  switch (kind) {
    case 'text':
      return text;
    case 'number':
      return Number(text);
    case 'boolean':
      return text === 'true' ? 1 : 0;
    default: {
      const n = Number(text);
      return Number.isSafeInteger(n) ? n : BigInt(text);
    }
  }
}
