import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBack, sinkConformance } from '../../../test/conformance/harness.js';
import { runYaml } from '../../../test/foundation/harness.js';
import { requireService } from '../../../test/helpers/services.js';
import { formatSummary } from '../../observe/summary.js';
import { type AnyConnector, validateConnectorOptions } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import { commitContext, connectorOptions, taskContext } from '../../sdk/testing.js';
import type { JsonValue, Row, Schema } from '../../sdk/types.js';
import { Decimal } from '../../sdk/values.js';
import { Redactor } from '../../secrets/redactor.js';
import { encodeRows, encodeValue } from './encode.js';
import postgres from './index.js';
import { stageTableName } from './sink.js';

const up = await requireService('postgres');
const BASE = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };
const pipeline = `pg-test-${randomBytes(3).toString('hex')}`;

function options(input: Record<string, unknown>) {
  return connectorOptions(postgres, { ...BASE, ...input }, 'sink');
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

let admin: pg.Client;
const created: string[] = [];
const tableName = (prefix = 't') => {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  created.push(name);
  return name;
};
const newRunId = () => `run-${randomBytes(4).toString('hex')}`;
const select = async (sql: string, values: unknown[] = []) => (await admin.query(sql, values)).rows as Row[];
const count = async (table: string) => Number((await select(`SELECT count(*)::int AS n FROM "${table}"`))[0]?.n);
const ids = async (table: string) => (await select(`SELECT id FROM "${table}" ORDER BY id`)).map((r) => Number(r.id));

interface RunOptions {
  schema?: Schema | undefined;
  runId?: string;
  /** Skip the job commit (the run "crashes" after its partitions). */
  noJobCommit?: boolean;
}

/** A whole run by hand: setup → one writer per partition (one write per batch) → job commit. */
async function writeRun(input: Record<string, unknown>, parts: [id: string, batches: Row[][]][], o: RunOptions = {}) {
  const sink = postgres.sink?.(options(input)) ?? expect.unreachable();
  const schema = 'schema' in o ? o.schema : SCHEMA;
  const cctx = { ...commitContext({ baseDir: '.', runId: o.runId ?? newRunId(), schema }), pipeline };
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
    return { messages, cctx, sink };
  } finally {
    await sink.close?.();
  }
}

describe('COPY text encoding', () => {
  it('escapes backslashes, tabs and line breaks, and writes NULL as \\N', () => {
    expect(encodeValue('a\tb\nc\rd\\e')).toBe('a\\tb\\nc\\rd\\\\e');
    expect(encodeValue(null)).toBe('\\N');
    expect(encodeValue(undefined)).toBe('\\N');
    expect(encodeValue('\\N')).toBe('\\\\N');
    expect(encodeValue(true)).toBe('true');
    expect(encodeValue(Decimal.parse('12345678901234567890123456789.123456789'))).toBe('12345678901234567890123456789.123456789');
    expect(encodeValue(12n)).toBe('12');
    expect(encodeValue(Number.NaN)).toBe('NaN');
    expect(encodeValue(new Date('2024-01-02T03:04:05.678Z'))).toBe('2024-01-02T03:04:05.678Z');
    expect(encodeValue(new Uint8Array([1, 255]))).toBe('\\\\x01ff');
    expect(encodeValue({ a: 'x\ty', b: 2n, c: Decimal.parse('1.50') })).toBe('{"a":"x\\\\ty","b":2,"c":1.50}');
    expect(encodeRows([{ a: 1, b: 'x' }, { a: null }], ['a', 'b'], 0, 2)).toBe('1\tx\n\\N\t\\N\n');
  });
});

beforeAll(async () => {
  if (!up) return;
  admin = new pg.Client(BASE);
  await admin.connect();
  await admin.query("SET TIME ZONE 'UTC'");
});
afterAll(async () => {
  if (!up) return;
  for (const t of created) await admin.query(`DROP TABLE IF EXISTS "${t}"`);
  await admin.query('DELETE FROM _weir_checkpoints WHERE pipeline = ANY($1)', [[pipeline, 'conformance']]).catch(() => {});
  // the conformance harness's writers run with the SDK test context (pipeline "test", run ids "conf-…")
  await admin.query("DELETE FROM _weir_checkpoints WHERE pipeline = 'test' AND run_id LIKE 'conf-%'").catch(() => {});
  await admin.query('DELETE FROM _weir_runs WHERE pipeline = ANY($1)', [[pipeline, 'conformance']]).catch(() => {});
  await admin.end();
});

