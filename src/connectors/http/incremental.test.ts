/**
 * The http source's incremental sync (a `cursor_field` saved with the run's checkpoint
 * and sent back in `since_param`) and range partitions (`partition_by`), against a
 * local API that records the query parameters of every request.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { tempDir } from '../../../test/helpers/cli.js';
import { compareCursors, savedCursor } from './source.js';
import { ranges } from './spec.js';

interface Item {
  id: number;
  updated_at: string;
}
let items: Item[] = [];
let queries: URLSearchParams[] = [];
let failPage: number | undefined;
let inFlight = 0;
let maxInFlight = 0;
let server: Server;
let base = '';

const stamp = (i: number) => new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString();
const makeItems = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, k) => ({ id: from + k, updated_at: stamp(from + k) }));

beforeAll(async () => {
  server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', base);
    queries.push(u.searchParams);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const page = Number(u.searchParams.get('page') ?? 1);
    const since = u.searchParams.get('since');
    const gte = u.searchParams.get('id_gte');
    const lt = u.searchParams.get('id_lt');
    let selected = items;
    if (since !== null) selected = selected.filter((i) => i.updated_at > since);
    if (gte !== null) selected = selected.filter((i) => i.id >= Number(gte));
    if (lt !== null) selected = selected.filter((i) => i.id < Number(lt));
    const body = JSON.stringify({ items: selected.slice((page - 1) * 25, page * 25) });
    setTimeout(
      () => {
        inFlight--;
        if (failPage === page) {
          res.writeHead(400, { 'content-type': 'application/json' });
          return res.end('{"error":"bad page"}');
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      },
      u.pathname === '/slow' ? 60 : 0,
    );
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((ok) => server.close(() => ok())));
beforeEach(() => {
  queries = [];
  failPage = undefined;
  inFlight = 0;
  maxInFlight = 0;
});

const pipeline = (dir: string, out: string, path = '/items') => `
pipeline: http-incremental
source: { type: http, url: "${base}${path}", records_path: items, pagination: page, page_size: 25, cursor_field: updated_at }
sink: { type: jsonl, path: ${join(dir, out)} }
`;
const ids = (dir: string, out: string) =>
  readFileSync(join(dir, out), 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as Item).id);

describe('http source, incremental sync', () => {
  it('run 1 fetches everything; run 2 sends the highest cursor and fetches only what is new', async () => {
    items = makeItems(0, 60);
    const dir = tempDir();
    const first = await runYaml(pipeline(dir, 'run1.jsonl'), [], dir);
    expect(first.summary.status).toBe('succeeded');
    expect(ids(dir, 'run1.jsonl')).toEqual(items.map((i) => i.id));
    expect(queries.every((q) => !q.has('since'))).toBe(true);

    items = makeItems(0, 73);
    queries = [];
    const second = await runYaml(pipeline(dir, 'run2.jsonl'), [], dir);
    expect(second.summary.status).toBe('succeeded');
    expect(queries.map((q) => q.get('since'))).toEqual(queries.map(() => stamp(59)));
    expect(ids(dir, 'run2.jsonl')).toEqual(makeItems(60, 73).map((i) => i.id));

    // nothing new: the cursor stays where it was (the partition carries it forward)
    queries = [];
    const third = await runYaml(pipeline(dir, 'run3.jsonl'), [], dir);
    expect(third.summary.status).toBe('succeeded');
    expect(queries[0]?.get('since')).toBe(stamp(72));
    queries = [];
    await runYaml(pipeline(dir, 'run4.jsonl'), [], dir);
    expect(queries[0]?.get('since')).toBe(stamp(72));
  });

  it('a failed run does not advance the cursor', async () => {
    items = makeItems(0, 30);
    const dir = tempDir();
    expect((await runYaml(pipeline(dir, 'a.jsonl'), [], dir)).summary.status).toBe('succeeded');
    items = makeItems(0, 100);
    failPage = 2; // the first page of new records arrives, then the API refuses
    const failed = await runYaml(pipeline(dir, 'b.jsonl'), [], dir);
    expect(failed.summary.status).toBe('failed');
    failPage = undefined;
    queries = [];
    const again = await runYaml(pipeline(dir, 'c.jsonl'), [], dir);
    expect(again.summary.status).toBe('succeeded');
    expect(queries[0]?.get('since')).toBe(stamp(29));
    expect(ids(dir, 'c.jsonl')).toEqual(makeItems(30, 100).map((i) => i.id));
  });

  it('a saved cursor changed outside weir is refused with the fix, never sent', async () => {
    items = makeItems(0, 10);
    const dir = tempDir();
    expect((await runYaml(pipeline(dir, 'a.jsonl'), [], dir)).summary.status).toBe('succeeded');
    for (const bad of ['{"0":{"cursor":{"$gt":""}}}', '{"0":{"cursor":"a\\u0000b"}}', '{"0":7}', '[1]', 'not json']) {
      const db = new Database(join(dir, '.weir/checkpoints.db'));
      db.prepare('UPDATE source_state SET state = ?').run(bad);
      db.close();
      queries = [];
      const { summary } = await runYaml(pipeline(dir, 'b.jsonl'), [], dir);
      expect(summary.status).toBe('failed');
      expect(JSON.stringify(summary)).toMatch(/changed outside weir|is damaged/);
      expect(queries).toHaveLength(0);
    }
  });

  it('compares cursors as numbers, dates or text, and checks saved ones', () => {
    expect(compareCursors(9, 10)).toBeLessThan(0);
    expect(compareCursors('9', '10')).toBeLessThan(0);
    expect(compareCursors('2024-01-02T00:00:00+01:00', '2024-01-01T23:30:00Z')).toBeLessThan(0);
    expect(compareCursors('b', 'a')).toBeGreaterThan(0);
    expect(savedCursor({ r0: { cursor: 5 }, r1: { cursor: 12 } })).toBe(12);
    expect(savedCursor(undefined)).toBeUndefined();
    expect(() => savedCursor({ '0': { cursor: 'x'.repeat(1001) } })).toThrow(/changed outside weir/);
  });
});

describe('http source, range partitions', () => {
  it('reads id ranges in parallel; the union is exact', async () => {
    items = makeItems(0, 1000);
    const dir = tempDir();
    const { summary, events } = await runYaml(
      `
pipeline: http-ranges
concurrency: 4
source:
  type: http
  url: "${base}/slow"
  records_path: items
  pagination: page
  page_size: 25
  partition_by: { from_param: id_gte, to_param: id_lt, start: "0", end: "1000", step: "100" }
sink: { type: jsonl, path: ${join(dir, 'out.jsonl')} }
`,
      [],
      dir,
    );
    expect(summary.status).toBe('succeeded');
    expect(events.filter((e) => e.type === 'partition_complete')).toHaveLength(10);
    expect(ids(dir, 'out.jsonl').sort((a, b) => a - b)).toEqual(items.map((i) => i.id));
    expect(maxInFlight).toBeGreaterThanOrEqual(2);
    expect(queries.every((q) => q.has('id_gte') && q.has('id_lt'))).toBe(true);
  });

  it('makes half-open id and date ranges, and names a bad one', () => {
    expect(ranges({ from_param: 'a', to_param: 'b', start: '0', end: '25', step: '10' })).toEqual([
      { from: '0', to: '10' },
      { from: '10', to: '20' },
      { from: '20', to: '25' },
    ]);
    expect(ranges({ from_param: 'a', to_param: 'b', start: '2024-01-01', end: '2024-01-03', step: '1d' })).toEqual([
      { from: '2024-01-01', to: '2024-01-02' },
      { from: '2024-01-02', to: '2024-01-03' },
    ]);
    expect(ranges({ from_param: 'a', to_param: 'b', start: '2024-01-01T00:00:00Z', end: '2024-01-01T12:00:00Z', step: '6h' })).toEqual([
      { from: '2024-01-01T00:00:00.000Z', to: '2024-01-01T06:00:00.000Z' },
      { from: '2024-01-01T06:00:00.000Z', to: '2024-01-01T12:00:00.000Z' },
    ]);
    expect(ranges({ from_param: 'a', to_param: 'b', start: '10', end: '5', step: '1' })).toMatch(/partition_by.end \(5\) must be after/);
    expect(ranges({ from_param: 'a', to_param: 'b', start: '0', end: '10', step: '1d' })).toMatch(/positive integer.*"1d"/);
    expect(ranges({ from_param: 'a', to_param: 'b', start: '0', end: '1000000', step: '1' })).toMatch(/raise partition_by.step/);
  });

  it('a bad partition_by is a config error naming the field', async () => {
    const dir = tempDir();
    await expect(
      runYaml(
        `
pipeline: http-ranges-bad
source: { type: http, url: "${base}/items", records_path: items, partition_by: { from_param: a, to_param: b, start: "x", end: "y", step: "1" } }
sink: { type: jsonl, path: ${join(dir, 'out.jsonl')} }
`,
        [],
        dir,
      ),
    ).rejects.toThrow(/partition_by.*ISO dates/);
  });
});
