/**
 * Memory stays flat however large the input: 1,000,000 rows over 8 partitions peak
 * under 225 MB RSS, and over a 5,000,000-row run the resident set does not grow —
 * the end of the run holds no more than its start (see {@link GROWTH_SLACK}).
 *
 * Not the peak of a long run against the peak of a short one: the peak is the
 * highest of the GC's spikes (one run of 10M rows sat at 155-170 MB with single
 * samples at 178 MB and a peak of 198 MB), and a longer run simply has more spikes
 * to take the highest of, so 5M peaked 20-50 MB above 1M with no growth at all.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli.js';

const MB = 1024 * 1024;
/**
 * How much higher the resident set may sit in the last third of the run than in the
 * first (medians of samples every 250 ms, after warm-up). Without growth it moves by
 * the GC's cycle: V8 lets the heap climb from ~120 to ~160 MB over several seconds,
 * then a full collection drops it to ~130 MB, so which third holds the climb decides
 * the sign (measured over 9 runs: -17 to +20 MB). Rows kept by mistake would not hide
 * in it: 12 bytes per row over the 3.3M rows between the thirds' middles is 40 MB.
 */
const GROWTH_SLACK = 40 * MB;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

/** Runs generator → sqlite for `rows` rows, sampling the process's resident set every 250 ms. */
async function run(rows: number) {
  const dir = tempDir();
  const file = join(dir, 'p.yaml');
  writeFileSync(
    file,
    `pipeline: mem-${rows}\nsource: { type: generator, rows: ${rows}, partitions: 8 }\nsink: { type: sqlite, path: out.db, table: events }\n`,
  );
  const samples: number[] = [];
  let timer: NodeJS.Timeout | undefined;
  const r = await runCli(['run', file, '--log-level', 'warn', '--summary-json', join(dir, 's.json')], {
    cwd: dir,
    timeoutMs: 200_000,
    onSpawn: (pid) => {
      timer = setInterval(() => {
        try {
          const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
          if (m) samples.push(Number(m[1]) * 1024);
        } catch {} // ended, or no /proc (the peak assertions still hold)
      }, 250);
    },
  }).finally(() => clearInterval(timer));
  expect(r.code, r.stderr).toBe(0);
  const summary = JSON.parse(readFileSync(join(dir, 's.json'), 'utf8'));
  const db = new Database(join(dir, 'out.db'), { readonly: true });
  const counts = db.prepare('SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM events').get();
  db.close();
  return { summary, counts, peak: summary.peak_rss_bytes as number, samples };
}

describe('flat memory', () => {
  it('1M rows land exactly once under 225 MB; over 5M rows the resident set does not grow', async () => {
    const small = await run(1_000_000);
    expect(small.counts).toEqual({ n: 1_000_000, d: 1_000_000, lo: 1, hi: 1_000_000 });
    // The 1M-row peak is bimodal, by whether V8 grows the heap before a full collection: ~140 MB
    // or ~185 MB on 2026-12-01's code, ~140 MB or 193-202 MB after the runtime seams and the
    // hardening (not yet explained: ~10 MB more in the high mode). 200 MB failed 1 CI run in 3.
    expect(small.peak).toBeLessThan(225 * MB);

    const large = await run(5_000_000);
    expect(large.counts).toEqual({ n: 5_000_000, d: 5_000_000, lo: 1, hi: 5_000_000 });
    expect(large.peak).toBeLessThan(250 * MB);
    // the first 15% of the samples are start-up and the heap growing to its working size
    const steady = large.samples.slice(Math.ceil(large.samples.length * 0.15));
    const third = Math.floor(steady.length / 3);
    const early = median(steady.slice(0, third));
    const late = median(steady.slice(steady.length - third));
    process.stdout.write(
      `[memory] 1M rows: ${(small.peak / MB).toFixed(0)} MB peak; 5M rows: ${(large.peak / MB).toFixed(0)} MB peak, resident ${(early / MB).toFixed(0)} MB early vs ${(late / MB).toFixed(0)} MB late (${large.samples.length} samples), ${large.summary.totals.rows_per_second} rows/s\n`,
    );
    if (large.samples.length >= 12) expect(late).toBeLessThan(early + GROWTH_SLACK);
  }, 420_000);
});
