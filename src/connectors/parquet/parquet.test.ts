import { readdir, readFile, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Source } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import { validateOptions } from '../../sdk/options.js';
import { collect, commitContext, planContext, taskContext, tempDir } from '../../sdk/testing.js';
import type { JsonValue, Partition, Row, Schema } from '../../sdk/types.js';
import { Decimal, stringifyJson } from '../../sdk/values.js';
import { stagingName } from '../shared/staged.js';
import parquet from './index.js';
import { commitParquet, mergeParquet } from './merge.js';
import { type ParquetOptions, parquetOptions, parquetRules } from './spec.js';
import { decodeStruct, encodeStruct } from './thrift.js';

function options(input: Record<string, unknown>): ParquetOptions {
  const r = validateOptions(parquetOptions, input, 'source', parquetRules);
  if (!r.value) throw new Error(r.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return r.value;
}

let dir: string;
beforeEach(async () => {
  dir = await tempDir('weir-parquet-');
});

const source = (input: Record<string, unknown>): Source => parquet.source?.(options(input)) ?? expect.unreachable();

/** The error a call throws (or rejects with), or undefined. */
async function failure(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
    return undefined;
  } catch (error) {
    return error;
  }
}

/** Reads the whole file the way a run does: schema, partitions, then each partition. */
async function readAll(input: Record<string, unknown>) {
  const src = source(input);
  const pctx = planContext({ baseDir: dir });
  const schema = await src.schema?.(pctx);
  const partitions = (await src.partitions?.(pctx)) ?? [{ id: '0' }];
  const estimate = await src.estimate?.(pctx);
  const rows: Row[] = [];
  for (const p of partitions)
    rows.push(...(await collect(src.read(JSON.parse(JSON.stringify(p)) as Partition, taskContext({ baseDir: dir, schema })))));
  return { schema, partitions, rows, estimate };
}

/** Writes partitions through the sink (writers in order) and commits the job. */
async function writeAll(
  input: Record<string, unknown>,
  parts: [id: string, batches: Row[][]][],
  { schema, runId = 'run-1', commit = true }: { schema?: Schema; runId?: string; commit?: boolean } = {},
) {
  const sink = parquet.sink?.(options(input)) ?? expect.unreachable();
  const cctx = commitContext({ baseDir: dir, runId, schema });
  await sink.setup?.(cctx);
  const messages: JsonValue[] = [];
  for (const [id, batches] of parts) {
    const writer = await sink.writer({ id }, taskContext({ baseDir: dir, runId, schema, partitionId: id }));
    for (const b of batches) await writer.write(b);
    messages.push(JSON.parse(JSON.stringify((await writer.commit?.()) ?? null)) as JsonValue);
    await writer.close?.();
  }
  if (commit) await sink.commit?.(messages, cctx);
  return { sink, messages, cctx };
}

const SCHEMA: Schema = [
  { name: 'id', type: 'integer' },
  { name: 'big', type: 'integer' },
  { name: 'price', type: 'number' },
  { name: 'name', type: 'string' },
  { name: 'ok', type: 'boolean' },
  { name: 'at', type: 'timestamp' },
  { name: 'doc', type: 'json' },
];

const ROWS: Row[] = [
  {
    id: 1,
    big: 9007199254740993n,
    price: 9.5,
    name: 'Ann',
    ok: true,
    at: '2024-05-01T12:00:00Z',
    doc: { a: [1, 2, { b: 'c' }], n: null },
  },
  { id: 2, big: -5, price: -0.25, name: 'Zoë 🦆', ok: false, at: '2024-05-01T12:00:00.123456Z', doc: [1, 'two'] },
  { id: 3, big: null, price: null, name: null, ok: null, at: null, doc: null },
  { id: 4, big: 0, price: 1e300, name: '', ok: true, at: new Date('1969-12-31T23:59:59.999Z'), doc: 'text' },
];

const EXPECTED: Row[] = [
  { ...(ROWS[0] as Row), at: '2024-05-01T12:00:00.000Z' },
  { ...(ROWS[1] as Row) },
  { ...(ROWS[2] as Row) },
  { ...(ROWS[3] as Row), at: '1969-12-31T23:59:59.999Z' },
];

const tmpLeftovers = async () => (await readdir(dir)).filter((f) => /\.tmp$|weir-tmp|weir-commit/.test(f));

