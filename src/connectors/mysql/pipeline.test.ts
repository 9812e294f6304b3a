/**
 * The mysql sink inside whole runs: bad-row isolation with a dead-letter sink
 * (in process), and exactly-once under SIGKILL (the built CLI as a subprocess;
 * run `npm run build` first).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
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

  /**
   * Values in whole runs: rows whose values would be rounded or cut are dead letters,
   * and weir's csv → mysql load gives the same table as the `mariadb` client's own
   * LOAD DATA LOCAL INFILE of the same file.
   */
  describe('exact values', () => {
    beforeAll(async () => {
      await admin.query('SET SESSION group_concat_max_len = 1073741824');
    });

    it('a value that does not fit its column exactly is a dead letter, with the reason; the rest arrive exactly', async () => {
      const table = unique('dlv');
      const pipeline = unique('mysql-dlv');
      tables.push(table);
      pipelines.push(pipeline);
      await admin.query(`CREATE TABLE \`${table}\` (id BIGINT PRIMARY KEY, amount DECIMAL(10,2), qty INT, note TEXT)`);
      const dir = tempDir('weir-mysql-dlv-');
      const lines = [
        { id: 1, amount: '375.30', qty: 1, note: '1305.020020' },
        { id: 2, amount: '1234567890123456789012345678901234567890', qty: 1, note: 'forty digits' },
        { id: 3, amount: '1.234', qty: 1, note: 'three fraction digits' },
        { id: 4, amount: '1.23', qty: 'abc', note: 'text into INT' },
        { id: 5, amount: '1.23', qty: 1.5, note: 'fraction into INT' },
        { id: 6, amount: '-0.01', qty: 2147483647, note: '' },
        { id: 7, amount: null, qty: null, note: null },
      ];
      writeFileSync(join(dir, 'in.jsonl'), `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
      const { summary } = await runYaml(
        `
  pipeline: ${pipeline}
  source: { type: jsonl, path: in.jsonl }
  sink: { type: mysql, host: 127.0.0.1, user: root, database: test, table: ${table}, batch_size: 100 }
  errors: { tolerance: all, dead_letter: { type: jsonl, path: rejected.jsonl } }
  checkpoint: { path: checkpoints.db }
  `,
        extra,
        dir,
      );
      expect(summary.status).toBe('succeeded');
      const [got] = await admin.query<mysql.RowDataPacket[]>(`SELECT id, amount, qty, note FROM \`${table}\` ORDER BY id`);
      expect(got).toEqual([
        { id: 1, amount: '375.30', qty: 1, note: '1305.020020' },
        { id: 6, amount: '-0.01', qty: 2147483647, note: '' },
        { id: 7, amount: null, qty: null, note: null },
      ]);
      const rejected = readFileSync(join(dir, 'rejected.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.stringify(JSON.parse(l)));
      expect(rejected).toHaveLength(4);
      expect(summary.totals.rows_written).toBe(3);
      expect(summary.totals.rows_dead_lettered).toBe(4);
      const reason = (id: number) => rejected.find((r) => r.includes(`"id":${id},`)) ?? '';
      expect(reason(2)).toMatch(/40 digit\(s\) before the point; DECIMAL\(10,2\) holds 8/);
      expect(reason(3)).toMatch(/3 digit\(s\) after the point; DECIMAL\(10,2\) keeps 2, so MySQL\/MariaDB would round it/);
      expect(reason(4)).toMatch(/column qty: .*abc.* is not an integer/);
      expect(reason(5)).toMatch(/column qty: 1\.5 has a fraction/);
    });

    it("weir's csv → mysql load and the mariadb client's LOAD DATA LOCAL INFILE of the same file give the same table", async () => {
      const client = spawnSync('mariadb', ['--version']);
      if (client.status !== 0) return; // no client on this machine
      const dir = tempDir('weir-mysql-loadcmp-');
      const decimal = fc.stringMatching(/^-?(0|[1-9]\d{0,27})(\.\d{1,10})?$/); // up to 38 digits, as DECIMAL(38,10) holds
      const int64 = fc.oneof(
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
        fc.constantFrom(2n ** 53n + 1n, -(2n ** 63n), 2n ** 63n - 1n, 0n),
      );
      const text = fc
        .string({ unit: fc.constantFrom('a', 'Z', '7', ' ', ',', '"', "'", ';', 'é', 'ü', '€', '日本', '🎉'), minLength: 1, maxLength: 24 })
        .filter((s) => s !== 'NULL'); // LOAD DATA reads an unquoted NULL as NULL; weir as text
      const record = fc.record({ amount: decimal, big: int64, note: text, quoteAnyway: fc.boolean() });
      const csvField = (s: string, quote: boolean) => (quote || /[",]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
      const digest = async (table: string) => {
        const [[r]] = await admin.query<mysql.RowDataPacket[]>(
          `SELECT COUNT(*) AS n, MD5(GROUP_CONCAT(CONCAT_WS('|', id, amount, big, note) ORDER BY id SEPARATOR '\\n')) AS md5 FROM \`${table}\``,
        );
        return { n: Number(r?.n), md5: r?.md5 };
      };
      const contents = async (table: string) =>
        (await admin.query<mysql.RowDataPacket[]>(`SELECT id, amount, CAST(big AS CHAR) AS big, note FROM \`${table}\` ORDER BY id`))[0];
      let runs = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(record, { minLength: 1, maxLength: 40 }), async (records) => {
          runs++;
          const file = join(dir, `run-${runs}.csv`);
          const body = records.map((r, i) => `${i + 1},${r.amount},${r.big},${csvField(r.note, r.quoteAnyway)}`).join('\n');
          writeFileSync(file, `id,amount,big,note\n${body}\n`);
          const [byClient, byWeir] = [unique('cmp_client'), unique('cmp_weir')];
          const pipeline = unique('mysql-cmp');
          tables.push(byClient, byWeir);
          pipelines.push(pipeline);
          for (const t of [byClient, byWeir])
            await admin.query(`CREATE TABLE \`${t}\` (id BIGINT PRIMARY KEY, amount DECIMAL(38,10), big BIGINT, note TEXT)`);
          const load = spawnSync(
            'mariadb',
            [
              '--local-infile=1',
              '-h127.0.0.1',
              '-uroot',
              'test',
              '-e',
              `LOAD DATA LOCAL INFILE '${file}' INTO TABLE ${byClient} FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' LINES TERMINATED BY '\\n' IGNORE 1 LINES`,
            ],
            { encoding: 'utf8' },
          );
          expect(load.status, load.stderr).toBe(0);
          const { summary } = await runYaml(
            `
  pipeline: ${pipeline}
  source: { type: csv, path: ${file}, columns: { id: integer, amount: decimal, big: integer, note: string } }
  sink: { type: mysql, host: 127.0.0.1, user: root, database: test, table: ${byWeir} }
  `,
            extra,
            dir,
          );
          expect(summary.status).toBe('succeeded');
          const [a, b] = [await digest(byClient), await digest(byWeir)];
          expect(a.n).toBe(records.length);
          if (a.md5 !== b.md5) expect(await contents(byWeir)).toEqual(await contents(byClient)); // shows the difference
          expect(b).toEqual(a);
          for (const t of [byClient, byWeir]) await admin.query(`DROP TABLE \`${t}\``);
        }),
        { seed: 20240501, numRuns: 20, endOnFailure: true },
      );
      expect(runs).toBe(20);
    });
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
