import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '../../../test/helpers/services.js';
import { validateConnectorOptions } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import { commitContext, connectorOptions, taskContext } from '../../sdk/testing.js';
import type { JsonValue, Row, Schema } from '../../sdk/types.js';
import { Decimal } from '../../sdk/values.js';
import { connect } from './db.js';
import mysqlConnector from './index.js';

const up = await requireService('mysql');
const BASE = { host: '127.0.0.1', port: 3306, user: 'root', database: 'test' };

function options(input: Record<string, unknown>) {
  return connectorOptions(mysqlConnector, { ...BASE, ...input }, 'sink');
}

const SCHEMA: Schema = [
  { name: 'id', type: 'integer', nullable: false },
  { name: 'name', type: 'string' },
  { name: 'amount', type: 'number' },
  { name: 'active', type: 'boolean' },
  { name: 'created_at', type: 'timestamp' },
  { name: 'meta', type: 'json' },
];

const row = (id: number, extra: Partial<Row> = {}): Row => ({
  id,
  name: `n${id}`,
  amount: id / 4,
  active: id % 2 === 0,
  created_at: `2024-05-01T10:00:${String(id % 60).padStart(2, '0')}.250Z`,
  meta: { id, tags: ['a', 'b'] },
  ...extra,
});
const rows = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => row(from + i));

let admin: mysql.Connection;
const created: string[] = [];
const tableName = (prefix = 't') => {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  created.push(name);
  return name;
};
const runId = () => `run-${randomBytes(4).toString('hex')}`;
const pipeline = `mysql-test-${randomBytes(3).toString('hex')}`;

async function select(sql: string, values: unknown[] = []): Promise<Row[]> {
  const [r] = await admin.query<mysql.RowDataPacket[]>(sql, values);
  return r as Row[];
}
const count = async (table: string) => Number((await select(`SELECT COUNT(*) AS n FROM \`${table}\``))[0]?.n);

interface RunOptions {
  schema?: Schema | undefined;
  runId?: string;
  /** Skip the job commit (the run "crashes" after its partitions). */
  noJobCommit?: boolean;
}

/** A whole run by hand: setup → one writer per partition (one write per batch) → job commit. */
async function writeRun(input: Record<string, unknown>, parts: [id: string, batches: Row[][]][], o: RunOptions = {}) {
  const sink = mysqlConnector.sink?.(options(input)) ?? expect.unreachable();
  const schema = 'schema' in o ? o.schema : SCHEMA;
  const ctx = commitContext({ baseDir: '.', runId: o.runId ?? runId(), schema });
  const cctx = { ...ctx, pipeline };
  try {
    await sink.setup?.(cctx);
    const messages: JsonValue[] = [];
    for (const [id, batches] of parts) {
      const writer = await sink.writer({ id }, { ...taskContext({ baseDir: '.', runId: cctx.runId, schema, partitionId: id }), pipeline });
      try {
        for (const b of batches) await writer.write(b);
        messages.push((await writer.commit?.()) ?? null);
      } finally {
        await writer.close?.();
      }
    }
    if (!o.noJobCommit) await sink.commit?.(messages, cctx);
    return { messages, cctx };
  } finally {
    await sink.close?.();
  }
}

