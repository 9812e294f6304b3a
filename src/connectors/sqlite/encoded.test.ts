/**
 * The CSV fast path into SQLite: the csv source's encoded chunks bound field by
 * field must store exactly what the row path stores (value and storage class), and
 * bad records must be isolated as on the row path.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { commitContext, connectorOptions, planContext, taskContext, tempDir } from '../../sdk/testing.js';
import type { Schema } from '../../sdk/types.js';
import csv from '../csv/index.js';
import { type LoadCounts, writeCsv } from '../shared/encoded-load.js';
import { type BindKind, bindKindOf, CsvBinder } from './encoded.js';
import sqlite from './index.js';

describe('CsvBinder', () => {
  const dialect = { delimiter: ',', quote: '"', nullText: '' };
  const bind = (text: string, kinds: BindKind[], d = dialect) => {
    const records: unknown[][] = [];
    const n = new CsvBinder(d, kinds).each(Buffer.from(text), (v) => records.push([...v]));
    expect(n).toBe(records.length);
    return records;
  };

  it('reads fields from the bytes: quotes, doubled quotes, CRLF, NULL only unquoted', () => {
    expect(bind('a,"b,""c""\nd"\r\n,""\n', ['text', 'text'])).toEqual([
      ['a', 'b,"c"\nd'],
      [null, ''],
    ]);
    expect(bind("NA;'NA'\n", ['text', 'text'], { delimiter: ';', quote: "'", nullText: 'NA' })).toEqual([[null, 'NA']]);
    expect(bind('é,\\\n', ['text', 'text'])).toEqual([['é', '\\']]);
  });

  it('binds integers, numbers and booleans as the row path does', () => {
    expect(bind('7,1.5,true\n-12,1e+300,false\n9007199254740993,-0.25,\n', ['integer', 'number', 'boolean'])).toEqual([
      [7, 1.5, 1],
      [-12, 1e300, 0],
      [9007199254740993n, -0.25, null],
    ]);
  });

  it('refuses a record with another number of fields (the source vouches for them: a bug, not bad data)', () => {
    expect(() => bind('a,b,c\n', ['text', 'text'])).toThrow(/more than 2 field/);
    expect(() => bind('a\n', ['text', 'text'])).toThrow(/1 field\(s\), not 2/);
  });

  it('declines JSON columns only', () => {
    expect(bindKindOf('json')).toBeUndefined();
    expect(bindKindOf('decimal')).toBe('text');
    expect(bindKindOf('timestamp')).toBe('text');
    expect(bindKindOf('integer')).toBe('integer');
  });
});

let dir: string;
beforeAll(async () => {
  dir = await tempDir('weir-sqlite-pass-');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Loads `path` into `db` through the sink, the way the runtime does (encoded chunks, or the row path's rows). */
async function load(path: string, input: Record<string, unknown>, db: string, encoded: boolean) {
  const opts = connectorOptions(csv, { path, ...input }, 'source');
  const source = csv.source?.(opts) ?? expect.unreachable();
  const schema = (await source.schema?.(planContext({ baseDir: dir }))) as Schema;
  const sink = sqlite.sink?.(connectorOptions(sqlite, { path: db, table: 't' }, 'sink')) ?? expect.unreachable();
  const runId = `run-${randomBytes(4).toString('hex')}`;
  const cctx = commitContext({ baseDir: dir, runId, schema });
  await sink.setup?.(cctx);
  const ctx = taskContext({ baseDir: dir, runId, schema });
  const writer = await sink.writer({ id: '0' }, ctx);
  let counts: LoadCounts;
  const messages = [];
  try {
    counts = await writeCsv(writer, path, opts, ctx, encoded);
    messages.push(await writer.commit?.());
  } finally {
    await writer.close?.();
  }
  await sink.commit?.(messages as never, cctx);
  await sink.close?.();
  return { ...counts, rejected: ctx.rejected.length };
}

/** Every stored value with its storage class, as sorted lines (a multiset to compare). */
function contents(db: string, columns: readonly string[]): string[] {
  const conn = new Database(join(dir, db), { readonly: true });
  try {
    const select = columns.map((c) => `typeof("${c}"), quote("${c}")`).join(', ');
    return (conn.prepare(`SELECT ${select} FROM t`).raw().all() as unknown[][]).map((r) => JSON.stringify(r)).sort();
  } finally {
    conn.close();
  }
}

async function compareLoads(content: string, input: Record<string, unknown>, columns: readonly string[]) {
  const path = join(dir, `in-${randomBytes(3).toString('hex')}.csv`);
  await writeFile(path, content);
  const fast = `fast-${randomBytes(3).toString('hex')}.db`;
  const slow = `slow-${randomBytes(3).toString('hex')}.db`;
  const a = await load(path, input, fast, true);
  const b = await load(path, input, slow, false);
  expect(contents(fast, columns)).toEqual(contents(slow, columns));
  expect(a.failed + a.rejected).toBe(b.failed + b.rejected);
  return a;
}

