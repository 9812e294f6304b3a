import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { requireService } from '../../../test/helpers/services.js';
import { validateConnectorOptions } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import { collect, connectorOptions, planContext, silentLog, taskContext } from '../../sdk/testing.js';
import { type Partition, type Row, RUN_ONLY } from '../../sdk/types.js';
import { Decimal } from '../../sdk/values.js';
import postgres from './index.js';
import { rangeQuery, splitRange } from './partitions.js';

const up = await requireService('postgres');
const BASE = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };

function options(input: Record<string, unknown>) {
  return connectorOptions(postgres, { ...BASE, ...input }, 'source');
}

let admin: pg.Client;
const created: string[] = [];
const tableName = (prefix = 's') => {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  created.push(name);
  return name;
};

/** Every row of every partition, and the partitions. */
async function readAll(input: Record<string, unknown>) {
  const source = postgres.source?.(options(input)) ?? expect.unreachable();
  const plan = planContext({ baseDir: '.' });
  const schema = await source.schema?.(plan);
  const partitions = (await source.partitions?.(plan)) ?? [{ id: '0' }];
  expect(JSON.parse(JSON.stringify(partitions))).toEqual(partitions);
  const rows: Row[] = [];
  const perPartition: number[] = [];
  try {
    for (const p of partitions) {
      const got = await collect<Row>(source.read(p, taskContext({ baseDir: '.', partitionId: p.id, schema })));
      perPartition.push(got.length);
      rows.push(...got);
    }
  } finally {
    await source.close?.();
  }
  return { schema, partitions, rows, perPartition };
}

describe('range splitting', () => {
  it('splits integers exactly, numbers evenly and timestamps by time; bounds are bound parameters', () => {
    expect(splitRange('integer', 1, 10, 3)).toEqual(['4', '7']);
    expect(splitRange('integer', 1n, 2n ** 62n, 2)).toEqual([String(1n + 2n ** 62n / 2n)]);
    expect(splitRange('integer', 5, 5, 4)).toEqual(['5']);
    expect(splitRange('number', 0, 1, 4)).toEqual(['0.25', '0.5', '0.75']);
    expect(splitRange('time', '2024-01-01', '2024-01-05', 4)).toEqual([
      '2024-01-02T00:00:00.000Z',
      '2024-01-03T00:00:00.000Z',
      '2024-01-04T00:00:00.000Z',
    ]);
    expect(splitRange('time', '2024-01-01T00:00:00.000001', '2024-01-01T00:00:02', 2)).toEqual(['2024-01-01T00:00:01.000Z']);
    const p: Partition = { id: '1', lo: '4', hi: '7' };
    expect(rangeQuery('"public"."t"', 'id', p)).toEqual({
      sql: 'SELECT * FROM "public"."t" WHERE "id" >= $1 AND "id" < $2',
      params: ['4', '7'],
    });
    expect(rangeQuery('"public"."t"', 'id', { id: '0', lo: null, hi: '4' }).sql).toMatch(/"id" < \$1 OR "id" IS NULL/);
  });

  it('validates options: table or query, partitions need partition_column', () => {
    const check = (input: Record<string, unknown>) =>
      validateConnectorOptions(postgres, { ...BASE, ...input }, 'source').issues.map((i) => i.message);
    expect(check({}).join()).toMatch(/one of table, query is required/);
    expect(check({ table: 't', query: 'select 1' }).join()).toMatch(/cannot be used together/);
    expect(check({ query: 'select 1', partitions: 4 }).join()).toMatch(
      /partitions is 4 but partition_column is not set; a query is split by a column/,
    );
    expect(check({ table: 't', partitions: 4 })).toEqual([]);
    expect(check({ table: 't', partition_column: 'id', partitions: 4 })).toEqual([]);
    expect(check({ table: 't', key_columns: ['id'] }).join()).toMatch(/key_columns is a sink option/);
  });
});

beforeAll(async () => {
  if (!up) return;
  admin = new pg.Client(BASE);
  await admin.connect();
});
afterAll(async () => {
  if (!up) return;
  for (const t of created) await admin.query(`DROP TABLE IF EXISTS "${t}"`);
  await admin.end();
});

