import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '../../../test/helpers/services.js';
import { validateConnectorOptions } from '../../sdk/connector.js';
import { collect, connectorOptions, planContext, taskContext } from '../../sdk/testing.js';
import type { Row } from '../../sdk/types.js';
import { Decimal } from '../../sdk/values.js';
import mysqlConnector from './index.js';
import { keyRanges } from './source.js';

const up = await requireService('mysql');
const BASE = { host: '127.0.0.1', port: 3306, user: 'root', database: 'test' };

function options(input: Record<string, unknown>) {
  return connectorOptions(mysqlConnector, { ...BASE, ...input }, 'source');
}

async function readAll(input: Record<string, unknown>) {
  const source = mysqlConnector.source?.(options(input)) ?? expect.unreachable();
  const ctx = planContext({ baseDir: '.' });
  try {
    const schema = await source.schema?.(ctx);
    const partitions = (await source.partitions?.(ctx)) ?? [{ id: '0' }];
    const estimate = await source.estimate?.(ctx);
    const rows: Row[] = [];
    for (const p of partitions) rows.push(...(await collect(source.read(p, taskContext({ baseDir: '.', partitionId: p.id })))));
    return { schema, partitions, rows, estimate };
  } finally {
    await source.close?.();
  }
}

let admin: mysql.Connection;
const table = `src_${randomBytes(5).toString('hex')}`;

describe.skipIf(!up)('mysql source', () => {
  beforeAll(async () => {
    admin = await mysql.createConnection(BASE);
    await admin.query(
      `CREATE TABLE \`${table}\` (id BIGINT PRIMARY KEY, name VARCHAR(50), price DECIMAL(10,2), score DOUBLE, ok BOOLEAN, at DATETIME(3), day DATE, doc JSON, grp INT NULL)`,
    );
    const values = Array.from({ length: 1000 }, (_, i) => [
      i + 1,
      `n${i + 1}`,
      '12.50',
      i / 2,
      i % 2,
      '2024-05-01 10:00:00.125',
      '2024-05-01',
      JSON.stringify({ i }),
      i % 10 === 0 ? null : i % 7,
    ]);
    await admin.query(`INSERT INTO \`${table}\` VALUES ?`, [values]);
  });
  afterAll(async () => {
    await admin?.query(`DROP TABLE IF EXISTS \`${table}\``);
    await admin?.end();
  });

  it('reads a table with its schema and typed values', async () => {
    const { schema, rows, estimate, partitions } = await readAll({ table });
    expect(partitions).toEqual([{ id: '0' }]);
    expect(estimate).toBe(1000);
    expect(schema).toEqual([
      { name: 'id', type: 'integer', nullable: false },
      { name: 'name', type: 'string', nullable: true },
      { name: 'price', type: 'decimal', nullable: true, precision: 10, scale: 2 },
      { name: 'score', type: 'number', nullable: true },
      { name: 'ok', type: 'boolean', nullable: true },
      { name: 'at', type: 'timestamp', nullable: true },
      { name: 'day', type: 'string', nullable: true },
      { name: 'doc', type: 'json', nullable: true },
      { name: 'grp', type: 'integer', nullable: true },
    ]);
    expect(rows).toHaveLength(1000);
    expect(rows[1]).toEqual({
      id: 2,
      name: 'n2',
      price: Decimal.parse('12.50'),
      score: 0.5,
      ok: true,
      at: '2024-05-01T10:00:00.125', // DATETIME has no zone: ISO text without one, every fraction digit kept
      day: '2024-05-01',
      doc: { i: 1 },
      grp: 1,
    });
  });

  it('splits a table into key ranges of its integer primary key; every row is read once', async () => {
    const { partitions, rows } = await readAll({ table, partitions: 3 });
    expect(partitions).toEqual([
      { id: '0', column: 'id', from: '1', to: '334', nulls: true },
      { id: '1', column: 'id', from: '334', to: '667', nulls: false },
      { id: '2', column: 'id', from: '667', to: '1001', nulls: false },
    ]);
    expect(JSON.parse(JSON.stringify(partitions))).toEqual(partitions);
    const ids = rows.map((r) => r.id as number).sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
  });

  it('splits by a nullable partition_column, rows with NULL keys included', async () => {
    const { rows, partitions } = await readAll({ table, partitions: 4, partition_column: 'grp', fetch_size: 7 });
    expect(partitions).toHaveLength(4);
    expect(rows).toHaveLength(1000);
    expect(new Set(rows.map((r) => r.id)).size).toBe(1000);
  });

  it('reads a query, partitioned by a column of its result', async () => {
    const { rows, schema, partitions } = await readAll({
      query: `SELECT id, name, ok FROM \`${table}\` WHERE id <= 100`,
      partitions: 2,
      partition_column: 'id',
    });
    expect(schema).toEqual([
      { name: 'id', type: 'integer' },
      { name: 'name', type: 'string' },
      { name: 'ok', type: 'boolean' },
    ]);
    expect(partitions).toHaveLength(2);
    expect(rows.map((r) => r.id).sort((a, b) => (a as number) - (b as number))).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(rows.find((r) => r.id === 3)).toEqual({ id: 3, name: 'n3', ok: false });
  });

  it('refuses a missing table and a non-integer partition column with config errors', async () => {
    await expect(readAll({ table: 'no_such_table_here' })).rejects.toMatchObject({ kind: 'config', code: 'no_such_table' });
    await expect(readAll({ table, partitions: 2, partition_column: 'name' })).rejects.toThrow(/partition_column name is a string column/);
  });

  it('stops early without leaking: an abandoned read closes its connection', async () => {
    const source = mysqlConnector.source?.(options({ table, fetch_size: 10 })) ?? expect.unreachable();
    for await (const chunk of source.read({ id: '0' }, taskContext({ baseDir: '.' }))) {
      expect(chunk).toHaveLength(10);
      break;
    }
    await source.close?.();
  });

  it('key ranges cover [lo, hi] without gaps, also beyond 2^53', () => {
    const big = 2n ** 60n;
    const r = keyRanges('id', big, big + 9n, 3);
    expect(r.map((p) => [p.from, p.to])).toEqual([
      [`${big}`, `${big + 3n}`],
      [`${big + 3n}`, `${big + 6n}`],
      [`${big + 6n}`, `${big + 10n}`],
    ]);
    expect(keyRanges('id', 5n, 6n, 8)).toHaveLength(2);
  });

  it('validates source options: table or query, no key_columns', () => {
    const issues = (input: Record<string, unknown>) =>
      validateConnectorOptions(mysqlConnector, { ...BASE, ...input }, 'source')
        .issues.map((i) => i.message)
        .join();
    expect(issues({})).toMatch(/one of table, query is required/);
    expect(issues({ table: 't', query: 'SELECT 1' })).toMatch(/cannot be used together/);
    expect(issues({ table: 't', key_columns: ['id'] })).toMatch(/key_columns is for a sink/);
  });
});