describe('parquet options', () => {
  it('validates: required path, unique columns, bounded sizes, known codecs', () => {
    const issues = (input: unknown) =>
      validateOptions(parquetOptions, input, 'sink', parquetRules).issues.map((i) => `${i.path}: ${i.message}`);
    expect(issues({})).toEqual([expect.stringMatching(/^sink\.path: is required/)]);
    expect(issues({ path: 'a.parquet', columns: ['a', 'b', 'a'] })).toEqual([
      'sink: columns lists "a" more than once; name each column once',
    ]);
    expect(issues({ path: 'a.parquet', row_group_size: 0 })[0]).toMatch(/^sink\.row_group_size: /);
    expect(issues({ path: 'a.parquet', compression: 'lzo' })[0]).toMatch(/^sink\.compression: .*snappy/);
    expect(issues({ path: 'a.parquet', comression: 'gzip' })[0]).toMatch(/did you mean "compression"/);
    expect(options({ path: 'a.parquet' })).toEqual({
      path: 'a.parquet',
      partition_rows: 100_000,
      slice_rows: 100_000,
      row_group_size: 50_000,
      compression: 'snappy',
      mode: 'overwrite',
    });
  });
});

describe('parquet round trip', () => {
  it('writes and reads back every column type, with nulls', async () => {
    await writeAll({ path: 'out.parquet' }, [['0', [ROWS]]], { schema: SCHEMA });
    const { schema, rows, estimate } = await readAll({ path: 'out.parquet' });
    expect(schema?.map((c) => [c.name, c.type])).toEqual(SCHEMA.map((c) => [c.name, c.type]));
    expect(rows).toEqual(EXPECTED);
    expect(estimate).toBe(4);
    expect(await tmpLeftovers()).toEqual([]);
  });

  it.each([
    ['snappy', 'SNAPPY'],
    ['zstd', 'ZSTD'],
    ['lz4', 'LZ4_RAW'],
    ['lz4_raw', 'LZ4_RAW'],
    ['gzip', 'GZIP'],
    ['brotli', 'BROTLI'],
    ['uncompressed', 'UNCOMPRESSED'],
  ])('round trips with %s compression', async (compression, codec) => {
    await writeAll({ path: 'c.parquet', compression }, [['0', [ROWS]]], { schema: SCHEMA });
    const meta = parquetMetadata((await readFile(join(dir, 'c.parquet'))).buffer as ArrayBuffer);
    expect(meta.row_groups[0]?.columns[0]?.meta_data?.codec).toBe(codec);
    expect((await readAll({ path: 'c.parquet' })).rows).toEqual(EXPECTED);
  });

  it('infers column types from the first batch when there is no schema', async () => {
    const rows = [
      { id: 1, x: 1.5, s: 'a', t: new Date('2024-01-01T00:00:00Z'), j: { k: 1 } },
      { id: 2, x: 2, s: null, t: null, j: [1] },
    ];
    await writeAll({ path: 'i.parquet' }, [['0', [rows]]]);
    const { schema, rows: back } = await readAll({ path: 'i.parquet' });
    expect(schema?.map((c) => `${c.name}:${c.type}`)).toEqual(['id:integer', 'x:number', 's:string', 't:timestamp', 'j:json']);
    expect(back).toEqual([
      { id: 1, x: 1.5, s: 'a', t: '2024-01-01T00:00:00.000Z', j: { k: 1 } },
      { id: 2, x: 2, s: null, t: null, j: [1] },
    ]);
  });

  it('the sink `columns` option picks and orders fields; without it unknown fields are rejected', async () => {
    await writeAll({ path: 'p.parquet', columns: ['b', 'a'] }, [['0', [[{ a: 1, b: 'x', c: true }]]]]);
    expect((await readAll({ path: 'p.parquet' })).rows).toEqual([{ b: 'x', a: 1 }]);
    const sink = parquet.sink?.(options({ path: 'q.parquet' })) ?? expect.unreachable();
    const writer = await sink.writer({ id: '0' }, taskContext({ baseDir: dir, schema: [{ name: 'a', type: 'integer' }] }));
    await expect(writer.write([{ a: 1, zzz: 2 }])).rejects.toThrow(/field "zzz"/);
    await writer.abort?.();
    await writer.close?.();
    expect(await tmpLeftovers()).toEqual([]);
  });

  it('a bad value rejects its batch and leaves nothing of it written', async () => {
    const sink = parquet.sink?.(options({ path: 'b.parquet', row_group_size: 2 })) ?? expect.unreachable();
    const schema: Schema = [{ name: 'n', type: 'integer' }];
    const ctx = taskContext({ baseDir: dir, schema });
    const writer = await sink.writer({ id: '0' }, ctx);
    await writer.write([{ n: 1 }]);
    const error = await Promise.resolve(writer.write([{ n: 2 }, { n: 'two' }, { n: 3 }])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RowError);
    expect((error as RowError).message).toMatch(/column "n": "two" is not an integer/);
    await writer.write([{ n: 2 }, { n: 3 }]);
    const message = await writer.commit?.();
    await writer.close?.();
    await sink.commit?.([message as JsonValue], commitContext({ baseDir: dir, schema }));
    expect((await readAll({ path: 'b.parquet' })).rows).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(ctx.bytes).toBeGreaterThan(0);
  });

  it('reads types written by other writers: int32, float, timestamps in millis, uuid, json, raw bytes', async () => {
    const buffer = parquetWriteBuffer({
      columnData: [
        { name: 'i32', data: [1, null, -3], type: 'INT32' },
        { name: 'f', data: [0.5, 1.5, null], type: 'FLOAT' },
        { name: 'ts', data: [new Date('2020-02-02T02:02:02.002Z'), null, new Date(0)], type: 'TIMESTAMP' },
        { name: 'u', data: ['00112233-4455-6677-8899-aabbccddeeff', null, null], type: 'UUID' },
        { name: 'j', data: [{ a: 1 }, null, [true]], type: 'JSON' },
        { name: 'raw', data: [Uint8Array.of(0xff, 0xfe), new TextEncoder().encode('text'), null], type: 'BYTE_ARRAY' },
      ],
    });
    await writeFile(join(dir, 'o.parquet'), new Uint8Array(buffer));
    const { schema, rows } = await readAll({ path: 'o.parquet' });
    expect(schema?.map((c) => `${c.name}:${c.type}`)).toEqual([
      'i32:integer',
      'f:number',
      'ts:timestamp',
      'u:string',
      'j:json',
      'raw:string',
    ]);
    // Unannotated bytes: text when valid UTF-8, else base64 (never lossy).
    expect(rows).toEqual([
      { i32: 1, f: 0.5, ts: '2020-02-02T02:02:02.002Z', u: '00112233-4455-6677-8899-aabbccddeeff', j: { a: 1 }, raw: '//4=' },
      { i32: null, f: 1.5, ts: null, u: null, j: null, raw: 'text' },
      { i32: -3, f: null, ts: '1970-01-01T00:00:00.000Z', u: null, j: [true], raw: null },
    ]);
  });
});

