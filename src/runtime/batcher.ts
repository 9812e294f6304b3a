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
function estimateRange(rows: Row[], from: number, to: number): number {
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
 * Cuts a stream of rows (or arrays of rows) into batches by count and bytes.
 * Pull-based: the next row is read only when the consumer asks for the next
 * batch, so a slow sink slows the source and memory stays flat. Encoded rows
 * pass through as batches of their own.
 */
export async function* batches(input: AsyncIterable<Row | Row[] | EncodedRows>, limits: BatchLimits): AsyncGenerator<Batch> {
  let rows: Row[] = [];
  let bytes = 0;
  /** The located slices of the batch being filled (per slice, not per row); undefined while none is. */
  let slices: LocatedSlice[] | undefined;
  const bytesPerRow = () => (rows.length ? bytes / rows.length : 0);
  const batch = (): Batch => {
    const b: Batch = slices ? { rows, bytes, locate: sliceLocator(slices) } : { rows, bytes };
    rows = [];
    bytes = 0;
    slices = undefined;
    return b;
  };
  for await (const item of input) {
    if (isEncodedRows(item)) {
      if (rows.length > 0) yield batch();
      rows = [];
      bytes = 0;
      slices = undefined;
      yield { rows: [], bytes: item.data.length, encoded: item };
      continue;
    }
    const chunk = Array.isArray(item) ? item : [item];
    const locate = Array.isArray(item) ? locationsOf(item) : undefined;
    let from = 0;
    while (from < chunk.length) {
      // take as many rows as fit by count, then check the byte limit on that slice
      let to = Math.min(chunk.length, from + (limits.rows - rows.length));
      let sliceBytes = estimateRange(chunk, from, to);
      if (bytes + sliceBytes > limits.bytes && to - from > 1) {
        const perRow = sliceBytes / (to - from) || bytesPerRow() || 1;
        to = Math.max(from + 1, from + Math.floor((limits.bytes - bytes) / perRow));
        sliceBytes = estimateRange(chunk, from, to);
      }
      if (locate || slices) (slices ??= []).push({ at: rows.length, from, locate });
      for (let i = from; i < to; i++) rows.push(chunk[i] as Row);
      bytes += sliceBytes;
      from = to;
      if (rows.length >= limits.rows || bytes >= limits.bytes) yield batch();
    }
  }
  if (rows.length > 0) yield batch();
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
