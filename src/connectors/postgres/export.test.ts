/**
 * The postgres source's COPY export into the csv sink: the file the fast path
 * writes must be byte for byte the file the row path (cursor rows through the csv
 * sink's writer) writes, for hard values of every exported type and in every
 * dialect the sink takes; columns without an exact export make the partition take
 * the row path. Counts, bytes and checkpoints agree through the whole runtime.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { requireService } from '../../../test/helpers/services.js';
import { commitContext, connectorOptions, planContext, taskContext, tempDir } from '../../sdk/testing.js';
import { isEncodedRows, type JsonValue, type Row } from '../../sdk/types.js';
import csv from '../csv/index.js';
import { RecordCutter } from './export.js';
import postgres from './index.js';

const up = await requireService('postgres');
const BASE = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };

let admin: pg.Client;
let dir: string;
const created: string[] = [];
const tableName = (prefix = 'ex') => {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  created.push(name);
  return name;
};

beforeAll(async () => {
  if (!up) return;
  admin = new pg.Client(BASE);
  await admin.connect();
  dir = await tempDir('weir-pg-export-');
});
afterAll(async () => {
  if (!up) return;
  for (const t of created) await admin.query(`DROP TABLE IF EXISTS "${t}"`);
  await admin.end();
  await rm(dir, { recursive: true, force: true });
});

type Path = 'rows' | 'encoded' | 'decoded';

/**
 * Writes the source's partitions into a CSV file through the csv sink as the runtime
 * does, by one path: `rows` (read → write), `encoded` (readEncoded → writeEncoded,
 * which must take every chunk), `decoded` (readEncoded → each chunk's decode() → write).
 * Returns the file and how many encoded chunks there were.
 */
async function exportFile(source: Record<string, unknown>, sink: Record<string, unknown>, path: Path) {
  const src = postgres.source?.(connectorOptions(postgres, { ...BASE, ...source }, 'source')) ?? expect.unreachable();
  const file = join(dir, `${randomBytes(4).toString('hex')}.csv`);
  const snk = csv.sink?.(connectorOptions(csv, { path: file, ...sink }, 'sink')) ?? expect.unreachable();
  const plan = planContext({ baseDir: dir });
  const schema = await src.schema?.(plan);
  const partitions = (await src.partitions?.(plan)) ?? [{ id: '0' }];
  const runId = `run-${randomBytes(4).toString('hex')}`;
  const cctx = commitContext({ baseDir: dir, runId, schema });
  await snk.setup?.(cctx);
  const messages: JsonValue[] = [];
  let chunks = 0;
  let bytes = 0;
  for (const p of partitions) {
    const ctx = taskContext({ baseDir: dir, runId, schema, partitionId: p.id });
    const writer = await snk.writer(p, ctx);
    try {
      if (path === 'rows') for await (const rows of src.read(p, ctx)) await writer.write(rows as Row[]);
      else {
        expect(snk.accepts).toContain('csv');
        const items = src.readEncoded?.(p, ctx, 'csv', await writer.encodingHints?.('csv')) ?? expect.unreachable();
        for await (const item of items as AsyncIterable<unknown>) {
          if (!isEncodedRows(item)) await writer.write(item as Row[]);
          else {
            chunks++;
            if (path === 'encoded') expect(await writer.writeEncoded?.(item)).toBe(true);
            else await writer.write(await item.decode(async () => expect.unreachable()));
          }
        }
      }
      messages.push((await writer.commit?.()) as JsonValue);
    } finally {
      await writer.close?.();
    }
    bytes += ctx.bytes;
  }
  await snk.commit?.(messages, cctx);
  await src.close?.();
  const data = await readFile(file);
  await rm(file, { force: true });
  return { data, chunks, bytes };
}

/** The file by all three paths: they must be equal byte for byte. */
async function expectSameFile(source: Record<string, unknown>, sink: Record<string, unknown> = {}) {
  const rows = await exportFile(source, sink, 'rows');
  const encoded = await exportFile(source, sink, 'encoded');
  const decoded = await exportFile(source, sink, 'decoded');
  expect(encoded.data.toString('utf8')).toBe(rows.data.toString('utf8'));
  expect(Buffer.compare(encoded.data, rows.data)).toBe(0);
  expect(Buffer.compare(decoded.data, rows.data)).toBe(0);
  expect(encoded.bytes).toBe(rows.bytes);
  return { rows, encoded };
}

const COLUMNS = `id int PRIMARY KEY, t text, vc varchar(40), n numeric, f8 float8, f4 real, ts timestamp, tz timestamptz, d date,
  b boolean, by bytea, i8 bigint, i2 smallint, ia int4[], ta text[], ba bool[], iv interval, u uuid, ch char(3)`;

