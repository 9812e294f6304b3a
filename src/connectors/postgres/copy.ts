/**
 * Streams one batch through `COPY … FROM STDIN` (worker, once per batch attempt).
 * Rows are encoded in chunks while earlier chunks are on the wire, so encoding in
 * Node and parsing on the server overlap. {@link copyBuffer} sends bytes that are
 * already encoded (the CSV passthrough path).
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
  const { stream, finished, failed, send } = openCopy(client, sql);
  let bytes = 0;
  for (let i = 0; i < rows.length && !failed(); i += CHUNK_ROWS) {
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
      stream.destroy(bad);
      await finished.catch(() => {});
      throw bad;
    }
    bytes += chunk.length;
    await send(chunk);
  }
  if (!failed()) stream.end();
  await finished;
  return bytes;
}

/** Bytes per CopyData message of {@link copyBuffer}. */
const SLICE_BYTES = 1024 * 1024;

/**
 * Copies `data`, already in the format `sql` names (e.g. CSV), in slices that
 * respect the socket's backpressure; resolves with its length once the server
 * confirmed the COPY, rejects with the server's error (nothing left behind).
 */
export async function copyBuffer(client: pg.Client, sql: string, data: Buffer): Promise<number> {
  const { stream, finished, failed, send } = openCopy(client, sql);
  for (let i = 0; i < data.length && !failed(); i += SLICE_BYTES) await send(data.subarray(i, Math.min(data.length, i + SLICE_BYTES)));
  if (!failed()) stream.end();
  await finished;
  return data.length;
}

/** A COPY FROM STDIN stream, its outcome, and a write that waits for `drain`. */
function openCopy(client: pg.Client, sql: string) {
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

  const send = async (chunk: Buffer) => {
    if (!stream.write(chunk) && failure === undefined && !settled) await waitDrain();
  };
  return { stream, finished, failed: () => failure !== undefined, send };
}
