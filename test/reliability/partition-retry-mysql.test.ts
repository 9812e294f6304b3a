/**
 * Partition retries into MariaDB through a network fault: a TCP proxy cuts every
 * open connection twice during an exactly-once run, the setup connection the job
 * commit uses included. The partitions whose transaction went with a connection run
 * again; the job commit opens a new connection; the one `weir run` exits 0 with every
 * row exactly once. Needs `npm run build`.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../src/observe/events.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';
import { TcpProxy } from './proxy.js';

const up = await requireService('mysql');
const ROWS = 200_000;
/** Progress (rows) at which the proxy cuts every connection. */
const CUT_AT = [40_000, 110_000];

const suffix = randomBytes(4).toString('hex');
const table = `retry_cut_${suffix}`;
const pipeline = `retry-cut-my-${suffix}`;
let admin: mysql.Connection;
let proxy: TcpProxy;

beforeAll(async () => {
  if (!up) return;
  admin = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', database: 'test' });
  proxy = await TcpProxy.start(3306);
});
afterAll(async () => {
  if (!up) return;
  await proxy.close();
  await admin.query(`DROP TABLE IF EXISTS \`${table}\``);
  for (const t of ['_weir_runs', '_weir_checkpoints']) await admin.query(`DELETE FROM ${t} WHERE pipeline = ?`, [pipeline]).catch(() => {});
  await admin.end();
});

describe.skipIf(!up)('partition retries through a network fault (MariaDB)', () => {
  it('a proxy cuts every connection twice during an exactly-once run: one run, exit 0, every row once', async () => {
    const dir = tempDir('weir-retry-cut-my-');
    const file = join(dir, 'pipeline.yaml');
    writeFileSync(
      file,
      `pipeline: ${pipeline}
source: { type: generator, rows: ${ROWS}, partitions: 8 }
sink: { type: mysql, host: 127.0.0.1, port: ${proxy.port}, user: root, database: test, table: ${table}, batch_size: 5000 }
delivery: exactly-once
concurrency: 4
retry: { max_attempts: 5, initial_delay: 50ms, max_delay: 1s, partition_attempts: 4 }
progress_interval: 200ms
`,
    );
    const { cuts, onStdout } = proxy.cutAtProgress(CUT_AT);
    const r = await runCli(['run', file, '--log-level', 'info', '--log-format', 'json', '--summary-json', join(dir, 'summary.json')], {
      cwd: dir,
      timeoutMs: 90_000,
      onStdout,
    });
    expect(cuts, r.stderr).toHaveLength(2);
    expect(r.code, r.stderr + r.stdout.slice(-3000)).toBe(0);
    const [rows] = await admin.query(`SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM \`${table}\``);
    expect((rows as Record<string, unknown>[])[0]).toEqual({ n: ROWS, d: ROWS, lo: 1, hi: ROWS });
    const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as RunSummary;
    expect(summary.status).toBe('succeeded');
    expect(summary.totals.partition_retries).toBeGreaterThanOrEqual(2);
    process.stdout.write(`[partition-retry mysql] ${cuts.join('; ')}; ${summary.totals.partition_retries} partition retries\n`);
  }, 120_000);
});