describe.skipIf(!up)('postgres source', () => {
  it('reads numeric, bigint, jsonb numbers and timestamptz exactly, with numeric precision and scale', async () => {
    const table = tableName();
    await admin.query(`CREATE TABLE "${table}" (id int, n numeric, p numeric(30,2), b bigint, j jsonb, at timestamptz)`);
    await admin.query(
      `INSERT INTO "${table}" VALUES
       (1, '12345678901234567890123456789.123456789', '375.30', 9223372036854775807, '{"x": 12345678901234567890.10, "y": 1.50}', '2024-05-01 10:00:00.123456+00'),
       (2, 'NaN', '-0.01', -9223372036854775808, '[1, 2]', '1999-12-31 23:59:59.999999+00')`,
    );
    const { schema, rows } = await readAll({ table });
    expect(schema?.find((c) => c.name === 'p')).toMatchObject({ type: 'decimal', precision: 30, scale: 2 });
    expect(schema?.find((c) => c.name === 'n')).toEqual({ name: 'n', type: 'decimal', nullable: true });
    const d = (t: string) => Decimal.parse(t);
    expect([...rows].sort((a, b) => Number(a.id) - Number(b.id))).toEqual([
      {
        id: 1,
        n: d('12345678901234567890123456789.123456789'),
        p: d('375.30'),
        b: 9223372036854775807n,
        j: { x: d('12345678901234567890.10'), y: d('1.50') },
        at: '2024-05-01T10:00:00.123456Z',
      },
      { id: 2, n: Number.NaN, p: d('-0.01'), b: -9223372036854775808n, j: [1, 2], at: '1999-12-31T23:59:59.999999Z' },
    ]);
  });

  it('reads a table with its schema; values keep their precision', async () => {
    const table = tableName();
    await admin.query(`CREATE TABLE "${table}" (
      id bigint, small int, price numeric(12,2), ratio float8, ok boolean, label text, code varchar(5), at timestamptz, local timestamp,
      day date, doc jsonb, took interval, tags text[], raw bytea)`);
    await admin.query(
      `INSERT INTO "${table}" VALUES
       (9007199254740993, 1, 12.34, 0.5, true, 'tab\there', 'ab', '2024-05-01 10:00:00.123456+02', '2024-05-01 10:00:00.5', '2024-05-01', '{"a":[1,2]}', '1 day 02:00:00', '{x,y}', '\\x01ff'),
       (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
    );
    const { schema, rows, partitions } = await readAll({ table, fetch_size: 1 });
    expect(partitions).toEqual([{ id: '0' }]);
    expect(schema?.map((c) => `${c.name}:${c.type}`)).toEqual([
      'id:integer',
      'small:integer',
      'price:decimal',
      'ratio:number',
      'ok:boolean',
      'label:string',
      'code:string',
      'at:timestamp',
      'local:timestamp',
      'day:timestamp',
      'doc:json',
      'took:string',
      'tags:json',
      'raw:string',
    ]);
    const first = rows.find((r) => r.small === 1) as Row;
    expect(first).toMatchObject({
      id: 9007199254740993n,
      price: Decimal.parse('12.34'),
      ratio: 0.5,
      ok: true,
      label: 'tab\there',
      code: 'ab',
      at: '2024-05-01T08:00:00.123456Z',
      local: '2024-05-01T10:00:00.5',
      day: '2024-05-01',
      doc: { a: [1, 2] },
      took: '1 day 02:00:00',
      tags: ['x', 'y'],
    });
    expect(Buffer.from(first.raw as Uint8Array).toString('hex')).toBe('01ff');
    expect(rows.find((r) => r.id === 2)).toMatchObject({ small: null, at: null, doc: null });
    expect(await postgres.source?.(options({ table })).estimate?.(planContext({ baseDir: '.' }))).toSatisfy(
      (n) => n === undefined || typeof n === 'number',
    );
  });

  it('splits by a numeric key into ranges that cover every row once, NULL keys included', async () => {
    const table = tableName();
    await admin.query(
      `CREATE TABLE "${table}" AS SELECT g AS id, CASE WHEN g % 100 = 0 THEN NULL ELSE g * 3 END AS k, md5(g::text) AS v FROM generate_series(1, 5000) g`,
    );
    const { partitions, rows, perPartition } = await readAll({ table, partition_column: 'k', partitions: 4, fetch_size: 333 });
    expect(partitions.map((p) => p.id)).toEqual(['0', '1', '2', '3']);
    expect(rows).toHaveLength(5000);
    expect(new Set(rows.map((r) => r.id)).size).toBe(5000);
    expect(perPartition.every((n) => n > 1000 && n < 1400)).toBe(true);
    // numeric (not integer) keys too
    const floats = await readAll({ query: `SELECT id, k / 7.0 AS f FROM "${table}";`, partition_column: 'f', partitions: 3 });
    expect(floats.rows).toHaveLength(5000);
    expect(new Set(floats.rows.map((r) => r.id)).size).toBe(5000);
  });

  it('splits a table without a partition column into ranges of its blocks, in the order a plain scan reads', async () => {
    const table = tableName();
    await admin.query(`CREATE TABLE "${table}" AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g`);
    await admin.query(`DELETE FROM "${table}" WHERE id % 7 = 0`);
    const { partitions, rows, perPartition } = await readAll({ table, partitions: 4 });
    expect(partitions.map((p) => p.blocks)).toEqual([
      [0, expect.any(Number)],
      [expect.any(Number), expect.any(Number)],
      [expect.any(Number), expect.any(Number)],
      [expect.any(Number), null],
    ]);
    expect(perPartition.every((n) => n > 3500 && n < 5100)).toBe(true);
    const scan = await admin.query<{ id: number }>(`SELECT id FROM "${table}"`);
    expect(rows.map((r) => r.id)).toEqual(scan.rows.map((r) => r.id));
    // one snapshot for all, and not part of what identifies the plan
    const snapshots = new Set(partitions.map((p) => JSON.stringify(p[RUN_ONLY])));
    expect(snapshots.size).toBe(1);
    expect([...snapshots][0]).toMatch(/^\{"snapshot":"[0-9A-F]+-[0-9A-F]+-\d+"\}$/);
    // a one-block table, and an empty one, are one partition
    const small = tableName();
    await admin.query(`CREATE TABLE "${small}" AS SELECT 1 AS id`);
    expect((await readAll({ table: small, partitions: 4 })).partitions).toEqual([{ id: '0', blocks: [0, null] }]);
    await admin.query(`TRUNCATE "${small}"`);
    expect((await readAll({ table: small, partitions: 4 })).rows).toEqual([]);
  });

  it('every partition reads the snapshot of the plan: rows moved, deleted or added meanwhile are read as they were', async () => {
    const table = tableName();
    await admin.query(`CREATE TABLE "${table}" AS SELECT g AS id, 'v' || g AS v FROM generate_series(1, 3000) g`);
    for (const split of [{ partition_column: 'id' }, {}]) {
      const source = postgres.source?.(options({ table, partitions: 3, ...split })) ?? expect.unreachable();
      const plan = planContext({ baseDir: '.' });
      const schema = await source.schema?.(plan);
      const partitions = JSON.parse(JSON.stringify(await source.partitions?.(plan))) as Partition[];
      expect(partitions).toHaveLength(3);
      const read = (p: Partition) => collect<Row>(source.read(p, taskContext({ baseDir: '.', partitionId: p.id, schema })));
      const rows: Row[] = [];
      try {
        rows.push(...(await read(partitions[0] as Partition)));
        // after the first partition was read: the first ten rows move into the last range, others go, new ones come
        await admin.query(`UPDATE "${table}" SET id = id + 100000, v = 'moved' WHERE id <= 10`);
        await admin.query(`DELETE FROM "${table}" WHERE id BETWEEN 1500 AND 1509`);
        await admin.query(`INSERT INTO "${table}" SELECT g, 'new' FROM generate_series(5001, 5005) g`);
        // the plan's share lock: the table cannot be truncated under the run
        const truncate = await admin
          .query(`BEGIN; SET LOCAL lock_timeout = '200ms'; TRUNCATE "${table}"`)
          .catch((e: { code?: string }) => e.code);
        await admin.query('ROLLBACK');
        expect(truncate).toBe('55P03');
        for (const p of partitions.slice(1)) rows.push(...(await read(p)));
      } finally {
        await source.close?.();
      }
      expect(rows.map((r) => r.id).sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
      expect(rows.every((r) => r.v === `v${r.id}`)).toBe(true);
      // the planner ended first (a detached run): the partition reads a snapshot of its own, and says so
      const warned: string[] = [];
      const log = { ...silentLog, warn: (message: string) => void warned.push(message) };
      const alone = await collect<Row>(
        source.read(partitions[1] as Partition, taskContext({ baseDir: '.', partitionId: '1', schema, log })),
      );
      expect(alone.length).toBeGreaterThan(900);
      expect(warned.join('\n')).toMatch(/partition 1 reads a snapshot of its own: the run's snapshot is gone/);
      await admin.query(`DELETE FROM "${table}"; INSERT INTO "${table}" SELECT g, 'v' || g FROM generate_series(1, 3000) g`);
    }
  });

  it('splits by timestamp, timestamp without time zone and date keys', async () => {
    const table = tableName();
    await admin.query(
      `CREATE TABLE "${table}" AS SELECT g AS id, timestamptz '2024-01-01 00:00:00+00' + g * interval '17 minutes 0.000123 s' AS at,
              timestamp '2024-01-01' + g * interval '1 hour' AS local, date '2024-01-01' + (g / 10) AS day FROM generate_series(1, 3000) g`,
    );
    for (const column of ['at', 'local', 'day']) {
      const { rows, partitions, perPartition } = await readAll({ table, partition_column: column, partitions: 5 });
      expect(partitions).toHaveLength(5);
      expect(rows).toHaveLength(3000);
      expect(new Set(rows.map((r) => r.id)).size).toBe(3000);
      expect(perPartition.filter((n) => n > 0)).toHaveLength(5);
    }
  });

  it('an empty table is one partition; a bad partition column or a missing table is a config error', async () => {
    const table = tableName();
    await admin.query(`CREATE TABLE "${table}" (id int, name text)`);
    expect((await readAll({ table, partition_column: 'id', partitions: 4 })).partitions).toHaveLength(1);
    const plan = planContext({ baseDir: '.' });
    const textKey = await Promise.resolve(
      postgres.source?.(options({ table, partition_column: 'name', partitions: 2 })).partitions?.(plan),
    ).catch((e: unknown) => e);
    expect((textKey as WeirError).kind).toBe('config');
    expect((textKey as Error).message).toMatch(/partition_column name has type text, which cannot be split/);
    const unknown = await Promise.resolve(
      postgres.source?.(options({ table, partition_column: 'nope', partitions: 2 })).partitions?.(plan),
    ).catch((e: unknown) => e);
    expect((unknown as Error).message).toMatch(/partition_column nope is not a column of public\.s_\w+ \(columns: id, name\)/);
    const missing = await Promise.resolve(postgres.source?.(options({ table: 'no_such_table_here' })).schema?.(plan)).catch(
      (e: unknown) => e,
    );
    expect(missing).toBeInstanceOf(WeirError);
    expect((missing as WeirError).kind).toBe('config');
    expect((missing as Error).message).toMatch(/source table public\.no_such_table_here does not exist in database test/);
    const badQuery = await Promise.resolve(postgres.source?.(options({ query: 'SELEC 1' })).schema?.(plan)).catch((e: unknown) => e);
    expect((badQuery as WeirError).kind).toBe('config');
  });

  it('postgres → postgres through runPipeline: 4 ranges, exactly-once, every row once', async () => {
    const from = tableName();
    const to = tableName();
    await admin.query(
      `CREATE TABLE "${from}" AS SELECT g::bigint AS id, 'row ' || g AS name, g / 3.0 AS amount, now() AS at FROM generate_series(1, 20000) g`,
    );
    const { summary } = await runYaml(`
pipeline: pg-to-pg-${from}
source: { type: postgres, database: test, table: ${from}, partition_column: id, partitions: 4, fetch_size: 2500 }
sink: { type: postgres, database: test, table: ${to}, batch_size: 3000 }
delivery: exactly-once
`);
    expect(summary.status).toBe('succeeded');
    expect(summary.totals.rows_written).toBe(20000);
    const r = await admin.query(`SELECT count(*)::int AS n, count(DISTINCT id)::int AS d, sum(id)::bigint::text AS s FROM "${to}"`);
    expect(r.rows[0]).toEqual({ n: 20000, d: 20000, s: String((20000 * 20001) / 2) });
    await admin.query('DELETE FROM _weir_runs WHERE pipeline = $1', [`pg-to-pg-${from}`]);
  });
});

describe.skipIf(!up)('postgres health checks', () => {
  const check = (input: Record<string, unknown>, role: 'source' | 'sink' = 'sink') =>
    postgres.check?.(options(input), { ...planContext({ baseDir: '.' }), role }) ?? expect.unreachable();

  it('passes for a reachable server and an existing table; a missing table is fine for a sink that creates it', async () => {
    const table = tableName();
    await admin.query(`CREATE TABLE "${table}" (id int)`);
    const results = await check({ table });
    expect(results.map((r) => r.name)).toEqual(['connection', 'authentication', 'target']);
    expect(results.every((r) => r.ok)).toBe(true);
    expect(results[1]?.message).toMatch(/logged in to postgres:\/\/postgres@127\.0\.0\.1:5432\/test as postgres \(PostgreSQL \d+/);
    const toCreate = await check({ table: 'not_there_yet' }, 'sink');
    expect(toCreate[2]).toMatchObject({ ok: true, message: expect.stringMatching(/will be created/) });
    expect((await check({ table: 'not_there_yet' }, 'source'))[2]).toMatchObject({
      ok: false,
      message: expect.stringMatching(/does not exist/),
    });
    expect((await check({ query: 'SELECT 1 AS x' }, 'source'))[2]?.ok).toBe(true);
    expect((await check({ table }, 'source'))[2]).toMatchObject({ ok: true, message: expect.stringMatching(/exists and is readable/) });
  });

  it('ssl_enabled against a server without TLS fails the check with the reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-pg-tls-'));
    writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const r = validateConnectorOptions(postgres, { ...BASE, table: 't', ssl_enabled: true, ssl_ca_cert: 'ca.pem' }, 'sink');
    const results = (await postgres.check?.(r.value as never, { ...planContext({ baseDir: dir }), role: 'sink' })) ?? [];
    const tls = results.find((x) => !x.ok);
    expect(tls?.message).toMatch(/does not support SSL|SSL/i);
  });

  it('tells a closed port, a missing database and missing privileges apart, never printing the password', async () => {
    const closed = await check({ table: 't', port: 1, password: 'sw0rdfish-canary' });
    expect(closed).toHaveLength(1);
    expect(closed[0]).toMatchObject({
      name: 'connection',
      ok: false,
      message: expect.stringMatching(/cannot reach 127\.0\.0\.1:1 \(ECONNREFUSED\)/),
    });
    const noDb = await check({ table: 't', database: 'no_such_db_weir', password: 'sw0rdfish-canary' });
    expect(noDb.find((r) => r.name === 'target')).toMatchObject({
      ok: false,
      message: expect.stringMatching(/database no_such_db_weir does not exist/),
    });
    const role = `weir_noprivs_${randomBytes(3).toString('hex')}`;
    const table = tableName();
    await admin.query(`CREATE TABLE "${table}" (id int)`);
    await admin.query(`CREATE ROLE ${role} LOGIN`);
    try {
      const sink = await check({ table, user: role, password: 'sw0rdfish-canary' }, 'sink');
      expect(sink[1]?.ok).toBe(true);
      expect(sink[2]).toMatchObject({
        ok: false,
        message: expect.stringMatching(new RegExp(`user ${role} lacks INSERT on public\\.${table}`)),
      });
      const source = await check({ table, user: role }, 'source');
      expect(source[2]).toMatchObject({ ok: false, message: expect.stringMatching(/lacks SELECT/) });
      for (const r of [...closed, ...noDb, ...sink]) expect(r.message).not.toContain('sw0rdfish-canary');
    } finally {
      await admin.query(`DROP ROLE ${role}`);
    }
  });
});