describe('parquet sink: exact types', () => {
  /** Writes `batches` through one writer, each either accepted or rejected; returns the rejections' messages. */
  async function writeBatches(path: string, schema: Schema, batches: Row[][]): Promise<string[]> {
    const sink = parquet.sink?.(options({ path })) ?? expect.unreachable();
    const writer = await sink.writer({ id: '0' }, taskContext({ baseDir: dir, schema }));
    const rejected: string[] = [];
    for (const b of batches) {
      const error = await Promise.resolve(writer.write(b)).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (error) {
        expect(error).toBeInstanceOf(RowError);
        rejected.push((error as RowError).message);
      }
    }
    const message = await writer.commit?.();
    await writer.close?.();
    await sink.commit?.([message as JsonValue], commitContext({ baseDir: dir, schema }));
    return rejected;
  }
  const dec = (t: string) => Decimal.parse(t) as Decimal;
  const texts = (rows: Row[], name: string) => rows.map((r) => (Decimal.is(r[name]) ? r[name].text : r[name]));

  it('decimals with a declared precision and scale: DECIMAL(p,s), too many digits either side is a bad row, never rounded', async () => {
    const schema: Schema = [{ name: 'd', type: 'decimal', precision: 10, scale: 2 }];
    const rejected = await writeBatches('d.parquet', schema, [
      [{ d: dec('1.5') }, { d: dec('-12345678.99') }, { d: '0.10' }, { d: 7 }, { d: null }],
      [{ d: dec('1.234') }],
      [{ d: dec('123456789.00') }],
      [{ d: dec('1.230') }],
    ]);
    expect(rejected).toEqual([
      'column "d": 1.234 has more than 2 digits after the point, which DECIMAL(10,2) holds; weir does not round',
      'column "d": 123456789.00 has more than 8 digits before the point, which DECIMAL(10,2) holds',
    ]);
    const meta = parquetMetadata((await readFile(join(dir, 'd.parquet'))).buffer as ArrayBuffer);
    expect(meta.schema[1]).toMatchObject({ type: 'INT64', converted_type: 'DECIMAL', precision: 10, scale: 2 });
    const { schema: back, rows } = await readAll({ path: 'd.parquet' });
    expect(back).toEqual([{ name: 'd', type: 'decimal', nullable: true, precision: 10, scale: 2 }]);
    expect(texts(rows, 'd')).toEqual(['1.50', '-12345678.99', '0.10', '7.00', null, '1.23']);
  });

  it('decimals without precision: DECIMAL(38, largest scale of the first batch), 38 digits exact; wider ones as text', async () => {
    const wide = `${'9'.repeat(30)}.${'1'.repeat(15)}`;
    await writeBatches(
      'w.parquet',
      [{ name: 'd', type: 'decimal' }],
      [[{ d: dec('1.25') }, { d: dec('-3.125') }], [{ d: dec(`${'9'.repeat(35)}.999`) }]],
    );
    const meta = parquetMetadata((await readFile(join(dir, 'w.parquet'))).buffer as ArrayBuffer);
    expect(meta.schema[1]).toMatchObject({ type: 'FIXED_LEN_BYTE_ARRAY', type_length: 16, precision: 38, scale: 3 });
    expect(texts((await readAll({ path: 'w.parquet' })).rows, 'd')).toEqual(['1.250', '-3.125', `${'9'.repeat(35)}.999`]);

    await writeBatches('t.parquet', [{ name: 'd', type: 'decimal', precision: 45, scale: 15 }], [[{ d: dec(wide) }, { d: dec('-1') }]]);
    const { schema, rows } = await readAll({ path: 't.parquet' });
    expect(schema?.[0]?.type).toBe('string');
    expect(rows).toEqual([{ d: wide }, { d: '-1' }]);
  });

  it('timestamps: nanoseconds kept when the first batch has them, dates as DATE; what does not fit the unit is a bad row', async () => {
    const schema: Schema = [
      { name: 'ns', type: 'timestamp' },
      { name: 'us', type: 'timestamp' },
      { name: 'day', type: 'timestamp' },
    ];
    const rejected = await writeBatches('ts.parquet', schema, [
      [{ ns: '2024-01-02T03:04:05.123456789Z', us: '2024-01-02T03:04:05.123456Z', day: '2024-02-29' }],
      [{ ns: '1960-01-01T00:00:00Z', us: '2024-01-02T03:04:05.1234567Z', day: '2024-03-01' }],
      [{ ns: null, us: '2024-01-02T03:04:05.123456000+01:00', day: '2024-03-01T10:00:00Z' }],
      [{ ns: null, us: null, day: '2024-03-02T00:00:00Z' }],
    ]);
    expect(rejected).toEqual([
      'column "us": "2024-01-02T03:04:05.1234567Z" has more sub-second digits than the column\'s microseconds hold; weir does not round timestamps',
      'column "day": "2024-03-01T10:00:00Z" has a time of day, and the column is a DATE (its first batch held only dates); give the source a schema, or write dates only',
    ]);
    expect((await readAll({ path: 'ts.parquet' })).rows).toEqual([
      { ns: '2024-01-02T03:04:05.123456789Z', us: '2024-01-02T03:04:05.123456Z', day: '2024-02-29' },
      { ns: null, us: null, day: '2024-03-02' },
    ]);
  });

  it('partitions that derived different decimal scales are refused at the commit, with what each chose', async () => {
    const schema: Schema = [{ name: 'd', type: 'decimal' }];
    const error = await writeAll(
      { path: 'ds.parquet' },
      [
        ['0', [[{ d: dec('1.5') }]]],
        ['1', [[{ d: dec('1.25') }]]],
      ],
      { schema },
    ).catch((e: unknown) => e);
    expect((error as WeirError).code).toBe('column_mismatch');
    expect((error as WeirError).message).toMatch(/partition 0: d decimal\(38,1\); partition 1: d decimal\(38,2\).*precision and scale/);
  });

  it('json keeps decimals and big integers exact', async () => {
    const doc = { amount: dec('375.30'), big: 18446744073709551615n, list: [dec('0.1'), 2] };
    await writeBatches('j.parquet', [{ name: 'doc', type: 'json' }], [[{ doc }]]);
    const meta = parquetMetadata((await readFile(join(dir, 'j.parquet'))).buffer as ArrayBuffer);
    expect(meta.schema[1]).toMatchObject({ type: 'BYTE_ARRAY', converted_type: 'JSON' });
    const [row] = (await readAll({ path: 'j.parquet' })).rows;
    expect(stringifyJson(row?.doc)).toBe('{"amount":375.30,"big":18446744073709551615,"list":[0.1,2]}');
  });
});

