/**
 * Source conformance (a start: the http source; the other built-in sources are not in
 * it yet): partitions survive a JSON round trip, a read aborted midway closes every
 * connection it opened, and a secret canary in the auth is absent from every output.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from '../../src/connectors/http/index.js';
import { connectorOptions, planContext, taskContext } from '../../src/sdk/testing.js';

const CANARY = `canary-${randomBytes(8).toString('hex')}`;
let server: Server;
let base = '';
let open = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    const page = Number(new URL(req.url ?? '/', base).searchParams.get('page') ?? 1);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ items: Array.from({ length: 10 }, (_, i) => ({ id: (page - 1) * 10 + i })) }));
  });
  server.on('connection', (socket) => {
    open++;
    socket.on('close', () => open--);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

const options = () =>
  connectorOptions(
    http,
    {
      url: `${base}/items`,
      records_path: 'items',
      pagination: 'page',
      cursor_field: 'id',
      auth: { type: 'bearer', token: CANARY },
      partition_by: { from_param: 'a', to_param: 'b', start: '0', end: '30', step: '10' },
    },
    'source',
  );

describe('source conformance: http', () => {
  it('partitions (with their saved cursor) survive a JSON round trip', async () => {
    const source = (http.source as NonNullable<typeof http.source>)(options());
    const partitions = await source.partitions?.(planContext({ sourceState: { r0: { cursor: 5 }, r1: { cursor: '17' } } }));
    expect(partitions).toHaveLength(3);
    expect(JSON.parse(JSON.stringify(partitions))).toEqual(partitions);
    expect(partitions?.every((p) => p.since === '17')).toBe(true);
    expect(JSON.stringify(partitions)).not.toContain(CANARY);
  });

  it('a read stopped midway closes every connection it opened; its state is plain JSON', async () => {
    const source = (http.source as NonNullable<typeof http.source>)(options());
    const ctx = taskContext({ partitionId: 'r0' });
    let rows = 0;
    for await (const batch of source.read({ id: 'r0', from: '0', to: '10' }, ctx)) {
      rows += Array.isArray(batch) ? batch.length : 1;
      if (rows >= 30) break; // the consumer stops: the source's finally must close its pool
    }
    expect(rows).toBe(30);
    expect(JSON.parse(JSON.stringify(ctx.state))).toEqual({ cursor: 29 });
    for (let i = 0; i < 50 && open > 0; i++) await new Promise((ok) => setTimeout(ok, 20));
    expect(open).toBe(0);
    expect(JSON.stringify(ctx.rejected)).not.toContain(CANARY);
  });
});
