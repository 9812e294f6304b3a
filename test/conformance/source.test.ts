/**
 * Source conformance of every bounded built-in source (the unbounded ones: stream.test.ts):
 * the kit's `sourceConformance` (src/sdk/conformance.ts) over a small data set each source
 * holds — text with quotes, tabs, non-ASCII letters and the empty string, NULL, exact
 * decimals — read across several partitions where the source splits its work.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mysqlClient from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe } from 'vitest';
import { generateRow } from '../../src/connectors/generator/index.js';
import { builtinConnectors } from '../../src/connectors/index.js';
import { writeWithSink } from '../../src/connectors/parquet/test-files.js';
import { adminClient, dropKeysAndClose } from '../../src/connectors/redis/test-keys.js';
import type { AnyConnector } from '../../src/sdk/connector.js';
import { tempDir } from '../../src/sdk/testing.js';
import { asRow, type Row } from '../../src/sdk/types.js';
import { Decimal } from '../../src/sdk/values.js';
import { requireService } from '../helpers/services.js';
import { describeSourceConformance } from './harness.js';

const connector = (name: string) => builtinConnectors.find((c) => c.name === name) as AnyConnector;
const TAG = `conf_${randomBytes(4).toString('hex')}`;
const N = 24;
/** The data set: id, a name (empty for one row, NULL for another), an amount with two decimals. */
const DATA = Array.from({ length: N }, (_, i) => {
  const id = i + 1;
  const name = id === 4 ? '' : id === 5 ? null : `name ${id} "quoted", with\ttab, ü ✓`;
  return { id, name, amount: `${id * 3}.${String(id % 100).padStart(2, '0')}` };
});
const dir = await tempDir('weir-conformance-');
const [pgUp, mysqlUp, redisUp] = await Promise.all([requireService('postgres'), requireService('mysql'), requireService('redis')]);

describeSourceConformance(connector('generator'), {
  options: { rows: 2500, partitions: 3, seed: 7 },
  expected: () => Array.from({ length: 2500 }, (_, i) => generateRow(7, i + 1)),
});

describe('file sources', () => {
  writeFileSync(
    join(dir, 'data.csv'),
    `id,name,amount\n${DATA.map((r) => `${r.id},${r.name === null ? '' : `"${r.name.replaceAll('"', '""')}"`},${r.amount}`).join('\n')}\n`,
  );
  writeFileSync(
    join(dir, 'data.jsonl'),
    `${DATA.map((r) => JSON.stringify({ id: r.id, name: r.name, amount: Number(r.amount) })).join('\n')}\n`,
  );
  describeSourceConformance(connector('csv'), {
    options: { path: 'data.csv' },
    baseDir: dir,
    // the types are inferred from the text; an empty unquoted field is NULL, a quoted one the empty string
    expected: DATA.map((r) => ({ id: r.id, name: r.name, amount: Decimal.parse(r.amount) })),
  });
  describeSourceConformance(connector('jsonl'), {
    options: { path: 'data.jsonl' },
    baseDir: dir,
    expected: DATA.map((r) => ({ id: r.id, name: r.name, amount: Decimal.parse(String(Number(r.amount))) })),
  });
});

describe('parquet', () => {
  const rows = DATA.map((r) => ({ id: r.id, name: r.name, amount: Decimal.parse(r.amount) }));
  beforeAll(async () => {
    await writeWithSink(dir, 'data.parquet', rows, { row_group_size: 10 });
  });
  describeSourceConformance(connector('parquet'), {
    options: { path: 'data.parquet', partition_rows: 10 },
    baseDir: dir,
    expected: rows,
  });
});

describe('sqlite', () => {
  const db = new Database(join(dir, 'data.db'));
  db.exec('create table items (id integer primary key, name text, amount real)');
  const insert = db.prepare('insert into items values (?, ?, ?)');
  for (const r of DATA) insert.run(r.id, r.name, Number(r.amount));
  db.close();
  describeSourceConformance(connector('sqlite'), {
    options: { path: 'data.db', table: 'items', partitions: 3 },
    baseDir: dir,
    expected: DATA.map((r) => ({ id: r.id, name: r.name, amount: Number(r.amount) })),
  });
});

