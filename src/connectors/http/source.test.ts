/** The http source against a local paginated JSON API: every pagination style, records_path, Retry-After. */

import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { tempDir } from '../../../test/helpers/cli.js';
import { nextLink } from './source.js';

const ITEMS = Array.from({ length: 237 }, (_, i) => ({ id: i, name: `item ${i}`, price: '12345678901234567890.5' }));
let server: Server;
let base = '';
let requests: string[] = [];
let throttled = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', base);
    requests.push(u.pathname + u.search);
    if (u.searchParams.get('throttle') === '1' && throttled++ === 0) {
      res.writeHead(429, { 'retry-after': '1' });
      return res.end('{}');
    }
    const size = Number(u.searchParams.get('limit') ?? 50);
    let start = 0;
    if (u.pathname === '/page') start = (Number(u.searchParams.get('page')) - 1) * size;
    if (u.pathname === '/offset') start = Number(u.searchParams.get('offset'));
    if (['/cursor', '/next', '/link'].includes(u.pathname))
      start = Number(u.searchParams.get('after') ?? u.searchParams.get('cursor') ?? 0);
    const items = ITEMS.slice(start, start + size);
    const end = start + size >= ITEMS.length;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (u.pathname === '/link' && !end) headers.link = `</link?after=${start + size}>; rel="next", </link?after=0>; rel="first"`;
    res.writeHead(200, headers);
    res.end(
      JSON.stringify({
        data: { items },
        meta: { next_cursor: end ? null : String(start + size), next: end ? null : `/next?after=${start + size}` },
      }).replace(/"12345678901234567890.5"/g, '12345678901234567890.5'),
    );
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

describe('http source', () => {
  it.each([
    ['page', '/page', 'pagination: page, page_size: 50'],
    ['offset', '/offset', 'pagination: offset, page_size: 40'],
    ['cursor', '/cursor', 'pagination: cursor, cursor_path: meta.next_cursor'],
    ['next_url', '/next', 'pagination: next_url, cursor_path: meta.next'],
    ['link', '/link', 'pagination: link'],
  ])('%s pagination reads every record once, exact', async (_name, path, options) => {
    requests = [];
    const dir = tempDir();
    const { summary } = await runYaml(
      `
pipeline: http-source
source: { type: http, url: "${base}${path}", records_path: data.items, ${options} }
sink: { type: jsonl, path: ${join(dir, 'out.jsonl')} }
`,
      [],
      dir,
    );
    expect(summary.status).toBe('succeeded');
    const lines = readFileSync(join(dir, 'out.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(237);
    expect(lines.map((l) => (JSON.parse(l) as { id: number }).id)).toEqual(ITEMS.map((i) => i.id));
    expect(lines[5]).toContain('"price":12345678901234567890.5');
    expect(requests.length).toBeGreaterThan(4);
  });

  it('a 429 with Retry-After is asked again after it', async () => {
    requests = [];
    throttled = 0;
    const dir = tempDir();
    const started = performance.now();
    const { summary } = await runYaml(
      `
pipeline: http-source-429
source: { type: http, url: "${base}/cursor?throttle=1", records_path: data.items, pagination: cursor, cursor_path: meta.next_cursor }
sink: { type: jsonl, path: ${join(dir, 'out.jsonl')} }
`,
      [],
      dir,
    );
    expect(summary.status).toBe('succeeded');
    expect(performance.now() - started).toBeGreaterThanOrEqual(1000);
    expect(readFileSync(join(dir, 'out.jsonl'), 'utf8').trim().split('\n')).toHaveLength(237);
  });

  it('a records_path that is not an array fails with the option named', async () => {
    const dir = tempDir();
    const { summary } = await runYaml(
      `
pipeline: http-source-bad
source: { type: http, url: "${base}/page?page=1", records_path: data }
sink: { type: jsonl, path: ${join(dir, 'out.jsonl')} }
`,
      [],
      dir,
    );
    expect(summary.status).toBe('failed');
    expect(JSON.stringify(summary)).toContain('records_path data is not an array in the response');
  });

  it('reads the next link of a Link header (RFC 8288)', () => {
    expect(nextLink('<https://x/a?p=2>; rel="next", <https://x/a?p=9>; rel="last"', 'https://x/a')).toBe('https://x/a?p=2');
    expect(nextLink('<./b>; rel="prev next"', 'https://x/a/')).toBe('https://x/a/b');
    expect(nextLink('<https://x/a?p=9>; rel="last"', 'https://x/a')).toBeUndefined();
  });
});
