/**
 * One file through four systems and back: CSV → PostgreSQL → Parquet → MySQL → CSV,
 * each leg a weir run into a table or file weir creates. Every value comes back
 * with its original bytes: 38-digit decimals with their trailing zeros, integers
 * beyond 2^53, microsecond timestamps, text with quotes and line breaks, NULL
 * apart from the empty string. Two rules of the systems in between show: Parquet
 * DECIMAL and MySQL DECIMAL(p,s) keep one scale per column (so the file's
 * decimals have one scale per column: `1.5` among `0.10` would come back `1.50`),
 * and MySQL DATETIME has no zone (a UTC time comes back without its `Z`).
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { runYaml } from '../foundation/harness.js';
import { tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';

const up = (await requireService('postgres')) && (await requireService('mysql'));
const id = randomBytes(3).toString('hex');
const pgTable = `rt_pg_${id}`;
const myTable = `rt_my_${id}`;
const pgBack = `rt_pg2_${id}`;
const dir = tempDir();

const INPUT =
  'id,amount,big,at,label,ok,ratio\n' +
  '1,12345678901234567890123456789.123456789,9007199254740993,2024-05-01T10:00:00.123456Z,"a, ""quoted""\nline",true,375.30\n' +
  '2,-0.000000001,-9223372036854775808,1999-12-31T23:59:59.999999Z,"",false,0.10\n' +
  '3,,9223372036854775807,,,,12345678901234567.89\n' +
  '4,100.000000000,0,2026-12-01T00:00:00.000001Z,Größe 中 😀,true,-1.50\n';

afterAll(async () => {
  if (!up) return;
  const p = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
  await p.connect();
  await p.query(`DROP TABLE IF EXISTS "${pgTable}"`);
  await p.query(`DROP TABLE IF EXISTS "${pgBack}"`);
  await p.end();
  const m = await mysql.createConnection({ host: '127.0.0.1', user: 'root', database: 'test' });
  await m.query(`DROP TABLE IF EXISTS \`${myTable}\``);
  await m.end();
});

async function leg(name: string, source: string, sink: string): Promise<void> {
  const { summary } = await runYaml(`pipeline: rt-${id}-${name}\nsource: ${source}\nsink: ${sink}\n`, [], dir);
  expect(summary.status, `${name}: ${JSON.stringify(summary.error ?? summary)}`).toBe('succeeded');
}

/** Records with each field's text, null for an unquoted empty field (the CSV rule weir follows). */
function records(text: string): (string | null)[][] {
  return parse(text, { cast: (v, c) => (v === '' && !c.quoting ? null : v) }) as (string | null)[][];
}

describe.skipIf(!up)('round trip CSV → PostgreSQL → Parquet → MySQL → CSV', () => {
  it('returns the original bytes of every value', async () => {
    const input = join(dir, 'in.csv');
    const parquet = join(dir, 'mid.parquet');
    const output = join(dir, 'out.csv');
    await writeFile(input, INPUT);
    await leg('csv-pg', `{ type: csv, path: ${input} }`, `{ type: postgres, database: test, table: ${pgTable} }`);
    await leg('pg-parquet', `{ type: postgres, database: test, table: ${pgTable} }`, `{ type: parquet, path: ${parquet} }`);
    await leg('parquet-mysql', `{ type: parquet, path: ${parquet} }`, `{ type: mysql, database: test, table: ${myTable} }`);
    await leg('mysql-csv', `{ type: mysql, database: test, table: ${myTable} }`, `{ type: csv, path: ${output} }`);
    const byId = (rs: (string | null)[][]) => [rs[0], ...rs.slice(1).sort((a, b) => Number(a[0]) - Number(b[0]))];
    const zoneless = INPUT.replace(/(\.\d{6})Z/g, '$1'); // MySQL DATETIME(6): the same UTC time, without a zone
    expect(byId(records(await readFile(output, 'utf8')))).toEqual(byId(records(zoneless)));
  });

  it('PostgreSQL → Parquet → PostgreSQL: numeric(38,10), bigint, microsecond timestamptz and text come back equal', async () => {
    const p = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
    await p.connect();
    try {
      const src = `${pgTable}_src`;
      await p.query(`DROP TABLE IF EXISTS "${src}"`);
      await p.query(`CREATE TABLE "${src}" (id int, amount numeric(38,10), big bigint, at timestamptz, label text)`);
      await p.query(
        `INSERT INTO "${src}" VALUES
         (1, '1234567890123456789012345678.1234567890', 9007199254740993, '2024-05-01 10:00:00.123456+00', 'a "b"'),
         (2, '-0.0000000001', -9223372036854775808, '1999-12-31 23:59:59.999999+00', ''),
         (3, NULL, NULL, NULL, NULL)`,
      );
      const parquet = join(dir, 'pg.parquet');
      await leg('pg-parquet-2', `{ type: postgres, database: test, table: ${src} }`, `{ type: parquet, path: ${parquet} }`);
      await leg('parquet-pg-2', `{ type: parquet, path: ${parquet} }`, `{ type: postgres, database: test, table: ${pgBack} }`);
      await p.query("SET TIME ZONE 'UTC'");
      const text = async (t: string) =>
        (await p.query(`SELECT id::text AS id, amount::text AS amount, big::text AS big, at::text AS at, label FROM "${t}" ORDER BY id`))
          .rows;
      expect(await text(pgBack)).toEqual(await text(src));
      await p.query(`DROP TABLE IF EXISTS "${src}"`);
    } finally {
      await p.end();
    }
  });
});
