/**
 * The parquet source's encoded path (worker, once per partition, instead of
 * `read`): the partition's rows as CSV records, for a sink that takes CSV as it
 * is: PostgreSQL COPY, and the csv sink. The rows are the row path's, built a slice
 * at a time and written out at once as their text, so a batch waits for the target
 * as a few MB of bytes rather than as row objects three times that size, and the
 * objects die young. For COPY the text is `valueText`'s, the text the row path's COPY
 * sends too; for the csv sink (`EncodingHints.dialect`) it is the sink's own file
 * text ({@link fileValueText}) in the sink's dialect, so the batch is canonical and
 * appended as it is — a batch the sink declined would be read from the file again.
 * `decode` reads the batch's rows again from the file: the row path's rows
 * exactly, for the runtime's bad-row isolation.
 */
import type { TaskContext } from '../../sdk/connector.js';
import type { EncodedRows, EncodingHints, Partition, Row, Schema } from '../../sdk/types.js';
import { valueText } from '../shared/columns.js';
import { csvRecords, type Dialect, fileValueText } from '../shared/csv-text.js';
import { readPartition } from './source.js';
import type { ParquetOptions } from './spec.js';

/** Bytes of CSV records per encoded batch (as the csv source's passthrough hands on). */
const BATCH_BYTES = 1024 * 1024;
/** A batch buffer's size: a batch and the slice that ends it (a slice of 2,000 rows is ~250 KB of CSV at ~130 bytes a row). */
const BUFFER_BYTES = BATCH_BYTES + 512 * 1024;
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
  const names = ctx.schema.map((c) => c.name);
  return encodedBatches(partition, opts, ctx, names, hints?.dialect ? { dialect: hints.dialect, canonical: true } : COPY_TEXT);
}

/** The dialect of a partition's batches, and whether they are the csv sink's file text in it (else COPY's text in {@link DIALECT}). */
interface Encoding {
  readonly dialect: Dialect;
  readonly canonical: boolean;
}

const COPY_TEXT: Encoding = { dialect: DIALECT, canonical: false };

/**
 * The byte buffers of batches, each reused once the runtime released its batch, by
 * any partition of this process: a batch outlives several collections of the young
 * generation, and fresh buffers of that age would pile up until a full one (V8 lets
 * 64 MB of them wait).
 */
class BatchBuffers {
  private readonly free: Buffer[] = [];

  /** A buffer of at least `size` bytes. */
  take(size: number): Buffer {
    const i = this.free.findIndex((b) => b.length >= size);
    return i >= 0 ? (this.free.splice(i, 1)[0] as Buffer) : Buffer.allocUnsafeSlow(Math.max(size, BUFFER_BYTES));
  }

  give(buffer: Buffer): void {
    if (this.free.length < KEPT_BUFFERS) this.free.push(buffer);
  }
}

/** Buffers kept for reuse: per partition at work, the batch being written, the one read ahead and the one being filled. */
const KEPT_BUFFERS = 8;
const batchBuffers = new BatchBuffers();

/** Slices of the row path written as CSV records into batches of about {@link BATCH_BYTES}. */
async function* encodedBatches(
  partition: Partition,
  opts: ParquetOptions,
  ctx: TaskContext,
  names: string[],
  encoding: Encoding,
): AsyncGenerator<EncodedRows> {
  const textOf = encoding.canonical ? fileValueText : valueText;
  let at = Number(partition.row_start ?? 0);
  let buffer = batchBuffers.take(BATCH_BYTES);
  let length = 0;
  let rows = 0;
  const cut = (): EncodedRows => {
    const batch = encodedBatch(partition, opts, ctx, names, encoding, buffer, length, at, at + rows);
    at += rows;
    rows = 0;
    length = 0;
    return batch;
  };
  for await (const slice of readPartition(partition, opts, ctx)) {
    const text = csvRecords(slice, names, encoding.dialect, textOf);
    // UTF-8 takes at most 3 bytes per UTF-16 unit: count the bytes only where that may not fit
    const size = 3 * text.length <= buffer.length - length ? 0 : Buffer.byteLength(text, 'utf8');
    if (size > buffer.length - length) {
      if (rows > 0) yield cut();
      else batchBuffers.give(buffer);
      buffer = batchBuffers.take(size);
    }
    length += buffer.write(text, length, 'utf8');
    rows += slice.length;
    if (length >= BATCH_BYTES) {
      yield cut();
      buffer = batchBuffers.take(BATCH_BYTES);
    }
  }
  if (rows > 0) yield cut();
}

/**
 * Rows `[from, to)` of the file as one encoded batch, `length` bytes of `buffer`;
 * `decode` reads them again (without waiting for a turn: this partition holds one).
 */
function encodedBatch(
  partition: Partition,
  opts: ParquetOptions,
  ctx: TaskContext,
  columns: string[],
  encoding: Encoding,
  buffer: Buffer,
  length: number,
  from: number,
  to: number,
): EncodedRows {
  return {
    kind: 'encoded',
    format: 'csv',
    columns,
    ...encoding.dialect,
    canonical: encoding.canonical,
    data: buffer.subarray(0, length),
    rows: to - from,
    async decode() {
      const out: Row[] = [];
      for await (const slice of readPartition({ id: partition.id, row_start: from, row_end: to }, opts, ctx, false))
        for (const row of slice) out.push(row);
      return out;
    },
    release: () => batchBuffers.give(buffer),
  };
}
