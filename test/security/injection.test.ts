/**
 * Hostile SQL identifiers through the CLI: as table names, schemas and databases they
 * are refused at validation (exit 2) before anything connects. As column names — from
 * the data, as key columns, as partition columns — they are legal (real exports have
 * such headers) and must be quoted: each is stored under exactly its name, and a
 * sentinel table proves no injected statement ran.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quoteIdentifier } from '../../src/sdk/sql.js';
import { runCli } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';
import { FIXTURES, newScenario, removeScenarios, writePipeline } from './harness.js';

const pgUp = await requireService('postgres');
const mysqlUp = await requireService('mysql');

const tag = randomBytes(4).toString('hex');
const SENTINEL = `x_${tag}`;
/** The payloads of the issue, the first one aimed at the sentinel table. */
const PAYLOADS = [`users; DROP TABLE ${SENTINEL}`, 'a"b', "x' OR '1'='1", 'a`b; DROP TABLE t', `t"; DROP TABLE ${SENTINEL}; --`];
/** The issue's three, for the slower database-backed cases. */
const ISSUE_PAYLOADS = PAYLOADS.slice(0, 3);

afterAll(removeScenarios);

/** Runs a pipeline through the CLI: validate passes, then run; returns the run's result. */
async function validThenRun(pipeline: Record<string, unknown>, fixtures = false) {
  const s = newScenario();
  if (fixtures) symlinkSync(FIXTURES, join(s.root, 'fixtures'));
  const file = writePipeline(s, pipeline);
  const validate = await runCli(['validate', file], { cwd: s.work });
  expect(validate.code, validate.stderr).toBe(0);
  return { ...(await runCli(['run', file], { cwd: s.work })), work: s.work };
}

const echo = (column: string) => ({ type: 'echo', column, rows: 3 });

async function refusedAtValidation(pipeline: Record<string, unknown>, path: string): Promise<string> {
  const s = newScenario();
  const file = writePipeline(s, pipeline);
  const validate = await runCli(['validate', file], { cwd: s.work });
  expect(validate.code, validate.stderr).toBe(2);
  expect(validate.stderr).toContain(path);
  expect(validate.stderr).toContain('must be a plain SQL identifier');
  const run = await runCli(['run', file], { cwd: s.work });
  expect(run.code, run.stderr).toBe(2);
  expect(run.stdout).not.toContain('run_start');
  return s.root;
}

describe('sqlite', () => {
  it.each(PAYLOADS)('table %j: exit 2 at validate and run, the database file is not even created', async (table) => {
    const root = await refusedAtValidation(
      { pipeline: 'inject', source: { type: 'generator', rows: 5 }, sink: { type: 'sqlite', path: 'db/out.db', table } },
      'sink.table',
    );
    expect(existsSync(join(root, 'db'))).toBe(false);
  });

  it.each(ISSUE_PAYLOADS)('source table %j: exit 2', async (table) => {
    await refusedAtValidation(
      { pipeline: 'inject', source: { type: 'sqlite', path: 'in.db', table }, sink: { type: 'sqlite', path: 'db/out.db', table: 't' } },
      'source.table',
    );
  });

  it.each(PAYLOADS)('column %j from the data: stored under exactly that name, nothing else ran', async (column) => {
    const run = await validThenRun(
      {
        pipeline: 'inject',
        connectors: ['./fixtures/echo.mjs'],
        source: echo(column),
        sink: { type: 'sqlite', path: 'work/out/x.db', table: 't' },
      },
      true,
    );
    expect(run.code, run.stderr).toBe(0);
    const db = new Database(join(run.work, 'out/x.db'), { readonly: true });
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[];
      expect(tables.map((t) => t.name)).toEqual(['_weir_checkpoints', '_weir_runs', 't']);
      expect((db.prepare("SELECT name FROM pragma_table_info('t')").all() as { name: string }[]).map((c) => c.name)).toEqual([
        column,
        'note',
      ]);
      expect(db.prepare(`SELECT ${quoteIdentifier(column)} AS v, note FROM t ORDER BY 1`).all()).toEqual([
        { v: 0, note: 'row 0' },
        { v: 1, note: 'row 1' },
        { v: 2, note: 'row 2' },
      ]);
    } finally {
      db.close();
    }
  });
});