describe('parquet nested columns hyparquet decodes', () => {
  it('VARIANT columns (not streamed by the page reader) are read as JSON, a row group at a time', async () => {
    const buffer = parquetWriteBuffer({
      columnData: [
        { name: 'id', data: [1, 2, 3], type: 'INT32' },
        { name: 'v', data: [{ a: 1, b: ['x', true] }, null, 'text'], type: 'VARIANT' },
      ],
    });
    await writeFile(join(dir, 'v.parquet'), new Uint8Array(buffer));
    const { schema, rows } = await readAll({ path: 'v.parquet' });
    expect(schema?.map((c) => `${c.name}:${c.type}`)).toEqual(['id:integer', 'v:json']);
    expect(rows).toEqual([
      { id: 1, v: { a: 1, b: ['x', true] } },
      { id: 2, v: null },
      { id: 3, v: 'text' },
    ]);
  });
});

describe('parquet source', () => {
  const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ id: from + i, v: `v${from + i}` }));

  it('plans partitions by whole row groups and reads each exactly', async () => {
    await writeAll({ path: 'g.parquet', row_group_size: 1000 }, [['0', [ids(4500)]]]);
    const meta = parquetMetadata((await readFile(join(dir, 'g.parquet'))).buffer as ArrayBuffer);
    expect(meta.row_groups.map((g) => Number(g.num_rows))).toEqual([1000, 1000, 1000, 1000, 500]);

    const one = await readAll({ path: 'g.parquet', partition_rows: 1 });
    expect(one.partitions).toEqual([
      { id: '0', row_start: 0, row_end: 1000 },
      { id: '1', row_start: 1000, row_end: 2000 },
      { id: '2', row_start: 2000, row_end: 3000 },
      { id: '3', row_start: 3000, row_end: 4000 },
      { id: '4', row_start: 4000, row_end: 4500 },
    ]);
    expect(one.rows).toEqual(ids(4500));

    const grouped = await readAll({ path: 'g.parquet', partition_rows: 2500 });
    expect(grouped.partitions.map((p) => [p.row_start, p.row_end])).toEqual([
      [0, 3000],
      [3000, 4500],
    ]);
    expect(grouped.rows).toEqual(ids(4500));

    const src = source({ path: 'g.parquet', partition_rows: 1 });
    const third = await collect(src.read({ id: '2', row_start: 2000, row_end: 3000 }, taskContext({ baseDir: dir })));
    expect(third).toEqual(ids(1000, 2000));
  });

  it('hands on a row group larger than slice_rows in arrays of at most slice_rows rows, nested columns too', async () => {
    const rows = ids(25_000).map((r) => ({ ...r, doc: { n: r.id } }));
    await writeAll({ path: 's.parquet', row_group_size: 25_000 }, [['0', [rows]]]);
    const src = source({ path: 's.parquet', slice_rows: 4000 });
    const sizes: number[] = [];
    const back: Row[] = [];
    for await (const chunk of src.read({ id: '0', row_start: 0, row_end: 25_000 }, taskContext({ baseDir: dir }))) {
      sizes.push((chunk as Row[]).length);
      back.push(...(chunk as Row[]));
    }
    expect(back).toEqual(rows);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(4000);
  });

  it('reads only the listed columns, in order, and names unknown ones with a hint', async () => {
    await writeAll({ path: 'c.parquet' }, [['0', [ROWS]]], { schema: SCHEMA });
    const { schema, rows } = await readAll({ path: 'c.parquet', columns: ['name', 'id'] });
    expect(schema?.map((c) => c.name)).toEqual(['name', 'id']);
    expect(rows[1]).toEqual({ name: 'Zoë 🦆', id: 2 });
    const error = await failure(() => source({ path: 'c.parquet', columns: ['nmae'] }).schema?.(planContext({ baseDir: dir })));
    expect(error).toBeInstanceOf(WeirError);
    expect((error as WeirError).kind).toBe('config');
    expect((error as WeirError).message).toMatch(/"nmae" \(did you mean "name"\?\)/);
  });

  it('explains a missing file and a file that is not Parquet', async () => {
    const missing = await failure(() => source({ path: 'nope.parquet' }).schema?.(planContext({ baseDir: dir })));
    expect((missing as WeirError).message).toMatch(/file not found: .*nope\.parquet; check the `path` option/);
    await writeFile(join(dir, 'x.parquet'), 'id,name\n1,a\n');
    const bad = await failure(() => source({ path: 'x.parquet' }).schema?.(planContext({ baseDir: dir })));
    expect((bad as WeirError).message).toMatch(/is not a readable Parquet file \(no PAR1 magic/);
  });

  it('health checks: a valid file, a bad file, a missing file, disk space', async () => {
    await writeAll({ path: 'h.parquet' }, [['0', [ids(10)]]]);
    const ok = await parquet.check?.(options({ path: 'h.parquet' }), { ...planContext({ baseDir: dir }), role: 'source' });
    expect(ok?.map((r) => [r.name, r.ok])).toEqual([
      ['target', true],
      ['disk_space', true],
    ]);
    expect(ok?.[0]?.message).toMatch(/10 rows in 1 row group/);
    await writeFile(join(dir, 'bad.parquet'), 'nope');
    const bad = await parquet.check?.(options({ path: 'bad.parquet' }), { ...planContext({ baseDir: dir }), role: 'source' });
    expect(bad?.[0]).toMatchObject({ name: 'target', ok: false });
    const missing = await parquet.check?.(options({ path: 'sub/new.parquet' }), { ...planContext({ baseDir: dir }), role: 'sink' });
    const missingSource = await parquet.check?.(options({ path: 'sub/new.parquet' }), { ...planContext({ baseDir: dir }), role: 'source' });
    expect(missingSource?.[0]).toMatchObject({ name: 'target', ok: false });
    expect(missing?.[0]).toMatchObject({ name: 'target', ok: true });
    expect(missing?.[0]?.message).toMatch(/does not exist yet/);
  });
});

