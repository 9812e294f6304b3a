/**
 * The CSV fast path into MySQL/MariaDB: the csv source's encoded chunks rewritten
 * into LOAD DATA's text format must store exactly what the row path stores, and a
 * run with bad records must dead-letter them and load the rest (or, with
 * tolerance none, fail and leave nothing of the partition).
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { requireService } from '../../../test/helpers/services.js';
import { commitContext, connectorOptions, planContext, taskContext, tempDir } from '../../sdk/testing.js';
import type { Row, Schema } from '../../sdk/types.js';
import csv from '../csv/index.js';
import { type LoadCounts, writeCsv } from '../shared/encoded-load.js';
import type { TableColumn } from './db.js';
import mysqlConnector from './index.js';
import { LoadDataEncoder, type LoadKind, loadKindOf } from './load-data.js';

const col = (dataType: string, extra: Partial<TableColumn> = {}): TableColumn => ({
  name: 'c',
  dataType,
  columnType: dataType,
  nullable: true,
  json: false,
  ...extra,
});

describe('LoadDataEncoder', () => {
  const dialect = { delimiter: ',', quote: '"', nullText: '' };
  const encode = (text: string, kinds: LoadKind[] = ['text', 'text'], d = dialect) =>
    new LoadDataEncoder(d, kinds).encode(Buffer.from(text)).toString();

  it('unquotes, escapes what LOAD DATA reads specially, and writes NULL as \\N', () => {
    expect(encode('a,b\n')).toBe('a\tb\n');
    expect(encode('"a,""b""\nc","x\ty"\n')).toBe('a,"b"\\nc\tx\\ty\n');
    expect(encode(',""\n')).toBe('\\N\t\n');
    expect(encode('a\\N,\\\r\n')).toBe('a\\\\N\t\\\\\n'); // backslashes doubled; CRLF ends the record
    expect(encode('a\rb,"\r\n"\r\n')).toBe('a\\rb\t\\r\\n\n'); // a bare CR is text
    expect(encode('\0,x\n')).toBe('\\0\tx\n');
  });

  it('the null text is NULL only unquoted', () => {
    const d = { delimiter: ';', quote: "'", nullText: 'NA' };
    expect(encode("NA;'NA'\n", ['text', 'text'], d)).toBe('\\N\tNA\n');
    expect(encode(';NAN\n', ['text', 'text'], d)).toBe('\tNAN\n');
  });

  it('booleans become 1/0 and ISO timestamps DATETIME text', () => {
    expect(encode('true,false\n', ['boolean', 'boolean'])).toBe('1\t0\n');
    expect(encode(',"true"\n', ['boolean', 'boolean'])).toBe('\\N\t1\n');
    expect(encode('2024-05-01T10:00:00.250Z,2024-05-01\n', ['datetime', 'datetime'])).toBe('2024-05-01 10:00:00.250\t2024-05-01\n');
    expect(encode(',x\n', ['datetime', 'text'])).toBe('\\N\tx\n');
  });

  it('refuses a record with another number of fields (the source vouches for them: a bug, not bad data)', () => {
    expect(() => encode('a,b,c\n')).toThrow(/more than 2 field/);
    expect(() => encode('a\n')).toThrow(/1 field\(s\), not 2/);
  });

  it('reuses its buffer and grows it when a batch needs more', () => {
    const e = new LoadDataEncoder(dialect, ['text']);
    expect(e.encode(Buffer.from('a\n')).toString()).toBe('a\n');
    const big = `${'\\'.repeat(10_000)}\n`;
    expect(e.encode(Buffer.from(big)).toString()).toBe(`${'\\'.repeat(20_000)}\n`);
  });

  it('declines the pairs whose row path does more than the server would', () => {
    expect(loadKindOf('integer', col('bigint'))).toBe('text');
    expect(loadKindOf('string', col('int'))).toBeUndefined(); // '1.5' would be rounded without a word
    expect(loadKindOf('number', col('int'))).toBeUndefined();
    expect(loadKindOf('boolean', col('tinyint'))).toBe('boolean');
    expect(loadKindOf('decimal', col('decimal'))).toBe('text');
    expect(loadKindOf('string', col('double'))).toBeUndefined();
    expect(loadKindOf('timestamp', col('datetime'))).toBe('datetime');
    expect(loadKindOf('integer', col('datetime'))).toBeUndefined();
    expect(loadKindOf('json', col('json', { json: true }))).toBeUndefined();
    expect(loadKindOf('json', col('text'))).toBeUndefined();
    expect(loadKindOf('number', col('text'))).toBe('text');
    expect(loadKindOf('boolean', col('varchar'))).toBe('boolean');
  });
});

const up = await requireService('mysql');
const BASE = { host: '127.0.0.1', port: 3306, user: 'root', database: 'test' };
const pipeline = `my-pass-${randomBytes(3).toString('hex')}`;

let admin: mysql.Connection;
let dir: string;
const created: string[] = [];
const tableName = (prefix = 'lt') => {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  created.push(name);
  return name;
};
const select = async (sql: string) => (await admin.query<mysql.RowDataPacket[]>(sql))[0] as Row[];

beforeAll(async () => {
  if (!up) return;
  admin = await mysql.createConnection({ ...BASE, timezone: 'Z', dateStrings: true, supportBigNumbers: true, bigNumberStrings: true });
  dir = await tempDir('weir-my-pass-');
});
afterAll(async () => {
  if (!up) return;
  for (const t of created) await admin.query(`DROP TABLE IF EXISTS \`${t}\``);
  await admin.query('DELETE FROM _weir_checkpoints WHERE pipeline LIKE ?', [`${pipeline}%`]).catch(() => {});
  await admin.query('DELETE FROM _weir_runs WHERE pipeline LIKE ?', [`${pipeline}%`]).catch(() => {});
  await admin.end();
  await rm(dir, { recursive: true, force: true });
});

/**
 * Loads `path` into `table` through the sink's writer the way the runtime does:
 * encoded chunks through writeEncoded (decoded and written as rows when declined or
 * refused for their data), or the row path's rows.
 */
