/** The parquet connector inside real runs (in-process runtime, built-in connectors). */
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parquetMetadata } from 'hyparquet';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { requireService } from '../../../test/helpers/services.js';
import type { AnyConnector } from '../../sdk/connector.js';
import { tempDir, testSource } from '../../sdk/testing.js';

describe('parquet in a pipeline', () => {
  it('generator → parquet (4 partitions) → sqlite: every row exactly once, read by row group', async () => {
    const dir = await tempDir('weir-parquet-run-');
    const write = await runYaml(
      `pipeline: to-parquet
source: { type: generator, rows: 30000, partitions: 4 }
sink: { type: parquet, path: out/events.parquet, row_group_size: 4000 }
`,
      [],
      dir,
    );
    expect(write.summary.status, JSON.stringify(write.summary.error)).toBe('succeeded');
    expect(await readdir(join(dir, 'out'))).toEqual(['events.parquet']);
    const meta = parquetMetadata((await readFile(join(dir, 'out/events.parquet'))).buffer as ArrayBuffer);
    expect(Number(meta.num_rows)).toBe(30000);
    expect(meta.row_groups).toHaveLength(8); // 7500 rows per partition: 4000 + 3500

    const read = await runYaml(
      `pipeline: from-parquet
source: { type: parquet, path: out/events.parquet, partition_rows: 1 }
sink: { type: sqlite, path: out/app.db, table: events }
`,
      [],
      dir,
    );
    expect(read.summary.status, JSON.stringify(read.summary.error)).toBe('succeeded');
    expect(read.summary.totals).toMatchObject({ rows_read: 30000, rows_written: 30000, partitions_committed: 8 });
    const db = new Database(join(dir, 'out/app.db'), { readonly: true });
    const counts = db.prepare('SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM events').get();
    const sample = db.prepare('SELECT * FROM events WHERE id = 1234').get() as Record<string, unknown>;
    db.close();
    expect(counts).toEqual({ n: 30000, d: 30000, lo: 1, hi: 30000 });
    expect(sample.created_at).toMatch(/^2024-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
  });

  it('a failed run aborts the job and leaves no file behind', async () => {
    const dir = await tempDir('weir-parquet-run-');
    const { summary } = await runYaml(
      `pipeline: fails
source: { type: test-source, rows: 500, partitions: 4, fail_partition: "2", fail_after: 10 }
sink: { type: parquet, path: out/x.parquet, row_group_size: 50 }
`,
      [testSource as unknown as AnyConnector],
      dir,
    );
    expect(summary.status).toBe('failed');
    expect(await readdir(join(dir, 'out'))).toEqual([]);
  });
});

const pgUp = await requireService('postgres');

/** A timestamp as `YYYY-MM-DDTHH:MM:SS[.fraction]`: trailing zeros of the fraction and a UTC zone dropped. */
function canonTime(text: string): string {
  const m = /^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?(?:Z|\+00(?::?00)?)?$/.exec(text);
  if (!m) return text;
  const fraction = (m[3] ?? '').replace(/0+$/, '');
  return `${m[1]}T${m[2]}${fraction ? `.${fraction}` : ''}`;
}

describe.skipIf(!pgUp)('parquet → postgres', () => {
  it('a DuckDB-written ZSTD file: decimal(38,10), bigint beyond 2^53, microsecond timestamps land exactly in the table weir creates', async () => {
    const dir = await tempDir('weir-parquet-pg-');
    const path = join(dir, 'in.parquet');
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const duck = await (await DuckDBInstance.create(':memory:')).connect();
    await duck.run(`COPY (
      SELECT i AS id,
        CASE WHEN i % 10 = 0 THEN NULL ELSE (CASE WHEN i % 2 = 0 THEN '-' ELSE '' END || '9' || lpad(i::VARCHAR, 27, '7') || '.' || lpad((i * 7919)::VARCHAR, 10, '0'))::DECIMAL(38,10) END AS amount,
        CASE WHEN i % 10 = 1 THEN NULL ELSE 9007199254740993 + i * 1000003 END AS big,
        CASE WHEN i % 10 = 2 THEN NULL ELSE TIMESTAMP '2024-01-01 00:00:00.000001' + to_microseconds(i * 1000003) END AS ts
      FROM range(5000) t(i)) TO '${path}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 2048)`);
    const expected = (
      await duck.runAndReadAll(
        `SELECT id::VARCHAR AS id, amount::VARCHAR AS amount, big::VARCHAR AS big, ts::VARCHAR AS ts FROM read_parquet('${path}') t ORDER BY t.id`,
      )
    ).getRowObjects();
    const table = `pq_${randomBytes(5).toString('hex')}`;
    const client = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
    await client.connect();
    try {
      const { summary } = await runYaml(
        `pipeline: parquet-pg-${table}
source: { type: parquet, path: in.parquet, partition_rows: 2000 }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${table} }
`,
        [],
        dir,
      );
      expect(summary.status, JSON.stringify(summary.error)).toBe('succeeded');
      expect(summary.totals).toMatchObject({ rows_read: 5000, rows_written: 5000 });
      await client.query("SET TIME ZONE 'UTC'");
      const types = await client.query(
        'SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position',
        [table],
      );
      expect(types.rows.map((r) => `${r.column_name} ${r.data_type}`)).toEqual([
        'id bigint',
        'amount numeric',
        'big bigint',
        'ts timestamp with time zone',
      ]);
      const got = await client.query(
        `SELECT id::text AS id, amount::text AS amount, big::text AS big, ts::text AS ts FROM "${table}" t ORDER BY t.id`,
      );
      const canon = (r: Record<string, unknown>) => ({ ...r, ts: typeof r.ts === 'string' ? canonTime(r.ts) : r.ts });
      expect(got.rows.map(canon)).toEqual(expected.map(canon));
    } finally {
      await client.query(`DROP TABLE IF EXISTS "${table}"`).catch(() => {});
      await client.query('DELETE FROM _weir_checkpoints WHERE pipeline = $1', [`parquet-pg-${table}`]).catch(() => {});
      await client.query('DELETE FROM _weir_runs WHERE pipeline = $1', [`parquet-pg-${table}`]).catch(() => {});
      await client.end();
    }
  });

  it('a bad row in a CSV batch is isolated, and a column of fixed scale takes the row path where a longer fraction is a bad row', async () => {
    const dir = await tempDir('weir-parquet-pg-');
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const duck = await (await DuckDBInstance.create(':memory:')).connect();
    await duck.run(`COPY (SELECT i AS id, (i || '.' || CASE WHEN i = 1234 THEN '125' ELSE '25' END)::DECIMAL(18,4) AS amount, 'n' || i AS name
      FROM range(3000) t(i)) TO '${join(dir, 'in.parquet')}' (FORMAT parquet, COMPRESSION zstd)`);
    const table = `pq_${randomBytes(5).toString('hex')}`;
    const client = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
    await client.connect();
    const run = (name: string) =>
      runYaml(
        `pipeline: ${name}
source: { type: parquet, path: in.parquet }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${table} }
errors: { tolerance: all, dead_letter: { type: jsonl, path: ${name}.jsonl } }
`,
        [],
        dir,
      );
    try {
      // the COPY of the CSV batch fails on row 777; the runtime re-reads the batch as rows and isolates it
      await client.query(`CREATE TABLE "${table}" (id bigint CHECK (id <> 777), amount numeric, name text)`);
      const checked = await run(`pq-check-${table}`);
      expect(checked.summary.totals).toMatchObject({ rows_written: 2999, rows_dead_lettered: 1 });
      expect(await readFile(join(dir, `pq-check-${table}.jsonl`), 'utf8')).toContain('"id":777');
      const one = await client.query(`SELECT amount::text AS a FROM "${table}" WHERE id = 1234`);
      expect(one.rows).toEqual([{ a: '1234.1250' }]);
      // numeric(12,2) would round 1234.1250 without a word: that row is a bad row, the others land exactly
      await client.query(`DROP TABLE "${table}"; CREATE TABLE "${table}" (id bigint, amount numeric(12,2), name text)`);
      const fixed = await run(`pq-fixed-${table}`);
      expect(fixed.summary.totals).toMatchObject({ rows_written: 2999, rows_dead_lettered: 1 });
      expect(await readFile(join(dir, `pq-fixed-${table}.jsonl`), 'utf8')).toContain('"id":1234');
      const sum = await client.query(`SELECT count(*)::int AS n, sum(amount)::text AS total FROM "${table}"`);
      expect(sum.rows).toEqual([{ n: 2999, total: String((2999 * 3000) / 2 - 1234 + 0.25 * 2999) }]);
    } finally {
      await client.query(`DROP TABLE IF EXISTS "${table}"`).catch(() => {});
      for (const t of ['_weir_checkpoints', '_weir_runs'])
        await client.query(`DELETE FROM ${t} WHERE pipeline LIKE $1`, [`pq-%-${table}`]).catch(() => {});
      await client.end();
    }
  });
});
