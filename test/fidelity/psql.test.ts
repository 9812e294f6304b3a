/**
 * weir's CSV → PostgreSQL loads compared with `psql \copy` on generated hard files
 * (generate.ts): the same file into identical tables must give the same content
 * digest — into an all-text table (text arrives byte for byte, NULL is not ''),
 * into the table weir creates from its inference (exact types: psql loads the same
 * text into the same column types), on the COPY passthrough and on the row path.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../foundation/harness.js';
import { tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';
import { type CsvCase, csvCase, propertyRuns } from './generate.js';

const run = promisify(execFile);
const up = await requireService('postgres');
const BASE = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };
const pipeline = `fidelity-pg-${randomBytes(3).toString('hex')}`;
const dir = tempDir();
let admin: pg.Client;
const created: string[] = [];
const name = () => {
  const t = `fid_${randomBytes(4).toString('hex')}`;
  created.push(t);
  return t;
};

beforeAll(async () => {
  if (!up) return;
  admin = new pg.Client(BASE);
  await admin.connect();
});

afterAll(async () => {
  if (!up) return;
  for (const t of created) await admin.query(`DROP TABLE IF EXISTS "${t}"`);
  await admin.query('DELETE FROM _weir_checkpoints WHERE pipeline LIKE $1', [`${pipeline}%`]).catch(() => {});
  await admin.query('DELETE FROM _weir_runs WHERE pipeline LIKE $1', [`${pipeline}%`]).catch(() => {});
  await admin.end();
});

/** Runs one psql command (`-c`) in UTC, as a user would from a shell; resolves with its output. */
async function psql(command: string): Promise<string> {
  const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', BASE.host, '-U', BASE.user, '-d', BASE.database, '-c', command];
  const { stdout } = await run('psql', args, { env: { ...process.env, PGTZ: 'UTC' } });
  return stdout.trim();
}

/** md5 of every row's text (composite output tells NULL from ''), in a fixed order; UTC for timestamptz. */
const digest = (table: string) =>
  psql(`SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE "C"), '')) FROM "${table}" t`);

const psqlCopy = (table: string, path: string) => psql(`\\copy "${table}" FROM '${path}' WITH (FORMAT csv, HEADER true)`);

async function weir(table: string, path: string, sink = ''): Promise<void> {
  const { summary } = await runYaml(
    `
pipeline: ${pipeline}-${table}
source: { type: csv, path: ${path} }
sink: { type: postgres, database: test, table: ${table}${sink} }
`,
    [],
    dir,
  );
  expect(summary.status, JSON.stringify(summary.error ?? summary)).toBe('succeeded');
}

async function caseFile(c: CsvCase): Promise<string> {
  const path = join(dir, `case-${randomBytes(4).toString('hex')}.csv`);
  await writeFile(path, c.text);
  return path;
}