describe.skipIf(!up)('mysql source: exact values', () => {
  const exact = `src_exact_${randomBytes(5).toString('hex')}`;
  const D38 = '12345678901234567890123456789.123456789';
  beforeAll(async () => {
    admin = await mysql.createConnection(BASE);
    await admin.query(
      `CREATE TABLE \`${exact}\` (id BIGINT UNSIGNED PRIMARY KEY, d38 DECIMAL(38,9), d30 DECIMAL(30,2), price DECIMAL(10,2) UNSIGNED, whole DECIMAL(5,0), big BIGINT, at DATETIME(6), ts TIMESTAMP(6) NULL, day DATE)`,
    );
    await admin.query(`INSERT INTO \`${exact}\` VALUES
      (18446744073709551615, '${D38}', '12345678901234567.89', '375.30', -12345, 9007199254740993, '2024-05-01 10:00:00.123456', '2024-05-01 10:00:00.000001', '2024-05-01'),
      (1, '-${D38}', '-0.01', '0.00', 0, -9223372036854775808, '1999-12-31 23:59:59.999999', NULL, '0001-01-01'),
      (2, NULL, NULL, NULL, NULL, 42, NULL, NULL, NULL)`);
  });
  afterAll(async () => {
    await admin?.query(`DROP TABLE IF EXISTS \`${exact}\``);
    await admin?.end();
  });

  const first = {
    id: 18446744073709551615n,
    d38: Decimal.parse(D38),
    d30: Decimal.parse('12345678901234567.89'),
    price: Decimal.parse('375.30'),
    whole: Decimal.parse('-12345'),
    big: 9007199254740993n,
    at: '2024-05-01T10:00:00.123456',
    ts: '2024-05-01T10:00:00.000001Z',
    day: '2024-05-01',
  };

  it('a table: DECIMAL as Decimal with its precision and scale, BIGINT exact beyond 2^53, microseconds kept', async () => {
    const { schema, rows } = await readAll({ table: exact });
    expect(schema).toEqual([
      { name: 'id', type: 'integer', nullable: false },
      { name: 'd38', type: 'decimal', nullable: true, precision: 38, scale: 9 },
      { name: 'd30', type: 'decimal', nullable: true, precision: 30, scale: 2 },
      { name: 'price', type: 'decimal', nullable: true, precision: 10, scale: 2 },
      { name: 'whole', type: 'decimal', nullable: true, precision: 5, scale: 0 },
      { name: 'big', type: 'integer', nullable: true },
      { name: 'at', type: 'timestamp', nullable: true },
      { name: 'ts', type: 'timestamp', nullable: true },
      { name: 'day', type: 'string', nullable: true },
    ]);
    const byId = new Map(rows.map((r) => [String(r.id), r]));
    const split = await readAll({ table: exact, partitions: 3 }); // key ranges up to BIGINT UNSIGNED's top
    expect(split.partitions).toHaveLength(3);
    expect(split.rows.map((r) => String(r.id)).sort()).toEqual(['1', '18446744073709551615', '2']);
    const top = byId.get('18446744073709551615');
    expect(top).toEqual(first);
    expect(String(top?.price)).toBe('375.30'); // Decimal's text
    expect(String(top?.d38)).toBe(D38);
    expect(byId.get('1')).toEqual({
      id: 1,
      d38: Decimal.parse(`-${D38}`),
      d30: Decimal.parse('-0.01'),
      price: Decimal.parse('0.00'),
      whole: Decimal.parse('0'),
      big: -9223372036854775808n,
      at: '1999-12-31T23:59:59.999999',
      ts: null,
      day: '0001-01-01',
    });
    expect(byId.get('2')).toMatchObject({ id: 2, d38: null, big: 42, at: null });
  });

  it('a query: the same values, and precision and scale from the result metadata', async () => {
    const { schema, rows } = await readAll({
      query: `SELECT id, d38, price, whole, big, at, ts, day, d30 * 2 AS doubled FROM \`${exact}\``,
    });
    expect(schema).toEqual([
      { name: 'id', type: 'integer' },
      { name: 'd38', type: 'decimal', precision: 38, scale: 9 },
      { name: 'price', type: 'decimal', precision: 10, scale: 2 },
      { name: 'whole', type: 'decimal', precision: 5, scale: 0 },
      { name: 'big', type: 'integer' },
      { name: 'at', type: 'timestamp' },
      { name: 'ts', type: 'timestamp' },
      { name: 'day', type: 'string' },
      { name: 'doubled', type: 'decimal', precision: expect.any(Number), scale: 2 },
    ]);
    const top = rows.find((r) => r.id === 18446744073709551615n);
    const { d30: _, ...rest } = first;
    expect(top).toEqual({ ...rest, doubled: Decimal.parse('24691357802469135.78') });
  });
});

