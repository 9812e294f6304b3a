import { locationsOf, type RowLocator } from '../sdk/errors.js';
import { type EncodedRows, estimateRowBytes, isEncodedRows, type Row } from '../sdk/types.js';

export interface Batch {
  /** The rows; empty when the batch is `encoded`. */
  rows: Row[];
  /** Where the rows are in the source, when the source said (`withLocations`). */
  locate?: RowLocator;
  /** Estimated bytes (exact for encoded batches). */
  bytes: number;
  /** Rows still encoded by the source, for a writer with `writeEncoded`. */
  encoded?: EncodedRows;
}

export interface BatchLimits {
  /** Cut a batch at this many rows. */
  rows: number;
  /** Cut a batch at this many (estimated) bytes. */
  bytes: number;
}

/** Rows of an array whose size is estimated one by one; larger arrays are sampled. */
const EXACT_UP_TO = 64;
const SAMPLE_EVERY = 8;

/** Estimated bytes of `rows[from, to)`: every row for small ranges, every 8th row scaled up otherwise. */
function estimateRange(rows: readonly Row[], from: number, to: number): number {
  const n = to - from;
  if (n <= EXACT_UP_TO) {
    let bytes = 0;
    for (let i = from; i < to; i++) bytes += estimateRowBytes(rows[i] as Row);
    return bytes;
  }
  let sampled = 0;
  let count = 0;
  for (let i = from; i < to; i += SAMPLE_EVERY) {
    sampled += estimateRowBytes(rows[i] as Row);
    count++;
  }
  return Math.round((sampled / count) * n);
}

/**
 * Cuts rows into batches by count and bytes as they are added: {@link batches} for
 * a source's read, the stream task for the chunks of an epoch (a sink then gets
 * batches of its size, not one per broker fetch).
 */
export class BatchCutter {
  private rows: Row[] = [];
  private bytes = 0;
  /** The located slices of the open batch (per slice, not per row); undefined while none is. */
  private slices: LocatedSlice[] | undefined;

  constructor(private readonly limits: BatchLimits) {}

  /** Adds `chunk` (`locate`: where its rows are in the source); returns the batches it filled (by count or bytes), in order. */
  add(chunk: readonly Row[], locate?: RowLocator): Batch[] {
    const { limits } = this;
    const full: Batch[] = [];
    let from = 0;
    while (from < chunk.length) {
      // take as many rows as fit by count, then check the byte limit on that slice
      let to = Math.min(chunk.length, from + (limits.rows - this.rows.length));
      let sliceBytes = estimateRange(chunk, from, to);
      if (this.bytes + sliceBytes > limits.bytes && to - from > 1) {
        const perRow = sliceBytes / (to - from) || (this.rows.length ? this.bytes / this.rows.length : 0) || 1;
        to = Math.max(from + 1, from + Math.floor((limits.bytes - this.bytes) / perRow));
        sliceBytes = estimateRange(chunk, from, to);
      }
      if (locate || this.slices) {
        this.slices ??= [];
        this.slices.push({ at: this.rows.length, from, locate });
      }
      for (let i = from; i < to; i++) this.rows.push(chunk[i] as Row);
      this.bytes += sliceBytes;
      from = to;
      if (this.rows.length >= limits.rows || this.bytes >= limits.bytes) {
        const batch = this.flush();
        if (batch) full.push(batch);
      }
    }
    return full;
  }

  /** The open batch, if it holds a row; the cutter starts a new one. */
  flush(): Batch | undefined {
    if (this.rows.length === 0) return undefined;
    const { rows, bytes, slices } = this;
    this.rows = [];
    this.bytes = 0;
    this.slices = undefined;
    return slices ? { rows, bytes, locate: sliceLocator(slices) } : { rows, bytes };
  }
}

/**
 * Cuts a stream of rows (or arrays of rows) into batches by count and bytes.
 * Pull-based: the next row is read only when the consumer asks for the next
 * batch, so a slow sink slows the source and memory stays flat. Encoded rows
 * pass through as batches of their own.
 */
export async function* batches(input: AsyncIterable<Row | Row[] | EncodedRows>, limits: BatchLimits): AsyncGenerator<Batch> {
  const cutter = new BatchCutter(limits);
  for await (const item of input) {
    if (isEncodedRows(item)) {
      const open = cutter.flush();
      if (open) yield open;
      yield { rows: [], bytes: item.data.length, encoded: item };
      continue;
    }
    yield* Array.isArray(item) ? cutter.add(item, locationsOf(item)) : cutter.add([item]);
  }
  const last = cutter.flush();
  if (last) yield last;
}

/** Rows of a batch from `from` on in a source array with this locator, starting at the batch's row `at`. */
interface LocatedSlice {
  at: number;
  from: number;
  locate: RowLocator | undefined;
}

/** The locator of a batch made of these slices (asked only for rows that failed). */
function sliceLocator(slices: LocatedSlice[]): RowLocator {
  return (index) => {
    for (let k = slices.length - 1; k >= 0; k--) {
      const s = slices[k] as LocatedSlice;
      if (s.at <= index) return s.locate?.(index - s.at + s.from);
    }
    return undefined;
  };
}