describe('sqlite sink: CSV fast path', () => {
  it('accepts csv', () => {
    expect(sqlite.sink?.(connectorOptions(sqlite, { path: 'x.db', table: 't' }, 'sink')).accepts).toEqual(['csv']);
  });

  it('stores what the row path stores, storage class included, on a file full of edge cases', async () => {
    const content =
      'id,amount,ok,at,note,dec\n' +
      '1,1.50,TRUE,2024-05-01,"a, ""b""\nc",1.50\n' +
      '007,-0,no,2024-05-01 10:00:00+02,,-0\n' +
      '3, 4 ,Y, 2024-05-01T00:00:00Z ,"",1e2\n' +
      '9007199254740993,1e300,0,2024-05-01,\\N,0.001\n' +
      '\n' +
      '6,0.0000001,f,2024-05-01,"NULL",\n' +
      '7,bad,f,2024-05-01,z,2\n';
    const columns = { id: 'integer', amount: 'number', ok: 'boolean', at: 'timestamp', note: 'string', dec: 'decimal' };
    const r = await compareLoads(content, { columns }, Object.keys(columns));
    expect(r.rejected).toBe(1); // 7,bad
    expect(r.declined).toBe(0);
    expect(r.passed).toBeGreaterThan(0);
    await compareLoads(content, { columns, null_value: 'NULL' }, Object.keys(columns));
  });

  it('declines JSON columns, and the rows still match', async () => {
    const r = await compareLoads('a,b\n1,5\n2,"""s"""\n3,true\n', { columns: { a: 'integer', b: 'json' } }, ['a', 'b']);
    expect(r.declined).toBeGreaterThan(0);
    expect(r.passed).toBe(0);
  });

  it('matches the row path on random files (fast-check)', async () => {
    const kinds = [
      ['integer', ['0', '7', '-12', '007', '1.5', '9007199254740993', '99999999999999999999', '']],
      ['number', ['1.5', '1.50', '-0', '1e300', '0.0000001', 'x', '']],
      ['boolean', ['true', 'false', 'TRUE', 'no', 'Y', '0', '']],
      ['timestamp', ['2024-05-01', '2024-05-01T10:00:00Z', '2024-05-01 10:00:00+02', '']],
      ['string', ['a', 'é', ' ', ',', '"', '\n', '\r\n', '\t', '\\', 'NULL', '5', '']],
      ['decimal', ['1.5', '1.2345', '-0', '1e2', '123456789012345678901234567890', '']],
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
              fc.array(fc.tuple(...cols.map(([, pool]) => field(pool))), { maxLength: 30 }),
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
            names,
          );
          passed += r.passed;
        },
      ),
      { numRuns: Number(process.env.WEIR_FUZZ_RUNS ?? 40) },
    );
    expect(passed).toBeGreaterThan(0); // the fast path did carry batches, not only the row path
  }, 120_000);

  it('through runPipeline: bad records are dead-lettered, every other row loads once, split into partitions', async () => {
    const lines = ['id,name,amount,active'];
    for (let i = 1; i <= 3000; i++) lines.push(`${i === 1234 ? 'x1234' : i},"u ""${i}""\n.",${(i * 1.25).toFixed(2)},${i % 2 === 0}`);
    const path = join(dir, 'run.csv');
    await writeFile(path, `${lines.join('\n')}\n`);
    const run = await tempDir('weir-sqlite-pass-run-');
    const { summary, events } = await runYaml(
      `
pipeline: sqlite-pass
source:
  type: csv
  path: ${path}
  split_bytes: 20KB
  columns: { id: integer, name: string, amount: number, active: boolean }
sink: { type: sqlite, path: ${join(run, 'out.db')}, table: t }
delivery: exactly-once
errors: { tolerance: all, dead_letter: { type: jsonl, path: rejected.jsonl } }
`,
      [],
      run,
    );
    expect(summary.status).toBe('succeeded');
    expect(summary.partitions.length).toBeGreaterThan(3);
    expect(summary.totals.rows_written).toBe(2999);
    expect(summary.totals.rows_dead_lettered).toBe(1);
    const conn = new Database(join(run, 'out.db'), { readonly: true });
    const counts = conn.prepare('SELECT count(*) AS n, count(DISTINCT id) AS d FROM t').get();
    const stored = conn.prepare('SELECT * FROM t WHERE id = 10').get();
    conn.close();
    expect(counts).toEqual({ n: 2999, d: 2999 });
    expect(stored).toEqual({ id: 10, name: 'u "10"\n.', amount: 12.5, active: 1 });
    const dead = (await readFile(join(run, 'rejected.jsonl'), 'utf8')).trim().split('\n');
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatch(/x1234/);
    expect(events.filter((e) => e.type === 'batch_written').length).toBeLessThan(40);
    await rm(run, { recursive: true, force: true });
  });
});
