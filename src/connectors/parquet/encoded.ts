/**
 * The parquet source's encoded path (worker, once per partition, instead of
 * `read`): the partition's rows as CSV records, for a sink that takes CSV as it
 * is (PostgreSQL COPY). The rows are the row path's, built a slice at a time and
 * written out at once as their text ({@link valueText}, the text the row path's
 * COPY sends too), so a batch waits for the server as a few MB of bytes rather
 * than as row objects three times that size, and the objects die young.
 * `decode` reads the batch's rows again from the file: the row path's rows
 * exactly, for the runtime's bad-row isolation.
 */
import type { TaskContext } from '../../sdk/connector.js';
import type { EncodedRows, EncodingHints, Partition, Row, Schema } from '../../sdk/types.js';
import { type Dialect, encodeRowsCsv } from '../shared/csv-text.js';
import { readPartition } from './source.js';
import type { ParquetOptions } from './spec.js';

/** Bytes of CSV records per encoded batch (as the csv source's passthrough hands on). */
const BATCH_BYTES = 1024 * 1024;
const DIALECT: Dialect = { delimiter: ',', quote: '"', nullText: '' };

/**
 * Whether every value's text is what the target keeps: a column of fixed scale
 * (`fractionDigits`, e.g. numeric(12,2)) would round a longer fraction without a
 * word, which the row path's writer rejects row by row; such columns take the row path.
 */
export function encodable(columns: Schema, hints: EncodingHints | undefined): boolean {
  const fixed = hints?.fractionDigits ?? {};
  return columns.every((c) => {
    if (!Object.hasOwn(fixed, c.name)) return true;
    const digits = fixed[c.name] as number;
    return c.type === 'integer' || (c.type === 'decimal' && c.scale !== undefined && c.scale <= digits);
  });
}

/** The partition as CSV records of its columns in schema order, or undefined when only the row path is exact. */
export function readPartitionEncoded(
  partition: Partition,
  opts: ParquetOptions,
  ctx: TaskContext,
  format: EncodedRows['format'],
  hints: EncodingHints | undefined,
): AsyncIterable<EncodedRows> | undefined {
  if (format !== 'csv' || !ctx.schema?.length || !encodable(ctx.schema, hints)) return undefined;
  return encodedBatches(
    partition,
    opts,
    ctx,
    ctx.schema.map((c) => c.name),
  );
}

/** Slices of the row path encoded and gathered into batches of about {@link BATCH_BYTES}. */
async function* encodedBatches(partition: Partition, opts: ParquetOptions, ctx: TaskContext, names: string[]): AsyncGenerator<EncodedRows> {
  let at = Number(partition.row_start ?? 0);
  let pieces: Buffer[] = [];
  let bytes = 0;
  let rows = 0;
  const cut = (): EncodedRows => {
    const batch = encodedBatch(
      partition,
      opts,
      ctx,
      names,
      pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces, bytes),
      at,
      at + rows,
    );
    at += rows;
    pieces = [];
    bytes = 0;
    rows = 0;
    return batch;
  };
  for await (const slice of readPartition(partition, opts, ctx)) {
    const data = encodeRowsCsv(slice, names, DIALECT);
    pieces.push(data);
    bytes += data.length;
    rows += slice.length;
    if (bytes >= BATCH_BYTES) yield cut();
  }
  if (rows > 0) yield cut();
}
/** Rows `[from, to)` of the file as one encoded batch; `decode` reads them again (outside the decode budget, which this partition holds). */
function encodedBatch(
  partition: Partition,
  opts: ParquetOptions,
  ctx: TaskContext,
  columns: string[],
  data: Buffer,
  from: number,
  to: number,
): EncodedRows {
  return {
    kind: 'encoded',
    format: 'csv',
    columns,
    ...DIALECT,
    data,
    rows: to - from,
    async decode() {
      const out: Row[] = [];
      for await (const slice of readPartition({ id: partition.id, row_start: from, row_end: to }, opts, ctx, false))
        for (const row of slice) out.push(row);
      return out;
    },
  };
}