describe.skipIf(!up)('postgres sink', () => {
  it('validates options: upsert needs key_columns, the sink needs a table and takes no query', () => {
    const check = (input: Record<string, unknown>) =>
      validateConnectorOptions(postgres, { ...BASE, ...input }, 'sink').issues.map((i) => i.message);
    expect(check({ table: 't', mode: 'upsert' }).join()).toMatch(/key_columns is required when mode is upsert/);
    expect(check({ table: 't', key_columns: ['id'] }).join()).toMatch(/only with mode: upsert/);
    expect(check({}).join()).toMatch(/table is required/);
    expect(check({ table: 't', query: 'select 1' }).join()).toMatch(/query is for reading/);
    expect(check({ table: 'bad name' }).join()).toMatch(/plain SQL identifier/);
    expect(check({ table: 't', ssl_enabled: true }).join()).toMatch(/ssl_ca_cert is required/);
    expect(check({ table: 't', partition_column: 'id' }).join()).toMatch(/partition_column and partitions split a source/);
    expect(check({ table: 't', mode: 'merge' }).join()).toMatch(/must be one of "append", "upsert", "replace"/);
    expect(check({ table: 't', password: 'hunter2', port: 0 }).join()).not.toMatch(/hunter2/);
  });

  it('append: creates the table from the schema, stores every type, publishes each partition with its checkpoint', async () => {
    const table = tableName();
    const { messages, cctx } = await writeRun({ table }, [
      ['0', [rows(1, 4)]],
      [
        '1',
        [
          [
            row(10, { name: null, meta: null, amount: null, created_at: new Date('2024-06-01T00:00:00.123Z') }),
            row(11, { name: 'tab\there "q" \\ ü 🎉\nline', meta: [1, 'x'], amount: 1e21 }),
          ],
        ],
      ],
    ]);
    expect(messages).toEqual([
      { partition_id: '0', rows: 3, columns: SCHEMA.map((c) => c.name), batches: 1 },
      { partition_id: '1', rows: 2, columns: SCHEMA.map((c) => c.name), batches: 1 },
    ]);
    const cols = await select(
      `SELECT column_name AS c, data_type AS t, is_nullable AS n FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`,
      [table],
    );
    expect(cols.map((c) => `${c.c} ${c.t} ${c.n}`)).toEqual([
      'id bigint NO',
      'name text YES',
      'amount double precision YES',
      'active boolean YES',
      'created_at timestamp with time zone YES',
      'meta jsonb YES',
    ]);
    const got = await select(`SELECT id::int, name, amount, active, created_at::text AS created_at, meta FROM "${table}" ORDER BY id`);
    expect(got).toHaveLength(5);
    expect(got[0]).toEqual({
      id: 1,
      name: 'n1',
      amount: 0.25,
      active: false,
      created_at: '2024-05-01 10:00:01.25+00',
      meta: { id: 1, tags: ['a', 'b'] },
    });
    expect(got[3]).toMatchObject({ id: 10, name: null, amount: null, meta: null, created_at: '2024-06-01 00:00:00.123+00' });
    expect(got[4]).toMatchObject({ name: 'tab\there "q" \\ ü 🎉\nline', meta: [1, 'x'], amount: 1e21 });
    // the job commit replaced the run's checkpoints with its run mark
    expect(await select('SELECT partition_id FROM _weir_checkpoints WHERE pipeline = $1 AND run_id = $2', [pipeline, cctx.runId])).toEqual(
      [],
    );
    expect(
      await select('SELECT partitions::int AS partitions, rows_written::int AS rows FROM _weir_runs WHERE pipeline = $1 AND run_id = $2', [
        pipeline,
        cctx.runId,
      ]),
    ).toEqual([{ partitions: 2, rows: 5 }]);
  });

  it('append without a declared schema: the first row decides the columns', async () => {
    const table = tableName();
    await writeRun({ table }, [['0', [[{ id: 1, label: 'x', at: new Date('2024-01-01T00:00:00Z') }]]]], { schema: undefined });
    const cols = await select(
      `SELECT column_name AS c, data_type AS t FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`,
      [table],
    );
    expect(cols.map((c) => `${c.c} ${c.t}`)).toEqual(['id bigint', 'label text', 'at timestamp with time zone']);
    expect(await count(table)).toBe(1);
  });

  it('refuses a table without the columns the source produces, and a missing table with create_table: false', async () => {
    const narrow = tableName();
    await admin.query(`CREATE TABLE "${narrow}" (id bigint)`);
    const error = await writeRun({ table: narrow }, [['0', [rows(1, 2)]]]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WeirError);
    expect((error as WeirError).kind).toBe('config');
    expect((error as Error).message).toMatch(/has no column "name", "amount", "active", "created_at", "meta", which the source produces/);
    await expect(writeRun({ table: tableName(), create_table: false }, [['0', [rows(1, 2)]]])).rejects.toThrow(
      /does not exist and create_table is false/,
    );
  });

  it('upsert: inserts new keys and updates existing ones; the last row of a batch wins', async () => {
    const table = tableName();
    await admin.query(
      `CREATE TABLE "${table}" (id bigint PRIMARY KEY, name text, amount float8, active boolean, created_at timestamptz, meta jsonb, untouched int DEFAULT 7)`,
    );
    await writeRun({ table, mode: 'upsert', key_columns: ['id'] }, [['0', [rows(1, 6)]]]);
    await writeRun({ table, mode: 'upsert', key_columns: ['id'] }, [
      ['0', [[row(2, { name: 'two' }), row(3, { name: 'three' }), row(2, { name: 'two again' })], [row(3, { name: 'three again' })]]],
      ['1', [[row(7, { name: 'seven' })]]],
    ]);
    const got = await select(`SELECT id::int, name, untouched FROM "${table}" ORDER BY id`);
    expect(got.map((r) => [r.id, r.name])).toEqual([
      [1, 'n1'],
      [2, 'two again'],
      [3, 'three again'],
      [4, 'n4'],
      [5, 'n5'],
      [7, 'seven'],
    ]);
    expect(got.every((r) => r.untouched === 7)).toBe(true);
  });

  it("upsert: the run's summary splits the rows written into inserted and updated, as the merge says", async () => {
    const table = tableName();
    const yaml = (from: number, to: number) =>
      `pipeline: ${pipeline}-split-${from}\nsource: { type: generator, rows: ${to - from}, start_id: ${from}, partitions: 2 }\n` +
      `sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${table}, mode: upsert, key_columns: [id], batch_size: 70 }\n`;
    const first = await runYaml(yaml(1, 301));
    expect(first.summary.status, first.logs).toBe('succeeded');
    expect(first.summary.totals).toMatchObject({ rows_written: 300, rows_inserted: 300, rows_updated: 0 });
    // 200..499: 200..300 exist, 301..499 are new
    const second = await runYaml(yaml(200, 500));
    expect(second.summary.totals).toMatchObject({ rows_written: 300, rows_inserted: 199, rows_updated: 101 });
    expect(formatSummary(second.summary, new Redactor())).toMatch(/300 written \(199 inserted, 101 updated\)/);
    expect(await count(table)).toBe(499);
    // append mode does not claim a split
    const appended = await runYaml(
      `pipeline: ${pipeline}-append\nsource: { type: generator, rows: 5 }\nsink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${tableName()} }\n`,
    );
    expect(appended.summary.totals.rows_inserted).toBeUndefined();
  });

  it('upsert: creates the table with key_columns as its primary key; refuses keys without a unique index', async () => {
    const table = tableName();
    await writeRun({ table, mode: 'upsert', key_columns: ['name'] }, [
      ['0', [[row(1, { name: 'a' }), row(2, { name: 'a' }), row(3, { name: 'b' })]]],
    ]);
    expect(await select(`SELECT id::int, name FROM "${table}" ORDER BY name`)).toEqual([
      { id: 2, name: 'a' },
      { id: 3, name: 'b' },
    ]);
    const plain = tableName();
    await admin.query(
      `CREATE TABLE "${plain}" (id bigint PRIMARY KEY, name text, amount float8, active boolean, created_at timestamptz, meta jsonb)`,
    );
    const error = await writeRun({ table: plain, mode: 'upsert', key_columns: ['name'] }, [['0', [rows(1, 2)]]]).catch((e: unknown) => e);
    expect((error as WeirError).kind).toBe('config');
    expect((error as Error).message).toMatch(/needs a primary key or unique index on exactly \(name\).*CREATE UNIQUE INDEX/);
    await expect(writeRun({ table: tableName(), mode: 'upsert', key_columns: ['nope'] }, [['0', [rows(1, 2)]]])).rejects.toThrow(
      /key_columns "nope" are not columns of the source rows/,
    );
  });

  it('replace: the table keeps its old rows until the job commit, and a failed run leaves them untouched', async () => {
    const table = tableName();
    await writeRun({ table }, [['0', [rows(1, 4)]]]);
    // a run that dies before its job commit: nothing changes
    const { cctx } = await writeRun({ table, mode: 'replace' }, [['0', [rows(100, 103)]]], { noJobCommit: true });
    expect(await ids(table)).toEqual([1, 2, 3]);
    const stage = stageTableName(cctx.runId, table);
    expect(await count(stage)).toBe(3);
    // its job abort drops the staging table and the checkpoints together
    const sink = postgres.sink?.(options({ table, mode: 'replace' })) ?? expect.unreachable();
    await sink.abort?.([], cctx);
    await sink.abort?.([], cctx);
    expect((await select('SELECT to_regclass($1) AS r', [stage]))[0]?.r).toBeNull();
    expect(await select('SELECT 1 FROM _weir_checkpoints WHERE pipeline = $1 AND run_id = $2', [pipeline, cctx.runId])).toEqual([]);
    expect(await ids(table)).toEqual([1, 2, 3]);
    // a run that commits replaces every row; its job commit is idempotent
    const done = await writeRun({ table, mode: 'replace' }, [
      ['0', [rows(10, 12)]],
      ['1', [rows(20, 21)]],
    ]);
    expect(await ids(table)).toEqual([10, 11, 20]);
    await done.sink.commit?.(done.messages, done.cctx);
    expect(await ids(table)).toEqual([10, 11, 20]);
  });

  it('a failed batch leaves nothing of itself; a retried batch is written once; abort leaves nothing at all', async () => {
    const table = tableName();
    await admin.query(
      `CREATE TABLE "${table}" (id bigint PRIMARY KEY, name text NOT NULL, amount float8, active boolean, created_at timestamptz, meta jsonb)`,
    );
    const sink = postgres.sink?.(options({ table, batch_size: 10 })) ?? expect.unreachable();
    const cctx = { ...commitContext({ baseDir: '.', runId: newRunId(), schema: SCHEMA }), pipeline };
    await sink.setup?.(cctx);
    const writer = await sink.writer({ id: '0' }, { ...taskContext({ baseDir: '.', runId: cctx.runId, schema: SCHEMA }), pipeline });
    await writer.write(rows(1, 3));
    // a duplicate key after 2500 good rows (several COPY chunks): none of them may stay behind
    const dup = await Promise.resolve(writer.write([...rows(3, 2503), row(1)])).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(RowError);
    expect((dup as RowError).code).toBe('23505');
    expect((dup as Error).message).toMatch(/Key \(id\)=\(1\) already exists/);
    const bad = await Promise.resolve(writer.write([row(5, { name: null })])).catch((e: unknown) => e);
    expect((bad as RowError).code).toBe('23502');
    const text = await Promise.resolve(writer.write([row(6, { amount: 'lots' })])).catch((e: unknown) => e);
    expect((text as Error).message).toMatch(/invalid input syntax for type double precision: "lots".*line 1, column amount/);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const enc = await Promise.resolve(writer.write([row(7, { meta: circular })])).catch((e: unknown) => e);
    expect((enc as WeirError).kind).toBe('data');
    await writer.write([row(3), row(4)]); // the same rows again, as a retry would send them
    expect(await count(table)).toBe(0); // nothing visible before the commit
    await writer.commit?.();
    await writer.close?.();
    expect(await ids(table)).toEqual([1, 2, 3, 4]);

    const second = await sink.writer(
      { id: '1' },
      { ...taskContext({ baseDir: '.', runId: cctx.runId, schema: SCHEMA, partitionId: '1' }), pipeline },
    );
    await second.write(rows(10, 20));
    await second.abort?.();
    await second.abort?.();
    await second.close?.();
    expect(await ids(table)).toEqual([1, 2, 3, 4]);
    expect(await select('SELECT partition_id FROM _weir_checkpoints WHERE pipeline = $1 AND run_id = $2', [pipeline, cctx.runId])).toEqual([
      { partition_id: '0' },
    ]);
  });

  it('exactly-once: recover() returns the committed partitions of a run; a second attempt of a committed partition adds nothing', async () => {
    const table = tableName();
    const runId = newRunId();
    const { sink } = await writeRun(
      { table },
      [
        ['0', [rows(1, 5)]],
        ['1', [rows(5, 8)]],
      ],
      { runId, noJobCommit: true },
    );
    const cctx = { ...commitContext({ baseDir: '.', runId, schema: SCHEMA }), pipeline };
    const state = await sink.recover?.(cctx);
    expect(state?.jobCommitted).toBe(false);
    expect(state?.partitions.map((p) => p.partition_id)).toEqual(['0', '1']);
    expect(state?.partitions[0]?.message).toMatchObject({ partition_id: '0', rows: 4 });
    // the same partition again (e.g. its commit was acknowledged too late): rolled back, the first commit wins
    const again = await sink.writer({ id: '1' }, { ...taskContext({ baseDir: '.', runId, schema: SCHEMA, partitionId: '1' }), pipeline });
    await again.write(rows(5, 8));
    expect(await again.commit?.()).toMatchObject({ partition_id: '1', rows: 3 });
    await again.close?.();
    expect(await ids(table)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    await sink.commit?.(state?.partitions.map((p) => p.message) ?? [], cctx);
    expect(await sink.recover?.(cctx)).toEqual({ jobCommitted: true, partitions: [] });
    expect(await sink.recover?.({ ...cctx, runId: 'never-ran' })).toEqual({ jobCommitted: false, partitions: [] });
  });

  it('a connection lost mid-partition fails the partition (not retryable); lost before any row it is retryable', async () => {
    const table = tableName();
    const sink = postgres.sink?.(options({ table, application_name: `weir-kill-${table}` })) ?? expect.unreachable();
    const cctx = { ...commitContext({ baseDir: '.', runId: newRunId(), schema: SCHEMA }), pipeline };
    await sink.setup?.(cctx);
    const kill = () =>
      admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1', [`weir-kill-${table}%`]);
    const writer = await sink.writer({ id: '0' }, { ...taskContext({ baseDir: '.', runId: cctx.runId, schema: SCHEMA }), pipeline });
    await writer.write(rows(1, 3));
    await kill();
    const lost = await Promise.resolve(writer.write(rows(3, 5))).catch((e: unknown) => e);
    expect(lost).toBeInstanceOf(WeirError);
    expect((lost as WeirError).retryable).toBe(false);
    expect((lost as Error).message).toMatch(/connection to public\.t_\w+ lost after 2 row\(s\) of partition 0/);
    await expect(Promise.resolve(writer.commit?.())).rejects.toThrow(/lost after 2 row/);
    await writer.abort?.();
    await writer.close?.();

    const fresh = await sink.writer(
      { id: '1' },
      { ...taskContext({ baseDir: '.', runId: cctx.runId, schema: SCHEMA, partitionId: '1' }), pipeline },
    );
    await fresh.write([]);
    await fresh.write(rows(10, 11));
    await fresh.commit?.();
    await fresh.close?.();
    expect(await ids(table)).toEqual([10]);
  });

  it('through runPipeline: a batch blocked past statement_timeout is rolled back and retried, and lands once', async () => {
    const table = tableName();
    await admin.query(`CREATE TABLE "${table}" (id bigint PRIMARY KEY, value text)`);
    const locker = new pg.Client(BASE);
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE "${table}" IN EXCLUSIVE MODE`);
    const release = setTimeout(() => void locker.query('COMMIT'), 1200);
    try {
      const { summary } = await runYaml(
        `
pipeline: ${pipeline}-retry
source: { type: test-source, rows: 500, partitions: 2 }
sink: { type: postgres, database: test, table: ${table}, batch_size: 100, statement_timeout: 300ms }
delivery: exactly-once
retry: { max_attempts: 20, initial_delay: 200ms, max_delay: 400ms }
`,
        [(await import('../../sdk/testing.js')).testSource as unknown as AnyConnector],
      );
      expect(summary.status).toBe('succeeded');
      expect(summary.totals.retries).toBeGreaterThan(0);
      expect(await ids(table)).toEqual(Array.from({ length: 500 }, (_, i) => i));
    } finally {
      clearTimeout(release);
      await locker.end();
      await admin.query('DELETE FROM _weir_runs WHERE pipeline = $1', [`${pipeline}-retry`]);
    }
  });

  it('through runPipeline: bad rows go to the dead-letter file, the rest commit, and counts add up', async () => {
    const table = tableName();
    await admin.query(`CREATE TABLE "${table}" (id bigint PRIMARY KEY, value text CHECK (value <> 'BAD'))`);
    const { summary } = await runYaml(
      `
pipeline: ${pipeline}-dl
source: { type: test-source, rows: 300, partitions: 3, bad_every: 7 }
sink: { type: postgres, database: test, table: ${table}, batch_size: 40 }
delivery: exactly-once
errors: { tolerance: all, dead_letter: { type: jsonl, path: rejected.jsonl } }
`,
      [(await import('../../sdk/testing.js')).testSource as unknown as AnyConnector],
    );
    expect(summary.status).toBe('succeeded');
    const bad = Array.from({ length: 300 }, (_, i) => i).filter((i) => i % 7 === 0).length;
    expect(summary.totals.rows_dead_lettered).toBe(bad);
    expect(summary.totals.rows_written).toBe(300 - bad);
    expect(await count(table)).toBe(300 - bad);
    await admin.query('DELETE FROM _weir_runs WHERE pipeline = $1', [`${pipeline}-dl`]);
  });

  for (const existing of [true, false])
    it(`through runPipeline: a failed partition rolls back whole; ${existing ? 'in a table that existed, the others stay committed with checkpoints for resume' : 'the table the run created is dropped, with its checkpoints'}`, async () => {
      const table = tableName();
      const name = `${pipeline}-fail-${existing}`;
      if (existing) await admin.query(`CREATE TABLE "${table}" (id bigint, value text)`);
      const { summary } = await runYaml(
        `
pipeline: ${name}
source: { type: test-source, rows: 300, partitions: 3, fail_partition: '1', fail_after: 50 }
sink: { type: postgres, database: test, table: ${table}, batch_size: 20 }
concurrency: 1
delivery: exactly-once
`,
        [(await import('../../sdk/testing.js')).testSource as unknown as AnyConnector],
      );
      expect(summary.status).toBe('failed');
      expect(summary.sink_transactional).toBe(false);
      const cps = await select('SELECT partition_id FROM _weir_checkpoints WHERE pipeline = $1', [name]);
      const left = await select('SELECT target FROM _weir_created_tables WHERE pipeline = $1', [name]);
      expect(left).toEqual([]);
      if (existing) {
        const got = await ids(table);
        expect(got.every((id) => id < 100)).toBe(true); // partition 0 only; nothing of partition 1
        expect(got).toHaveLength(100);
        expect(cps).toEqual([{ partition_id: '0' }]);
      } else {
        expect((await select('SELECT to_regclass($1) AS r', [table]))[0]?.r).toBeNull();
        expect(cps).toEqual([]);
      }
      await admin.query('DELETE FROM _weir_checkpoints WHERE pipeline = $1', [name]);
    });
});

if (up) {
  // the shared suite: with mode replace, nothing is visible before the job commit and abort leaves nothing
  sinkConformance(postgres as unknown as AnyConnector, {
    baseDir: '.',
    options: () => ({ ...BASE, table: tableName('conf'), mode: 'replace' }),
    read: async (o) => {
      const exists = (await select('SELECT to_regclass($1) AS r', [String(o.table)]))[0]?.r;
      return exists ? readBack(postgres as unknown as AnyConnector, o, '.') : [];
    },
  });
}
