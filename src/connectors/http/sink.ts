/**
 * The `http` sink (worker): each batch is one request (`json` array or `ndjson`),
 * or one request per row (`json_per_row`, `max_in_flight` at once), with an
 * Idempotency-Key that is the same on every retry of the batch. Responses are
 * classified by the SDK's {@link HttpClient}: 2xx written; 408, 429, 5xx and
 * network errors retried by the runtime (after `Retry-After`); any other 4xx
 * refuses the batch's rows (dead-lettered with `errors.tolerance: all`).
 * Not transactional: a failed run leaves what the API already accepted.
 */
import type { Sink, TaskContext, Writer } from '../../sdk/connector.js';
import { type HttpRequest, idempotencyKey } from '../../sdk/http.js';
import type { Row } from '../../sdk/types.js';
import { stringifyJson, stringifyJsonArray } from '../../sdk/values.js';
import { openClient } from './client.js';
import type { HttpOptions } from './spec.js';

const CONTENT_TYPE = { json: 'application/json', ndjson: 'application/x-ndjson', json_per_row: 'application/json' } as const;

/**
 * Rows as request bodies of at most about `maxBytes` each (at least one row each), cut
 * row by row: each row's JSON text ({@link stringifyJson}) is added to the body until the
 * next one would take it past `maxBytes` (counted in UTF-16 units, a separator each).
 * The reference for {@link bodies}, which gives the same bytes faster.
 */
export function rowBodies(rows: Row[], format: 'json' | 'ndjson', maxBytes: number): string[] {
  const out: string[] = [];
  let parts: string[] = [];
  let bytes = 0;
  const flush = () => {
    out.push(format === 'json' ? `[${parts.join(',')}]` : `${parts.join('\n')}\n`);
    parts = [];
    bytes = 0;
  };
  for (const row of rows) {
    const text = stringifyJson(row);
    if (parts.length > 0 && bytes + text.length > maxBytes) flush();
    parts.push(text);
    bytes += text.length + 1;
  }
  if (parts.length) flush();
  return out;
}

/**
 * The request bodies of a batch: {@link rowBodies}, byte for byte. A JSON batch that
 * fits is serialised in one go ({@link stringifyJsonArray}) instead of a string per row.
 */
export function bodies(rows: Row[], format: 'json' | 'ndjson', maxBytes: number): string[] {
  if (rows.length === 0) return [];
  if (format === 'json') {
    const whole = stringifyJsonArray(rows);
    // the row-by-row cut makes one body exactly when the rows joined by ',' are at most maxBytes
    if (whole.length - 2 <= maxBytes) return [whole];
  }
  return rowBodies(rows, format, maxBytes);
}

/**
 * {@link bodies} as bytes. The text of a large body lives in V8's heap (a 1000-row batch
 * is some 180 KB: a large object, promoted by the first collection it survives); its bytes
 * do not. Turned into bytes here, in a plain function, the text is garbage before the
 * request is awaited, and the bytes are what undici sends without another copy.
 */
function requestBodies(rows: Row[], format: 'json' | 'ndjson', maxBytes: number): Buffer[] {
  return bodies(rows, format, maxBytes).map((text) => Buffer.from(text));
}

export function httpSink(opts: HttpOptions): Sink {
  return {
    writer(partition, ctx: TaskContext): Writer {
      const client = openClient(opts, ctx);
      // what every request of the writer has in common, made once
      const request: Omit<HttpRequest, 'body' | 'idempotencyKey'> = {
        method: opts.method === 'GET' || opts.method === undefined ? 'POST' : opts.method,
        url: opts.url,
        headers: { 'content-type': CONTENT_TYPE[opts.format] },
        gzip: opts.compression === 'gzip',
      };
      let batches = 0;
      const keyOf = (batch: number, piece: string | number) =>
        opts.idempotency_key ? idempotencyKey(ctx.runId, partition.id, batch, piece) : undefined;
      /** A batch's request bodies with their Idempotency-Keys; `sent` marks those the API accepted, never sent again. */
      interface Prepared {
        bodies: Buffer[];
        keys: (string | undefined)[];
        sent: boolean[];
      }
      const prepareBatch = (rows: Row[]): Prepared => {
        const n = batches++;
        const perRow = opts.format === 'json_per_row';
        const bodies = perRow
          ? rows.map((row) => Buffer.from(stringifyJson(row)))
          : requestBodies(rows, opts.format as 'json' | 'ndjson', opts.batch_bytes);
        const keys = bodies.map((_, i) => keyOf(n, perRow ? i : bodies.length === 1 ? '' : i));
        return { bodies, keys, sent: bodies.map(() => false) };
      };
      /** Sends the bodies not yet accepted: one after the other, or `max_in_flight` at once for one request per row. */
      const sendPrepared = async (p: Prepared): Promise<void> => {
        let next = 0;
        const worker = async () => {
          while (next < p.bodies.length) {
            const i = next++;
            if (p.sent[i]) continue;
            const body = p.bodies[i] as Buffer;
            await client.request({ ...request, body, idempotencyKey: p.keys[i] });
            p.sent[i] = true;
            ctx.count('bytes_sent', body.length);
          }
        };
        const lanes = opts.format === 'json_per_row' ? Math.min(opts.max_in_flight, p.bodies.length) : 1;
        await Promise.all(Array.from({ length: lanes }, worker));
      };
      // a batch the runtime retries is the same array: the same prepared bodies, so the same Idempotency-Keys
      const preparedOf = new WeakMap<Row[], Prepared>();
      return {
        async write(rows) {
          const p = preparedOf.get(rows) ?? prepareBatch(rows);
          preparedOf.set(rows, p);
          await sendPrepared(p);
        },
        // the runtime lets the rows go while the API answers (errors.tolerance: none)
        prepareBatch,
        sendPrepared: (prepared) => sendPrepared(prepared as Prepared),
        close: () => client.close(),
      };
    },
  };
}