describe('parquet sink commit', () => {
  const part = (from: number, n: number) =>
    Array.from({ length: n }, (_, i) => ({ id: from + i, name: `n${from + i}`, at: '2024-01-01T00:00:00Z' }));
  const schema: Schema = [
    { name: 'id', type: 'integer' },
    { name: 'name', type: 'string' },
    { name: 'at', type: 'timestamp' },
  ];

  it('merges several partitions into one file, row groups copied byte for byte, in partition order', async () => {
    // Writers finish in a different order than their ids: the file follows partition ids.
    await writeAll(
      { path: 'm/out.parquet', row_group_size: 7 },
      [
        ['10', [part(200, 5)]],
        ['2', [part(100, 10), part(110, 10)]],
        ['0', [part(0, 3)]],
        ['3', []],
      ],
      { schema },
    );
    const bytes = await readFile(join(dir, 'm/out.parquet'));
    const meta = parquetMetadata(bytes.buffer as ArrayBuffer);
    expect(Number(meta.num_rows)).toBe(28);
    expect(meta.row_groups.map((g) => Number(g.num_rows))).toEqual([3, 7, 7, 6, 5]);
    const all = await parquetReadObjects({ file: bytes.buffer as ArrayBuffer });
    expect(all.map((r) => Number(r.id))).toEqual([...part(0, 3), ...part(100, 20), ...part(200, 5)].map((r) => r.id));
    const { rows, partitions } = await readAll({ path: 'm/out.parquet', partition_rows: 1 });
    expect(partitions).toHaveLength(5);
    expect(rows.map((r) => r.name)).toEqual(all.map((r) => r.name));
    expect((await readdir(join(dir, 'm'))).sort()).toEqual(['out.parquet']);
  });

  it('a repeated job commit changes nothing; a commit resumed after a crash finishes the first one', async () => {
    const { sink, messages, cctx } = await writeAll(
      { path: 'r.parquet', row_group_size: 4 },
      [
        ['0', [part(0, 5)]],
        ['1', [part(5, 5)]],
      ],
      { schema, commit: false },
    );
    // Crash after the merged file and the record were written, before the rename.
    const tmps = messages.map((m) => (m as { tmp: string }).tmp);
    const staging = stagingName(join(dir, 'r.parquet'), cctx.runId, 'job');
    await mergeParquet(tmps, staging, 'test', String);
    await writeFile(join(dir, 'r.parquet.weir-commit'), JSON.stringify({ tmps, staging }));
    await sink.commit?.(messages, cctx);
    const first = await readFile(join(dir, 'r.parquet'));
    expect(await tmpLeftovers()).toEqual([]);
    await sink.commit?.(messages, cctx);
    expect((await readFile(join(dir, 'r.parquet'))).equals(first)).toBe(true);
    expect((await readAll({ path: 'r.parquet' })).rows.map((r) => r.id)).toEqual(part(0, 10).map((r) => r.id));
  });

  it('append mode adds row groups after the existing ones, exactly once', async () => {
    await writeAll({ path: 'a.parquet', mode: 'append' }, [['0', [part(0, 3)]]], { schema, runId: 'r1' });
    const second = await writeAll(
      { path: 'a.parquet', mode: 'append' },
      [
        ['0', [part(3, 2)]],
        ['1', [part(5, 2)]],
      ],
      { schema, runId: 'r2' },
    );
    await second.sink.commit?.(second.messages, second.cctx); // repeated: no second append
    expect((await readAll({ path: 'a.parquet' })).rows.map((r) => r.id)).toEqual([0, 1, 2, 3, 4, 5, 6]);

    const other: Schema = [{ name: 'id', type: 'string' }];
    const error = await writeAll({ path: 'a.parquet', mode: 'append' }, [['0', [[{ id: 'x' }]]]], { schema: other, runId: 'r3' }).catch(
      (e: unknown) => e,
    );
    expect((error as WeirError).kind).toBe('config');
    expect((error as WeirError).message).toMatch(/cannot append to .*a\.parquet: its columns \(id INT64.*\) differ/);
  });

  it('refuses to merge partitions whose inferred columns differ', async () => {
    const error = await writeAll({ path: 'd.parquet' }, [
      ['0', [[{ id: 1 }]]],
      ['1', [[{ id: 'one' }]]],
    ]).catch((e: unknown) => e);
    expect((error as WeirError).code).toBe('column_mismatch');
    expect(await stat(join(dir, 'd.parquet')).catch(() => undefined)).toBeUndefined();
  });

  it('writer abort and job abort leave nothing behind', async () => {
    const sink = parquet.sink?.(options({ path: 'x/out.parquet', row_group_size: 2 })) ?? expect.unreachable();
    const cctx = commitContext({ baseDir: dir, runId: 'ab', schema });
    await sink.setup?.(cctx);
    const w0 = await sink.writer({ id: '0' }, taskContext({ baseDir: dir, runId: 'ab', schema }));
    await w0.write(part(0, 5));
    const m0 = await w0.commit?.();
    await w0.close?.();
    const w1 = await sink.writer({ id: '1' }, taskContext({ baseDir: dir, runId: 'ab', schema, partitionId: '1' }));
    await w1.write(part(5, 5));
    await w1.abort?.();
    await w1.abort?.();
    await w1.close?.();
    // A writer that crashed without its abort: the job abort sweeps its file too.
    const w2 = await sink.writer({ id: '2' }, taskContext({ baseDir: dir, runId: 'ab', schema, partitionId: '2' }));
    await w2.write(part(10, 3));
    await w2.close?.();
    expect((await readdir(join(dir, 'x'))).length).toBe(2);
    await sink.abort?.([m0 as JsonValue], cctx);
    await sink.abort?.([m0 as JsonValue], cctx);
    expect(await readdir(join(dir, 'x'))).toEqual([]);
  });

  it('commit messages and partitions are plain JSON', async () => {
    const { messages } = await writeAll({ path: 'j.parquet' }, [['0', [part(0, 2)]]], { schema, commit: false });
    expect(JSON.parse(JSON.stringify(messages))).toEqual(messages);
    expect(messages[0]).toMatchObject({
      partition: '0',
      rows: 2,
      columns: ['id', 'name', 'at'],
      types: ['integer', 'string', 'timestamp'],
    });
  });

  it('the thrift codec re-encodes a footer byte for byte', async () => {
    await writeAll({ path: 't.parquet', row_group_size: 3 }, [['0', [part(0, 10)]]], { schema });
    const bytes = await readFile(join(dir, 't.parquet'));
    const length = bytes.readUInt32LE(bytes.length - 8);
    const footer = bytes.subarray(bytes.length - 8 - length, bytes.length - 8);
    expect(Buffer.from(encodeStruct(decodeStruct(footer))).equals(footer)).toBe(true);
  });

  it('the merge never writes through a link planted at its output, with or without rows to clone', async () => {
    const tmpOf = async (path: string, rows: Row[][]) =>
      ((await writeAll({ path }, [['0', rows]], { schema, commit: false })).messages[0] as { tmp: string }).tmp;
    await writeFile(join(dir, 'victim'), 'victim');
    for (const tmp of [await tmpOf('l.parquet', [part(0, 2)]), await tmpOf('e.parquet', [])]) {
      const out = `${tmp}.planted`;
      await symlink(join(dir, 'victim'), out);
      await expect(mergeParquet([tmp], out, 'test', String)).rejects.toThrow(/EEXIST/);
      expect(await readFile(join(dir, 'victim'), 'utf8')).toBe('victim');
    }
  });

  it('a missing temporary file fails the commit with a clear message', async () => {
    const { messages, cctx } = await writeAll(
      { path: 'z.parquet' },
      [
        ['0', [part(0, 2)]],
        ['1', [part(2, 2)]],
      ],
      { schema, commit: false },
    );
    const tmp = (messages[1] as { tmp: string }).tmp;
    await rename(tmp, `${tmp}.moved`);
    const parts = messages.map((m) => m as never);
    await expect(
      commitParquet({ who: 'parquet sink', target: join(dir, 'z.parquet'), mode: 'overwrite', parts, runId: cctx.runId, log: cctx.log }),
    ).rejects.toThrow(/temporary file\(s\) .* are gone/);
  });
});

