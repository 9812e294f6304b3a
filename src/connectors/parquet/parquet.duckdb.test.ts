/**
 * The parquet connector against files DuckDB writes (and DuckDB reading what
 * weir writes): every codec, exact decimals of 18 and 38 digits, 64-bit
 * integers beyond 2^53, timestamps in micro- and nanoseconds, dates, text,
 * nulls, a list and a struct. Values are compared as canonical text: DuckDB
 * casts each to VARCHAR, weir's are written out the same way.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { validateOptions } from '../../sdk/options.js';
import { collect, commitContext, planContext, taskContext, tempDir } from '../../sdk/testing.js';
import type { JsonValue, Partition, Row, Schema } from '../../sdk/types.js';
import { Decimal, parseJsonExact } from '../../sdk/values.js';
import parquet from './index.js';
import { parquetOptions, parquetRules } from './spec.js';

type Connection = Awaited<ReturnType<Awaited<ReturnType<typeof import('@duckdb/node-api').DuckDBInstance.create>>['connect']>>;

let duck: Connection;
let dir: string;
beforeAll(async () => {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  duck = await (await DuckDBInstance.create(':memory:')).connect();
  await duck.run("SET TimeZone = 'UTC'");
  dir = await tempDir('weir-parquet-duckdb-');
});

/** Rows with every kind of value, the extremes first (ids 0-2), then 3,000 generated ones with nulls sprinkled in. */
const TABLE = `
SELECT * FROM (
SELECT * FROM (VALUES
  (0, 99999999999999.9999::DECIMAL(18,4), '9999999999999999999999999999.9999999999'::DECIMAL(38,10), 9223372036854775807::BIGINT,
   TIMESTAMP '2024-01-02 03:04:05.123456', TIMESTAMP_NS '2024-01-02 03:04:05.123456789', TIMESTAMPTZ '2024-01-02 03:04:05.654321+00',
   DATE '2024-02-29', 'Zürich – 東京 🚀', [9007199254740993, -9223372036854775808, NULL]::BIGINT[],
   {'a': '-1234567890123456789012345678.0123456789'::DECIMAL(38,10), 's': 'ünï', 't': TIMESTAMP '1969-12-31 23:59:59.999999'}),
  (1, '-99999999999999.9999'::DECIMAL(18,4), '-9999999999999999999999999999.9999999999'::DECIMAL(38,10), '-9223372036854775808'::BIGINT,
   TIMESTAMP '1900-01-01 00:00:00.000001', TIMESTAMP_NS '1970-01-01 00:00:00.000000001', TIMESTAMPTZ '1999-12-31 23:59:59.999999+00',
   DATE '1900-01-01', '', []::BIGINT[], {'a': 0::DECIMAL(38,10), 's': NULL, 't': NULL}),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
) t(id, d18, d38, big, ts, ts_ns, tstz, day, txt, lst, st)
UNION ALL
SELECT
  i AS id,
  CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 1234567.8901)::DECIMAL(18,4) END,
  CASE WHEN i % 13 = 0 THEN NULL ELSE (CASE WHEN i % 2 = 0 THEN '-' ELSE '' END || i::VARCHAR || '456789012345678901234.' || lpad((i::BIGINT * 7919)::VARCHAR, 10, '0'))::DECIMAL(38,10) END,
  CASE WHEN i % 3 = 0 THEN i::BIGINT ELSE 9007199254740992 + i::BIGINT * 1000003 END,
  TIMESTAMP '2024-01-01' + to_microseconds(i::BIGINT * 1000003),
  make_timestamp_ns(1704067200000000000 + i::BIGINT * 1000000007),
  TIMESTAMPTZ '2024-06-01 00:00:00+00' + to_microseconds(i::BIGINT * 37),
  DATE '2000-01-01' + i::INTEGER,
  CASE WHEN i % 5 = 0 THEN NULL ELSE 'row ' || i || ' ñ€' END,
  CASE WHEN i % 7 = 0 THEN NULL ELSE [i::BIGINT, 9007199254740993 + i::BIGINT, NULL] END,
  CASE WHEN i % 17 = 0 THEN NULL ELSE {'a': (i::VARCHAR || '.0000000001')::DECIMAL(38,10), 's': 'x' || i, 't': TIMESTAMP '2024-01-01' + to_microseconds(i::BIGINT)} END
FROM range(3, 3003) r(i)
) ORDER BY id`;

const SCALAR = ['d18', 'd38', 'big', 'ts', 'ts_ns', 'tstz', 'day', 'txt'] as const;

