/**
 * Chaos: the CLI is SIGKILLed at a random moment (50–1500 ms after its run started)
 * of a generator → sqlite exactly-once run, and run again, until a run completes;
 * rounds repeat until at least 10 kills happened. Every row
 * must land exactly once: count(*) = count(distinct id) = rows, ids exactly 1..N,
 * and the target never shows a partial run. Needs `npm run build`.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli.js';

const ROWS = 200_000;
const PARTITIONS = 20;
const MIN_KILLS = 10;

interface Target {
  rows: number;
  distinct: number;
  lo: number | null;
  hi: number | null;
  committedRuns: number;
  /** Partition checkpoints of the unfinished run (progress between kills). */
  checkpoints: number;
}

function target(dir: string): Target {
  const file = join(dir, 'out.db');
  if (!existsSync(file)) return { rows: 0, distinct: 0, lo: null, hi: null, committedRuns: 0, checkpoints: 0 };
  const db = new Database(file, { readonly: true, timeout: 5000 });
  try {
    const has = (t: string) => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(t) !== undefined;
    const counts = has('events')
      ? (db.prepare('SELECT count(*) AS rows, count(DISTINCT id) AS distinct_ids, min(id) AS lo, max(id) AS hi FROM events').get() as {
          rows: number;
          distinct_ids: number;
          lo: number | null;
          hi: number | null;
        })
      : { rows: 0, distinct_ids: 0, lo: null, hi: null };
    const committedRuns = has('_weir_runs')
      ? (db.prepare("SELECT count(*) AS n FROM _weir_runs WHERE status = 'committed'").get() as { n: number }).n
      : 0;
    const checkpoints = has('_weir_checkpoints') ? (db.prepare('SELECT count(*) AS n FROM _weir_checkpoints').get() as { n: number }).n : 0;
    return { rows: counts.rows, distinct: counts.distinct_ids, lo: counts.lo, hi: counts.hi, committedRuns, checkpoints };
  } finally {
    db.close();
  }
}

function localStatus(dir: string): string | undefined {
  const file = join(dir, '.weir', 'checkpoints.db');
  if (!existsSync(file)) return undefined;
  const db = new Database(file, { readonly: true, timeout: 5000 });
  try {
    return (db.prepare('SELECT status FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1').get() as { status: string } | undefined)
      ?.status;
  } finally {
    db.close();
  }
}

/** Random delay in [lo, hi] ms. */
const between = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

