/**
 * The CSV passthrough path into PostgreSQL: the csv source's encoded chunks sent to
 * COPY (FORMAT csv) must store exactly what the row path stores, and a run with bad
 * records must dead-letter them and load the rest (or, with tolerance none, fail
 * and leave nothing of the partition).
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { requireService } from '../../../test/helpers/services.js';
import { commitContext, connectorOptions, planContext, taskContext, tempDir } from '../../sdk/testing.js';
import type { Row, Schema } from '../../sdk/types.js';
import csv from '../csv/index.js';
import { writeCsv } from '../shared/encoded-load.js';
import postgres from './index.js';

const up = await requireService('postgres');
const BASE = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };
const pipeline = `pg-pass-${randomBytes(3).toString('hex')}`;

let admin: pg.Client;
let dir: string;
const created: string[] = [];
const tableName = (prefix = 'pt') => {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  created.push(name);
  return name;
};
const select = async (sql: string, values: unknown[] = []) => (await admin.query(sql, values)).rows as Row[];

function csvOpts(input: Record<string, unknown>) {
  return connectorOptions(csv, input, 'source');
}
function pgOpts(input: Record<string, unknown>) {
  return connectorOptions(postgres, { ...BASE, ...input }, 'sink');
}

beforeAll(async () => {
  if (!up) return;
  admin = new pg.Client(BASE);
  await admin.connect();
  await admin.query("SET TIME ZONE 'UTC'");
  dir = await tempDir('weir-pg-pass-');
});
afterAll(async () => {
  if (!up) return;
  for (const t of created) await admin.query(`DROP TABLE IF EXISTS "${t}"`);
  await admin.query('DELETE FROM _weir_checkpoints WHERE pipeline LIKE $1', [`${pipeline}%`]).catch(() => {});
  await admin.query('DELETE FROM _weir_runs WHERE pipeline LIKE $1', [`${pipeline}%`]).catch(() => {});
  await admin.end();
  await rm(dir, { recursive: true, force: true });
});

/**
 * Loads `path` into `table` through the sink's writer, the way the runtime does:
 * encoded chunks through writeEncoded (decoded and written as rows when declined
 * or refused for their data), or the row path's rows.
 */
async function load(path: string, input: Record<string, unknown>, table: string, encoded: boolean) {
  const opts = csvOpts({ path, ...input });
  const source = csv.source?.(opts) ?? expect.unreachable();
  const schema = (await source.schema?.(planContext({ baseDir: dir }))) as Schema;
  const sink = postgres.sink?.(pgOpts({ table })) ?? expect.unreachable();
  const runId = `run-${randomBytes(4).toString('hex')}`;
  const cctx = { ...commitContext({ baseDir: dir, runId, schema }), pipeline };
  await sink.setup?.(cctx);
  const ctx = { ...taskContext({ baseDir: dir, runId, schema }), pipeline };
  const writer = await sink.writer({ id: '0' }, ctx);
  let counts: { passed: number; failed: number };
  try {
    counts = await writeCsv(writer, path, opts, ctx, encoded);
    await writer.commit?.();
  } finally {
    await writer.close?.();
  }
  await sink.commit?.([], cctx);
  return { failed: counts.failed, passed: counts.passed, rejected: ctx.rejected.length, bytes: ctx.bytes };
}

/** Rows of a table as sorted JSON lines (a multiset to compare). */
async function contents(table: string): Promise<string[]> {
  return (await select(`SELECT * FROM "${table}"`)).map((r) => JSON.stringify(r)).sort();
}

async function compareLoads(content: string | Buffer, input: Record<string, unknown>, columnsSql: string) {
  const path = join(dir, `in-${randomBytes(3).toString('hex')}.csv`);
  await writeFile(path, content);
  const fast = tableName();
  const slow = tableName();
  await admin.query(`CREATE TABLE "${fast}" (${columnsSql})`);
  await admin.query(`CREATE TABLE "${slow}" (${columnsSql})`);
  const a = await load(path, input, fast, true);
  const b = await load(path, input, slow, false);
  expect(await contents(fast)).toEqual(await contents(slow));
  expect(a.failed + a.rejected).toBe(b.failed + b.rejected);
  return a;
}