async function load(path: string, input: Record<string, unknown>, table: string, encoded: boolean) {
  const opts = connectorOptions(csv, { path, ...input }, 'source');
  const source = csv.source?.(opts) ?? expect.unreachable();
  const schema = (await source.schema?.(planContext({ baseDir: dir }))) as Schema;
  const sink =
    mysqlConnector.sink?.(connectorOptions(mysqlConnector, { ...BASE, table, method: 'load_data' }, 'sink')) ?? expect.unreachable();
  const runId = `run-${randomBytes(4).toString('hex')}`;
  const cctx = { ...commitContext({ baseDir: dir, runId, schema }), pipeline };
  await sink.setup?.(cctx);
  const ctx = { ...taskContext({ baseDir: dir, runId, schema }), pipeline };
  const writer = await sink.writer({ id: '0' }, ctx);
  let counts: LoadCounts;
  try {
    counts = await writeCsv(writer, path, opts, ctx, encoded);
    await writer.commit?.();
  } finally {
    await writer.close?.();
  }
  await sink.commit?.([], cctx);
  await sink.close?.();
  return { ...counts, rejected: ctx.rejected.length };
}

/** Rows of a table as sorted JSON lines (a multiset to compare); HEX() of text columns shows every byte. */
async function contents(table: string): Promise<string[]> {
  return (await select(`SELECT * FROM \`${table}\``)).map((r) => JSON.stringify(r)).sort();
}