describe.skipIf(!up)('CSV → PostgreSQL equals psql \\copy', () => {
  it('into all-text tables: text byte for byte, NULL apart from the empty string (passthrough and row path)', async () => {
    await fc.assert(
      fc.asyncProperty(csvCase(), async (c) => {
        const path = await caseFile(c);
        const ddl = ['rid text PRIMARY KEY', ...c.columns.map((col) => `${col} text`)].join(', ');
        const [ref, fast, slow] = [name(), name(), name()];
        for (const t of [ref, fast, slow]) await admin.query(`CREATE TABLE "${t}" (${ddl})`);
        await psqlCopy(ref, path);
        await weir(fast, path);
        await weir(slow, path, ', mode: upsert, key_columns: [rid]'); // upsert takes rows, not COPY passthrough
        const expected = await digest(ref);
        expect(await digest(fast), c.text).toBe(expected);
        expect(await digest(slow), c.text).toBe(expected);
      }),
      propertyRuns(10),
    );
  });

  it('into the table weir creates: psql loads the same file into the same column types to the same content', async () => {
    await fc.assert(
      fc.asyncProperty(csvCase(), async (c) => {
        const path = await caseFile(c);
        const [made, ref, slow] = [name(), name(), name()];
        await weir(made, path);
        await admin.query(`CREATE TABLE "${ref}" (LIKE "${made}")`);
        await psqlCopy(ref, path);
        await weir(slow, path, ', mode: upsert, key_columns: [rid]');
        const expected = await digest(ref);
        expect(await digest(made), c.text).toBe(expected);
        expect(await digest(slow), c.text).toBe(expected);
      }),
      propertyRuns(10),
    );
  });

  it('keeps 38-digit decimals, integers beyond 2^53 and microseconds exact in the columns it creates', async () => {
    const path = join(dir, 'exact.csv');
    await writeFile(
      path,
      'id,amount,big,at,price\n' +
        '1,12345678901234567890123456789.123456789,9007199254740993,2024-05-01T10:00:00.123456Z,375.30\n' +
        '2,-0.00000000000000000000000000000000000001,-9223372036854775808,1999-12-31 23:59:59.999999+00,12345678901234567.89\n',
    );
    const t = name();
    await weir(t, path);
    const types = await admin.query(
      'SELECT column_name AS c, data_type AS t FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position',
      [t],
    );
    expect(types.rows.map((r) => `${r.c}:${r.t}`)).toEqual([
      'id:bigint',
      'amount:numeric',
      'big:bigint',
      'at:timestamp with time zone',
      'price:numeric',
    ]);
    await admin.query("SET TIME ZONE 'UTC'");
    const rows = await admin.query(
      `SELECT id, amount::text, big::text, to_char(at, 'YYYY-MM-DD HH24:MI:SS.US') AS at, price::text FROM "${t}" ORDER BY id`,
    );
    expect(rows.rows).toEqual([
      {
        id: '1',
        amount: '12345678901234567890123456789.123456789',
        big: '9007199254740993',
        at: '2024-05-01 10:00:00.123456',
        price: '375.30',
      },
      {
        id: '2',
        amount: '-0.00000000000000000000000000000000000001',
        big: '-9223372036854775808',
        at: '1999-12-31 23:59:59.999999',
        price: '12345678901234567.89',
      },
    ]);
  });
});

describe.skipIf(!up)('where psql \\copy has an opinion (issue 10, item 12)', () => {
  const create = async (t: string) => admin.query(`CREATE TABLE "${t}" (id integer, name text)`);
  const file = async (content: string | Buffer) => {
    const path = join(dir, `opinion-${randomBytes(4).toString('hex')}.csv`);
    await writeFile(path, content);
    return path;
  };

  it('LF and CRLF records in one file: psql refuses it; weir loads each record as psql loads the same file with one line ending', async () => {
    const mixed = await file('id,name\r\n1,a\n2,"b\r\nc"\r\n3,d\n');
    const [t1, t2, t3] = [name(), name(), name()];
    for (const t of [t1, t2, t3]) await create(t);
    await expect(psqlCopy(t1, mixed)).rejects.toThrow(/carriage return|newline/i);
    await psqlCopy(t1, await file('id,name\n1,a\n2,"b\r\nc"\n3,d\n'));
    await weir(t2, mixed);
    await weir(t3, mixed, ', batch_size: 1');
    expect(await digest(t2)).toBe(await digest(t1));
    expect(await digest(t3)).toBe(await digest(t1));
  });

  it('invalid UTF-8: psql refuses the whole file; weir loads the other rows and dead-letters that one', async () => {
    const bad = await file(Buffer.concat([Buffer.from('id,name\n1,a\n2,'), Buffer.from([0xff]), Buffer.from('\n3,c\n')]));
    const [t1, t2] = [name(), name()];
    await create(t1);
    await create(t2);
    await expect(psqlCopy(t1, bad)).rejects.toThrow(/invalid byte sequence/);
    await psqlCopy(t1, await file('id,name\n1,a\n3,c\n'));
    const { summary } = await runYaml(
      `pipeline: ${pipeline}-${t2}\nsource: { type: csv, path: ${bad} }\nsink: { type: postgres, database: test, table: ${t2} }\nerrors: { tolerance: all, dead_letter: { type: jsonl, path: dead-${t2}.jsonl } }\n`,
      [],
      dir,
    );
    expect(summary.totals).toMatchObject({ rows_read: 3, rows_written: 2, rows_dead_lettered: 1 });
    expect(await digest(t2)).toBe(await digest(t1));
  });
});
