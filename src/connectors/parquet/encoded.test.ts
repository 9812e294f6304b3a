import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import type { Writer } from '../../sdk/connector.js';
import { validateOptions } from '../../sdk/options.js';
import { collect, commitContext, planContext, taskContext, tempDir } from '../../sdk/testing.js';
import type { EncodedRows, EncodingHints, JsonValue, Row, Schema } from '../../sdk/types.js';
import { Decimal } from '../../sdk/values.js';
import csv from '../csv/index.js';
import { csvRules, csvOptions as csvSpec } from '../csv/spec.js';
import { valueText } from '../shared/columns.js';
import { encodable } from './encoded.js';
import parquet from './index.js';
import { parquetOptions, parquetRules } from './spec.js';

const opts = (input: Record<string, unknown>, role: 'source' | 'sink') => {
  const r = validateOptions(parquetOptions, input, role, parquetRules);
  if (!r.value) throw new Error(r.issues.map((i) => i.message).join('; '));
  return r.value;
};

const SCHEMA: Schema = [
  { name: 'id', type: 'integer' },
  { name: 'amount', type: 'decimal', precision: 38, scale: 10 },
  { name: 'name', type: 'string' },
  { name: 'ok', type: 'boolean' },
  { name: 'at', type: 'timestamp' },
  { name: 'doc', type: 'json' },
];

const row = (i: number): Row => ({
  id: i === 0 ? 9007199254740993n : i,
  amount: Decimal.parse(`${i}123456789012345678.${String(i * 7919).padStart(10, '0')}`),
  // text that CSV must quote, the empty string and NULL apart, a line `\.` PostgreSQL would end at
  name: [`plain ${i}`, '', null, 'a,"b"\nc', '\\.', ' padded '][i % 6] ?? null,
  ok: i % 3 === 0 ? null : i % 2 === 0,
  at: `2024-01-02T03:04:05.${String(i).padStart(6, '0')}Z`,
  doc: i % 4 === 0 ? null : { n: 12345678901234567890n, d: Decimal.parse('0.10'), s: 'é' },
});

/** A file of `n` rows (row groups of 1,500) and the source reading it, one partition per row group. */
async function parquetFile(n: number) {
  const dir = await tempDir('weir-parquet-encoded-');
  const rows = Array.from({ length: n }, (_, i) => row(i));
  const sink = parquet.sink?.(opts({ path: 'in.parquet', row_group_size: 1500 }, 'sink')) ?? expect.unreachable();
  const cctx = commitContext({ baseDir: dir, schema: SCHEMA });
  await sink.setup?.(cctx);
  const writer = await sink.writer({ id: '0' }, taskContext({ baseDir: dir, schema: SCHEMA }));
  await writer.write(rows);
  const message = JSON.parse(JSON.stringify(await writer.commit?.())) as JsonValue;
  await writer.close?.();
  await sink.commit?.([message], cctx);
  const source = parquet.source?.(opts({ path: 'in.parquet', partition_rows: 1 }, 'source')) ?? expect.unreachable();
  const schema = (await source.schema?.(planContext({ baseDir: dir }))) ?? [];
  const partitions = (await source.partitions?.(planContext({ baseDir: dir }))) ?? [];
  expect(partitions.length).toBeGreaterThan(1);
  return { dir, source, schema, partitions };
}

/** What a csv sink writer (options `csvOptions`) leaves in its partition file after `write`, as bytes. */
async function csvFileOf(
  dir: string,
  csvOptions: Record<string, unknown>,
  schema: Schema,
  write: (w: Writer) => Promise<unknown> | unknown,
) {
  const options = validateOptions(csvSpec, { path: 'out.csv', ...csvOptions }, 'sink', csvRules);
  if (!options.value) throw new Error(options.issues.map((i) => i.message).join('; '));
  const sink = csv.sink?.(options.value) ?? expect.unreachable();
  const cctx = commitContext({ baseDir: dir, schema });
  await sink.setup?.(cctx);
  const writer = await sink.writer({ id: '0' }, taskContext({ baseDir: dir, schema }));
  await write(writer);
  const message = JSON.parse(JSON.stringify(await writer.commit?.())) as JsonValue;
  await writer.close?.();
  await sink.commit?.([message], cctx);
  return readFile(join(dir, 'out.csv'));
}

describe('parquet source, encoded as CSV', () => {
  it('hands on the row path rows as CSV records, and decode gives those rows again', async () => {
    const { dir, source, schema, partitions } = await parquetFile(5000);
    for (const p of partitions) {
      const ctx = taskContext({ baseDir: dir, schema });
      const expected = await collect(source.read(p, ctx));
      const batches = (await collect(source.readEncoded?.(p, ctx, 'csv', {}) ?? expect.unreachable())) as unknown as EncodedRows[];
      expect(batches.every((b) => b.kind === 'encoded')).toBe(true);
      // the records read back as the row path's text: quoted "" is '', unquoted empty is NULL
      const records = batches.flatMap((b) =>
        parse(b.data, { relax_quotes: false, cast: (v, c) => (v === '' && !c.quoting ? null : v) }),
      ) as (string | null)[][];
      expect(records).toEqual(expected.map((r) => schema.map((c) => valueText(r[c.name]))));
      expect(batches.reduce((n, b) => n + b.rows, 0)).toBe(expected.length);
      const decoded = (await Promise.all(batches.map((b) => b.decode(async () => {})))).flat();
      expect(decoded).toEqual(expected);
    }
  });

  it.each([
    ['the default dialect', {}],
    ['another delimiter, quote and null text', { delimiter: ';', quote: "'", null_value: 'NULL' }],
  ])('hands a csv sink its own file text (%s): the batches are canonical and appended as they are', async (_, csvOptions) => {
    const { dir, source, schema, partitions } = await parquetFile(3200);
    const p = partitions[1] ?? expect.unreachable();
    const ctx = taskContext({ baseDir: dir, schema });
    const rows = await collect(source.read(p, ctx));
    const byRows = await csvFileOf(dir, csvOptions, schema, (w) => w.write(rows));
    const byChunks = await csvFileOf(dir, csvOptions, schema, async (w) => {
      const hints: EncodingHints = (await w.encodingHints?.('csv')) ?? {};
      expect(hints.dialect).toBeDefined();
      for await (const batch of source.readEncoded?.(p, ctx, 'csv', hints) ?? expect.unreachable()) {
        const b = batch as unknown as EncodedRows;
        expect(b.canonical).toBe(true);
        expect(await w.writeEncoded?.(b)).toBe(true);
      }
    });
    expect(byChunks.length).toBeGreaterThan(1000);
    expect(byChunks.equals(byRows)).toBe(true);
  });

  it('leaves a column of fixed scale the row path, where a longer fraction is a bad row', () => {
    const schema: Schema = [
      { name: 'id', type: 'integer' },
      { name: 'amount', type: 'decimal', precision: 38, scale: 10 },
    ];
    expect(encodable(schema, {})).toBe(true);
    expect(encodable(schema, { fractionDigits: { amount: 10, id: 0 } })).toBe(true);
    expect(encodable(schema, { fractionDigits: { amount: 2 } })).toBe(false);
    expect(encodable([{ name: 'x', type: 'number' }], { fractionDigits: { x: 4 } })).toBe(false);
    expect(encodable([{ name: 'x', type: 'string' }], { fractionDigits: { x: 4 } })).toBe(false);
  });
});