describe.skipIf(!pgUp)('postgres', () => {
  let client: pg.Client;
  beforeAll(async () => {
    client = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
    await client.connect();
    await client.query(`CREATE TABLE ${SENTINEL} (id int)`);
  });
  afterAll(async () => {
    await client.query(`DROP TABLE IF EXISTS ${SENTINEL}`);
    await client.end();
  });
  const sink = (extra: Record<string, unknown>) => ({ type: 'postgres', database: 'test', user: 'postgres', table: `t_${tag}`, ...extra });
  const sentinelExists = async () => (await client.query('SELECT to_regclass($1) AS t', [SENTINEL])).rows[0].t !== null;

  const tables: string[] = [];
  afterAll(async () => {
    for (const t of tables) await client.query(`DROP TABLE IF EXISTS ${quoteIdentifier(t)}`);
  });
  const newTable = () => {
    const t = `inj_${randomBytes(4).toString('hex')}`;
    tables.push(t);
    return t;
  };
  const columnsOf = async (table: string) =>
    (
      await client.query('SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 ORDER BY attnum', [table])
    ).rows.map((r) => r.attname as string);

  it.each(ISSUE_PAYLOADS)('table and schema %j: exit 2 at validate and run', async (name) => {
    await refusedAtValidation({ pipeline: 'inject', source: { type: 'generator', rows: 5 }, sink: sink({ table: name }) }, 'sink.table');
    await refusedAtValidation({ pipeline: 'inject', source: { type: 'generator', rows: 5 }, sink: sink({ schema: name }) }, 'sink.schema');
    expect(await sentinelExists()).toBe(true);
  });

  it.each(PAYLOADS)('column %j from the data, as the upsert key: stored under exactly that name, sentinel intact', async (column) => {
    const table = newTable();
    const run = await validThenRun(
      {
        pipeline: 'inject',
        connectors: ['./fixtures/echo.mjs'],
        source: echo(column),
        sink: sink({ table, mode: 'upsert', key_columns: [column] }),
      },
      true,
    );
    expect(run.code, run.stderr).toBe(0);
    expect(await columnsOf(table)).toEqual([column, 'note']);
    const r = await client.query(`SELECT ${quoteIdentifier(column)}::int AS v FROM ${quoteIdentifier(table)} ORDER BY 1`);
    expect(r.rows.map((x) => x.v)).toEqual([0, 1, 2]);
    expect(await sentinelExists()).toBe(true);
  });

  it.each(ISSUE_PAYLOADS)('partition column %j of a source table: the ranges are read under that name, sentinel intact', async (column) => {
    const source = newTable();
    await client.query(`CREATE TABLE ${quoteIdentifier(source)} (${quoteIdentifier(column)} bigint, note text)`);
    await client.query(`INSERT INTO ${quoteIdentifier(source)} SELECT g, 'row ' || g FROM generate_series(1, 10) g`);
    const run = await validThenRun({
      pipeline: 'inject',
      source: { type: 'postgres', database: 'test', user: 'postgres', table: source, partition_column: column, partitions: 3 },
      sink: { type: 'sqlite', path: 'work/out/o.db', table: 't' },
    });
    expect(run.code, run.stderr).toBe(0);
    const db = new Database(join(run.work, 'out/o.db'), { readonly: true });
    try {
      expect((db.prepare(`SELECT ${quoteIdentifier(column)} AS v FROM t ORDER BY 1`).all() as { v: number }[]).map((x) => x.v)).toEqual([
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
      ]);
    } finally {
      db.close();
    }
    expect(await sentinelExists()).toBe(true);
  });

  it.each(ISSUE_PAYLOADS)(
    'key column %j the source does not have: a config error at run, nothing created, sentinel intact',
    async (name) => {
      const table = newTable();
      const run = await validThenRun({
        pipeline: 'inject',
        source: { type: 'generator', rows: 5 },
        sink: sink({ table, mode: 'upsert', key_columns: ['id', name] }),
      });
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain(`key_columns ${JSON.stringify(name)} are not columns of the source rows`);
      expect((await client.query('SELECT to_regclass($1) AS t', [table])).rows[0].t).toBeNull();
      expect(await sentinelExists()).toBe(true);
    },
  );
});

