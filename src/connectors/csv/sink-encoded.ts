/**
 * The csv sink's encoded fast path (worker, once per batch): appends records a
 * source hands over already as this sink's row path would write them
 * (`EncodedRows.canonical`, e.g. the postgres source's COPY export), as they are.
 *
 * Taken only where the options make the row path's bytes those of any canonical
 * CSV in the dialect: UTF-8, no formula escaping, no `columns` choosing or
 * reordering fields, a one-byte delimiter and quote (see {@link fileDialect}). Any
 * other batch is declined, and the runtime hands the writer its rows.
 */
import type { EncodedRows } from '../../sdk/types.js';
import { byteDialectOk, type Dialect } from '../shared/csv-text.js';
import type { CsvOptions } from './spec.js';

/** The dialect in which canonical CSV is exactly this sink's row path's file, or undefined when no encoded batch can be. */
export function fileDialect(opts: CsvOptions): Dialect | undefined {
  if (opts.encoding === 'latin1' || opts.formula_escape) return undefined;
  if (opts.columns && Object.keys(opts.columns).length) return undefined;
  const d: Dialect = { delimiter: opts.delimiter, quote: opts.quote, nullText: opts.null_value };
  return byteDialectOk(d) ? d : undefined;
}

/** Whether the batch can be appended as it is to a file of these columns (undefined: none chosen yet) in dialect `d`. */
export function appendable(batch: EncodedRows, d: Dialect, columns: readonly string[] | undefined): boolean {
  return (
    batch.canonical === true &&
    batch.format === 'csv' &&
    batch.delimiter === d.delimiter &&
    batch.quote === d.quote &&
    batch.nullText === d.nullText &&
    (columns === undefined || (columns.length === batch.columns.length && columns.every((c, i) => c === batch.columns[i])))
  );
}
