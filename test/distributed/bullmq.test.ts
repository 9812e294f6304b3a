/**
 * The BullMQ engine against a FRESH redis-server per test file (free port, no
 * persistence, stopped by pid) and `weir worker` processes of the built CLI:
 * a worker SIGKILLed mid-run (exact counts with exactly-once), a partition that fails
 * for good (nothing committed), a Redis restart (fails cleanly, resumes), the canary
 * secret absent from every Redis key and value, a worker that cannot resolve a
 * reference, and the run-wide rate limit across three workers.
 * WEIR_BQ_KILL_ROUNDS=5 runs the worker-kill test 5 rounds in a row.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';
import {
  dumpRedis,
  FIXTURE,
  hasRedisServer,
  type RedisServer,
  startRedis,
  startWorker,
  stopWorkers,
  type WorkerProcess,
} from './harness.js';

const up = (await requireService('postgres')) && hasRedisServer;
if (!hasRedisServer) process.stderr.write('NOTICE: redis-server not found: the distributed tests are skipped\n');
const ROUNDS = Number(process.env.WEIR_BQ_KILL_ROUNDS ?? 1);
const CANARY = 'bq-canary-7f3a91c2e5d4';

const pgClient = () => new pg.Client({ host: '127.0.0.1', database: 'test', user: 'postgres' });
async function pgQuery<T>(sql: string): Promise<T[]> {
  const c = pgClient();
  await c.connect();
  try {
    return (await c.query(sql)).rows as T[];
  } finally {
    await c.end();
  }
}
const counts = async (table: string) =>
  (await pgQuery<{ n: string; d: string }>(`SELECT count(*) AS n, count(DISTINCT id) AS d FROM ${table}`))[0] as { n: string; d: string };

function pipelineFile(dir: string, name: string, body: string): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, `pipeline: ${name}\nconnectors: [${JSON.stringify(FIXTURE)}]\n${body}`);
  return path;
}

const pgSink = (table: string) =>
  `sink: { type: postgres, host: 127.0.0.1, database: test, user: postgres, password: '\${env:WEIR_BQ_CANARY}', table: ${table} }\ndelivery: exactly-once\n`;

describe.skipIf(!up)('bullmq engine', () => {
  let redis: RedisServer;
  let workers: WorkerProcess[] = [];
  const all: WorkerProcess[] = [];
  const env = { WEIR_BQ_CANARY: CANARY };
  const start = async (n: number, args: string[] = ['--concurrency', '2'], workerEnv: Record<string, string | undefined> = env) => {
    workers = await Promise.all(Array.from({ length: n }, () => startWorker(redis.url, args, workerEnv)));
    all.push(...workers);
    return workers;
  };
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterEach(async () => {
    await stopWorkers(all);
  });
  afterAll(async () => {
    await stopWorkers(all);
    await redis?.stop();
  });

  for (let round = 1; round <= ROUNDS; round++)
    it(`a worker SIGKILLed mid-partition: its partition runs again elsewhere, exact counts (round ${round})`, async () => {
      const table = `bq_kill_${round}`;
      await pgQuery(`DROP TABLE IF EXISTS ${table}`);
      const dir = tempDir('weir-bq-');
      const file = pipelineFile(
        dir,
        `bq-kill-${round}-${Date.now()}`,
        `source: { type: generator, rows: 24000, partitions: 12 }\n${pgSink(table)}concurrency: 6\nrate_limit: { rows_per_second: 8000 }\n`,
      );
      const [victim, ...rest] = await start(3);
      let killedJob: unknown;
      // the victim dies 400 ms into its second partition: mid-partition, never between two
      void victim
        ?.waitFor((l) => l.event === 'job_start' && victim.logs().filter((x) => x.event === 'job_start').length >= 2, 30_000)
        .then(async (line) => {
          killedJob = line.job_id;
          await new Promise((r) => setTimeout(r, 400));
          process.kill(victim.pid, 'SIGKILL');
        })
        .catch(() => {});
      const summaryPath = join(dir, 'summary.json');
      const r = await runCli(
        ['run', file, '--engine', 'bullmq', '--redis', redis.url, '--log-format', 'json', '--summary-json', summaryPath],
        {
          cwd: dir,
          env,
          timeoutMs: 60_000,
        },
      );
      expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(0);
      expect(killedJob).toBeDefined();
      expect((await victim?.exited)?.signal).toBe('SIGKILL');
      // the killed partition started again on a surviving worker, as a new attempt
      const again = rest.flatMap((w) => w.logs()).filter((l) => l.event === 'job_start' && l.job_id === killedJob);
      expect(again.length).toBeGreaterThan(0);
      expect(Number(again[0]?.attempt)).toBeGreaterThan(1);
      expect(await counts(table)).toEqual({ n: '24000', d: '24000' });
      const summary = JSON.parse(readFileSync(summaryPath, 'utf8'));
      expect(summary.status).toBe('succeeded');
      expect(summary.totals.rows_written).toBe(24000);
      expect(summary.totals.partitions_committed).toBe(12);
      await stopWorkers(workers);
    }, 90_000);

  it('a partition that fails for good aborts the run: nothing committed, exit 1; the canary is in no Redis key or value', async () => {
    const table = 'bq_fail';
    await pgQuery(`DROP TABLE IF EXISTS ${table}`);
    const dir = tempDir('weir-bq-');
    const file = pipelineFile(
      dir,
      `bq-fail-${Date.now()}`,
      `source: { type: bq-source, rows: 6000, partitions: 6, fail_partition: '5', fail_delay_ms: 800 }\n${pgSink(table)}concurrency: 6\nretry: { partition_attempts: 3 }\n`,
    );
    await start(3);
    const summaryPath = join(dir, 'summary.json');
    const r = await runCli(
      ['run', file, '--engine', 'bullmq', '--redis', redis.url, '--log-format', 'json', '--summary-json', summaryPath],
      {
        cwd: dir,
        env,
        timeoutMs: 60_000,
      },
    );
    expect(r.code, r.stderr).toBe(1);
    const summary = JSON.parse(readFileSync(summaryPath, 'utf8'));
    expect(summary.status).toBe('failed');
    expect(summary.error.error_message).toContain('partition 5 hit a bad row');
    // partitions 0-4 committed before 5 failed; the job abort took them back
    expect(summary.totals.partitions_committed).toBeGreaterThan(0);
    const exists = await pgQuery<{ t: string | null }>(`SELECT to_regclass('${table}') AS t`);
    if (exists[0]?.t) expect((await counts(table)).n).toBe('0');
    // a data error is never retried: one attempt of partition 5
    const starts = workers.flatMap((w) => w.logs()).filter((l) => l.event === 'job_start' && String(l.job_id).endsWith('-p5'));
    expect(starts.length).toBe(1);
    await stopWorkers(workers);

    const dump = await dumpRedis(redis.url);
    expect(dump.keys).toBeGreaterThan(10);
    // the scan sees the job data: the reference is there, its value nowhere
    expect(dump.text).toContain('${env:WEIR_BQ_CANARY}');
    expect(dump.text).not.toContain(CANARY);
    for (const w of workers) expect(w.text()).not.toContain(CANARY);
    expect(r.stdout + r.stderr).not.toContain(CANARY);
  }, 90_000);

  it('a worker that cannot resolve a reference fails the partition with a config error naming it (exit 2)', async () => {
    const dir = tempDir('weir-bq-');
    const file = pipelineFile(
      dir,
      `bq-noref-${Date.now()}`,
      "source: { type: generator, rows: 100, partitions: 2 }\nsink: { type: latency-sink, latency_ms: 0, token: '${env:WEIR_BQ_ONLY_HERE}' }\n",
    );
    await start(1, ['--concurrency', '1'], { WEIR_BQ_ONLY_HERE: undefined });
    const r = await runCli(['run', file, '--engine', 'bullmq', '--redis', redis.url, '--log-format', 'json'], {
      cwd: dir,
      env: { WEIR_BQ_ONLY_HERE: 'only-on-the-submitter-0123' },
      timeoutMs: 30_000,
    });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('WEIR_BQ_ONLY_HERE');
    expect(r.stdout + r.stderr).not.toContain('only-on-the-submitter-0123');
    await stopWorkers(workers);
  }, 60_000);

  it('a Redis restart (every key lost) fails the run cleanly; the next run resumes it with exact counts', async () => {
    const table = 'bq_restart';
    await pgQuery(`DROP TABLE IF EXISTS ${table}`);
    const dir = tempDir('weir-bq-');
    const file = pipelineFile(
      dir,
      'bq-restart',
      `source: { type: generator, rows: 10000, partitions: 8 }\n${pgSink(table)}concurrency: 4\nrate_limit: { rows_per_second: 5000 }\n`,
    );
    await start(2);
    let restarted = false;
    const first = await runCli(['run', file, '--engine', 'bullmq', '--redis', redis.url, '--log-format', 'json'], {
      cwd: dir,
      env,
      timeoutMs: 60_000,
      onStdout: (chunk) => {
        if (!restarted && chunk.includes('"partition_complete"')) {
          restarted = true;
          void redis.restart();
        }
      },
    });
    expect(restarted).toBe(true);
    expect(first.code, first.stderr).toBe(1);
    expect(first.stderr).toContain('gone from Redis');
    // the same workers reconnect to the new server; the run resumes under its run id
    const second = await runCli(['run', file, '--engine', 'bullmq', '--redis', redis.url, '--log-format', 'json'], {
      cwd: dir,
      env,
      timeoutMs: 60_000,
    });
    expect(second.code, second.stderr + second.stdout.slice(-2000)).toBe(0);
    expect(await counts(table)).toEqual({ n: '10000', d: '10000' });
    await stopWorkers(workers);
  }, 90_000);

  it('--detach submits and prints the run id; a worker commits the job; weir status shows it', async () => {
    const dir = tempDir('weir-bq-');
    const out = join(dir, 'out.jsonl');
    const file = pipelineFile(
      dir,
      `bq-detach-${Date.now()}`,
      `source: { type: generator, rows: 2000, partitions: 4 }\nsink: { type: jsonl, path: ${JSON.stringify(out)} }\n`,
    );
    await start(1);
    const r = await runCli(['run', file, '--engine', 'bullmq', '--redis', redis.url, '--detach', '--log-level', 'error'], {
      cwd: dir,
      env,
      timeoutMs: 30_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const runId = r.stdout.trim().split('\n').pop() as string;
    expect(runId).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{8}$/);
    let status: { status?: string; rows_written?: number } = {};
    for (let i = 0; i < 60 && status.status !== 'succeeded'; i++) {
      await new Promise((res) => setTimeout(res, 250));
      const s = await runCli(['status', runId, '--redis', redis.url, '--json'], { cwd: dir, timeoutMs: 20_000 });
      status = JSON.parse(s.stdout);
    }
    expect(status.status).toBe('succeeded');
    expect(status.rows_written).toBe(2000);
    expect(readFileSync(out, 'utf8').trim().split('\n').length).toBe(2000);
  }, 60_000);

  it('SIGTERM: a worker finishes its running partition, takes no new one and exits 0; another worker does the rest', async () => {
    const dir = tempDir('weir-bq-');
    const file = pipelineFile(
      dir,
      `bq-term-${Date.now()}`,
      'source: { type: generator, rows: 3000, partitions: 3 }\nsink: { type: latency-sink, latency_ms: 40 }\nbatch: { rows: 50 }\nconcurrency: 3\n',
    );
    const [first] = await start(1, ['--concurrency', '1']);
    let termed: unknown;
    void first
      ?.waitFor((l) => l.event === 'job_start', 30_000)
      .then(async (line) => {
        await new Promise((r) => setTimeout(r, 300));
        termed = line.job_id;
        process.kill(first.pid, 'SIGTERM');
        await start(1, ['--concurrency', '1']);
      })
      .catch(() => {});
    const summaryPath = join(dir, 'summary.json');
    const r = await runCli(
      ['run', file, '--engine', 'bullmq', '--redis', redis.url, '--log-format', 'json', '--summary-json', summaryPath],
      {
        cwd: dir,
        env,
        timeoutMs: 60_000,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect((await first?.exited)?.code).toBe(0);
    const done = first?.logs().filter((l) => l.event === 'partition_complete') ?? [];
    // the partition it was running when SIGTERM came finished there, and it started no other
    expect(done.map((l) => l.job_id)).toEqual([termed]);
    expect(first?.logs().filter((l) => l.event === 'job_start').length).toBe(1);
    expect(JSON.parse(readFileSync(summaryPath, 'utf8')).totals.rows_written).toBe(3000);
  }, 60_000);

  it('rate_limit.rows_per_second: 2000 holds across 3 workers within 5% over 10 s', async () => {
    const dir = tempDir('weir-bq-');
    const log = join(dir, 'batches.jsonl');
    const file = pipelineFile(
      dir,
      `bq-rate-${Date.now()}`,
      `source: { type: generator, rows: 24000, partitions: 12 }\nsink: { type: latency-sink, latency_ms: 5, log: ${JSON.stringify(log)} }\nconcurrency: 6\nrate_limit: { rows_per_second: 2000 }\n`,
    );
    await start(3);
    const r = await runCli(['run', file, '--engine', 'bullmq', '--redis', redis.url, '--log-format', 'json'], {
      cwd: dir,
      env,
      timeoutMs: 60_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const batches = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { t: number; rows: number; pid: number });
    expect(batches.reduce((a, b) => a + b.rows, 0)).toBe(24000);
    expect(new Set(batches.map((b) => b.pid)).size).toBe(3);
    // 10 s from the first second on (the start-up of three workers is not the limiter's)
    const t0 = Math.min(...batches.map((b) => b.t)) + 1000;
    const inWindow = batches.filter((b) => b.t >= t0 && b.t < t0 + 10_000).reduce((a, b) => a + b.rows, 0);
    const rate = inWindow / 10;
    process.stderr.write(`rate limit across 3 workers: ${rate} rows/s over 10 s (limit 2000)\n`);
    // the limiter guarantees the upper bound; the lower one holds while the workers keep up
    expect(rate).toBeLessThanOrEqual(2100);
    expect(rate).toBeGreaterThanOrEqual(1900);
    await stopWorkers(workers);
  }, 90_000);
});