describe.skipIf(!mysqlUp)('mariadb', () => {
  let conn: mysql.Connection;
  beforeAll(async () => {
    conn = await mysql.createConnection({ host: '127.0.0.1', user: 'root', password: '', database: 'test' });
    await conn.query(`CREATE TABLE ${SENTINEL} (id int)`);
  });
  afterAll(async () => {
    await conn.query(`DROP TABLE IF EXISTS ${SENTINEL}`);
    await conn.end();
  });
  const sink = (extra: Record<string, unknown>) => ({ type: 'mysql', database: 'test', user: 'root', table: `t_${tag}`, ...extra });
  const sentinelExists = async () => {
    const [rows] = await conn.query('SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = ? AND table_name = ?', [
      'test',
      SENTINEL,
    ]);
    return (rows as { n: number }[])[0]?.n === 1;
  };

  const tables: string[] = [];
  afterAll(async () => {
    for (const t of tables) await conn.query(`DROP TABLE IF EXISTS ${quoteIdentifier(t, '`')}`);
  });
  const newTable = () => {
    const t = `inj_${randomBytes(4).toString('hex')}`;
    tables.push(t);
    return t;
  };
  const q = (name: string) => quoteIdentifier(name, '`');

  it.each(ISSUE_PAYLOADS)('table and database %j: exit 2 at validate and run', async (name) => {
    await refusedAtValidation({ pipeline: 'inject', source: { type: 'generator', rows: 5 }, sink: sink({ table: name }) }, 'sink.table');
    await refusedAtValidation(
      { pipeline: 'inject', source: { type: 'generator', rows: 5 }, sink: sink({ database: name }) },
      'sink.database',
    );
    expect(await sentinelExists()).toBe(true);
  });

  it.each(PAYLOADS)('column %j from the data, as the upsert key: stored under exactly that name, sentinel intact', async (column) => {
    const table = newTable();
    const run = await validThenRun(
      {
        pipeline: 'inject',
        connectors: ['./fixtures/echo.mjs'],
        source: echo(column),
        sink: sink({ table, mode: 'upsert', key_columns: [column] }),
      },
      true,
    );
    expect(run.code, run.stderr).toBe(0);
    const [cols] = await conn.query(
      'SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
      ['test', table],
    );
    expect((cols as { c: string }[]).map((c) => c.c)).toEqual([column, 'note']);
    const [rows] = await conn.query(`SELECT ${q(column)} AS v FROM ${q(table)} ORDER BY 1`);
    expect((rows as { v: number }[]).map((r) => Number(r.v))).toEqual([0, 1, 2]);
    expect(await sentinelExists()).toBe(true);
  });

  it.each(ISSUE_PAYLOADS)('partition column %j of a source table: the ranges are read under that name, sentinel intact', async (column) => {
    const source = newTable();
    await conn.query(`CREATE TABLE ${q(source)} (${q(column)} BIGINT PRIMARY KEY, note TEXT)`);
    await conn.query(`INSERT INTO ${q(source)} VALUES ${Array.from({ length: 10 }, (_, i) => `(${i + 1}, 'row')`).join(', ')}`);
    const run = await validThenRun({
      pipeline: 'inject',
      source: { type: 'mysql', database: 'test', user: 'root', table: source, partition_column: column, partitions: 3 },
      sink: { type: 'sqlite', path: 'work/out/o.db', table: 't' },
    });
    expect(run.code, run.stderr).toBe(0);
    const db = new Database(join(run.work, 'out/o.db'), { readonly: true });
    try {
      expect((db.prepare(`SELECT ${quoteIdentifier(column)} AS v FROM t ORDER BY 1`).all() as { v: number }[]).map((x) => x.v)).toEqual([
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
      ]);
    } finally {
      db.close();
    }
    expect(await sentinelExists()).toBe(true);
  });
});