/** A timestamp or date as `YYYY-MM-DD[THH:MM:SS[.fraction]]`: trailing zeros of the fraction and the UTC zone dropped. */
function canonTime(text: string): string {
  const m = /^(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?)?(?:Z|\+00(?::?00)?)?$/.exec(text);
  if (!m) return text;
  const fraction = (m[3] ?? '').replace(/0+$/, '');
  return m[2] ? `${m[1]}T${m[2]}${fraction ? `.${fraction}` : ''}` : (m[1] as string);
}

const text = (v: unknown): string | null => (v === null || v === undefined ? null : Decimal.is(v) ? v.text : String(v));

/** A list or struct value as canonical JSON: every scalar as its text, timestamps canonical. */
function canonNested(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) return JSON.stringify(v.map(text));
  const s = v as { a?: unknown; s?: unknown; t?: unknown };
  const t = text(s.t);
  return JSON.stringify({ a: text(s.a), s: text(s.s), t: t === null ? null : canonTime(t) });
}

/** One row as canonical text per column. */
function canonRow(r: Row): Record<string, string | null> {
  const out: Record<string, string | null> = { id: text(r.id) };
  for (const c of SCALAR) {
    const t = text(r[c]);
    out[c] = t !== null && (c.startsWith('ts') || c === 'day') ? canonTime(t) : t;
  }
  out.lst = canonNested(r.lst);
  out.st = canonNested(r.st);
  return out;
}

/** DuckDB's reading of a Parquet file in canonical text. `nested: 'json'` for files where lst/st are JSON text (weir's). */
async function duckRows(path: string, nested: 'native' | 'json' = 'native'): Promise<Record<string, string | null>[]> {
  const lists =
    nested === 'native'
      ? `to_json(list_transform(lst, x -> x::VARCHAR))::VARCHAR AS lst,
         CASE WHEN st IS NULL THEN NULL ELSE to_json({'a': st.a::VARCHAR, 's': st.s, 't': st.t::VARCHAR})::VARCHAR END AS st`
      : 'lst::VARCHAR AS lst, st::VARCHAR AS st';
  const reader = await duck.runAndReadAll(
    `SELECT id::VARCHAR AS id, ${SCALAR.map((c) => `${c}::VARCHAR AS ${c}`).join(', ')}, ${lists} FROM read_parquet('${path}') t ORDER BY t.id`,
  );
  return (reader.getRowObjects() as Record<string, string | null>[]).map((r) => {
    const row: Row = { ...r };
    for (const c of ['lst', 'st'] as const) {
      const t = r[c] ?? null;
      row[c] = t === null ? null : nested === 'json' ? parseJsonExact(t) : JSON.parse(t);
    }
    return canonRow(row);
  });
}

function options(input: Record<string, unknown>, role: 'source' | 'sink') {
  const r = validateOptions(parquetOptions, input, role, parquetRules);
  if (!r.value) throw new Error(r.issues.map((i) => i.message).join('; '));
  return r.value;
}
const sourceOptions = (input: Record<string, unknown>) => options(input, 'source');
const sinkOptions = (input: Record<string, unknown>) => options(input, 'sink');

/** Weir's reading of a Parquet file: its schema and every row. */
async function weirRead(path: string): Promise<{ schema: Schema; rows: Row[] }> {
  const src = parquet.source?.(sourceOptions({ path, partition_rows: 1000 })) ?? expect.unreachable();
  const pctx = planContext({ baseDir: dir });
  const schema = (await src.schema?.(pctx)) ?? [];
  const rows: Row[] = [];
  for (const p of (await src.partitions?.(pctx)) ?? [])
    rows.push(...(await collect(src.read(p as Partition, taskContext({ baseDir: dir, schema })))));
  return { schema, rows };
}

const CODECS = ['snappy', 'gzip', 'zstd', 'lz4', 'lz4_raw', 'brotli', 'uncompressed'] as const;

