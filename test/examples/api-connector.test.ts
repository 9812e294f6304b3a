/** The API connector example: run by the CLI against a local help-desk API that wants its bearer token. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, runCli, tempDir } from '../helpers/cli.js';

const TOKEN = `tk-${randomBytes(12).toString('hex')}`;
const STATE = join(tempDir(), 'state.db');
const TICKETS = Array.from({ length: 7 }, (_, i) => ({
  id: i + 1,
  subject: `ticket ${i + 1}`,
  status: i % 2 ? 'open' : 'closed',
  updated_at: i < 2 ? '2025-12-30T00:00:00Z' : `2026-01-0${i}T00:00:00Z`,
}));
let server: Server;
let url = '';
const seen: string[] = [];
let throttled = false;

beforeAll(async () => {
  server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', url);
    seen.push(u.search);
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401);
      return res.end(JSON.stringify({ error: 'bad token', got: req.headers.authorization }));
    }
    if (!throttled) {
      throttled = true;
      res.writeHead(429, { 'retry-after': '0.2' });
      return res.end('{}');
    }
    const since = u.searchParams.get('updated_since') ?? '';
    const all = TICKETS.filter((t) => t.updated_at >= since);
    const start = Number(u.searchParams.get('cursor') ?? 0);
    const size = Number(u.searchParams.get('limit'));
    const next = start + size < all.length ? String(start + size) : null;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ tickets: all.slice(start, start + size), next_cursor: next }));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((ok) => server.close(() => ok())));
const ids = () =>
  readFileSync(join(ROOT, 'out', 'tickets.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { id: number }).id);

describe('examples/api-connector', () => {
  it('reads every ticket updated since the start, page by page, after a 429; the token is printed nowhere', async () => {
    const r = await runCli(['run', 'examples/api-connector/pipeline.yaml', '--log-level', 'debug'], {
      env: { TICKETS_URL: url, TICKETS_TOKEN: TOKEN, TICKETS_STATE: STATE },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(ids()).toEqual([3, 4, 5, 6, 7]);
    expect(seen.filter((s) => s.includes('cursor='))).toHaveLength(2);
    expect(`${r.stdout}${r.stderr}`.includes(TOKEN)).toBe(false);

    // the next run starts at the highest updated_at saved with the first run's checkpoint
    TICKETS.push({ id: 8, subject: 'ticket 8', status: 'open', updated_at: '2026-01-08T00:00:00Z' });
    seen.length = 0;
    const next = await runCli(['run', 'examples/api-connector/pipeline.yaml'], {
      env: { TICKETS_URL: url, TICKETS_TOKEN: TOKEN, TICKETS_STATE: STATE },
    });
    expect(next.code, next.stderr).toBe(0);
    expect(seen.map((s) => new URLSearchParams(s).get('updated_since'))).toEqual(seen.map(() => '2026-01-06T00:00:00Z'));
    expect(ids()).toEqual([7, 8]); // at or after: the API's filter includes the last ticket of the first run
  });

  it('a wrong token fails the run with HTTP 401 and the token redacted', async () => {
    const wrong = `wrong-${randomBytes(8).toString('hex')}`;
    const r = await runCli(['run', 'examples/api-connector/pipeline.yaml'], {
      env: { TICKETS_URL: url, TICKETS_TOKEN: wrong, TICKETS_STATE: join(tempDir(), 'state.db') },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('HTTP 401');
    expect(`${r.stdout}${r.stderr}`.includes(wrong)).toBe(false);
  });

  it('the connector code is at most 40 lines (without imports, comments and blank lines)', () => {
    const source = readFileSync(join(ROOT, 'examples/api-connector/tickets-connector.mjs'), 'utf8');
    const code = source
      .slice(source.indexOf('export default'))
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.trim().startsWith('//'));
    expect(code.length).toBeLessThanOrEqual(40);
  });

  it("README's connector guide shows the example's code as it is", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const guide = readme.slice(readme.indexOf('### An API connector'));
    const block = guide.slice(guide.indexOf('```js') + 5, guide.indexOf('```', guide.indexOf('```js') + 5));
    const example = new Set(
      readFileSync(join(ROOT, 'examples/api-connector/tickets-connector.mjs'), 'utf8')
        .split('\n')
        .map((l) => l.trim()),
    );
    const lines = block
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
    expect(lines.length).toBeGreaterThan(15);
    expect(lines.filter((l) => !example.has(l))).toEqual([]);
  });
});
