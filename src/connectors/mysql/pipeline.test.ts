/**
 * The mysql sink inside whole runs: bad-row isolation with a dead-letter sink
 * (in process), and exactly-once under SIGKILL (the built CLI as a subprocess;
 * run `npm run build` first).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { BIN, logLines, runCli, tempDir } from '../../../test/helpers/cli.js';
import { requireService } from '../../../test/helpers/services.js';
import type { AnyConnector } from '../../sdk/connector.js';
import jsonl from '../jsonl/index.js';
import mysqlConnector from './index.js';

const up = await requireService('mysql');
const BASE = { host: '127.0.0.1', port: 3306, user: 'root', database: 'test' };
const extra = [mysqlConnector, jsonl].filter((c) => c) as unknown as AnyConnector[];

let admin: mysql.Connection;
const tables: string[] = [];
const pipelines: string[] = [];
const unique = (prefix: string) => `${prefix}_${randomBytes(5).toString('hex')}`;

async function scalar(sql: string, values: unknown[] = []): Promise<unknown> {
  const [rows] = await admin.query<mysql.RowDataPacket[]>(sql, values);
  return Object.values(rows[0] ?? {})[0];
}

describe.skipIf(!up)('mysql sink in a run', () => {
  beforeAll(async () => {
    admin = await mysql.createConnection(BASE);
  });
  afterAll(async () => {
    for (const t of tables) await admin.query(`DROP TABLE IF EXISTS \`${t}\``);
    for (const p of pipelines) {
      await admin.query('DELETE FROM _weir_checkpoints WHERE pipeline = ?', [p]).catch(() => {});
      await admin.query('DELETE FROM _weir_runs WHERE pipeline = ?', [p]).catch(() => {});
    }
    await admin?.end();
  });

  it('isolates bad rows into the dead-letter sink and writes the rest; the counts add up', async () => {
    const table = unique('dl');
    const pipeline = unique('mysql-dl');
    tables.push(table);
    pipelines.push(pipeline);
    await admin.query(
      `CREATE TABLE \`${table}\` (id BIGINT PRIMARY KEY, name TEXT, email TEXT, category TEXT, amount DOUBLE, quantity INT CHECK (quantity <> 7), active BOOLEAN, created_at DATETIME(6))`,
    );
    const dir = tempDir('weir-mysql-dl-');
    const { summary } = await runYaml(
      `
pipeline: ${pipeline}
source: { type: generator, rows: 1000, partitions: 2 }
sink: { type: mysql, host: 127.0.0.1, user: root, database: test, table: ${table}, batch_size: 250 }
errors: { tolerance: all, dead_letter: { type: jsonl, path: ${join(dir, 'rejected.jsonl')} } }
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
      extra,
      dir,
    );
    expect(summary.status).toBe('succeeded');
    const written = Number(await scalar(`SELECT COUNT(*) FROM \`${table}\``));
    const bad = Number(await scalar(`SELECT COUNT(*) FROM \`${table}\` WHERE quantity = 7`));
    expect(bad).toBe(0);
    const rejected = readFileSync(join(dir, 'rejected.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rejected.length).toBeGreaterThan(5);
    expect(written + rejected.length).toBe(1000);
    expect(summary.totals.rows_written).toBe(written);
    expect(summary.totals.rows_dead_lettered).toBe(rejected.length);
    expect(JSON.stringify(rejected[0])).toMatch(/CONSTRAINT .*quantity.* failed/i);
  });
});

/**
 * Kills `weir run` with SIGKILL at different moments (after its first batch, after its
 * first committed partition, at a random time), then runs it again until it exits 0.
 * Every generated id must be in the table exactly once.
 */
