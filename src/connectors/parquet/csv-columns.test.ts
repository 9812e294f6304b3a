/**
 * The parquet sink's fast path: a csv source's encoded chunks read straight into
 * the column buffers must give the file the row path gives — the same bytes, and
 * DuckDB reading both back the same values — on hard values (quotes, line breaks,
 * NULL beside "", integers beyond 2^53, 28-digit decimals, timestamps with zones),
 * with tiny chunks and row groups so every boundary is crossed. Bad records are
 * rejected by the same rows either way.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { commitContext, connectorOptions, planContext, taskContext, tempDir } from '../../sdk/testing.js';
import type { JsonValue, Schema } from '../../sdk/types.js';
import csv from '../csv/index.js';
import { writeCsv } from '../shared/encoded-load.js';
import parquet from './index.js';

type Connection = Awaited<ReturnType<Awaited<ReturnType<typeof import('@duckdb/node-api').DuckDBInstance.create>>['connect']>>;

let duck: Connection;
let dir: string;
beforeAll(async () => {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  duck = await (await DuckDBInstance.create(':memory:')).connect();
  await duck.run("SET TimeZone = 'UTC'");
  dir = await tempDir('weir-parquet-csv-');
});

const COLUMNS = {
  id: 'integer',
  name: 'string',
  amount: 'number',
  active: 'boolean',
  created_at: 'timestamp',
  note: 'string',
  price: 'decimal',
};

/** Writes `path` (a CSV file) to a Parquet file through the sink's writer: encoded chunks or the row path's rows. */
async function load(path: string, encoded: boolean, rowGroupSize: number) {
  const opts = connectorOptions(csv, { path, columns: COLUMNS }, 'source');
  const source = csv.source?.(opts) ?? expect.unreachable();
  const schema = (await source.schema?.(planContext({ baseDir: dir }))) as Schema;
  const out = join(dir, `out-${randomBytes(4).toString('hex')}.parquet`);
  const sink = parquet.sink?.(connectorOptions(parquet, { path: out, row_group_size: rowGroupSize }, 'sink')) ?? expect.unreachable();
  const runId = `run-${randomBytes(4).toString('hex')}`;
  const cctx = commitContext({ baseDir: dir, runId, schema });
  await sink.setup?.(cctx);
  const ctx = taskContext({ baseDir: dir, runId, schema });
  const writer = await sink.writer({ id: '0' }, ctx);
  let counts: Awaited<ReturnType<typeof writeCsv>>;
  let message: JsonValue;
  try {
    counts = await writeCsv(writer, path, opts, ctx, encoded);
    message = (await writer.commit?.()) as JsonValue;
  } finally {
    await writer.close?.();
  }
  await sink.commit?.([message], cctx);
  return { out, counts, rejected: ctx.rejected.length };
}

