/**
 * Files that lie: a valid file with only its footer (or one page header)
 * rewritten, one test per class of lie. Each must be refused with a clear
 * "corrupt" error naming the file and what is wrong, before any row is handed on
 * for the lies the footer alone shows, and never read as phantom, missing or
 * repeated rows.
 */
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../test/helpers/cli.js';
import { WeirError } from '../../sdk/errors.js';
import { tempDir } from '../../sdk/testing.js';
import type { Row } from '../../sdk/types.js';
import { MAX_FOOTER_BYTES } from './corrupt.js';
import {
  chunkMetas,
  claimRows,
  F,
  getInt,
  items,
  joinFile,
  pagesOf,
  readWithSource,
  rowGroups,
  setInt,
  splitFile,
  withPageHeader,
  writeWithSink,
} from './test-files.js';
import { field, type TList, type TStruct } from './thrift.js';

let dir: string;
let valid: Uint8Array;
const ROWS: Row[] = Array.from({ length: 1000 }, (_, i) => ({ id: i, s: i % 3 ? `r${i}` : null }));

beforeAll(async () => {
  dir = await tempDir('weir-parquet-corrupt-');
  valid = await writeWithSink(dir, 'valid.parquet', ROWS, { row_group_size: 1000, compression: 'snappy' });
});

/** What reading `bytes` (written to `name`) gives: its rows, or the error it was refused with. */
async function outcome(name: string, bytes: Uint8Array, options: Record<string, unknown> = {}) {
  await writeFile(join(dir, name), bytes);
  try {
    return { rows: await readWithSource(dir, name, options), error: undefined };
  } catch (error) {
    return { rows: undefined, error };
  }
}

/** Reading `bytes` is refused as a corrupt file, with a message naming the file and matching `what`. */
async function expectCorrupt(name: string, bytes: Uint8Array, what: RegExp, options: Record<string, unknown> = {}) {
  const { rows, error } = await outcome(name, bytes, options);
  expect(rows?.length, 'rows read from a corrupt file').toBeUndefined();
  expect(error).toBeInstanceOf(WeirError);
  const e = error as WeirError;
  expect(e.code).toBe('parquet_corrupt');
  expect(e.message).toContain(`${join(dir, name)} is a corrupt Parquet file: `);
  expect(e.message).toMatch(what);
  expect(e.message).toMatch(/write the file again from its source/);
}

/** Writes `select` to `name` with DuckDB (one row group); the file's bytes. */
async function duckFile(name: string, select: string): Promise<Uint8Array> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const duck = await (await DuckDBInstance.create(':memory:')).connect();
  await duck.run(`COPY (${select}) TO '${join(dir, name)}' (FORMAT parquet, COMPRESSION zstd)`);
  duck.closeSync();
  return new Uint8Array(await readFile(join(dir, name)));
}

/** The valid file with its footer changed by `edit`. */
function withFooter(edit: (footer: TStruct) => void): Uint8Array {
  const { data, footer } = splitFile(valid);
  edit(footer);
  return joinFile(data, footer);
}