describe('chaos', () => {
  it(`SIGKILL at random moments (≥${MIN_KILLS} kills), then re-run until done: 0 rows lost, 0 duplicated`, async () => {
    let kills = 0;
    let rounds = 0;
    const report: string[] = [];
    // one round is normally enough; a lucky round that completes before 10 kills is followed by another
    while (kills < MIN_KILLS) {
      rounds++;
      const dir = tempDir('weir-chaos-');
      const file = join(dir, 'p.yaml');
      // the rate limit makes the run last ~7 s, so kills land in every phase: planning, writing,
      // partition commits, the job commit
      writeFileSync(
        file,
        `pipeline: chaos
delivery: exactly-once
concurrency: 2
source: { type: generator, rows: ${ROWS}, partitions: ${PARTITIONS} }
sink: { type: sqlite, path: out.db, table: events, batch_size: 500 }
rate_limit: { rows_per_second: 30000 }
`,
      );
      let done = false;
      let attempts = 0;
      const delays: string[] = [];
      // kill every attempt at a random moment after its run started, until an attempt wins the race
      while (!done && attempts < 60) {
        attempts++;
        const delay = between(50, 1500);
        let timer: NodeJS.Timeout | undefined;
        let started = false;
        const r = await runCli(['run', file, '--log-level', 'info', '--log-format', 'json'], {
          cwd: dir,
          timeoutMs: 60_000,
          onStdout: (chunk, kill) => {
            if (started || !chunk.includes('"event":"run_start"')) return;
            started = true;
            timer = setTimeout(() => kill('SIGKILL'), delay);
          },
        });
        clearTimeout(timer);
        const t = target(dir);
        // the target is published atomically: all rows of the run or none
        expect([0, ROWS]).toContain(t.rows);
        if (r.signal === 'SIGKILL') {
          kills++;
          delays.push(`${delay} ms → ${t.committedRuns ? 'job committed' : `${t.checkpoints}/${PARTITIONS}`}`);
          if (t.committedRuns > 0) {
            // killed after the job commit: a resumed run must recognise it and publish nothing again
            if (localStatus(dir) !== 'succeeded') {
              const again = await runCli(['run', file, '--log-level', 'warn'], { cwd: dir, timeoutMs: 60_000 });
              expect(again.code, again.stderr).toBe(0);
              expect(again.stderr).toContain(`(${PARTITIONS} skipped: already committed)`);
            }
            done = true;
          }
        } else {
          expect(r.code, r.stderr).toBe(0);
          delays.push(`exit 0 (${delay} ms timer)`);
          done = true;
        }
      }
      expect(done).toBe(true);
      const t = target(dir);
      expect(t).toEqual({ rows: ROWS, distinct: ROWS, lo: 1, hi: ROWS, committedRuns: 1, checkpoints: 0 });
      const db = new Database(join(dir, 'out.db'), { readonly: true });
      expect(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name LIKE '_weir_stage_%'").get()).toEqual({ n: 0 });
      db.close();
      report.push(`round ${rounds}: ${attempts} attempts; SIGKILL after run start (delay → partitions checkpointed): ${delays.join(', ')}`);
    }
    process.stdout.write(`[chaos] ${kills} SIGKILLs in ${rounds} round(s); ${ROWS} rows: 0 lost, 0 duplicated\n  ${report.join('\n  ')}\n`);
    expect(kills).toBeGreaterThanOrEqual(MIN_KILLS);
  }, 120_000);
});

describe('dead letters under SIGKILL', () => {
  it('a killed run resumed: every rejected record is in the dead-letter file exactly once', async () => {
    const dir = tempDir('weir-chaos-dlq-');
    const lines = ['id,name'];
    const bad: number[] = [];
    for (let i = 1; i <= 40_000; i++) {
      if (i % 97 === 0) bad.push(i);
      lines.push(`${i % 97 === 0 ? `x${i}` : i},name ${i}`);
    }
    writeFileSync(join(dir, 'in.csv'), `${lines.join('\n')}\n`);
    const file = join(dir, 'p.yaml');
    writeFileSync(
      file,
      `pipeline: chaos-dlq
source: { type: csv, path: in.csv, split_bytes: 16KB, columns: { id: integer, name: string } }
sink: { type: sqlite, path: out.db, table: people }
concurrency: 2
errors: { tolerance: all, dead_letter: { type: jsonl, path: rejected.jsonl } }
`,
    );
    let kills = 0;
    for (let round = 0; round < 3; round++) {
      const after = 3 + round * 5; // partitions committed before the kill
      let committed = 0;
      const r = await runCli(['run', file, '--log-level', 'info', '--log-format', 'json'], {
        cwd: dir,
        onStdout: (chunk, kill) => {
          committed += chunk.split('"partition_complete"').length - 1;
          if (committed >= after) kill('SIGKILL');
        },
      });
      if (r.signal === 'SIGKILL') kills++;
      else break;
    }
    const last = await runCli(['run', file, '--log-level', 'warn'], { cwd: dir, timeoutMs: 60_000 });
    expect(last.code, last.stderr).toBe(0);
    expect(kills).toBeGreaterThan(0);
    const dead = readFileSync(join(dir, 'rejected.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) =>
        Number(
          String((JSON.parse(l) as { record: { raw: string } }).record.raw)
            .split(',')[0]
            ?.slice(1),
        ),
      )
      .sort((a, b) => a - b);
    expect(dead).toEqual(bad);
    const db = new Database(join(dir, 'out.db'), { readonly: true });
    expect(db.prepare('SELECT count(*) AS n, count(DISTINCT id) AS d FROM people').get()).toEqual({
      n: 40_000 - bad.length,
      d: 40_000 - bad.length,
    });
    db.close();
  }, 120_000);
});