/** Every row as DuckDB reads it back, each value cast to text (NULL apart from ''), in file order. */
async function duckRows(file: string): Promise<string[]> {
  const r = await duck.runAndReadAll(
    `SELECT concat_ws('|', ${Object.keys(COLUMNS)
      .map((c) => `coalesce('''' || ${c}::VARCHAR || '''', 'NULL')`)
      .join(', ')}) FROM read_parquet('${file}')`,
  );
  return r.getRows().map((row) => String(row[0]));
}

async function compare(content: string, rowGroupSize: number) {
  const path = join(dir, `in-${randomBytes(4).toString('hex')}.csv`);
  await writeFile(path, content);
  const fast = await load(path, true, rowGroupSize);
  const slow = await load(path, false, rowGroupSize);
  expect(fast.counts.failed + fast.rejected).toBe(slow.counts.failed + slow.rejected);
  expect(await duckRows(fast.out)).toEqual(await duckRows(slow.out));
  expect(Buffer.compare(await readFile(fast.out), await readFile(slow.out))).toBe(0);
  return fast;
}

/** CSV text of a field: quoted when it must be (or when asked), quotes doubled. */
const field = (text: string, quoted: boolean) => (quoted || /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text);

const text = fc.oneof(
  fc.constantFrom('', 'a', 'é', 'Zürich – 東京 🚀', ' lead', 'trail ', 'say "hi"', 'a,b', 'two\nlines', 'crlf\r\nline', '\\', 'NULL', '""'),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
);
const integer = fc.oneof(fc.integer(), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.constantFrom(9007199254740993n, 0));
const number = fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(0.1, 1e21, 5e-7, -0, 123.45));
const timestamp = fc.oneof(
  fc
    .date({ min: new Date('1900-01-01T00:00:00Z'), max: new Date('2200-01-01T00:00:00Z'), noInvalidDate: true })
    .map((d) => d.toISOString()),
  fc.constantFrom('2024-05-01T12:00:00.123456Z', '2024-02-29T23:59:59+05:30', '2024-05-01 00:00:00', '1969-12-31T23:59:59.999999Z'),
);
const decimal = fc
  .tuple(
    fc.bigInt({ min: -(10n ** 28n) + 1n, max: 10n ** 28n - 1n }),
    fc.bigInt({ min: 0n, max: 10n ** 10n - 1n }),
    fc.integer({ min: 0, max: 10 }),
  )
  .map(([whole, frac, digits]) => (digits === 0 ? `${whole}` : `${whole}.${String(frac).padStart(10, '0').slice(0, digits)}`));
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: null, freq: 5 });

const record = fc.record({
  id: maybe(integer),
  name: text,
  nameQuoted: fc.boolean(),
  amount: maybe(number),
  active: maybe(fc.constantFrom('true', 'false', 'TRUE', 'yes', 'no', '1', '0', 'f')),
  created_at: maybe(timestamp),
  note: maybe(text),
  price: maybe(decimal),
  bad: fc.constantFrom(undefined, undefined, undefined, undefined, 'x1', '1.5.5'),
});

const HEADER = Object.keys(COLUMNS).join(',');
/** The first record fixes what the first batch decides: microseconds, scale 10. */
const FIRST = '0,first,0,true,2024-01-01T00:00:00.000001Z,x,0.0000000001';

describe('parquet sink: csv chunks straight into the columns', () => {
  it('accepts csv', () => {
    expect(parquet.sink?.(connectorOptions(parquet, { path: 'x.parquet' }, 'sink')).accepts).toEqual(['csv']);
  });

  it('writes the bytes the row path writes, on hard values (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(record, { maxLength: 40 }), fc.integer({ min: 1, max: 9 }), async (records, rowGroupSize) => {
        const lines = records.map((r) =>
          [
            r.bad ?? (r.id === null ? '' : String(r.id)),
            field(r.name, r.nameQuoted),
            r.amount === null ? '' : String(r.amount),
            r.active ?? '',
            r.created_at ?? '',
            r.note === null ? '' : field(r.note, true),
            r.price ?? '',
          ].join(','),
        );
        await compare(`${HEADER}\n${FIRST}\n${lines.join('\n')}\n`, rowGroupSize);
      }),
      { numRuns: Number(process.env.WEIR_FUZZ_RUNS ?? 30) },
    );
  }, 240_000);

  it('keeps NULL apart from "" and rejects the same bad records', async () => {
    const fast = await compare(`${HEADER}\n${FIRST}\n1,a,1.5,false,2024-05-01T00:00:00Z,,1.5\n2,b,x,true,,"",\n3,"c""",2,no,,"",-1\n`, 2);
    expect(fast.counts.passed).toBeGreaterThan(0); // the fast path took chunks (the first decides the layout as rows)
    expect(fast.rejected).toBe(1);
    const rows = await duckRows(fast.out);
    expect(rows[1]).toContain("'1'|'a'");
    expect(rows[1]).toContain('|NULL|');
    expect(rows[2]).toContain("|''|");
  });
});