describe.skipIf(!up || !existsSync(join(BIN, '..', '..', 'dist', 'cli', 'main.js')))('mysql exactly-once under SIGKILL (CLI)', () => {
  beforeAll(async () => {
    admin = await mysql.createConnection(BASE);
  });
  afterAll(async () => {
    for (const t of tables) await admin.query(`DROP TABLE IF EXISTS \`${t}\``);
    for (const p of pipelines) {
      await admin.query('DELETE FROM _weir_checkpoints WHERE pipeline = ?', [p]).catch(() => {});
      await admin.query('DELETE FROM _weir_runs WHERE pipeline = ?', [p]).catch(() => {});
    }
    await admin?.end();
  });

  it.each(['append', 'replace'])('%s: no row lost, none duplicated, across kills and re-runs', async (mode) => {
    const ROWS = 40_000;
    const table = unique('chaos');
    const pipeline = unique('mysql-chaos');
    tables.push(table);
    pipelines.push(pipeline);
    if (mode === 'replace') {
      await admin.query(
        `CREATE TABLE \`${table}\` (id BIGINT, name TEXT, email TEXT, category TEXT, amount DOUBLE, quantity BIGINT, active BOOLEAN, created_at DATETIME(6))`,
      );
      await admin.query(`INSERT INTO \`${table}\` (id, name) VALUES (-1, 'old row')`);
    }
    const dir = tempDir('weir-mysql-chaos-');
    const file = join(dir, 'pipeline.yaml');
    writeFileSync(
      file,
      `
pipeline: ${pipeline}
source: { type: generator, rows: ${ROWS}, partitions: 8 }
sink: { type: mysql, host: 127.0.0.1, user: root, database: test, table: ${table}, batch_size: 500, mode: ${mode} }
delivery: exactly-once
concurrency: 3
`,
    );
    const args = ['run', file, '--log-format', 'json', '--log-level', 'debug'];
    const killAfter: ((line: Record<string, unknown>) => boolean)[] = [
      (l) => l.event === 'batch_written',
      (l) => l.event === 'partition_complete',
      (l) => l.event === 'batch_written' && Math.random() < 0.1,
      (l) => l.event === 'partition_complete' && Math.random() < 0.3,
    ];
    // a run whose job commit happened is complete: running the pipeline again would (rightly) load the rows again
    let completed = false;
    const exits: (number | string | null)[] = [];
    /** Per run: its id, whether it resumed, and its warnings (for the failure message). */
    const history: string[] = [];
    const record = (stdout: string, exit: number | string | null) => {
      const lines = logLines(stdout);
      const start = lines.find((l) => l.event === 'run_start');
      const warnings = lines.filter((l) => l.level === 'warn' || l.event === 'warning').map((l) => String(l.msg ?? l.message));
      history.push(
        `${String(start?.run_id ?? '?')} resumed=${String(start?.resumed)} exit=${exit}${warnings.length ? ` warnings=${JSON.stringify(warnings)}` : ''}`,
      );
    };
    for (const when of killAfter) {
      if (completed) break;
      let killed = false;
      let pending = '';
      const r = await runCli(args, {
        cwd: dir,
        timeoutMs: 60_000,
        onStdout: (chunk, kill) => {
          if (killed) return;
          pending += chunk;
          const complete = pending.slice(0, pending.lastIndexOf('\n') + 1);
          pending = pending.slice(complete.length);
          for (const line of logLines(complete)) {
            if (when(line)) {
              killed = true;
              kill('SIGKILL');
              return;
            }
          }
        },
      });
      exits.push(r.signal ?? r.code);
      record(r.stdout, r.signal ?? r.code);
      completed = Number(await scalar("SELECT COUNT(*) FROM _weir_runs WHERE pipeline = ? AND status = 'committed'", [pipeline])) > 0;
    }
    let final = completed ? { code: 0, stdout: '', stderr: '', signal: null } : await runCli(args, { cwd: dir, timeoutMs: 120_000 });
    record(final.stdout, final.code);
    for (let i = 0; i < 3 && final.code !== 0; i++) {
      final = await runCli(args, { cwd: dir, timeoutMs: 120_000 });
      record(final.stdout, final.code);
    }
    exits.push(final.code);
    process.stderr.write(
      `[chaos ${mode}] exits: ${exits.join(', ')}; final run: ${logLines(final.stdout).filter((l) => l.event === 'partition_skipped').length} partition(s) skipped\n`,
    );
    expect(final.code, `exit codes ${exits.join(', ')}; stderr: ${final.stderr.slice(-2000)}`).toBe(0);
    const runs = `runs:\n  ${history.join('\n  ')}`;
    expect(Number(await scalar(`SELECT COUNT(*) FROM \`${table}\``)), runs).toBe(ROWS);
    expect(Number(await scalar(`SELECT COUNT(DISTINCT id) FROM \`${table}\``)), runs).toBe(ROWS);
    expect(Number(await scalar(`SELECT MIN(id) FROM \`${table}\``))).toBe(1);
    expect(Number(await scalar(`SELECT MAX(id) FROM \`${table}\``))).toBe(ROWS);
    expect(await scalar("SELECT COUNT(*) FROM _weir_runs WHERE pipeline = ? AND status = 'committed'", [pipeline])).toBe(1);
    expect(await scalar('SELECT COUNT(*) FROM _weir_checkpoints WHERE pipeline = ?', [pipeline])).toBe(0);
    const leftovers = await scalar(
      "SELECT COUNT(*) FROM information_schema.TABLES t JOIN _weir_runs r ON t.TABLE_SCHEMA = 'test' AND (t.TABLE_NAME = r.stage OR t.TABLE_NAME = REPLACE(r.stage, '_weir_stage_', '_weir_old_')) WHERE r.pipeline = ?",
      [pipeline],
    );
    expect(leftovers).toBe(0);
  });
});
