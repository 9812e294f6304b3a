/**
 * Streams one batch through `COPY … FROM STDIN` (worker, once per batch attempt).
 * Rows are encoded in chunks while earlier chunks are on the wire, so encoding in
 * Node and parsing on the server overlap.
 */
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { errorMessage, WeirError } from '../../sdk/errors.js';
import type { Row } from '../../sdk/types.js';
import { encodeRows } from './encode.js';

/** Rows encoded per chunk written to the COPY stream. */
const CHUNK_ROWS = 1000;

/**
 * Copies `rows` (the `columns` of each) with the COPY statement `sql`; resolves
 * with the bytes sent once the server confirmed the COPY, rejects with the
 * server's error (the statement then left nothing behind).
 */
export async function copyRows(client: pg.Client, sql: string, rows: readonly Row[], columns: readonly string[]): Promise<number> {
  const stream = client.query(copyFrom(sql));
  let failure: unknown;
  let settled = false;
  const finished = new Promise<void>((resolve, reject) => {
    stream.on('finish', () => {
      settled = true;
      resolve();
    });
    stream.on('error', (error: unknown) => {
      failure ??= error;
      settled = true;
      reject(error);
    });
  });
  finished.catch(() => {});
  const waitDrain = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        stream.off('drain', done);
        stream.off('error', done);
        stream.off('close', done);
        resolve();
      };
      stream.on('drain', done);
      stream.on('error', done);
      stream.on('close', done);
    });

  let bytes = 0;
  for (let i = 0; i < rows.length && failure === undefined; i += CHUNK_ROWS) {
    let chunk: Buffer;
    try {
      chunk = Buffer.from(encodeRows(rows, columns, i, Math.min(rows.length, i + CHUNK_ROWS)), 'utf8');
    } catch (error) {
      // a value that cannot be encoded (e.g. a circular object): cancel the COPY, nothing stays
      const bad = new WeirError(`cannot encode a row for COPY: ${errorMessage(error)}`, {
        kind: 'data',
        code: 'encode_error',
        cause: error,
      });
      failure = bad;
      stream.destroy(bad);
      await finished.catch(() => {});
      throw bad;
    }
    bytes += chunk.length;
    if (!stream.write(chunk) && failure === undefined && !settled) await waitDrain();
  }
  if (failure === undefined) stream.end();
  await finished;
  return bytes;
}
