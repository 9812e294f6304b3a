import { estimateRowBytes, type Row } from '../sdk/types.js';

export interface Batch {
  rows: Row[];
  bytes: number;
}

export interface BatchLimits {
  /** Cut a batch at this many rows. */
  rows: number;
  /** Cut a batch at this many (estimated) bytes. */
  bytes: number;
}

/**
 * Cuts a stream of rows (or arrays of rows) into batches by count and bytes.
 * Pull-based: the next row is read only when the consumer asks for the next
 * batch, so a slow sink slows the source and memory stays flat.
 */
export async function* batches(input: AsyncIterable<Row | Row[]>, limits: BatchLimits): AsyncGenerator<Batch> {
  let rows: Row[] = [];
  let bytes = 0;
  for await (const item of input) {
    if (Array.isArray(item)) {
      for (const row of item) {
        rows.push(row);
        bytes += estimateRowBytes(row);
        if (rows.length >= limits.rows || bytes >= limits.bytes) {
          yield { rows, bytes };
          rows = [];
          bytes = 0;
        }
      }
    } else {
      rows.push(item);
      bytes += estimateRowBytes(item);
      if (rows.length >= limits.rows || bytes >= limits.bytes) {
        yield { rows, bytes };
        rows = [];
        bytes = 0;
      }
    }
  }
  if (rows.length > 0) yield { rows, bytes };
}
