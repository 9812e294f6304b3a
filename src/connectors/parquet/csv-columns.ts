/**
 * The parquet sink's fast path (worker, once per encoded batch): reads a csv
 * source's encoded chunk ({@link EncodedRows}, CSV text whose every field is the
 * text of the value the row path would hand on) straight into the writer's
 * column buffers, without csv-parse, a row object per record or the row path's
 * batching. Each field's text goes through the same converter the row path's
 * value does ({@link toParquet} takes the value's text as well as the value), so
 * both paths give the writer the same values and the file the same bytes.
 *
 * It owns only the byte scanning: which field of which record, quoted or not,
 * NULL or text. A chunk it cannot read the simple way (a delimiter or quote that
 * is not one ASCII byte, columns the writer does not write) is left to the row
 * path by the caller.
 */
import { RowError } from '../../sdk/errors.js';
import type { EncodedRows } from '../../sdk/types.js';
import type { ToParquet } from './write-values.js';

const LF = 0x0a;
const CR = 0x0d;

/** What the scanner needs of one column of the chunk: where its values go and how they are converted. */
export interface ChunkColumn {
  /** The writer's buffer this column's values are appended to; undefined: the column is not written. */
  buffer: unknown[] | undefined;
  /** Name in error messages. */
  name: string;
  /** Text → what hyparquet-writer encodes for the column; throws a RowError. */
  convert: ToParquet;
}

/** Whether this scanner reads the chunk's dialect: one ASCII byte each for delimiter and quote. */
export function scannable(chunk: EncodedRows): boolean {
  return (
    chunk.delimiter.length === 1 && chunk.quote.length === 1 && chunk.delimiter.charCodeAt(0) < 0x80 && chunk.quote.charCodeAt(0) < 0x80
  );
}

/**
 * Appends the chunk's records to the columns' buffers, from index `at` on, and
 * returns the number of records read. A field that does not convert throws the
 * converter's RowError; a record with another number of fields throws one too.
 * Either way the caller rolls the buffers back to `at`.
 */
export function scanChunk(chunk: EncodedRows, columns: readonly ChunkColumn[], at: number): number {
  const buf = chunk.data;
  const delimiter = chunk.delimiter.charCodeAt(0);
  const quote = chunk.quote.charCodeAt(0);
  const nullText = chunk.nullText;
  const width = columns.length;
  const end = buf.length;
  let p = 0;
  let row = at;
  while (p < end) {
    for (let c = 0; c < width; c++) {
      const column = columns[c] as ChunkColumn;
      let text: string | null;
      if (buf[p] === quote) {
        // quoted: up to the quote that is not doubled
        const start = p + 1;
        let q = start;
        let doubled = false;
        for (;;) {
          q = buf.indexOf(quote, q);
          if (q < 0) throw cutShort(row - at);
          if (buf[q + 1] === quote) {
            doubled = true;
            q += 2;
          } else break;
        }
        text = buf.toString('utf8', start, q);
        if (doubled) text = text.replaceAll(`${chunk.quote}${chunk.quote}`, chunk.quote);
        p = q + 1;
      } else {
        let q = p;
        while (q < end && buf[q] !== delimiter && buf[q] !== LF) q++;
        let fieldEnd = q;
        if (q < end && buf[q] === LF && fieldEnd > p && buf[fieldEnd - 1] === CR) fieldEnd--;
        text = buf.toString('utf8', p, fieldEnd);
        if (text === nullText) text = null;
        p = fieldEnd;
      }
      // after a field: the delimiter, or the record's end on the last one
      const next = buf[p];
      if (c < width - 1) {
        if (next !== delimiter) throw fieldCount(row - at, c + 1, width);
        p++;
      } else {
        if (next === CR && buf[p + 1] === LF) p++;
        if (buf[p] !== LF) throw fieldCount(row - at, width + 1, width);
        p++;
      }
      const target = column.buffer;
      if (target) target[row] = text === null ? null : column.convert(text, column.name);
    }
    row++;
  }
  if (row - at !== chunk.rows) throw new RowError(`an encoded chunk said ${chunk.rows} records and held ${row - at}`, { code: 'bad_row' });
  return row - at;
}

const cutShort = (record: number) =>
  new RowError(`record ${record + 1} of an encoded chunk ends inside a quoted field`, { code: 'bad_row' });

const fieldCount = (record: number, got: number, width: number) =>
  new RowError(`record ${record + 1} of an encoded chunk has ${got > width ? 'more' : got} fields, not ${width}`, { code: 'bad_row' });