describe.skipIf(!up)('postgres sink: CSV passthrough', () => {
  it('accepts csv in append and replace mode, not in upsert', () => {
    expect(postgres.sink?.(pgOpts({ table: 't' })).accepts).toEqual(['csv']);
    expect(postgres.sink?.(pgOpts({ table: 't', mode: 'replace' })).accepts).toEqual(['csv']);
    expect(postgres.sink?.(pgOpts({ table: 't', mode: 'upsert', key_columns: ['id'] })).accepts ?? []).toEqual([]);
  });

  it('stores what the row path stores, text for text, on a file full of edge cases', async () => {
    const content =
      'id,amount,ok,at,note,doc\n' +
      '1,1.50,TRUE,2024-05-01,"a, ""b""\nc",{"x":1.10}\n' +
      '007,-0,no,2024-05-01 10:00:00+02,,"[1, 2]"\n' +
      '3, 4 ,Y, 2024-05-01T00:00:00Z ,"",null\n' +
      '4,1e400,0,2024-05-01,\\.,"""s"""\n' +
      '5,100.00,1,2024-05-01,x"y,"{""a"":""\\\\n""}"\n' +
      '\n' +
      '6,0.0000001,f,2024-05-01,"NULL",\n' +
      '7,bad,f,2024-05-01,z,{}\n';
    const columns = { id: 'integer', amount: 'number', ok: 'boolean', at: 'timestamp', note: 'string', doc: 'json' };
    const text = 'id text, amount text, ok text, at text, note text, doc text';
    const r = await compareLoads(content, { columns }, text);
    expect(r.rejected).toBe(1); // 7,bad
    await compareLoads(content, { columns, null_value: 'NULL' }, text);
    // the same into typed columns: the server parses what the row path would have sent
    await compareLoads(content, { columns }, 'id bigint, amount double precision, ok boolean, at timestamptz, note text, doc jsonb');
  });

  it('a value only the server refuses (a 30th of February) fails the batch as data; decoded rows isolate it', async () => {
    const lines = ['id,at'];
    for (let i = 1; i <= 40; i++) lines.push(`${i},${i === 17 ? '2024-02-30' : '2024-02-01'}`);
    const r = await compareLoads(`${lines.join('\n')}\n`, { columns: { id: 'integer', at: 'timestamp' } }, 'id bigint, at timestamptz');
    expect(r.failed).toBe(1);
    expect(r.passed).toBeGreaterThan(0);
  });

  it('matches the row path on random files (fast-check)', async () => {
    const token = fc.constantFrom(
      'a',
      'é',
      ',',
      '"',
      '\n',
      '\r\n',
      ' ',
      '1',
      '-',
      '.',
      '007',
      '1.50',
      'true',
      '\\',
      '\\.',
      '2024-05-01',
      '""',
      'NULL',
      '{"k":[1]}',
    );
    const types = fc.constantFrom('integer', 'number', 'boolean', 'timestamp', 'string', 'json');
    await fc.assert(
      fc.asyncProperty(
        fc.array(token, { maxLength: 50 }),
        fc.array(types, { minLength: 1, maxLength: 3 }),
        fc.constantFrom('', 'NULL'),
        async (tokens, colTypes, nullValue) => {
          const names = colTypes.map((_, i) => `c${i}`);
          const columns = Object.fromEntries(colTypes.map((t, i) => [`c${i}`, t]));
          await compareLoads(
            `${names.join(',')}\n${tokens.join('')}`,
            { columns, null_value: nullValue },
            names.map((n) => `${n} text`).join(', '),
          );
        },
      ),
      { numRuns: Number(process.env.WEIR_FUZZ_RUNS ?? 40) },
    );
  }, 120_000);

  describe('through runPipeline', () => {
    const file = async (rows: number, bad: Map<number, string>) => {
      const lines = ['id,name,amount,active,created_at,note'];
      for (let i = 1; i <= rows; i++)
        lines.push(
          `${bad.get(i) ?? i},user_${i},${(i * 1.25).toFixed(2)},${i % 2 === 0},2024-01-01T00:00:${String(i % 60).padStart(2, '0')}Z,"n ""${i}""\n."`,
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
sink: { type: postgres, database: test, table: ${table}, batch_size: 500 }
delivery: exactly-once
${errors}
`;

    it('tolerance all: bad records are dead-lettered (the source rejects one, the server another), every other row loads', async () => {
      const path = await file(
        3000,
        new Map([
          [1234, 'x1234'], // not an integer: rejected while scanning
          [2500, '99999999999999999999'], // an integer the server cannot store in bigint: the COPY fails, rows isolate it
        ]),
      );
      const table = tableName();
      const run = await tempDir('weir-pg-pass-run-');
      const { summary, events } = await runYaml(
        yaml('all', path, table, 'errors: { tolerance: all, dead_letter: { type: jsonl, path: rejected.jsonl } }'),
        [],
        run,
      );
      expect(summary.status).toBe('succeeded');
      expect(summary.totals.rows_read).toBe(3000);
      expect(summary.totals.rows_written).toBe(2998);
      expect(summary.totals.rows_dead_lettered).toBe(2);
      const ids = (await select(`SELECT id FROM "${table}" ORDER BY id`)).map((r) => Number(r.id));
      expect(ids).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1).filter((i) => i !== 1234 && i !== 2500));
      const stored = await select(`SELECT * FROM "${table}" WHERE id = 10`);
      expect(stored[0]).toMatchObject({ name: 'user_10', amount: 12.5, active: true, note: 'n "10"\n.' });
      const dead = (await readFile(join(run, 'rejected.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(dead).toHaveLength(2);
      expect(JSON.stringify(dead[0])).toMatch(/x1234/);
      expect(JSON.stringify(dead[1])).toMatch(/99999999999999999999/);
      // the fast path did the loading: a few COPY batches, not thousands of rows one by one
      expect(events.filter((e) => e.type === 'batch_written').length).toBeLessThan(20);
      await rm(run, { recursive: true, force: true });
    });

    it('a file cut into partitions (split_bytes) loads every row once, in parallel transactions, dead letters with their lines', async () => {
      const path = await file(
        3000,
        new Map([
          [1234, 'x1234'],
          [2500, '99999999999999999999'],
        ]),
      );
      const table = tableName();
      const run = await tempDir('weir-pg-pass-split-');
      const { summary } = await runYaml(
        yaml(
          'split',
          path,
          table,
          'errors: { tolerance: all, dead_letter: { type: jsonl, path: rejected.jsonl } }',
          '\n  split_bytes: 40KB',
        ),
        [],
        run,
      );
      expect(summary.status).toBe('succeeded');
      expect(summary.partitions.length).toBeGreaterThan(3);
      expect(summary.totals.rows_written).toBe(2998);
      const counts = (await select(`SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM "${table}"`))[0];
      expect(counts).toEqual({ n: 2998, d: 2998 });
      const dead = (await readFile(join(run, 'rejected.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.stringify(JSON.parse(l)))
        .sort();
      expect(dead).toHaveLength(2);
      // each record spans two lines of the file (a quoted line break): record n starts on line 2n
      expect(dead.find((d) => d.includes('x1234'))).toMatch(/"line":2468\b/);
      await rm(run, { recursive: true, force: true });
    });

    it("passes `true` and `1.50` as they are only into boolean and float columns; text and numeric get the row path's text", async () => {
      const path = join(dir, `hints-${randomBytes(3).toString('hex')}.csv`);
      await writeFile(path, 'b,bt,f,ft,n\ntrue,true,1.50,1.50,1.50\nNo,No,2.0,2.0,2.0\n');
      const table = tableName();
      await admin.query(`CREATE TABLE "${table}" (b boolean, bt text, f double precision, ft text, n numeric)`);
      const { summary } = await runYaml(`
pipeline: ${pipeline}-hints
source:
  type: csv
  path: ${path}
  columns: { b: boolean, bt: boolean, f: number, ft: number, n: number }
sink: { type: postgres, database: test, table: ${table} }
delivery: exactly-once
`);
      expect(summary.status).toBe('succeeded');
      const rows = await select(`SELECT b, bt, f, ft, n::text AS n FROM "${table}" ORDER BY f`);
      expect(rows).toEqual([
        { b: true, bt: 'true', f: 1.5, ft: '1.5', n: '1.5' },
        { b: false, bt: 'false', f: 2, ft: '2', n: '2' },
      ]);
      // what the writer told the source
      const schema: Schema = ['b', 'bt', 'f', 'ft', 'n'].map((name) => ({ name, type: name.startsWith('b') ? 'boolean' : 'number' }));
      const sink = postgres.sink?.(pgOpts({ table })) ?? expect.unreachable();
      const writer = await sink.writer({ id: '0' }, taskContext({ baseDir: dir, schema }));
      expect(await writer.encodingHints?.('csv')).toEqual({ valueColumns: ['b', 'f'] });
      await writer.abort?.();
      await writer.close?.();
    });

    it('a value numeric(p,s) would round is a dead letter on both paths, never rounded; exact ones load as they are', async () => {
      const path = join(dir, `scale-${randomBytes(3).toString('hex')}.csv`);
      await writeFile(path, 'id,amount,note\n1,1.50,ok\n2,1.234,rounds\n3,2,ok\n4,-0.001,rounds\n5,7.100,ok\n6,1e-1,ok\n');
      for (const mode of ['append', 'upsert']) {
        const table = tableName();
        await admin.query(`CREATE TABLE "${table}" (id bigint PRIMARY KEY, amount numeric(12,2), note text)`);
        const run = await tempDir('weir-pg-scale-');
        const { summary } = await runYaml(
          `
pipeline: ${pipeline}-scale-${mode}
source: { type: csv, path: ${path} }
sink: { type: postgres, database: test, table: ${table}, mode: ${mode}${mode === 'upsert' ? ', key_columns: [id]' : ''} }
errors: { tolerance: all, dead_letter: { type: jsonl, path: rejected.jsonl } }
`,
          [],
          run,
        );
        expect(summary.status, mode).toBe('succeeded');
        expect(summary.totals.rows_dead_lettered, mode).toBe(2);
        const rows = await select(`SELECT id::int AS id, amount::text AS amount FROM "${table}" ORDER BY id`);
        expect(rows, mode).toEqual([
          { id: 1, amount: '1.50' },
          { id: 3, amount: '2.00' },
          { id: 5, amount: '7.10' },
          { id: 6, amount: '0.10' },
        ]);
        const dead = (await readFile(join(run, 'rejected.jsonl'), 'utf8'))
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l));
        expect(dead.map((d) => d.error_message).join('\n'), mode).toMatch(
          /"amount": "1.234" has more digits after the point than the target column keeps \(2\)/,
        );
        await rm(run, { recursive: true, force: true });
      }
    });

    it('tolerance none: the bad record fails the run and nothing of the partition stays', async () => {
      for (const bad of ['x1234', '99999999999999999999']) {
        const path = await file(3000, new Map([[2900, bad]]));
        const table = tableName();
        await admin.query(
          `CREATE TABLE "${table}" (id bigint, name text, amount double precision, active boolean, created_at timestamptz, note text)`,
        );
        const { summary } = await runYaml(yaml(`none-${bad.length}`, path, table, 'errors: { tolerance: none }'));
        expect(summary.status).toBe('failed');
        expect((await select(`SELECT count(*)::int AS n FROM "${table}"`))[0]?.n).toBe(0);
      }
    });
  });
});