describe.skipIf(!pgUp)('postgres', () => {
  const table = `${TAG}_pg`;
  const secret = `canary-${randomBytes(8).toString('hex')}`; // trust authentication: the password is sent and ignored
  beforeAll(async () => {
    const client = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
    await client.connect();
    await client.query(`create table ${table} (id bigint primary key, name text, amount numeric(12,2))`);
    for (const r of DATA) await client.query(`insert into ${table} values ($1, $2, $3)`, [r.id, r.name, r.amount]);
    await client.end();
  });
  afterAll(async () => {
    const client = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
    await client.connect();
    await client.query(`drop table if exists ${table}`);
    await client.end();
  });
  describeSourceConformance(connector('postgres'), {
    options: { database: 'test', password: secret, table, partitions: 3, partition_column: 'id' },
    secret,
    badOptions: { database: 'test', password: secret, table, port: 1, connect_timeout: '1s' },
    expected: DATA.map((r) => ({ id: r.id, name: r.name, amount: Decimal.parse(r.amount) })),
  });
});

describe.skipIf(!mysqlUp)('mysql', () => {
  const table = `${TAG}_my`;
  const secret = `canary-${randomBytes(8).toString('hex')}`;
  beforeAll(async () => {
    const admin = await mysqlClient.createConnection({ host: '127.0.0.1', user: 'root', database: 'test' });
    await admin.query(`create table ${table} (id bigint primary key, name text, amount decimal(12,2))`);
    for (const r of DATA) await admin.query(`insert into ${table} values (?, ?, ?)`, [r.id, r.name, r.amount]);
    await admin.end();
  });
  afterAll(async () => {
    const admin = await mysqlClient.createConnection({ host: '127.0.0.1', user: 'root', database: 'test' });
    await admin.query(`drop table if exists ${table}`);
    await admin.end();
  });
  describeSourceConformance(connector('mysql'), {
    options: { database: 'test', table, partitions: 3, partition_column: 'id' },
    // the root user has no password: a canary password is refused, and must not be echoed
    secret,
    badOptions: { database: 'test', table, password: secret, connect_timeout: '1s' },
    expected: DATA.map((r) => ({ id: r.id, name: r.name, amount: Decimal.parse(r.amount) })),
  });
});

describe.skipIf(!redisUp)('redis keys', () => {
  const prefix = `${TAG}:`;
  beforeAll(async () => {
    const admin = await adminClient();
    for (const r of DATA) {
      const fields: Record<string, string> = { id: String(r.id), amount: r.amount };
      if (r.name !== null) fields.name = r.name;
      await admin.hset(`${prefix}${r.id}`, fields);
    }
    admin.disconnect();
  });
  afterAll(async () => dropKeysAndClose(await adminClient(), prefix));
  describeSourceConformance(connector('redis'), {
    options: { mode: 'hash', match: `${prefix}*` },
    badOptions: { mode: 'hash', match: `${prefix}*`, port: 1, connect_timeout: '1s' },
    expected: DATA.map((r) => {
      const row: Row = asRow({ _key: `${prefix}${r.id}`, id: String(r.id), amount: r.amount });
      if (r.name !== null) row.name = r.name;
      return row;
    }),
  });
});

describe('http', () => {
  const secret = `canary-${randomBytes(8).toString('hex')}`;
  let server: Server;
  let base = '';
  beforeAll(async () => {
    server = createServer((req, res) => {
      const u = new URL(req.url ?? '/', base);
      if (req.headers.authorization !== `Bearer ${secret}`) {
        res.writeHead(401, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: 'bad token', got: req.headers.authorization, url: req.url }));
      }
      const from = Number(u.searchParams.get('a') ?? 0);
      const to = Number(u.searchParams.get('b') ?? N + 1);
      const page = Number(u.searchParams.get('page') ?? 1);
      const limit = Number(u.searchParams.get('limit') ?? 5);
      const inRange = DATA.filter((r) => r.id >= from && r.id < to);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ items: inRange.slice((page - 1) * limit, page * limit) }));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((ok) => server.close(() => ok())));
  const options = (token: string) => ({
    url: `${base}/items`,
    records_path: 'items',
    pagination: 'page',
    page_size: 5,
    cursor_field: 'id',
    auth: { type: 'bearer', token },
    partition_by: { from_param: 'a', to_param: 'b', start: '1', end: String(N + 1), step: '10' },
  });
  describeSourceConformance(connector('http'), {
    options: () => options(secret),
    secret,
    badOptions: () => options(`${secret}-wrong`),
    // an earlier run's cursors: planned into the partitions (this API ignores `since`), read back as plain JSON
    sourceState: { r0: { cursor: 5 }, r1: { cursor: '17' } },
    expected: DATA.map((r) => ({ id: r.id, name: r.name, amount: r.amount })),
  });
});