describe('parquet at scale', () => {
  it('200k rows: written and read row group by row group with bounded memory', async () => {
    const N = 200_000;
    const genSchema: Schema = [
      { name: 'id', type: 'integer' },
      { name: 'name', type: 'string' },
      { name: 'email', type: 'string' },
      { name: 'amount', type: 'number' },
      { name: 'active', type: 'boolean' },
      { name: 'created_at', type: 'timestamp' },
    ];
    const batch = (from: number, n: number): Row[] =>
      Array.from({ length: n }, (_, i) => {
        const id = from + i;
        return {
          id,
          name: `name ${id % 977}`,
          email: `user${id}@example.com`,
          amount: (id % 100_000) / 100,
          active: id % 3 !== 0,
          created_at: new Date(Date.UTC(2024, 0, 1) + id * 1000).toISOString(),
        };
      });
    const sink = parquet.sink?.(options({ path: 'big.parquet', row_group_size: 20_000 })) ?? expect.unreachable();
    const cctx = commitContext({ baseDir: dir, schema: genSchema });
    await sink.setup?.(cctx);
    let writeMs = 0;
    const timed = async <T>(fn: () => T): Promise<Awaited<T>> => {
      const t = performance.now();
      const r = await fn();
      writeMs += performance.now() - t;
      return r;
    };
    const writer = await timed(() => sink.writer({ id: '0' }, taskContext({ baseDir: dir, schema: genSchema })));
    for (let i = 0; i < N; i += 5000) {
      const rows = batch(i, 5000); // generating rows is not part of the writer's time
      await timed(() => writer.write(rows));
    }
    const message = await timed(() => writer.commit?.());
    await writer.close?.();
    await timed(() => sink.commit?.([message as JsonValue], cctx));
    const writeSeconds = writeMs / 1000;

    const src = source({ path: 'big.parquet', partition_rows: N });
    const partitions = (await src.partitions?.(planContext({ baseDir: dir }))) ?? [];
    expect(partitions).toEqual([{ id: '0', row_start: 0, row_end: N }]);
    global.gc?.();
    const base = process.memoryUsage().heapUsed;
    let peak = base;
    let count = 0;
    let last = -1;
    const t1 = performance.now();
    for await (const chunk of src.read(partitions[0] as Partition, taskContext({ baseDir: dir, schema: genSchema }))) {
      const rows = chunk as Row[];
      count += rows.length;
      last = rows[rows.length - 1]?.id as number;
      peak = Math.max(peak, process.memoryUsage().heapUsed);
    }
    const readSeconds = (performance.now() - t1) / 1000;
    expect(count).toBe(N);
    expect(last).toBe(N - 1);
    const size = (await stat(join(dir, 'big.parquet'))).size;
    const growth = peak - base;
    process.stdout.write(
      `[parquet] 200k rows, ${(size / 2 ** 20).toFixed(1)} MiB file: write ${Math.round(N / writeSeconds)} rows/s, read ${Math.round(N / readSeconds)} rows/s, read heap growth ${(growth / 2 ** 20).toFixed(1)} MiB\n`,
    );
    // One 20k-row group decoded at a time; the whole file as rows would be well over 100 MiB.
    expect(growth).toBeLessThan(80 * 2 ** 20);
  }, 120_000);
});

describe('isoFromUnits', () => {
  it('writes what Date#toISOString writes, with the sub-millisecond digits (fast-check)', async () => {
    const { isoFromUnits } = await import('./read-values.js');
    fc.assert(
      fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), fc.integer({ min: 0, max: 999 }), (ms, micro) => {
        const expected = new Date(ms).toISOString();
        expect(isoFromUnits(ms, 1, 3)).toBe(expected);
        const us = ms * 1000 + micro;
        if (Number.isSafeInteger(us))
          expect(isoFromUnits(BigInt(us), 1000, 3)).toBe(
            micro ? `${expected.slice(0, -1)}${String(micro).padStart(3, '0').replace(/0+$/, '')}Z` : expected,
          );
      }),
    );
  });
});