async function compareLoads(content: string | Buffer, input: Record<string, unknown>, columnsSql: string) {
  const path = join(dir, `in-${randomBytes(3).toString('hex')}.csv`);
  await writeFile(path, content);
  const fast = tableName();
  const slow = tableName();
  await admin.query(`CREATE TABLE \`${fast}\` (${columnsSql}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
  await admin.query(`CREATE TABLE \`${slow}\` (${columnsSql}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
  const a = await load(path, input, fast, true);
  const b = await load(path, input, slow, false);
  expect(await contents(fast)).toEqual(await contents(slow));
  expect(a.failed + a.rejected).toBe(b.failed + b.rejected);
  return a;
}

describe.skipIf(!up)('mysql sink: CSV into LOAD DATA', () => {
  it('accepts csv with method load_data (append and replace), not with insert', () => {
    const sink = (input: Record<string, unknown>) =>
      mysqlConnector.sink?.(connectorOptions(mysqlConnector, { ...BASE, table: 't', ...input }, 'sink'));
    expect(sink({ method: 'load_data' })?.accepts).toEqual(['csv']);
    expect(sink({ method: 'load_data', mode: 'replace' })?.accepts).toEqual(['csv']);
    expect(sink({})?.accepts).toBeUndefined();
  });

  const edgy =
    'id,amount,ok,at,note,dec\n' +
    '1,1.50,TRUE,2024-05-01,"a, ""b""\nc\td",1.50\n' +
    '007,-0,no,2024-05-01 10:00:00+02,,-0\n' +
    '3, 4 ,Y, 2024-05-01T00:00:00Z ,"",1e2\n' +
    '4,1e300,0,2024-05-01T10:00:00.123456Z,\\N,0.001\n' +
    '5,100.00,1,2024-05-01,x"y\\,12345678\n' +
    '\n' +
    '6,0.0000001,f,2024-05-01,"NULL",\n' +
    '7,bad,f,2024-05-01,z,2\n';
  const columns = { id: 'integer', amount: 'number', ok: 'boolean', at: 'timestamp', note: 'string', dec: 'decimal' };

  it('stores what the row path stores, text for text, on a file full of edge cases', async () => {
    const text = 'id text, amount text, ok text, at text, note text, `dec` text';
    const r = await compareLoads(edgy, { columns }, text);
    expect(r.rejected).toBe(1); // 7,bad
    expect(r.declined).toBe(0);
    expect(r.passed).toBeGreaterThan(0);
    await compareLoads(edgy, { columns, null_value: 'NULL' }, text);
  });

  it('into typed columns: the server reads what the row path sends; a value it would round fails the batch, rows isolate it', async () => {
    const r = await compareLoads(edgy, { columns }, 'id bigint, amount double, ok boolean, at datetime(6), note text, `dec` decimal(10,2)');
    expect(r.declined).toBe(0);
    expect(r.failed).toBeGreaterThan(0); // 0.001 into DECIMAL(10,2), 12345678 beyond its 8 integer digits
  });

  it('declines columns it cannot carry as the row path does, and the rows still match', async () => {
    const r = await compareLoads('a,b\n1.5,{"x":true}\n2,true\n', { columns: { a: 'string', b: 'json' } }, 'a int, b text');
    expect(r.declined).toBeGreaterThan(0);
    expect(r.passed).toBe(0);
  });

  it('matches the row path on random files (fast-check)', async () => {
    const kinds = [
      ['integer', 'bigint', ['0', '7', '-12', '007', '1.5', '99999999999999999999', '']],
      ['number', 'double', ['1.5', '1.50', '-0', '1e300', '0.0000001', 'x', '']],
      ['boolean', 'boolean', ['true', 'false', 'TRUE', 'no', 'Y', '0', '']],
      ['timestamp', 'datetime(6)', ['2024-05-01', '2024-05-01T10:00:00Z', '2024-05-01T10:00:00.123456Z', '2024-05-01 10:00:00+02', '']],
      ['string', 'text', ['a', 'é', ' ', ',', '"', '\n', '\r\n', '\r', '\t', '\\', '\\N', 'NULL', '\0', '']],
      ['decimal', 'decimal(12,3)', ['1.5', '1.2345', '-0', '1e2', '123456789012', '']],
      ['integer', 'text', ['0', '42', '']],
      ['boolean', 'text', ['true', 'false', 'yes', '']],
      ['timestamp', 'text', ['2024-05-01T10:00:00Z', '']],
    ] as const;
    const field = (pool: readonly string[]) =>
      fc
        .tuple(fc.constantFrom(...pool), fc.boolean())
        .map(([v, quoted]) => (quoted || /[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v));
    let passed = 0;
    await fc.assert(
      fc.asyncProperty(
        fc
          .array(fc.constantFrom(...kinds), { minLength: 1, maxLength: 4 })
          .chain((cols) =>
            fc.tuple(
              fc.constant(cols),
              fc.array(fc.tuple(...cols.map(([, , pool]) => field(pool))), { maxLength: 30 }),
              fc.constantFrom('\n', '\r\n'),
            ),
          ),
        fc.constantFrom('', 'NULL'),
        async ([cols, records, eol], nullValue) => {
          const names = cols.map((_, i) => `c${i}`);
          const columns = Object.fromEntries(cols.map(([t], i) => [`c${i}`, t]));
          const r = await compareLoads(
            [names.join(','), ...records.map((fields) => fields.join(','))].join(eol) + eol,
            { columns, null_value: nullValue },
            cols.map(([, sql], i) => `c${i} ${sql}`).join(', '),
          );
          passed += r.passed;
        },
      ),
      { numRuns: Number(process.env.WEIR_FUZZ_RUNS ?? 40) },
    );
    expect(passed).toBeGreaterThan(0); // the fast path did carry batches, not only the row path
  }, 180_000);

  describe('through runPipeline', () => {
    const file = async (rows: number, bad: Map<number, string>) => {
      const lines = ['id,name,amount,active,created_at,note'];
      for (let i = 1; i <= rows; i++)
        lines.push(
          `${bad.get(i) ?? i},user_${i},${(i * 1.25).toFixed(2)},${i % 2 === 0},2024-01-01T00:00:${String(i % 60).padStart(2, '0')}Z,"n ""${i}""\n\\."`,
        );
      const path = join(dir, `run-${randomBytes(3).toString('hex')}.csv`);
      await writeFile(path, `${lines.join('\n')}\n`);
      return path;
    };
    const yaml = (name: string, path: string, table: string, errors: string, source = '') => `
pipeline: ${pipeline}-${name}
source:
  type: csv
  path: ${path}${source}
  columns: { id: integer, name: string, amount: number, active: boolean, created_at: timestamp, note: string }
sink: { type: mysql, database: test, table: ${table}, batch_size: 500, method: load_data }
delivery: exactly-once
${errors}
`;

    it('tolerance all: bad records are dead-lettered (the source rejects one, the server another), every other row loads', async () => {
      const path = await file(
        3000,
        new Map([
          [1234, 'x1234'], // not an integer: rejected while scanning
          [2500, '99999999999999999999'], // beyond BIGINT: LOAD DATA warns, the batch is written as rows to isolate it
        ]),
      );
      const table = tableName();
      const run = await tempDir('weir-my-pass-run-');
      const { summary, events } = await runYaml(
        yaml('all', path, table, 'errors: { tolerance: all, dead_letter: { type: jsonl, path: rejected.jsonl } }', '\n  split_bytes: 40KB'),
        [],
        run,
      );
      expect(summary.status).toBe('succeeded');
      expect(summary.partitions.length).toBeGreaterThan(3);
      expect(summary.totals.rows_read).toBe(3000);
      expect(summary.totals.rows_written).toBe(2998);
      expect(summary.totals.rows_dead_lettered).toBe(2);
      const ids = (await select(`SELECT id FROM \`${table}\` ORDER BY id`)).map((r) => Number(r.id));
      expect(ids).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1).filter((i) => i !== 1234 && i !== 2500));
      const stored = await select(`SELECT name, amount, active, created_at, note FROM \`${table}\` WHERE id = 10`);
      expect(stored[0]).toEqual({
        name: 'user_10',
        amount: 12.5,
        active: 1,
        created_at: '2024-01-01 00:00:10.000000',
        note: 'n "10"\n\\.',
      });
      const dead = (await readFile(join(run, 'rejected.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.stringify(JSON.parse(l)))
        .sort();
      expect(dead).toHaveLength(2);
      expect(dead.find((d) => d.includes('x1234'))).toMatch(/"line":2468\b/);
      expect(dead.find((d) => d.includes('99999999999999999999'))).toMatch(/out of range/);
      // the fast path did the loading: a few LOAD DATA batches, not thousands of rows one by one
      expect(events.filter((e) => e.type === 'batch_written').length).toBeLessThan(40);
      await rm(run, { recursive: true, force: true });
    });

    it('tolerance none: the bad record fails the run and nothing of the partition stays', async () => {
      for (const bad of ['x1234', '99999999999999999999']) {
        const path = await file(3000, new Map([[2900, bad]]));
        const table = tableName();
        await admin.query(
          `CREATE TABLE \`${table}\` (id bigint, name text, amount double, active boolean, created_at datetime(6), note text) ENGINE=InnoDB`,
        );
        const { summary } = await runYaml(yaml(`none-${bad.length}`, path, table, 'errors: { tolerance: none }'));
        expect(summary.status).toBe('failed');
        expect(Number((await select(`SELECT count(*) AS n FROM \`${table}\``))[0]?.n)).toBe(0);
      }
    });
  });
});