describe.skipIf(!up)('mysql check', () => {
  const check = (input: Record<string, unknown>, role: 'source' | 'sink' = 'sink') =>
    mysqlConnector.check?.(options(input), { ...planContext({ baseDir: '.' }), role }) ?? expect.unreachable();

  beforeAll(async () => {
    admin = await mysql.createConnection(BASE);
    await admin.query(`CREATE TABLE IF NOT EXISTS \`${table}_c\` (id INT)`);
  });
  afterAll(async () => {
    await admin?.query(`DROP TABLE IF EXISTS \`${table}_c\``);
    await admin?.end();
  });

  it('passes connection, authentication, target and privileges', async () => {
    const results = await check({ table: `${table}_c` }, 'sink');
    expect(results.map((r) => [r.name, r.ok])).toEqual([
      ['connection', true],
      ['authentication', true],
      ['target', true],
      ['privileges', true],
    ]);
  });

  it('fails authentication on a wrong password, never printing it', async () => {
    const results = await check({ table: `${table}_c`, password: 'not-the-password-7f3a' });
    const auth = results.find((r) => r.name === 'authentication');
    expect(auth?.ok).toBe(false);
    expect(auth?.message).toMatch(/Access denied/);
    expect(JSON.stringify(results)).not.toContain('not-the-password-7f3a');
  });

  it('fails the connection when nothing listens, and the target for a missing table or database', async () => {
    const down = await check({ table: 't', port: 1, connect_timeout: '2s' });
    expect(down).toEqual([{ name: 'connection', ok: false, message: expect.stringMatching(/ECONNREFUSED/) }]);
    const missing = await check({ table: 'no_such_table_here' }, 'source');
    expect(missing.find((r) => r.name === 'target')).toMatchObject({ ok: false, message: expect.stringMatching(/does not exist/) });
    const forSink = await check({ table: 'no_such_table_here' }, 'sink');
    expect(forSink.find((r) => r.name === 'target')).toMatchObject({ ok: true, message: expect.stringMatching(/the sink creates it/) });
    const noDb = await check({ table: 't', database: 'no_such_db_here' });
    expect(noDb.find((r) => r.name === 'target')).toMatchObject({ ok: false, message: expect.stringMatching(/Unknown database/) });
  });
});