describe('parquet files written by DuckDB', () => {
  it.each([...CODECS.map((c) => [c, 'V1'] as const), ['zstd', 'V2'] as const, ['snappy', 'V2'] as const])(
    '%s, %s pages: every value read exactly as DuckDB reads it',
    async (codec, version) => {
      const path = join(dir, `duck-${codec}-${version}.parquet`);
      // small row groups: several of each, dictionary and plain pages both; V2 pages bring the DELTA encodings
      await duck.run(
        `COPY (${TABLE}) TO '${path}' (FORMAT parquet, COMPRESSION ${codec}, ROW_GROUP_SIZE 1024, PARQUET_VERSION ${version})`,
      );
      if (version === 'V2') {
        const encodings = await duck.runAndReadAll(`SELECT DISTINCT encodings FROM parquet_metadata('${path}')`);
        expect(
          encodings
            .getRowObjects()
            .map((r) => String(r.encodings))
            .join(' '),
        ).toMatch(/DELTA/);
      }
      const { schema, rows } = await weirRead(path);
      expect(schema).toEqual([
        { name: 'id', type: 'integer', nullable: true },
        { name: 'd18', type: 'decimal', nullable: true, precision: 18, scale: 4 },
        { name: 'd38', type: 'decimal', nullable: true, precision: 38, scale: 10 },
        { name: 'big', type: 'integer', nullable: true },
        { name: 'ts', type: 'timestamp', nullable: true },
        { name: 'ts_ns', type: 'timestamp', nullable: true },
        { name: 'tstz', type: 'timestamp', nullable: true },
        { name: 'day', type: 'timestamp', nullable: true },
        { name: 'txt', type: 'string', nullable: true },
        { name: 'lst', type: 'json', nullable: true },
        { name: 'st', type: 'json', nullable: true },
      ]);
      expect(rows).toHaveLength(3003);
      // exact values, not doubles: a Decimal, bigints beyond 2^53, all sub-second digits
      const first = rows[0] as Row;
      expect(Decimal.is(first.d38) && first.d38.text).toBe('9999999999999999999999999999.9999999999');
      expect(first.big).toBe(9223372036854775807n);
      expect(first.ts).toBe('2024-01-02T03:04:05.123456Z');
      expect(first.ts_ns).toBe('2024-01-02T03:04:05.123456789Z');
      expect(first.day).toBe('2024-02-29');
      expect(first.lst).toEqual([9007199254740993n, -9223372036854775808n, null]);
      expect(rows.map(canonRow)).toEqual(await duckRows(path));
    },
  );
});

describe('a row group of DuckDB pages of millions of bytes', () => {
  it('zstd pages streamed as they decompress: every value as DuckDB reads it', async () => {
    const path = join(dir, 'duck-large-pages.parquet');
    // one row group, one page per column: 1-3 MB pages of each fixed width and of text, nulls in some
    await duck.run(`COPY (
      SELECT i::BIGINT AS id,
        CASE WHEN i % 97 = 0 THEN NULL ELSE (i * 1234567.8901)::DECIMAL(18,4) END AS d18,
        ((i::HUGEINT * 123456789012345678901 - 9999999999999999999999) // 7)::DECIMAL(28,0)::DECIMAL(38,10) + 0.0000000001 * (i * 7919 % 1000000) AS d38,
        TIMESTAMP '2024-01-01' + to_microseconds(i::BIGINT * 1000003) AS ts,
        CASE WHEN i % 89 = 0 THEN NULL ELSE i * 0.1::DOUBLE END AS dbl,
        CASE WHEN i % 5 = 0 THEN NULL ELSE 'row ' || i || ' ñ€ abcdefghijklmnopqrstuvwxyz' END AS txt
      FROM range(150000) t(i)) TO '${path}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)`);
    const pages = await duck.runAndReadAll(
      `SELECT path_in_schema AS name, total_uncompressed_size AS size FROM parquet_metadata('${path}') ORDER BY column_id`,
    );
    // every column is one page over the size from which pages are streamed
    expect(pages.getRowObjects().every((r) => Number(r.size) > 1024 * 1024)).toBe(true);
    const src = parquet.source?.(sourceOptions({ path })) ?? expect.unreachable();
    const pctx = planContext({ baseDir: dir });
    const schema = (await src.schema?.(pctx)) ?? [];
    const digest = createHash('sha256');
    let count = 0;
    for (const p of (await src.partitions?.(pctx)) ?? [])
      for await (const slice of src.read(p as Partition, taskContext({ baseDir: dir, schema })))
        for (const r of slice as Row[]) {
          digest.update(
            `${[r.id, r.d18, r.d38, r.ts, r.dbl, r.txt].map((v) => (v === null ? '\\N' : canonTime(String(text(v))))).join('|')}\n`,
          );
          count++;
        }
    const duckDigest = createHash('sha256');
    const reader = await duck.runAndReadAll(
      `SELECT id::VARCHAR, d18::VARCHAR, d38::VARCHAR, ts::VARCHAR, dbl, txt FROM read_parquet('${path}')`,
    );
    for (const r of reader.getRows())
      duckDigest.update(`${r.map((v, i) => (v === null ? '\\N' : i === 4 ? String(v) : canonTime(String(v)))).join('|')}\n`);
    expect(count).toBe(150000);
    expect(digest.digest('hex')).toBe(duckDigest.digest('hex'));
  });
});

