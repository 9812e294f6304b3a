/**
 * Partition retries against a real network fault: a TCP proxy between weir and
 * PostgreSQL cuts every open connection twice during a 1M-row exactly-once run.
 * Partitions whose transaction went with the connection are aborted and run again
 * (retry.partition_attempts); the one `weir run` exits 0 with every row exactly once,
 * and the summary counts the retries. Needs `npm run build`.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../src/observe/events.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';
import { TcpProxy } from './proxy.js';

const up = await requireService('postgres');
const ROWS = 1_000_000;
/** Progress (rows) at which the proxy cuts every connection. */
const CUT_AT = [200_000, 550_000];

const suffix = randomBytes(4).toString('hex');
const table = `retry_cut_${suffix}`;
const pipeline = `retry-cut-${suffix}`;
const terminated = `retry_term_${suffix}`;
let admin: pg.Client;
let proxy: TcpProxy;

beforeAll(async () => {
  if (!up) return;
  admin = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
  await admin.connect();
  proxy = await TcpProxy.start(5432);
});
afterAll(async () => {
  if (!up) return;
  await proxy.close();
  for (const t of [table, terminated]) await admin.query(`DROP TABLE IF EXISTS "${t}"`);
  for (const p of [pipeline, `${pipeline}-term`]) {
    await admin.query('DELETE FROM _weir_runs WHERE pipeline = $1', [p]).catch(() => {});
    await admin.query('DELETE FROM _weir_checkpoints WHERE pipeline = $1', [p]).catch(() => {});
  }
  await admin.end();
});

describe.skipIf(!up)('partition retries through a network fault', () => {
  it(`a proxy cuts every PostgreSQL connection twice during a ${ROWS.toLocaleString('en-US')}-row exactly-once run: one run, exit 0, every row once`, async () => {
    const dir = tempDir('weir-retry-cut-');
    const file = join(dir, 'pipeline.yaml');
    writeFileSync(
      file,
      `pipeline: ${pipeline}
source: { type: generator, rows: ${ROWS}, partitions: 8 }
sink: { type: postgres, host: 127.0.0.1, port: ${proxy.port}, user: postgres, database: test, table: ${table}, batch_size: 10000 }
delivery: exactly-once
concurrency: 4
retry: { max_attempts: 5, initial_delay: 50ms, max_delay: 1s, partition_attempts: 4 }
progress_interval: 200ms
`,
    );
    const { cuts, onStdout } = proxy.cutAtProgress(CUT_AT);
    const t0 = performance.now();
    const r = await runCli(['run', file, '--log-level', 'debug', '--log-format', 'json', '--summary-json', join(dir, 'summary.json')], {
      cwd: dir,
      timeoutMs: 90_000,
      onStdout,
    });
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    expect(cuts, r.stderr).toHaveLength(2);
    expect(r.code, r.stderr + r.stdout.slice(-3000)).toBe(0);
    const target = await admin.query(
      `SELECT count(*)::int AS n, count(DISTINCT id)::int AS d, min(id)::int AS lo, max(id)::int AS hi FROM "${table}"`,
    );
    expect(target.rows[0]).toEqual({ n: ROWS, d: ROWS, lo: 1, hi: ROWS });
    const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as RunSummary;
    expect(summary.status).toBe('succeeded');
    expect(summary.totals.partition_retries).toBeGreaterThanOrEqual(2); // at least one partition per cut
    expect(summary.totals.rows_written).toBe(ROWS);
    expect(summary.partitions.some((p) => p.attempt > 1)).toBe(true);
    expect(r.stderr).toContain(`${summary.totals.partition_retries} partition retries`);
    expect(r.stderr).toContain('no duplicates');
    process.stdout.write(
      `[partition-retry] ${cuts.join('; ')}; ${summary.totals.partition_retries} partition retries, ${summary.totals.rows_replayed} rows replayed, ${summary.totals.retries} batch retries; exit 0 in ${seconds} s\n`,
    );
  }, 120_000);

  it("the server ends the writers' sessions mid-transaction (pg_terminate_backend, as in a restart): the partitions run again, every row once", async () => {
    const rows = 200_000;
    const dir = tempDir('weir-retry-term-');
    const file = join(dir, 'pipeline.yaml');
    writeFileSync(
      file,
      `pipeline: ${pipeline}-term
source: { type: generator, rows: ${rows}, partitions: 4 }
sink: { type: postgres, host: 127.0.0.1, user: postgres, database: test, table: ${terminated}, batch_size: 5000, application_name: weir-${terminated} }
delivery: exactly-once
concurrency: 4
retry: { initial_delay: 50ms, max_delay: 1s }
`,
    );
    let batches = 0;
    let killed: Promise<number> | undefined;
    const r = await runCli(['run', file, '--log-level', 'debug', '--log-format', 'json', '--summary-json', join(dir, 'summary.json')], {
      cwd: dir,
      timeoutMs: 60_000,
      onStdout: (chunk) => {
        batches += chunk.split('"batch_written"').length - 1;
        if (batches >= 8 && !killed)
          killed = admin
            .query("SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name LIKE $1 || ' sink p%'", [
              `weir-${terminated}`,
            ])
            .then((q) => q.rows[0]?.n as number);
      },
    });
    expect(await killed).toBeGreaterThan(0);
    expect(r.code, r.stderr + r.stdout.slice(-3000)).toBe(0);
    const target = await admin.query(`SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM "${terminated}"`);
    expect(target.rows[0]).toEqual({ n: rows, d: rows });
    const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as RunSummary;
    expect(summary.totals.partition_retries).toBeGreaterThan(0);
  }, 90_000);
});
