/**
 * The README's connectors pass the same conformance suite as the built-ins: the API
 * connector of "An API connector" (examples/api-connector, bearer token, cursor pages,
 * incremental cursor) against a local API, and the inventory connector of "Write your
 * own connector" (examples/custom-connector). They import `weir/sdk`, the built package.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';
import type { AnyConnector } from '../../src/sdk/connector.js';
import { ROOT } from '../helpers/cli.js';
import { describeSourceConformance } from './harness.js';

const load = async (path: string) => ((await import(join(ROOT, path))) as { default: AnyConnector }).default;
const tickets = await load('examples/api-connector/tickets-connector.mjs');
const inventory = await load('examples/custom-connector/inventory-connector.mjs');

const TOKEN = `tk-${randomBytes(12).toString('hex')}`;
const TICKETS = Array.from({ length: 11 }, (_, i) => ({
  id: i + 1,
  subject: i === 3 ? '' : `ticket ${i + 1}: "printer" on fire, ü ✓`,
  status: i % 2 ? 'open' : 'closed',
  updated_at: i < 2 ? '2025-12-30T00:00:00Z' : `2026-01-${String(i).padStart(2, '0')}T00:00:00Z`,
}));

describe('examples/api-connector (tickets)', () => {
  let server: Server;
  let url = '';
  beforeAll(async () => {
    server = createServer((req, res) => {
      const u = new URL(req.url ?? '/', url);
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        // an API that echoes what it was sent: the token must still appear nowhere
        res.writeHead(401, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: 'bad token', got: req.headers.authorization }));
      }
      const since = u.searchParams.get('updated_since') ?? '';
      const all = TICKETS.filter((t) => t.updated_at >= since);
      const start = Number(u.searchParams.get('cursor') ?? 0);
      const size = Number(u.searchParams.get('limit'));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ tickets: all.slice(start, start + size), next_cursor: start + size < all.length ? String(start + size) : null }),
      );
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

  describeSourceConformance(tickets, {
    options: () => ({ base_url: url, token: TOKEN, updated_since: '2026-01-01T00:00:00Z', page_size: 3 }),
    secret: TOKEN,
    expected: TICKETS.filter((t) => t.updated_at >= '2026-01-01T00:00:00Z'),
  });
});

describe('examples/custom-connector (inventory)', () => {
  // the example's own snapshots hold a bad quantity on purpose (a dead letter): a clean set here
  const dir = mkdtempSync(join(tmpdir(), 'weir-inventory-'));
  const snapshots = {
    berlin: {
      updated_at: '2026-11-26T18:00:00Z',
      items: [
        { sku: 'ESP-1KG', quantity: 120 },
        { sku: 'MUG', quantity: 0 },
      ],
    },
    lisbon: { updated_at: '2026-11-26T19:30:00Z', items: [{ sku: 'FILTERS', quantity: 900 }] },
  };
  for (const [warehouse, s] of Object.entries(snapshots))
    writeFileSync(join(dir, `${warehouse}.json`), JSON.stringify({ warehouse, ...s }));
  describeSourceConformance(inventory, {
    options: { dir: basename(dir) },
    baseDir: join(dir, '..'),
    expected: Object.entries(snapshots).flatMap(([warehouse, s]) => s.items.map((i) => ({ warehouse, ...i, updated_at: s.updated_at }))),
  });
});