describe('parquet footers that lie about row counts', () => {
  it('the valid file reads back exactly (the baseline every other test changes)', async () => {
    expect(
      (
        await outcome(
          'same.parquet',
          withFooter(() => {}),
        )
      ).rows,
    ).toEqual(ROWS);
  });

  it('more rows claimed than the pages hold: refused, no phantom rows', async () => {
    await expectCorrupt(
      'more.parquet',
      withFooter((f) => claimRows(f, 1500n)),
      /column "id" holds fewer values than its row group claims rows/,
    );
  });

  it('more rows claimed by the row group than its chunks hold: refused from the footer alone', async () => {
    const bytes = withFooter((f) => {
      setInt(f, F.file.numRows, 1500n);
      setInt(rowGroups(f)[0] as TStruct, F.rowGroup.numRows, 1500n);
    });
    await expectCorrupt('more-group.parquet', bytes, /column "id" in row group 0 holds 1000 values, its row group claims 1500 rows/);
  });

  it('fewer rows claimed than the pages hold: refused, no rows silently dropped', async () => {
    await expectCorrupt(
      'fewer.parquet',
      withFooter((f) => claimRows(f, 500n)),
      /the data page at byte \d+ holds 1000 values, but its column chunk claims 500/,
    );
  });

  it('fewer rows claimed for a list column than its pages hold records: refused, no records silently dropped', async () => {
    const bytes = await duckFile('lists.parquet', 'SELECT [i, i + 1] AS lst FROM range(1000) t(i)');
    const { data, footer } = splitFile(bytes);
    setInt(footer, F.file.numRows, 500n);
    setInt(rowGroups(footer)[0] as TStruct, F.rowGroup.numRows, 500n); // num_values (2000 entries) stays: it may exceed the rows
    await expectCorrupt(
      'lists-fewer.parquet',
      joinFile(data, footer),
      /column "lst.list.element" holds more values than its row group has rows/,
    );
  });

  it('more rows claimed for a column hyparquet decodes whole (VARIANT): refused, no phantom nulls', async () => {
    const bytes = await duckFile('variant.parquet', "SELECT {'a': i}::VARIANT AS v FROM range(1000) t(i)");
    expect((await outcome('variant-same.parquet', bytes)).rows?.[999]).toEqual({ v: { a: 999 } });
    const { data, footer } = splitFile(bytes);
    claimRows(footer, 1500n);
    await expectCorrupt(
      'variant-more.parquet',
      joinFile(data, footer),
      /column "v.metadata" holds 1000 records, its row group claims 1500 rows/,
    );
  });

  it("a VARIANT's dictionary page claiming fewer entries: refused before hyparquet (which trusts it) decodes the column", async () => {
    const bytes = await duckFile('variant-dict.parquet', "SELECT {'a': i % 3}::VARIANT AS v FROM range(1000) t(i)");
    const entries = (h: TStruct) => field(h, F.page.dictionaryHeader)?.value as TStruct | undefined;
    const dict = pagesOf(bytes).find((p) => {
      const d = entries(p.header);
      return d && getInt(d, 1) > 1n;
    });
    if (!dict) throw new Error('no dictionary page of several entries');
    const mutant = withPageHeader(bytes, dict.at, (h) => setInt(entries(h) as TStruct, 1, getInt(entries(h) as TStruct, 1) - 1n));
    await expectCorrupt(
      'variant-dict-short.parquet',
      mutant,
      /column "v\.[\w.]+": the dictionary page at byte \d+: 2 values take 16 bytes, the page holds 24/,
    );
  });

  it('a negative row count: refused as negative, not as "the file changed"', async () => {
    await expectCorrupt(
      'negative.parquet',
      withFooter((f) => claimRows(f, -5n)),
      /num_rows is negative \(-5\)/,
    );
  });

  it('a file total that is not the sum of its row groups: refused', async () => {
    await expectCorrupt(
      'sum.parquet',
      withFooter((f) => setInt(f, F.file.numRows, 999n)),
      /claims 999 rows, its row groups add up to 1000/,
    );
  });

  it('10^12 rows claimed: refused at once, without producing rows or spinning', async () => {
    const started = performance.now();
    await expectCorrupt(
      'huge.parquet',
      withFooter((f) => claimRows(f, 10n ** 12n)),
      /holds fewer values than its row group claims/,
    );
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe('parquet footers that lie about where the data is', () => {
  it('many row-group entries sharing the same bytes: refused, not read again and again', async () => {
    const bytes = withFooter((f) => {
      const list = field(f, F.file.rowGroups)?.value as TList;
      list.items = Array.from({ length: 2000 }, () => list.items[0] as TStruct);
      setInt(f, F.file.numRows, 2000n * 1000n);
    });
    await expectCorrupt('many.parquet', bytes, /two column chunks share bytes/);
  });

  it('a column chunk beyond the end of the data: refused before any read', async () => {
    const bytes = withFooter((f) => {
      const meta = chunkMetas(rowGroups(f)[0] as TStruct)[1] as TStruct;
      setInt(meta, F.meta.dataPageOffset, getInt(meta, F.meta.dataPageOffset) + 100_000n);
      if (field(meta, F.meta.dictionaryPageOffset)) setInt(meta, F.meta.dictionaryPageOffset, 0n);
    });
    await expectCorrupt('beyond.parquet', bytes, /column "s" in row group 0 lies at bytes \d+-\d+, outside the file's data/);
  });

  it('a column chunk size running into the footer: refused', async () => {
    const bytes = withFooter((f) => {
      const meta = chunkMetas(rowGroups(f)[0] as TStruct)[1] as TStruct;
      setInt(meta, F.meta.totalCompressed, getInt(meta, F.meta.totalCompressed) + 50n);
    });
    await expectCorrupt('into-footer.parquet', bytes, /lies at bytes \d+-\d+, outside the file's data/);
  });

  it('a footer length larger than the file: refused', async () => {
    const bytes = valid.slice();
    new DataView(bytes.buffer).setUint32(bytes.length - 8, bytes.length, true);
    await expectCorrupt('length.parquet', bytes, /footer length \d+ does not fit in its \d+ bytes/);
  });

  it('a footer longer than weir reads: refused without reading it', async () => {
    const path = join(dir, 'long-footer.parquet');
    // a sparse file: 65 MiB of nothing, then a tail that says the footer is all of it
    const size = MAX_FOOTER_BYTES + 2 ** 20;
    await writeFile(path, valid.subarray(0, 4));
    const handle = await open(path, 'r+');
    const tail = new Uint8Array(8);
    new DataView(tail.buffer).setUint32(0, size - 12, true);
    tail.set([0x50, 0x41, 0x52, 0x31], 4);
    await handle.write(tail, 0, 8, size - 8);
    await handle.close();
    const error = await readWithSource(dir, 'long-footer.parquet').catch((e: unknown) => e);
    expect((error as WeirError).code).toBe('parquet_corrupt');
    expect((error as WeirError).message).toMatch(/its footer is \d+ bytes, more than the 67108864 weir reads/);
  });

  it('a list in the footer claiming more entries than bytes: refused before hyparquet allocates it', async () => {
    const { data } = splitFile(valid);
    // FileMetaData { 1: i32 version = 1, 2: list<struct> of 2^28 entries } and nothing more
    const footer = Uint8Array.of(0x15, 0x02, 0x19, 0xfc, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00);
    await expectCorrupt('list.parquet', joinFile(data, footer), /a list of 268435456 entries with 1 bytes left/);
  });

  it('structs nested 10,000 deep in the footer: refused, no stack overflow', async () => {
    const { data } = splitFile(valid);
    const footer = new Uint8Array(10_001).fill(0x1c); // field delta 1, type struct, again and again
    await expectCorrupt('deep.parquet', joinFile(data, footer), /structs nested more than 64 deep/);
  });

  it('a schema whose group claims more children than there are: refused with the element named', async () => {
    const bytes = withFooter((f) => {
      const root = items(f, F.file.schema)[0] as TStruct;
      setInt(root, 5, 7n);
    });
    await expectCorrupt('schema.parquet', bytes, /schema element "\w+" claims 7 children, but only 2 elements follow it/);
  });

  it("a group with num_children -1: refused (hyparquet's GeoParquet marking looped forever on it)", async () => {
    const { data, footer } = splitFile(await duckFile('group.parquet', 'SELECT [i] AS lst FROM range(10) t(i)'));
    setInt(items(footer, F.file.schema)[1] as TStruct, 5, -1n);
    await expectCorrupt('group-negative.parquet', joinFile(data, footer), /schema element "lst"'s num_children is negative \(-1\)/);
  });

  it('a truncated file (cut in half): refused as cut short', async () => {
    await expectCorrupt('truncated.parquet', valid.subarray(0, valid.length >> 1), /does not end in PAR1: it was cut short/);
  });

  it('data cut out of the middle, footer intact: refused as outside the data', async () => {
    const { data, footer } = splitFile(valid);
    const bytes = joinFile(data.subarray(0, data.length - 100), footer);
    await expectCorrupt('middle.parquet', bytes, /outside the file's data/);
  });
});

describe('parquet page headers that lie', () => {
  const firstData = () => {
    const page = pagesOf(valid).find((p) => [0, 3].includes(Number(field(p.header, F.page.type)?.value)));
    if (!page) throw new Error('no data page');
    return page;
  };
  const dataHeader = (h: TStruct) => (field(h, F.page.dataHeader) ?? field(h, F.page.dataHeaderV2))?.value as TStruct;

  it('an uncompressed size of 2^31-1 bytes: refused before a buffer of that size is taken', async () => {
    const bytes = withPageHeader(valid, firstData().at, (h) => setInt(h, F.page.uncompressed, 2n ** 31n - 1n));
    await expectCorrupt('page-uncompressed.parquet', bytes, /claims 2147483647 bytes uncompressed/);
  });

  it('an uncompressed size off by one: refused by the codec check', async () => {
    const bytes = withPageHeader(valid, firstData().at, (h) => setInt(h, F.page.uncompressed, getInt(h, F.page.uncompressed) + 1n));
    await expectCorrupt(
      'page-off-by-one.parquet',
      bytes,
      /a SNAPPY page of \d+ bytes claims \d+ bytes uncompressed, its own header says \d+/,
    );
  });

  it('a compressed size running past its column chunk: refused', async () => {
    const bytes = withPageHeader(valid, firstData().at, (h) => setInt(h, F.page.compressed, getInt(h, F.page.compressed) + 10_000n));
    await expectCorrupt('page-compressed.parquet', bytes, /claims \d+ bytes, past the end of its column chunk/);
  });

  it('a page claiming more values than its column chunk: refused', async () => {
    const bytes = withPageHeader(valid, firstData().at, (h) => setInt(dataHeader(h), 1, 5000n));
    await expectCorrupt('page-values.parquet', bytes, /holds 5000 values, but its column chunk claims 1000/);
  });

  it('a page claiming fewer values than it holds: refused, not read short', async () => {
    const bytes = withPageHeader(valid, firstData().at, (h) => setInt(dataHeader(h), 1, 10n));
    await expectCorrupt('page-fewer.parquet', bytes, /column "id"/);
  });

  it('a negative page size: refused as not a valid count', async () => {
    const bytes = withPageHeader(valid, firstData().at, (h) => setInt(h, F.page.compressed, -1n));
    await expectCorrupt('page-negative.parquet', bytes, /compressed size is not a valid count \(-1\)/);
  });
});

describe('parquet schemas and pages that contradict themselves (found by the fuzz test)', () => {
  const schemaElement = (f: TStruct, name: string) =>
    items(f, F.file.schema).find((e) => Buffer.from(field(e, 4)?.value as Uint8Array).toString() === name) as TStruct;

  it('an INT64 column annotated JSON: refused, not converted as text', async () => {
    const bytes = withFooter((f) => schemaElement(f, 'id').fields.push({ id: 6, type: 5, value: 19 }));
    await expectCorrupt('json-int.parquet', bytes, /column "id" is annotated JSON, which its physical type INT64 cannot be/);
  });

  it('a leaf annotated LIST: refused (hyparquet reads its missing first child)', async () => {
    const bytes = withFooter((f) => schemaElement(f, 's').fields.push({ id: 6, type: 5, value: 3 }));
    await expectCorrupt('list-leaf.parquet', bytes, /column "s" is annotated LIST/);
  });

  it('a DECIMAL with a scale of -2 billion: refused, not a RangeError from building its text', async () => {
    const { data, footer } = splitFile(await duckFile('decimal.parquet', 'SELECT (i * 1.5)::DECIMAL(18,3) AS d FROM range(10) t(i)'));
    const d = schemaElement(footer, 'd');
    setInt(d, 7, -2_000_000_000n);
    const logical = field(d, 10)?.value as TStruct | undefined;
    const decimal = logical && (field(logical, 5)?.value as TStruct);
    if (decimal) setInt(decimal, 1, -2_000_000_000n);
    await expectCorrupt(
      'decimal-scale.parquet',
      joinFile(data, footer),
      /DECIMAL\(18, -2000000000\): its scale must be 0 to its precision/,
    );
  });

  it('a V2 page whose definition levels are said to take 0 bytes: refused, its levels not read as values', async () => {
    const plain = await writeWithSink(dir, 'plain.parquet', ROWS, { compression: 'uncompressed' });
    const last = pagesOf(plain)
      .filter((p) => field(p.header, F.page.dataHeaderV2))
      .at(-1);
    if (!last) throw new Error('no V2 data page');
    const bytes = withPageHeader(plain, last.at, (h) => setInt(field(h, F.page.dataHeaderV2)?.value as TStruct, 5, 0n));
    await expectCorrupt('v2-levels.parquet', bytes, /column "s": the data page at byte \d+ claims \d+ nulls, its levels hold 0/);
  });

  it("a struct leaf whose pages end early: refused, not hyparquet's 'struct parsing error'", async () => {
    const bytes = await duckFile('struct.parquet', "SELECT {'a': 'k' || (i % 3), 'b': i} AS st FROM range(100) t(i)");
    const first = pagesOf(bytes).find((p) => field(p.header, F.page.dataHeader) ?? field(p.header, F.page.dataHeaderV2));
    if (!first) throw new Error('no data page');
    const mutant = withPageHeader(bytes, first.at, (h) =>
      setInt((field(h, F.page.dataHeader) ?? field(h, F.page.dataHeaderV2))?.value as TStruct, 1, 1n),
    );
    await expectCorrupt('struct-short.parquet', mutant, /column "st.a" holds fewer records than its row group claims rows/);
  });
});

describe('a corrupt parquet file in a run', () => {
  it('weir run exits 1 with the corrupt-file message and writes nothing', async () => {
    await writeFile(
      join(dir, 'run.parquet'),
      withFooter((f) => claimRows(f, 500n)),
    );
    await writeFile(
      join(dir, 'run.yaml'),
      'pipeline: corrupt-parquet\nsource: { type: parquet, path: run.parquet }\nsink: { type: jsonl, path: out.jsonl }\n',
    );
    const result = await runCli(['run', join(dir, 'run.yaml'), '--log-format', 'json'], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stdout + result.stderr).toMatch(
      /run\.parquet is a corrupt Parquet file: column .+ holds 1000 values, but its column chunk claims 500/,
    );
    expect(result.stdout + result.stderr).not.toMatch(/\n\s+at /);
    await expect(readFile(join(dir, 'out.jsonl'))).rejects.toThrow(/ENOENT/);
  });
});