const hardText = fc.oneof(
  fc.constantFrom('', ' ', '"', '""', ',', ';', '\t', '|', "'", '\r\n', '\n', '\r', '\\', '\\.', '\\N', 'NULL', 'é', '😀', '=1+1', 'a,b"c'),
  fc.string({ unit: fc.constantFrom('a', 'Z', '"', "'", ',', ';', '|', '\t', '\n', '\r', '\\', '.', 'N', ' ', 'é', 'ß', '😀', '\u2028') }),
);
const numericText = fc.oneof(
  fc.constantFrom('NaN', 'Infinity', '-Infinity', '0', '0.000', '-0.5', '1.50', '100', '1e3'),
  fc.tuple(fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }), fc.nat({ max: 30 })).map(([u, s]) => {
    const digits = (u < 0n ? -u : u).toString().padStart(s + 1, '0');
    return `${u < 0n ? '-' : ''}${s ? `${digits.slice(0, -s)}.${digits.slice(-s)}` : digits}`;
  }),
);
const floatSpecials = [
  'NaN',
  'Infinity',
  '-Infinity',
  '-0',
  '0',
  '1e21',
  '1e-6',
  '1e-7',
  '9.999999999999999e-7',
  '1e15',
  '1e16',
  '123456789012345680000',
  '5e-324',
  '1.7976931348623157e308',
  '0.1',
  '-2.5e-5',
  '1e-4',
  '0.00001',
];
const float8Text = fc.oneof(
  fc.constantFrom(...floatSpecials),
  fc.double().map((x) => (Object.is(x, -0) ? '-0' : String(x))),
);
const float4Text = fc.oneof(
  fc.constantFrom(
    'NaN',
    'Infinity',
    '-Infinity',
    '-0',
    '1e-6',
    '1e-7',
    '3.4028235e38',
    '1e15',
    '1e21',
    '0.1',
    '16777217',
    '999999',
    '1e6',
    '1234567',
    '99999.99',
    '100000',
  ),
  fc.float().map((x) => (Object.is(x, -0) ? '-0' : String(x))),
);
const micros = fc.bigInt({ min: -62_135_596_800_000_000n + 86_400_000_000n, max: 253_402_214_400_000_000n - 86_400_000_000n });
const timestampText = fc.oneof(
  fc.constantFrom('infinity', '-infinity', '0044-03-15 12:00:00 BC', '2024-02-29 23:59:59.999999', '1970-01-01 00:00:00'),
  micros.map((us) => {
    const d = new Date(Number(us / 1000n));
    const frac = String(((us % 1_000_000n) + 1_000_000n) % 1_000_000n).padStart(6, '0');
    return `${d.toISOString().slice(0, 19).replace('T', ' ')}.${frac}`;
  }),
);
const dateText = fc.oneof(
  fc.constantFrom('infinity', '-infinity', '0044-03-15 BC', '2024-02-29'),
  fc
    .date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T00:00:00Z'), noInvalidDate: true })
    .map((d) => d.toISOString().slice(0, 10)),
);
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: null, freq: 4 });
const row = fc.record({
  t: opt(hardText),
  vc: opt(hardText.map((s) => s.slice(0, 20))),
  n: opt(numericText),
  f8: opt(float8Text),
  f4: opt(float4Text),
  ts: opt(timestampText),
  tz: opt(timestampText),
  d: opt(dateText),
  b: opt(fc.boolean()),
  by: opt(fc.uint8Array({ maxLength: 80 }).map((a) => Buffer.from(a))),
  i8: opt(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String)),
  i2: opt(fc.integer({ min: -32768, max: 32767 })),
  ia: opt(fc.array(fc.option(fc.integer(), { nil: null }), { maxLength: 4 })),
  ta: opt(fc.array(fc.option(hardText, { nil: null }), { maxLength: 3 })),
  ba: opt(fc.array(fc.boolean(), { maxLength: 3 })),
  iv: opt(fc.constantFrom('1 day 02:03:04', '-1 year', '00:00:00.000001', '3 mons')),
  u: opt(fc.uuid()),
  ch: opt(fc.constantFrom('a', 'ab', 'abc', '')),
});
const dialects = fc.constantFrom<Record<string, unknown>>(
  {},
  { header: false },
  { delimiter: ';', quote: "'", null_value: 'NULL' },
  { delimiter: '\t', null_value: '\\N' },
  { delimiter: '|', null_value: '\\' },
);

async function fill(table: string, rows: Record<string, unknown>[]) {
  await admin.query(`TRUNCATE "${table}"`);
  const names = Object.keys(rows[0] ?? {});
  for (const [i, r] of rows.entries())
    await admin.query(`INSERT INTO "${table}" (id, ${names.join(', ')}) VALUES ($1, ${names.map((_, j) => `$${j + 2}`).join(', ')})`, [
      i + 1,
      ...names.map((n) => r[n]),
    ]);
}