describe.skipIf(!up)('mysql sink', () => {
  beforeAll(async () => {
    admin = await mysql.createConnection({ ...BASE, timezone: 'Z', dateStrings: true });
  });
  afterAll(async () => {
    for (const t of created) await admin.query(`DROP TABLE IF EXISTS \`${t}\``);
    await admin.query('DELETE FROM _weir_checkpoints WHERE pipeline = ?', [pipeline]).catch(() => {});
    await admin.query('DELETE FROM _weir_runs WHERE pipeline = ?', [pipeline]).catch(() => {});
    await admin?.end();
  });

  it('append: creates the table from the schema and stores every type', async () => {
    const table = tableName();
    const { messages } = await writeRun({ table }, [
      ['0', [rows(1, 4)]],
      [
        '1',
        [
          [
            row(10, { name: null, meta: null, amount: null, created_at: new Date('2024-06-01T00:00:00.123Z') }),
            row(11, { name: 'tab\there "q" \\ ü 🎉' }),
          ],
        ],
      ],
    ]);
    expect(messages).toEqual([
      { partition_id: '0', rows: 3, target: table },
      { partition_id: '1', rows: 2, target: table },
    ]);
    const cols = await select(
      'SELECT COLUMN_NAME AS c, COLUMN_TYPE AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
      ['test', table],
    );
    expect(cols.map((c) => `${c.c} ${c.t}`)).toEqual([
      'id bigint(20)',
      'name text',
      'amount double',
      'active tinyint(1)',
      'created_at datetime(6)',
      'meta longtext',
    ]);
    const got = await select(`SELECT * FROM \`${table}\` ORDER BY id`);
    expect(got).toHaveLength(5);
    expect(got[0]).toEqual({
      id: 1,
      name: 'n1',
      amount: 0.25,
      active: 0,
      created_at: '2024-05-01 10:00:01.250000',
      meta: { id: 1, tags: ['a', 'b'] },
    }); // mysql2 parses MariaDB's JSON columns
    expect(got[3]).toMatchObject({ id: 10, name: null, amount: null, meta: null, created_at: '2024-06-01 00:00:00.123000' });
    expect(got[4]?.name).toBe('tab\there "q" \\ ü 🎉');
  });

  it('upsert: inserts new keys and updates existing ones through the primary key', async () => {
    const table = tableName();
    await admin.query(
      `CREATE TABLE \`${table}\` (id BIGINT PRIMARY KEY, name TEXT, amount DOUBLE, active BOOLEAN, created_at DATETIME(6), meta JSON, untouched INT DEFAULT 7)`,
    );
    await writeRun({ table, mode: 'upsert', key_columns: ['id'] }, [['0', [rows(1, 6)]]]);
    await writeRun({ table, mode: 'upsert', key_columns: ['id'] }, [
      ['0', [[row(2, { name: 'two' }), row(3, { name: 'three' })]]],
      ['1', [[row(7, { name: 'seven' })]]],
    ]);
    const got = await select(`SELECT id, name, untouched FROM \`${table}\` ORDER BY id`);
    expect(got.map((r) => [r.id, r.name])).toEqual([
      [1, 'n1'],
      [2, 'two'],
      [3, 'three'],
      [4, 'n4'],
      [5, 'n5'],
      [7, 'seven'],
    ]);
    expect(got.every((r) => r.untouched === 7)).toBe(true);
  });

  it('upsert: creates the table with key_columns as its primary key', async () => {
    const table = tableName();
    await writeRun({ table, mode: 'upsert', key_columns: ['name'] }, [
      ['0', [[row(1, { name: 'a' }), row(2, { name: 'a' }), row(3, { name: 'b' })]]],
    ]);
    const got = await select(`SELECT id, name FROM \`${table}\` ORDER BY name`);
    expect(got).toEqual([
      { id: 2, name: 'a' },
      { id: 3, name: 'b' },
    ]);
  });

  it('upsert: refuses key_columns that are not a unique key, naming the keys the table has', async () => {
    const table = tableName();
    await admin.query(
      `CREATE TABLE \`${table}\` (id BIGINT PRIMARY KEY, name TEXT, amount DOUBLE, active BOOLEAN, created_at DATETIME(6), meta JSON)`,
    );
    const error = await writeRun({ table, mode: 'upsert', key_columns: ['name'] }, [['0', [rows(1, 2)]]]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WeirError);
    expect((error as WeirError).kind).toBe('config');
    expect((error as WeirError).message).toMatch(/PRIMARY KEY or UNIQUE key on \(name\).*PRIMARY \(id\).*ALTER TABLE/);
  });

  it('validates options: upsert needs key_columns, load_data cannot upsert, the sink needs a table', () => {
    const check = (input: Record<string, unknown>) =>
      validateConnectorOptions(mysqlConnector, { ...BASE, ...input }, 'sink').issues.map((i) => i.message);
    expect(check({ table: 't', mode: 'upsert' }).join()).toMatch(/key_columns is required when mode is upsert/);
    expect(check({ table: 't', mode: 'upsert', key_columns: ['id'], method: 'load_data' }).join()).toMatch(/load_data cannot upsert/);
    expect(check({}).join()).toMatch(/table is required/);
    expect(check({ table: 'bad name' }).join()).toMatch(/plain SQL identifier/);
    expect(check({ table: 't', password: 'hunter2', ssl_enabled: true }).join()).toMatch(/ssl_ca_cert is required/);
  });

  it('refuses a table without the columns the source produces, and a non-transactional table', async () => {
    const narrow = tableName();
    await admin.query(`CREATE TABLE \`${narrow}\` (id BIGINT)`);
    await expect(writeRun({ table: narrow }, [['0', [rows(1, 2)]]])).rejects.toThrow(
      /has no column "name", "amount", "active", "created_at", "meta", which the source produces/,
    );
    const myisam = tableName();
    await admin.query(
      `CREATE TABLE \`${myisam}\` (id BIGINT, name TEXT, amount DOUBLE, active BOOLEAN, created_at DATETIME(6), meta TEXT) ENGINE=MyISAM`,
    );
    await expect(writeRun({ table: myisam }, [['0', [rows(1, 2)]]])).rejects.toThrow(/MyISAM engine, which cannot roll back/);
  });

  it('a failed batch leaves nothing of itself; a retried batch is written once; abort leaves nothing at all', async () => {
    const table = tableName();
    await admin.query(
      `CREATE TABLE \`${table}\` (id BIGINT PRIMARY KEY, name TEXT NOT NULL, amount DOUBLE, active BOOLEAN, created_at DATETIME(6), meta JSON)`,
    );
    const sink = mysqlConnector.sink?.(options({ table })) ?? expect.unreachable();
    const cctx = { ...commitContext({ baseDir: '.', runId: runId(), schema: SCHEMA }), pipeline };
    await sink.setup?.(cctx);
    const writer = await sink.writer({ id: '0' }, { ...taskContext({ baseDir: '.', runId: cctx.runId, schema: SCHEMA }), pipeline });
    await writer.write(rows(1, 3));
    // duplicate key in the middle of the batch: rows 3 and 4 must not stay behind
    const dup = await Promise.resolve(writer.write([row(3), row(4), row(1)])).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(RowError);
    expect((dup as RowError).code).toBe('ER_DUP_ENTRY');
    const bad = await Promise.resolve(writer.write([row(5, { name: null })])).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(RowError);
    const nan = await Promise.resolve(writer.write([row(6, { amount: Number.NaN })])).catch((e: unknown) => e);
    expect((nan as RowError).message).toMatch(/column amount: NaN/);
    await writer.write([row(3), row(4)]); // the same rows again, as a retry would send them
    expect(await count(table)).toBe(0); // nothing visible before the commit
    await writer.commit?.();
    await writer.close?.();
    expect((await select(`SELECT id FROM \`${table}\` ORDER BY id`)).map((r) => r.id)).toEqual([1, 2, 3, 4]);

    const second = await sink.writer(
      { id: '1' },
      { ...taskContext({ baseDir: '.', runId: cctx.runId, schema: SCHEMA, partitionId: '1' }), pipeline },
    );
    await second.write(rows(10, 20));
    await second.abort?.();
    await second.abort?.(); // idempotent
    await second.close?.();
    await sink.abort?.([], cctx);
    await sink.close?.();
    expect(await count(table)).toBe(4);
  });

  it('a connection lost mid-partition fails the partition (its transaction is gone); lost before any batch, the write is retryable', async () => {
    const table = tableName();
    const sink = mysqlConnector.sink?.(options({ table })) ?? expect.unreachable();
    const cctx = { ...commitContext({ baseDir: '.', runId: runId(), schema: SCHEMA }), pipeline };
    await sink.setup?.(cctx);
    const threadOf = (w: unknown) => (w as { conn: { threadId: number } }).conn.threadId;

    const early = await sink.writer({ id: '0' }, { ...taskContext({ baseDir: '.', runId: cctx.runId, schema: SCHEMA }), pipeline });
    await admin.query(`KILL ${threadOf(early)}`);
    const retryable = await Promise.resolve(early.write(rows(1, 3))).catch((e: unknown) => e);
    expect(retryable).toMatchObject({ retryable: true });
    await early.write(rows(1, 3)); // the retry reconnects
    await early.commit?.();
    await early.close?.();

    const late = await sink.writer(
      { id: '1' },
      { ...taskContext({ baseDir: '.', runId: cctx.runId, schema: SCHEMA, partitionId: '1' }), pipeline },
    );
    await late.write(rows(10, 12));
    await admin.query(`KILL ${threadOf(late)}`);
    const lost = await Promise.resolve(late.write(rows(12, 14))).catch((e: unknown) => e);
    expect(lost).toMatchObject({ code: 'transaction_lost', retryable: false });
    await expect(Promise.resolve(late.write(rows(12, 14)))).rejects.toMatchObject({ code: 'transaction_lost' });
    await expect(Promise.resolve(late.commit?.())).rejects.toMatchObject({ code: 'transaction_lost' });
    await late.abort?.();
    await late.close?.();
    await sink.close?.();
    expect((await select(`SELECT id FROM \`${table}\` ORDER BY id`)).map((r) => r.id)).toEqual([1, 2]);
    const again = mysqlConnector.sink?.(options({ table })) ?? expect.unreachable();
    const state = await again.recover?.(cctx);
    await again.close?.();
    expect(state?.partitions.map((p) => p.partition_id)).toEqual(['0']);
  });

  it('splits a batch larger than max_allowed_packet into several INSERTs', async () => {
    const table = tableName();
    const big = 'x'.repeat(4000);
    const batch = Array.from({ length: 5000 }, (_, i) => row(i, { name: big })); // ~20 MB of SQL, above the 16 MB default
    await writeRun({ table }, [['0', [batch]]]);
    expect(await count(table)).toBe(5000);
  });

  it('replace: the target keeps its old rows until the job commit swaps the new ones in; a failed run leaves it untouched', async () => {
    const table = tableName();
    await admin.query(
      `CREATE TABLE \`${table}\` (id BIGINT PRIMARY KEY, name TEXT, amount DOUBLE, active BOOLEAN, created_at DATETIME(6), meta JSON)`,
    );
    await admin.query(`INSERT INTO \`${table}\` (id, name) VALUES (100, 'old'), (101, 'old')`);

    // a failed run: partition 0 commits, partition 1 fails, the job aborts
    const sink = mysqlConnector.sink?.(options({ table, mode: 'replace' })) ?? expect.unreachable();
    const failed = { ...commitContext({ baseDir: '.', runId: runId(), schema: SCHEMA }), pipeline };
    await sink.setup?.(failed);
    const w0 = await sink.writer({ id: '0' }, { ...taskContext({ baseDir: '.', runId: failed.runId, schema: SCHEMA }), pipeline });
    await w0.write(rows(1, 5));
    const m0 = await w0.commit?.();
    await w0.close?.();
    const w1 = await sink.writer(
      { id: '1' },
      { ...taskContext({ baseDir: '.', runId: failed.runId, schema: SCHEMA, partitionId: '1' }), pipeline },
    );
    await w1.write(rows(5, 9));
    await w1.abort?.();
    await w1.close?.();
    await sink.abort?.([m0 as JsonValue], failed);
    await sink.close?.();
    expect((await select(`SELECT id FROM \`${table}\` ORDER BY id`)).map((r) => r.id)).toEqual([100, 101]);

    // a new run replaces the rows; the earlier run's staging table is dropped
    const { cctx } = await writeRun({ table, mode: 'replace' }, [
      ['0', [rows(1, 3)]],
      ['1', [rows(3, 5)]],
    ]);
    expect((await select(`SELECT id FROM \`${table}\` ORDER BY id`)).map((r) => r.id)).toEqual([1, 2, 3, 4]);
    const leftovers = await select(
      "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'test' AND (TABLE_NAME LIKE '\\_weir\\_stage\\_%' OR TABLE_NAME LIKE '\\_weir\\_old\\_%')",
    );
    const runs = await select('SELECT run_id, status, stage FROM _weir_runs WHERE pipeline = ? AND target = ? ORDER BY started_at', [
      pipeline,
      table,
    ]);
    expect(runs.map((r) => r.status)).toEqual(['abandoned', 'committed']);
    for (const r of runs) expect(leftovers.map((l) => l.t)).not.toContain(r.stage);
    // the job commit is idempotent
    const again = mysqlConnector.sink?.(options({ table, mode: 'replace' })) ?? expect.unreachable();
    await again.commit?.([], cctx);
    await again.close?.();
    expect(await count(table)).toBe(4);
  });

  it('replace: a job commit interrupted after the swap finishes when repeated', async () => {
    const table = tableName();
    await admin.query(
      `CREATE TABLE \`${table}\` (id BIGINT PRIMARY KEY, name TEXT, amount DOUBLE, active BOOLEAN, created_at DATETIME(6), meta JSON)`,
    );
    await admin.query(`INSERT INTO \`${table}\` (id) VALUES (100)`);
    const { cctx, messages } = await writeRun({ table, mode: 'replace' }, [['0', [rows(1, 3)]]], { noJobCommit: true });
    const [run] = await select('SELECT stage FROM _weir_runs WHERE pipeline = ? AND run_id = ?', [pipeline, cctx.runId]);
    const stage = String(run?.stage);
    const old = stage.replace('_weir_stage_', '_weir_old_');
    created.push(old);
    // simulate a crash right after RENAME TABLE
    await admin.query("UPDATE _weir_runs SET status = 'swapping' WHERE pipeline = ? AND run_id = ?", [pipeline, cctx.runId]);
    await admin.query(`RENAME TABLE \`${table}\` TO \`${old}\`, \`${stage}\` TO \`${table}\``);
    const sink = mysqlConnector.sink?.(options({ table, mode: 'replace' })) ?? expect.unreachable();
    await sink.commit?.(messages, cctx);
    expect(await sink.recover?.(cctx)).toEqual({ jobCommitted: true, partitions: [] });
    await sink.close?.();
    expect((await select(`SELECT id FROM \`${table}\` ORDER BY id`)).map((r) => r.id)).toEqual([1, 2]);
    expect(await select(`SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'test' AND TABLE_NAME = ?`, [old])).toEqual([]);
  });

  it('exactly-once: recover() lists the partitions whose rows and checkpoint committed together', async () => {
    const table = tableName();
    const id = runId();
    const { cctx } = await writeRun(
      { table },
      [
        ['0', [rows(1, 3)]],
        ['2', [rows(5, 7)]],
      ],
      { runId: id, noJobCommit: true },
    );
    const sink = mysqlConnector.sink?.(options({ table })) ?? expect.unreachable();
    expect(await sink.recover?.(cctx)).toEqual({
      jobCommitted: false,
      partitions: [
        { partition_id: '0', message: { partition_id: '0', rows: 2, target: table } },
        { partition_id: '2', message: { partition_id: '2', rows: 2, target: table } },
      ],
    });
    // an uncommitted writer leaves no checkpoint
    const w = await sink.writer({ id: '1' }, { ...taskContext({ baseDir: '.', runId: id, schema: SCHEMA, partitionId: '1' }), pipeline });
    await w.write(rows(3, 5));
    await w.close?.();
    expect((await sink.recover?.(cctx))?.partitions).toHaveLength(2);
    // a second attempt of a committed partition (a zombie worker) rolls back and returns the first commit's message
    const zombie = await sink.writer({ id: '0' }, { ...taskContext({ baseDir: '.', runId: id, schema: SCHEMA }), pipeline });
    await zombie.write(rows(1, 3));
    expect(await zombie.commit?.()).toEqual({ partition_id: '0', rows: 2, target: table });
    await zombie.close?.();
    expect(await count(table)).toBe(4);
    await sink.commit?.([], cctx);
    expect(await sink.recover?.(cctx)).toEqual({ jobCommitted: true, partitions: [] });
    await sink.close?.();
  });

  it('load_data: appends through LOAD DATA LOCAL, and a bad row fails its batch without leaving any of it', async () => {
    const table = tableName();
    await admin.query(
      `CREATE TABLE \`${table}\` (id BIGINT PRIMARY KEY, name TEXT NOT NULL, amount DOUBLE, active BOOLEAN, created_at DATETIME(6), meta JSON)`,
    );
    const sink = mysqlConnector.sink?.(options({ table, method: 'load_data' })) ?? expect.unreachable();
    const cctx = { ...commitContext({ baseDir: '.', runId: runId(), schema: SCHEMA }), pipeline };
    await sink.setup?.(cctx);
    const writer = await sink.writer({ id: '0' }, { ...taskContext({ baseDir: '.', runId: cctx.runId, schema: SCHEMA }), pipeline });
    await writer.write([...rows(1, 3), row(3, { name: 'a\tb\nc\\d', meta: null, created_at: null })]);
    const dup = await Promise.resolve(writer.write([row(4), row(1)])).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(RowError);
    expect((dup as RowError).message).toMatch(/Duplicate entry/);
    await writer.commit?.();
    await writer.close?.();
    await sink.commit?.([], cctx);
    await sink.close?.();
    const got = await select(`SELECT id, name, active, created_at FROM \`${table}\` ORDER BY id`);
    expect(got.map((r) => r.id)).toEqual([1, 2, 3]);
    expect(got[2]).toEqual({ id: 3, name: 'a\tb\nc\\d', active: 0, created_at: null });
    expect(got[0]?.created_at).toBe('2024-05-01 10:00:01.250000');
  });

  it('creates the table from the first batch when the source has no schema', async () => {
    const table = tableName();
    await writeRun({ table }, [['0', [[{ a: 1, b: 'x', c: true, d: { k: 1 } }]]]], { schema: undefined });
    expect(await select(`SELECT * FROM \`${table}\``)).toEqual([{ a: 1, b: 'x', c: 1, d: { k: 1 } }]);
  });

  /** Exact values on every write path: decimals, integers beyond 2^53, microseconds, '' and NULL. */
  describe('exact values', () => {
    const dec = (text: string) => Decimal.parse(text) as Decimal;
    const EXACT: Schema = [
      { name: 'id', type: 'integer', nullable: false },
      { name: 'd38', type: 'decimal', precision: 38, scale: 9 },
      { name: 'd30', type: 'decimal', precision: 30, scale: 2 },
      { name: 'price', type: 'decimal', precision: 5, scale: 2 },
      { name: 'wide', type: 'decimal', precision: 70, scale: 3 },
      { name: 'big', type: 'integer' },
      { name: 'at', type: 'timestamp' },
      { name: 'note', type: 'string' },
    ];
    const exactRow = (id: number, price = '375.30'): Row => ({
      id,
      d38: dec(`${id % 2 ? '-' : ''}12345678901234567890123456789.123456789`),
      d30: dec('12345678901234567.89'),
      price: dec(price),
      wide: dec(`${'9'.repeat(67)}.120`),
      big: 2n ** 60n + BigInt(id),
      at: `2024-05-01T10:00:00.${String(123456 + id).padStart(6, '0')}Z`,
      note: id % 3 === 0 ? null : id % 3 === 1 ? '' : 'ü, "q"',
    });
    /** The table's rows with every value as the server's text (no driver conversion in between). */
    const asText = (table: string) =>
      select(
        `SELECT CAST(id AS CHAR) AS id, CAST(d38 AS CHAR) AS d38, CAST(d30 AS CHAR) AS d30, CAST(price AS CHAR) AS price, wide, CAST(big AS CHAR) AS big, CAST(at AS CHAR) AS at, note FROM \`${table}\` ORDER BY id`,
      );
    const expected = (id: number, price = '375.30') => ({
      id: String(id),
      d38: `${id % 2 ? '-' : ''}12345678901234567890123456789.123456789`,
      d30: '12345678901234567.89',
      price,
      wide: `${'9'.repeat(67)}.120`,
      big: String(2n ** 60n + BigInt(id)),
      at: `2024-05-01 10:00:00.${String(123456 + id).padStart(6, '0')}`,
      note: id % 3 === 0 ? null : id % 3 === 1 ? '' : 'ü, "q"',
    });

    it('the session is strict, whatever the server default', async () => {
      const conn = await connect(options({ table: 't' }), { baseDir: '.' });
      try {
        const [[mode]] = await conn.query<mysql.RowDataPacket[]>('SELECT @@SESSION.sql_mode AS m');
        expect(String(mode?.m)).toMatch(/STRICT_TRANS_TABLES/);
      } finally {
        await conn.end();
      }
    });

    it.each([
      ['insert', {}],
      ['upsert', { mode: 'upsert', key_columns: ['id'] }],
      ['load_data', { method: 'load_data' }],
      ['replace (staging table)', { mode: 'replace' }],
    ])('%s: creates DECIMAL(p,s) and BIGINT columns and stores every value exactly', async (_path, input) => {
      const table = tableName('exact');
      await writeRun(
        { table, ...input },
        [
          ['0', [[exactRow(1), exactRow(2)]]],
          ['1', [[exactRow(3), exactRow(4, '0.5')]]],
        ],
        { schema: EXACT },
      );
      const cols = await select(
        'SELECT COLUMN_NAME AS c, COLUMN_TYPE AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
        ['test', table],
      );
      expect(cols.map((c) => `${c.c} ${c.t}`)).toEqual([
        'id bigint(20)',
        'd38 decimal(38,9)',
        'd30 decimal(30,2)',
        'price decimal(5,2)',
        'wide longtext', // beyond DECIMAL(65,30): text keeps it exact
        'big bigint(20)',
        'at datetime(6)',
        'note text',
      ]);
      expect(await asText(table)).toEqual([expected(1), expected(2), expected(3), expected(4, '0.50')]);
      if ('mode' in input && input.mode === 'upsert') {
        await writeRun({ table, ...input }, [['0', [[exactRow(2, '999.99'), exactRow(5)]]]], { schema: EXACT });
        const got = await asText(table);
        expect(got.map((r) => r.price)).toEqual(['375.30', '999.99', '375.30', '0.50', '375.30']);
        expect(got[4]).toEqual(expected(5));
      }
    });

    it.each(['insert', 'load_data'])(
      '%s: a value that would be rounded, truncated or not fit is a row error, and leaves nothing of its batch',
      async (method) => {
        const table = tableName('bad');
        await admin.query(`CREATE TABLE \`${table}\` (id BIGINT PRIMARY KEY, amount DECIMAL(10,2), qty INT, big BIGINT, f DOUBLE)`);
        const schema: Schema = [
          { name: 'id', type: 'integer' },
          { name: 'amount', type: 'decimal' },
          { name: 'qty', type: 'integer' },
          { name: 'big', type: 'integer' },
          { name: 'f', type: 'number' },
        ];
        const sink = mysqlConnector.sink?.(options({ table, method })) ?? expect.unreachable();
        const cctx = { ...commitContext({ baseDir: '.', runId: runId(), schema }), pipeline };
        await sink.setup?.(cctx);
        const writer = await sink.writer({ id: '0' }, { ...taskContext({ baseDir: '.', runId: cctx.runId, schema }), pipeline });
        const good = (id: number): Row => ({ id, amount: dec('1.23'), qty: 1, big: 2n ** 62n, f: dec('0.1') });
        const bad: [Partial<Row>, RegExp][] = [
          [
            { amount: dec('1234567890123456789012345678901234567890') },
            /column amount: .* 40 digit\(s\) before the point; DECIMAL\(10,2\) holds 8/,
          ],
          [{ amount: dec('1.234') }, /column amount: 1\.234 has 3 digit\(s\) after the point; DECIMAL\(10,2\) keeps 2/],
          [{ amount: 'abc' }, /column amount: "abc" is not a decimal number/],
          [{ qty: 'abc' }, /column qty: "abc" is not an integer/],
          [{ qty: 1.5 }, /column qty: 1\.5 has a fraction/],
          [{ qty: '1.5' }, /column qty: "1\.5" has a fraction/],
          [{ qty: '' }, /column qty: "" is not an integer/], // LOAD DATA would read an empty field as 0
          [{ qty: 3_000_000_000 }, /column qty: 3000000000 is out of range for INT/],
          [{ big: 2n ** 63n }, /column big: 9223372036854775808 is out of range for BIGINT/],
          [{ f: '' }, /column f: "" is not a number/],
        ];
        for (const [i, [change, message]] of bad.entries()) {
          const error = await Promise.resolve(writer.write([good(100 + i), { ...good(200 + i), ...change }])).catch((e: unknown) => e);
          expect(
            error,
            JSON.stringify(change, (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
          ).toBeInstanceOf(RowError);
          expect((error as RowError).message).toMatch(message);
        }
        await writer.write([good(1), good(2)]);
        await writer.commit?.();
        await writer.close?.();
        await sink.commit?.([], cctx);
        await sink.close?.();
        expect(await select(`SELECT id, amount, qty, CAST(big AS CHAR) AS big, f FROM \`${table}\` ORDER BY id`)).toEqual([
          { id: 1, amount: '1.23', qty: 1, big: String(2n ** 62n), f: 0.1 },
          { id: 2, amount: '1.23', qty: 1, big: String(2n ** 62n), f: 0.1 },
        ]);
      },
    );

    it.each(['insert', 'load_data'])(
      '%s: decimals into text columns keep their text, into DOUBLE the nearest double; "" stays "" and NULL NULL',
      async (method) => {
        const table = tableName('text');
        await admin.query(
          `CREATE TABLE \`${table}\` (id BIGINT PRIMARY KEY, t TEXT, v VARCHAR(40) NOT NULL, f DOUBLE, j JSON, n DECIMAL(10,2))`,
        );
        const schema: Schema = ['id', 't', 'v', 'f', 'j', 'n'].map((name) => ({ name, type: name === 'id' ? 'integer' : 'string' }));
        const long = '12345678901234567890123456789.123456789';
        await writeRun(
          { table, method },
          [
            [
              '0',
              [
                [
                  { id: 1, t: dec('1305.020020'), v: dec('-0.000100'), f: dec(long), j: { amount: dec('375.30') }, n: null },
                  { id: 2, t: '', v: '', f: null, j: null, n: null },
                  { id: 3, t: null, v: 'x', f: 0.1, j: [2n ** 64n], n: null },
                ],
              ],
            ],
          ],
          { schema },
        );
        const got = await select(`SELECT id, t, v, f, CAST(j AS CHAR) AS j, n, t IS NULL AS t_null FROM \`${table}\` ORDER BY id`);
        expect(got).toEqual([
          { id: 1, t: '1305.020020', v: '-0.000100', f: Number(long), j: '{"amount":375.30}', n: null, t_null: 0 },
          { id: 2, t: '', v: '', f: null, j: null, n: null, t_null: 0 },
          { id: 3, t: null, v: 'x', f: 0.1, j: '[18446744073709551616]', n: null, t_null: 1 },
        ]);
      },
    );
  });
});