describe('nested columns written by DuckDB', () => {
  it('maps, lists of structs and nested lists become JSON values with decimals and bigints exact', async () => {
    const path = join(dir, 'nested.parquet');
    await duck.run(`COPY (
      SELECT i AS id,
        MAP {'a': ('1' || i || '.0000000001')::DECIMAL(38,10), 'b': NULL} AS m,
        [{'x': 9007199254740993 + i, 'd': '-0.5'::DECIMAL(18,4), 't': TIMESTAMP_NS '2024-01-02 03:04:05.123456789'}] AS ls,
        [[i, NULL], []]::BIGINT[][] AS nest,
        CASE WHEN i = 1 THEN NULL ELSE {'inner': {'d': ('9' || repeat('8', 27) || '.' || repeat('7', 10))::DECIMAL(38,10)}} END AS deep
      FROM range(3) t(i) ORDER BY i) TO '${path}' (FORMAT parquet, COMPRESSION zstd)`);
    const { schema, rows } = await weirRead(path);
    expect(schema.map((c) => `${c.name}:${c.type}`)).toEqual(['id:integer', 'm:json', 'ls:json', 'nest:json', 'deep:json']);
    const exact = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : Decimal.is(x) ? `D${x.text}` : x));
    expect(rows.map(exact)).toEqual(
      [0, 1, 2].map((i) =>
        exact({
          id: i,
          m: { a: Decimal.parse(`1${i}.0000000001`), b: null },
          ls: [{ x: 9007199254740993n + BigInt(i), d: Decimal.parse('-0.5000'), t: '2024-01-02T03:04:05.123456789Z' }],
          nest: [[i, null], []],
          deep: i === 1 ? null : { inner: { d: Decimal.parse(`9${'8'.repeat(27)}.${'7'.repeat(10)}`) } },
        }),
      ),
    );
  });
});

describe('parquet files weir writes, read by DuckDB', () => {
  let input: string;
  let expected: Record<string, string | null>[];
  beforeAll(async () => {
    input = join(dir, 'weir-input.parquet');
    await duck.run(`COPY (${TABLE}) TO '${input}' (FORMAT parquet, COMPRESSION zstd)`);
    expected = await duckRows(input);
  });

  it.each(CODECS.filter((c) => c !== 'lz4_raw'))('%s: DuckDB reads back exactly what weir read', async (codec) => {
    const out = `out-${codec}.parquet`;
    const { schema, rows } = await weirRead(input);
    // three partitions (merged at the commit), the source's schema as a run hands it to the sink
    const sink = parquet.sink?.(sinkOptions({ path: out, compression: codec, row_group_size: 700 })) ?? expect.unreachable();
    const cctx = commitContext({ baseDir: dir, schema });
    await sink.setup?.(cctx);
    const messages: JsonValue[] = [];
    for (const [id, part] of [rows.slice(0, 1000), rows.slice(1000, 2000), rows.slice(2000)].entries()) {
      const writer = await sink.writer({ id: String(id) }, taskContext({ baseDir: dir, schema, partitionId: String(id) }));
      for (let i = 0; i < part.length; i += 300) await writer.write(part.slice(i, i + 300));
      messages.push(JSON.parse(JSON.stringify(await writer.commit?.())) as JsonValue);
      await writer.close?.();
    }
    await sink.commit?.(messages, cctx);
    const types = await duck.runAndReadAll(
      `SELECT name, type, logical_type FROM parquet_schema('${join(dir, out)}') WHERE name IN ('d18', 'd38', 'ts_ns', 'day')`,
    );
    expect(types.getRowObjects().map((r) => `${r.name} ${r.type} ${r.logical_type}`)).toEqual([
      expect.stringMatching(/^d18 INT64 DecimalType\(scale=4, precision=18\)/),
      expect.stringMatching(/^d38 FIXED_LEN_BYTE_ARRAY DecimalType\(scale=10, precision=38\)/),
      expect.stringMatching(/^ts_ns INT64 TimestampType\(isAdjustedToUTC=0, .*NANOS=NanoSeconds/),
      expect.stringMatching(/^day INT32 DateType/),
    ]);
    const codecs = await duck.runAndReadAll(`SELECT DISTINCT compression FROM parquet_metadata('${join(dir, out)}')`);
    expect(codecs.getRowObjects().map((r) => r.compression)).toEqual([codec === 'lz4' ? 'LZ4_RAW' : codec.toUpperCase()]);
    expect(await duckRows(join(dir, out), 'json')).toEqual(expected);
  });
});
