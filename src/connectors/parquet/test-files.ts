/**
 * Test helpers for damaged Parquet files: valid files written by weir's own
 * sink, their footer taken apart and put back (as thrift structs, so a test can
 * change any field), the file read through the source the way a run reads it.
 * Used by corrupt.test.ts and fuzz.test.ts; not part of the connector.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { validateOptions } from '../../sdk/options.js';
import { collect, commitContext, planContext, taskContext } from '../../sdk/testing.js';
import type { JsonValue, Row } from '../../sdk/types.js';
import parquet from './index.js';
import { type ParquetOptions, parquetOptions, parquetRules } from './spec.js';
import { decodeStruct, decodeStructPrefix, encodeStruct, field, type TList, type TStruct } from './thrift.js';

/** Thrift field ids of the footer structs the tests change. */
export const F = {
  file: { schema: 2, numRows: 3, rowGroups: 4 },
  rowGroup: { columns: 1, totalByteSize: 2, numRows: 3 },
  chunk: { metaData: 3 },
  meta: { numValues: 5, totalUncompressed: 6, totalCompressed: 7, dataPageOffset: 9, dictionaryPageOffset: 11 },
  page: { type: 1, uncompressed: 2, compressed: 3, dataHeader: 5, dictionaryHeader: 7, dataHeaderV2: 8 },
} as const;