describe.skipIf(!up)('postgres → csv: the COPY export is the row path, byte for byte', () => {
  it('holds for hard values of every exported type, in every dialect the csv sink takes (property)', async () => {
    const table = tableName();
    await admin.query(`CREATE TABLE "${table}" (${COLUMNS})`);
    await fc.assert(
      fc.asyncProperty(fc.array(row, { maxLength: 12 }), dialects, async (rows, dialect) => {
        await fill(table, rows);
        const { encoded } = await expectSameFile({ query: `SELECT * FROM "${table}" ORDER BY id` }, dialect);
        expect(encoded.chunks).toBe(rows.length ? 1 : 0);
      }),
      { numRuns: 60 },
    );
  }, 120_000);

  it('quotes a first field that starts with a backslash, unless it is the null text', async () => {
    const table = tableName();
    await admin.query(`CREATE TABLE "${table}" (t text, id int)`);
    await admin.query(`INSERT INTO "${table}" VALUES ('\\x', 1), ('\\.', 2), ('\\N', 3), (NULL, 4), ('\\', 5), ('a\\', 6)`);
    const q = { query: `SELECT * FROM "${table}" ORDER BY id` };
    const { rows } = await expectSameFile(q);
    expect(rows.data.toString()).toBe('t,id\n"\\x",1\n"\\.",2\n"\\N",3\n,4\n"\\",5\na\\,6\n');
    await expectSameFile(q, { null_value: '\\N', header: false });
    await expectSameFile(q, { null_value: '\\' });
  });

  it('cuts large exports into chunks of whole records, across ranges of a partition column', async () => {
    const table = tableName();
    await admin.query(
      `CREATE TABLE "${table}" AS SELECT g AS id, repeat('x"y', g % 60) || E'\\n' || g AS t, g / 7.0 AS n, (g * 1.1)::float8 AS f FROM generate_series(1, 60000) g`,
    );
    const { encoded } = await expectSameFile({ table, partition_column: 'id', partitions: 3 });
    expect(encoded.chunks).toBeGreaterThan(3);
    // ranges of the table's blocks: the parts, one after the other, are the one partition's file
    const blocks = await expectSameFile({ table, partitions: 3 });
    expect(Buffer.compare(blocks.rows.data, (await exportFile({ table }, {}, 'encoded')).data)).toBe(0);
  });

  it('takes the row path for a partition with a column the export cannot render (json), with the same file', async () => {
    const table = tableName();
    await admin.query(`CREATE TABLE "${table}" (id int, j jsonb, f float8[])`);
    await admin.query(`INSERT INTO "${table}" VALUES (1, '{"b": 1, "1": [1.50, "x"]}', '{1e15,-0}'), (2, NULL, NULL)`);
    const { encoded } = await expectSameFile({ query: `SELECT * FROM "${table}" ORDER BY id` });
    expect(encoded.chunks).toBe(0);
  });

  it('gives the same counts, bytes and file through the runtime, with checkpoints', async () => {
    const table = tableName();
    await admin.query(
      `CREATE TABLE "${table}" AS SELECT g AS id, 'n ' || g AS name, g % 3 = 0 AS ok, now() AS at FROM generate_series(1, 30000) g`,
    );
    const run = async (name: string, transforms: string) => {
      const out = join(dir, `${name}.csv`);
      const { summary } = await runYaml(
        `
pipeline: ${name}
source: { type: postgres, database: test, table: ${table}, partition_column: id, partitions: 2 }
sink: { type: csv, path: ${out} }
checkpoint: { path: ${join(dir, `${name}.db`)} }
${transforms}`,
        [],
        dir,
      );
      expect(summary.status).toBe('succeeded');
      return { summary, data: await readFile(out) };
    };
    const fast = await run(`ex-fast-${table}`, '');
    // a transform step keeps the runtime off the encoded path
    const slow = await run(`ex-rows-${table}`, 'transforms:\n  - filter: id > 0\n');
    expect(Buffer.compare(fast.data, slow.data)).toBe(0);
    expect(fast.summary.totals.rows_written).toBe(30000);
    expect(fast.summary.totals).toMatchObject({
      rows_read: slow.summary.totals.rows_read,
      rows_written: slow.summary.totals.rows_written,
      rows_failed: 0,
      bytes_sent: slow.summary.totals.bytes_sent,
    });
    expect(fast.summary.partitions.length).toBe(2);
  });
});

describe('RecordCutter', () => {
  it('counts records across chunk boundaries, quotes and quoted line breaks', () => {
    const d = { delimiter: ',', quote: '"', nullText: '' };
    const text = 'a,"x\ny"\n"",\n\\b,1\n"q""\n",2\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const c = new RecordCutter(d);
      c.push(Buffer.from(text.slice(0, cut)));
      c.push(Buffer.from(text.slice(cut)));
      const taken = c.take();
      expect(taken?.rows).toBe(4);
      expect(taken?.data.toString()).toBe('a,"x\ny"\n"",\n"\\b",1\n"q""\n",2\n');
      expect(c.leftover).toBe(0);
    }
  });
});
