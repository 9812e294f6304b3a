/**
 * CSV records as weir writes them (the csv sink, and the encoded rows a source hands
 * a sink that takes CSV as it is): each field quoted only where it must be, so that
 * it reads back as the same text, and NULL apart from the empty string.
 */
import type { Row } from '../../sdk/types.js';
import { valueText } from './columns.js';

const BACKSLASH = 0x5c;

/** Delimiter, quote and null text of the encoded data. */
export interface Dialect {
  readonly delimiter: string;
  readonly quote: string;
  readonly nullText: string;
}

/**
 * One field as CSV text that reads back as `text` (NULL for null): quoted when it
 * holds the delimiter, the quote or a line break, equals the null text, or (first
 * field) starts with a backslash — PostgreSQL reads a line `\.` as end of data.
 */
export function csvField(text: string | null, d: Dialect, first: boolean): string {
  if (text === null) return d.nullText;
  if (
    text === d.nullText ||
    text.includes(d.delimiter) ||
    text.includes(d.quote) ||
    text.includes('\n') ||
    text.includes('\r') ||
    (first && text.charCodeAt(0) === BACKSLASH)
  )
    return `${d.quote}${text.split(d.quote).join(d.quote + d.quote)}${d.quote}`;
  return text;
}

/**
 * A value as a CSV file holds it (the csv sink's row path): {@link valueText}, but
 * bytes as base64 — a file has no bytea hex to read back.
 */
export function fileValueText(v: unknown): string | null {
  return v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : valueText(v);
}

/** Rows as CSV records of `columns` (each ending with a newline), read back field for field as the rows' text. */
export function encodeRowsCsv(rows: readonly Row[], columns: readonly string[], d: Dialect): Buffer {
  return Buffer.from(csvRecords(rows, columns, d), 'utf8');
}

/** {@link encodeRowsCsv}'s records as text, each value's text by `text` ({@link valueText} unless said). */
export function csvRecords(
  rows: readonly Row[],
  columns: readonly string[],
  d: Dialect,
  text: (v: unknown) => string | null = valueText,
): string {
  let out = '';
  for (const row of rows) {
    let line = '';
    for (let i = 0; i < columns.length; i++) {
      const field = csvField(text(row[columns[i] as string]), d, i === 0);
      line = i === 0 ? field : `${line}${d.delimiter}${field}`;
    }
    out += `${line}\n`;
  }
  return out;
}

/** A character that is one byte in UTF-8 and latin1, and not a line break: what a byte-level CSV reader can take as a delimiter or quote. */
export const oneByte = (c: string) => c.length === 1 && c.charCodeAt(0) < 0x80 && c !== '\n' && c !== '\r';

/**
 * What the byte-level CSV readers of the sinks' fast paths take (PostgreSQL COPY's
 * rule too): a one-byte delimiter and quote that differ, and a null text without
 * them or line breaks. A batch of another dialect goes the row path.
 */
export function byteDialectOk(d: Dialect): boolean {
  return (
    oneByte(d.delimiter) &&
    oneByte(d.quote) &&
    d.delimiter !== d.quote &&
    !/[\r\n]/.test(d.nullText) &&
    !d.nullText.includes(d.delimiter) &&
    !d.nullText.includes(d.quote)
  );
}