function options(input: Record<string, unknown>): ParquetOptions {
  const r = validateOptions(parquetOptions, input, 'source', parquetRules);
  if (!r.value) throw new Error(r.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return r.value;
}

/** Writes `rows` to `dir/name` through the parquet sink (one partition, job committed); the file's bytes. */
export async function writeWithSink(
  dir: string,
  name: string,
  rows: Row[],
  sinkOptions: Record<string, unknown> = {},
): Promise<Uint8Array> {
  const sink = parquet.sink?.(options({ path: name, ...sinkOptions }));
  if (!sink) throw new Error('parquet has no sink');
  const cctx = commitContext({ baseDir: dir });
  await sink.setup?.(cctx);
  const writer = await sink.writer({ id: '0' }, taskContext({ baseDir: dir }));
  await writer.write(rows);
  const message = JSON.parse(JSON.stringify((await writer.commit?.()) ?? null)) as JsonValue;
  await writer.close?.();
  await sink.commit?.([message], cctx);
  return new Uint8Array(await readFile(join(dir, name)));
}

/** Reads every partition of `dir/name` through the source, as a run does (planner, then each partition). */
export async function readWithSource(dir: string, name: string, sourceOptions: Record<string, unknown> = {}): Promise<Row[]> {
  const source = parquet.source?.(options({ path: name, ...sourceOptions }));
  if (!source) throw new Error('parquet has no source');
  const pctx = planContext({ baseDir: dir });
  const schema = await source.schema?.(pctx);
  const partitions = (await source.partitions?.(pctx)) ?? [{ id: '0' }];
  const rows: Row[] = [];
  for (const p of partitions) rows.push(...(await collect(source.read(p, taskContext({ baseDir: dir, schema })))));
  return rows;
}

/** A file split into its data (magic and row groups) and its decoded footer. */
export interface Parts {
  data: Uint8Array;
  footer: TStruct;
}

export function splitFile(bytes: Uint8Array): Parts {
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(bytes.length - 8, true);
  const start = bytes.length - 8 - length;
  return { data: bytes.slice(0, start), footer: decodeStruct(bytes.subarray(start, bytes.length - 8)) };
}

/** `data` followed by `footer` (or raw footer bytes), its length and the closing magic. */
export function joinFile(data: Uint8Array, footer: TStruct | Uint8Array): Uint8Array {
  const f = footer instanceof Uint8Array ? footer : encodeStruct(footer);
  const out = new Uint8Array(data.length + f.length + 8);
  out.set(data);
  out.set(f, data.length);
  new DataView(out.buffer).setUint32(data.length + f.length, f.length, true);
  out.set([0x50, 0x41, 0x52, 0x31], out.length - 4);
  return out;
}

export function items(s: TStruct, id: number): TStruct[] {
  const list = field(s, id)?.value as TList | undefined;
  if (!list) throw new Error(`no list field ${id}`);
  return list.items as TStruct[];
}
export const rowGroups = (footer: TStruct) => items(footer, F.file.rowGroups);
/** The ColumnMetaData of every column chunk of a row group. */
export const chunkMetas = (rg: TStruct) => items(rg, F.rowGroup.columns).map((c) => field(c, F.chunk.metaData)?.value as TStruct);

/** Sets an existing i64 (or i32) field to `value`, keeping its wire type. */
export function setInt(s: TStruct, id: number, value: bigint): void {
  const f = field(s, id);
  if (!f) throw new Error(`no field ${id}`);
  f.value = typeof f.value === 'bigint' ? value : Number(value);
}

export const getInt = (s: TStruct, id: number): bigint => BigInt(field(s, id)?.value as bigint | number);

/** Sets a row count everywhere the footer states it for a one-row-group file: the file, the group, and each chunk's num_values. */
export function claimRows(footer: TStruct, rows: bigint): void {
  setInt(footer, F.file.numRows, rows);
  const [rg] = rowGroups(footer);
  if (!rg) throw new Error('no row group');
  setInt(rg, F.rowGroup.numRows, rows);
  for (const meta of chunkMetas(rg)) setInt(meta, F.meta.numValues, rows);
}

/** Offsets of the chunks after byte `at` move by `delta`; the chunk holding `at` grows by it. */
function shiftChunks(footer: TStruct, at: number, delta: bigint): void {
  for (const rg of rowGroups(footer))
    for (const meta of chunkMetas(rg)) {
      const data = Number(getInt(meta, F.meta.dataPageOffset));
      const dict = field(meta, F.meta.dictionaryPageOffset) ? Number(getInt(meta, F.meta.dictionaryPageOffset)) : 0;
      const start = dict > 0 && dict < data ? dict : data;
      const size = Number(getInt(meta, F.meta.totalCompressed));
      if (at >= start && at < start + size) setInt(meta, F.meta.totalCompressed, BigInt(size) + delta);
      if (data > at) setInt(meta, F.meta.dataPageOffset, BigInt(data) + delta);
      if (dict > at) setInt(meta, F.meta.dictionaryPageOffset, BigInt(dict) + delta);
    }
}

/**
 * The file with the page header at byte `at` changed by `edit` (re-encoded, so
 * it may change length: the footer's offsets and sizes are moved to match, and
 * only the header lies).
 */
export function withPageHeader(bytes: Uint8Array, at: number, edit: (header: TStruct) => void): Uint8Array {
  const { data, footer } = splitFile(bytes);
  const { struct, length } = decodeStructPrefix(data.subarray(at));
  edit(struct);
  const header = encodeStruct(struct);
  const out = new Uint8Array(data.length - length + header.length);
  out.set(data.subarray(0, at));
  out.set(header, at);
  out.set(data.subarray(at + length), at + header.length);
  shiftChunks(footer, at, BigInt(header.length - length));
  return joinFile(out, footer);
}

/** Where each page of the file starts, with its decoded header (walking each chunk from its first byte). */
export function pagesOf(bytes: Uint8Array): { at: number; header: TStruct }[] {
  const { data, footer } = splitFile(bytes);
  const pages: { at: number; header: TStruct }[] = [];
  for (const rg of rowGroups(footer))
    for (const meta of chunkMetas(rg)) {
      const dataAt = Number(getInt(meta, F.meta.dataPageOffset));
      const dict = field(meta, F.meta.dictionaryPageOffset) ? Number(getInt(meta, F.meta.dictionaryPageOffset)) : 0;
      let at = dict > 0 && dict < dataAt ? dict : dataAt;
      const end = at + Number(getInt(meta, F.meta.totalCompressed));
      while (at < end) {
        const { struct, length } = decodeStructPrefix(data.subarray(at));
        pages.push({ at, header: struct });
        at += length + Number(field(struct, F.page.compressed)?.value);
      }
    }
  return pages;
}
