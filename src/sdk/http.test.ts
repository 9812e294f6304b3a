/** The SDK's HttpClient: timeouts, cancellation and failures while the answer is read are WeirErrors, and no timer outlives a request. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeirError } from './errors.js';
import { HttpClient } from './http.js';
import { silentLog } from './testing.js';

let server: Server;
let url: string;
beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/slow') return void setTimeout(() => res.end('{}'), 2000).unref();
    if (req.url === '/cut') {
      // headers and half a body, then the connection drops
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"half":');
      return void setTimeout(() => res.destroy(), 20);
    }
    req.resume();
    req.on('end', () => res.end(JSON.stringify({ auth: req.headers.authorization ?? null, key: req.headers['idempotency-key'] ?? null })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function failure(promise: Promise<unknown>): Promise<WeirError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WeirError);
  return error as WeirError;
}

/** Runs `use` with a client of these options, and closes it. */
async function withClient(
  options: ConstructorParameters<typeof HttpClient>[0],
  ctx: ConstructorParameters<typeof HttpClient>[1],
  use: (client: HttpClient) => Promise<void>,
): Promise<void> {
  const client = new HttpClient(options, ctx);
  try {
    await use(client);
  } finally {
    await client.close();
  }
}

describe('HttpClient', () => {
  it('sends the auth header made once and the Idempotency-Key on every request', async () => {
    await withClient({ auth: { type: 'basic', username: 'u', password: 'p4ss' }, timeoutMs: 5000 }, { log: silentLog }, async (client) => {
      for (const key of ['k1', 'k2']) {
        const res = await client.request({ method: 'POST', url: `${url}/in`, body: Buffer.from('[]'), idempotencyKey: key });
        expect(res.json()).toEqual({ auth: `Basic ${Buffer.from('u:p4ss').toString('base64')}`, key });
      }
    });
  });

  it('a request over its timeout is a retryable http_timeout', async () => {
    await withClient({ timeoutMs: 200 }, { log: silentLog }, async (client) => {
      const error = await failure(client.request({ method: 'GET', url: `${url}/slow` }));
      expect(error).toMatchObject({ code: 'http_timeout', retryable: true });
    });
  });

  it('the run stopping aborts a request in flight: cancelled, not retried', async () => {
    const stop = new AbortController();
    await withClient({ timeoutMs: 5000 }, { log: silentLog, signal: stop.signal }, async (client) => {
      setTimeout(() => stop.abort(), 50);
      const error = await failure(client.request({ method: 'GET', url: `${url}/slow`, retries: 3 }));
      expect(error).toMatchObject({ kind: 'cancelled', code: 'cancelled' });
    });
  });

  it('a connection lost while the answer is read is a retryable network error', async () => {
    await withClient({ timeoutMs: 5000 }, { log: silentLog }, async (client) => {
      const error = await failure(client.request({ method: 'GET', url: `${url}/cut` }));
      expect(error).toMatchObject({ code: 'http_network', retryable: true });
    });
  });

  it('the client’s own retries wait (a jittered, fractional delay) and end as cancelled when the run stops meanwhile', async () => {
    const stop = new AbortController();
    await withClient({ timeoutMs: 100 }, { log: silentLog, signal: stop.signal }, async (client) => {
      const pending = failure(client.request({ method: 'GET', url: `${url}/slow`, retries: 5 }));
      // the first attempt times out (100 ms) and the client waits to retry; the stop lands in that wait
      setTimeout(() => stop.abort(), 150);
      expect(await pending).toMatchObject({ code: 'cancelled' });
    });
  });
});
