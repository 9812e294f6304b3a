/**
 * A Parquet file is untrusted input: its footer says how many rows there are,
 * where each column's bytes lie and how large they are, and a reader that
 * believes it returns phantom rows, drops rows or allocates what a count says.
 * This module holds the error for a file that lies ({@link Corrupt}, turned into
 * a {@link WeirError} naming the file by {@link corruptFile}) and the footer's
 * checks ({@link checkMetadata}): every count and offset against the others and
 * against the file's size, before a row is read. The page reader (pages.ts)
 * checks the pages against the footer as it decodes them. Used on the planner
 * and on workers alike.
 */
import type { ColumnMetaData, FileMetaData, SchemaElement } from 'hyparquet';
import { WeirError } from '../../sdk/errors.js';
import { MAX_DEPTH } from './thrift.js';

/** What is wrong with a file, found deep inside the reader (which does not know the file's path). */
export class Corrupt extends Error {
  override name = 'Corrupt';
}

/** The error a user sees for a corrupt file: which file, what is wrong, and what to do. */
export function corruptFile(path: string, who: string, what: string, cause?: unknown): WeirError {
  return new WeirError(
    `${who}: ${path} is a corrupt Parquet file: ${what}. Nothing was read from it; write the file again from its source (another reader, e.g. DuckDB, will likely refuse it too)`,
    { kind: 'connector', code: 'parquet_corrupt', cause },
  );
}

/** Largest footer weir reads: its decoded form takes about ten times its size in memory. */
export const MAX_FOOTER_BYTES = 64 * 1024 * 1024;

/** Where the footer sits in the file: the column chunks must lie between the leading magic and it. */
export interface FileBounds {
  size: number;
  footerStart: number;
}

/** An integer field of the footer as a bigint; a field of another type (a mutated wire type) is corrupt. */
function int(value: unknown, what: string): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  throw new Corrupt(`${what} is ${value === undefined ? 'missing' : 'not an integer'}`);
}

/** A count of the footer: a non-negative integer a JavaScript number holds exactly. */
function count(value: unknown, what: string): number {
  const n = int(value, what);
  if (n < 0n) throw new Corrupt(`${what} is negative (${n})`);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new Corrupt(`${what} is ${n}, more than any file holds`);
  return Number(n);
}

/** The first byte of a column chunk: its dictionary page when it has one before the data pages. */
export function chunkStart(meta: ColumnMetaData): number {
  const dict = Number(meta.dictionary_page_offset ?? 0);
  const data = Number(meta.data_page_offset);
  // polars leaves dictionary_page_offset out and lets data_page_offset point at the chunk's start, dictionary first
  return dict > 0 && dict < data ? dict : data;
}

/** A leaf of the schema as the footer's column chunks must describe it. */
interface LeafCheck {
  path: string[];
  type: string;
  repeated: boolean;
}

const PHYSICAL = new Set(['BOOLEAN', 'INT32', 'INT64', 'INT96', 'FLOAT', 'DOUBLE', 'BYTE_ARRAY', 'FIXED_LEN_BYTE_ARRAY']);

/**
 * The leaves of the flattened schema, checked as a tree: every group's children
 * are there, nothing is left over, nesting is bounded (hyparquet builds the tree
 * recursively and trusts `num_children`).
 */
function schemaLeaves(schema: readonly SchemaElement[]): LeafCheck[] {
  if (!Array.isArray(schema) || schema.length === 0) throw new Corrupt('the schema is empty');
  const leaves: LeafCheck[] = [];
  const walk = (index: number, path: string[], repeated: boolean, depth: number): number => {
    const e = schema[index];
    if (!e) throw new Corrupt(`schema element ${index - 1} says it has more children than the schema holds`);
    if (depth > MAX_DEPTH) throw new Corrupt(`the schema nests more than ${MAX_DEPTH} deep`);
    if (typeof e.name !== 'string') throw new Corrupt(`schema element ${index} has no name`);
    const children = e.num_children === undefined ? 0 : count(e.num_children, `schema element "${e.name}"'s num_children`);
    const here = index === 0 ? [] : [...path, e.name];
    const rep = repeated || e.repetition_type === 'REPEATED';
    if (children > schema.length - index - 1)
      throw new Corrupt(`schema element "${e.name}" claims ${children} children, but only ${schema.length - index - 1} elements follow it`);
    if (children === 0 && index > 0) {
      if (!e.type || !PHYSICAL.has(e.type)) throw new Corrupt(`column "${here.join('.')}" has no valid physical type`);
      if (e.type === 'FIXED_LEN_BYTE_ARRAY' && !(Number.isInteger(e.type_length) && (e.type_length as number) > 0))
        throw new Corrupt(`column "${here.join('.')}" is FIXED_LEN_BYTE_ARRAY of length ${e.type_length}`);
      checkLeafAnnotation(e, here.join('.'));
      leaves.push({ path: here, type: e.type, repeated: rep });
      return index + 1;
    }
    let next = index + 1;
    for (let c = 0; c < children; c++) next = walk(next, here, rep, depth + 1);
    return next;
  };
  const end = walk(0, [], false, 0);
  if (end !== schema.length) throw new Corrupt(`${schema.length - end} schema elements belong to no column`);
  return leaves;
}

/** Digits a DECIMAL of each integer type can hold (the format's limits); bytes hold more, up to a bound that keeps text sane. */
const MAX_PRECISION: Record<string, number> = { INT32: 9, INT64: 18 };
const MAX_DECIMAL_DIGITS = 4096;

const BYTES = ['BYTE_ARRAY'];
const INT32 = ['INT32'];
const INT64 = ['INT64'];
/** The physical types each annotation may annotate (the format's rules); absent: no leaf may carry it. */
const ANNOTATES: Record<string, readonly string[]> = {
  UTF8: BYTES,
  STRING: BYTES,
  ENUM: BYTES,
  JSON: BYTES,
  BSON: BYTES,
  GEOMETRY: BYTES,
  GEOGRAPHY: BYTES,
  UUID: ['FIXED_LEN_BYTE_ARRAY'],
  FLOAT16: ['FIXED_LEN_BYTE_ARRAY'],
  INTERVAL: ['FIXED_LEN_BYTE_ARRAY'],
  DECIMAL: ['INT32', 'INT64', 'FIXED_LEN_BYTE_ARRAY', 'BYTE_ARRAY'],
  DATE: INT32,
  TIME_MILLIS: INT32,
  TIME_MICROS: INT64,
  TIME: ['INT32', 'INT64'],
  TIMESTAMP_MILLIS: INT64,
  TIMESTAMP_MICROS: INT64,
  TIMESTAMP: INT64,
  INT_8: INT32,
  INT_16: INT32,
  INT_32: INT32,
  UINT_8: INT32,
  UINT_16: INT32,
  UINT_32: INT32,
  INT_64: INT64,
  UINT_64: INT64,
  INTEGER: ['INT32', 'INT64'],
  NULL: ['BOOLEAN', 'INT32', 'INT64', 'INT96', 'FLOAT', 'DOUBLE', 'BYTE_ARRAY', 'FIXED_LEN_BYTE_ARRAY'],
};

/**
 * A leaf's annotations must fit its physical type: a JSON INT64 or a LIST leaf
 * is a footer that lies, and weir's converters and hyparquet's assembly would
 * stumble on its values (a LIST leaf has no first child to read). A DECIMAL's
 * scale and precision must be ones its values can have.
 */
function checkLeafAnnotation(e: SchemaElement, name: string): void {
  for (const annotation of [e.converted_type, e.logical_type?.type]) {
    if (annotation === undefined) continue;
    if (!ANNOTATES[annotation]?.includes(e.type as string))
      throw new Corrupt(`column "${name}" is annotated ${annotation}, which its physical type ${e.type} cannot be`);
  }
  if (e.logical_type?.type === 'TIME' && (e.logical_type.unit === 'MILLIS') !== (e.type === 'INT32'))
    throw new Corrupt(`column "${name}" is a TIME in ${e.logical_type.unit} stored as ${e.type}`);
  const decimal = e.logical_type?.type === 'DECIMAL' ? e.logical_type : e.converted_type === 'DECIMAL' ? e : undefined;
  if (!decimal) return;
  const { precision, scale = 0 } = decimal as { precision?: number; scale?: number };
  const max = MAX_PRECISION[e.type as string] ?? MAX_DECIMAL_DIGITS;
  if (!Number.isInteger(precision) || (precision as number) < 1 || (precision as number) > max)
    throw new Corrupt(`column "${name}" is a DECIMAL of precision ${precision}, which ${e.type} cannot hold (1 to ${max})`);
  if (!Number.isInteger(scale) || scale < 0 || scale > (precision as number))
    throw new Corrupt(`column "${name}" is a DECIMAL(${precision}, ${scale}): its scale must be 0 to its precision`);
}

const samePath = (a: readonly unknown[] | undefined, b: readonly string[]) =>
  Array.isArray(a) && a.length === b.length && a.every((x, i) => x === b[i]);

/** One column chunk against its leaf, its row group's row count and the file's bytes; its byte range. */
function checkChunk(meta: ColumnMetaData | undefined, leaf: LeafCheck, rows: number, where: string, bounds: FileBounds): [number, number] {
  const name = `column "${leaf.path.join('.')}" in ${where}`;
  if (!meta || typeof meta !== 'object') throw new Corrupt(`${name} has no column metadata`);
  if (!samePath(meta.path_in_schema, leaf.path))
    throw new Corrupt(`${where}'s column chunk for "${leaf.path.join('.')}" names another column`);
  if (meta.type !== leaf.type) throw new Corrupt(`${name} is of type ${meta.type}, the schema says ${leaf.type}`);
  if (!meta.codec) throw new Corrupt(`${name} uses an unknown compression codec`);
  const values = count(meta.num_values, `${name}'s num_values`);
  // a level entry per row at least; exactly one per row outside lists and maps
  if (leaf.repeated ? values < rows : values !== rows)
    throw new Corrupt(`${name} holds ${values} values, its row group claims ${rows} rows`);
  const size = count(meta.total_compressed_size, `${name}'s total_compressed_size`);
  count(meta.total_uncompressed_size, `${name}'s total_uncompressed_size`);
  count(meta.data_page_offset, `${name}'s data_page_offset`);
  if (meta.dictionary_page_offset !== undefined) count(meta.dictionary_page_offset, `${name}'s dictionary_page_offset`);
  if (values > 0 && size === 0) throw new Corrupt(`${name} claims ${values} values in 0 bytes`);
  const start = chunkStart(meta);
  if (start < 4 || start + size > bounds.footerStart)
    throw new Corrupt(
      `${name} lies at bytes ${start}-${start + size}, outside the file's data (bytes 4-${bounds.footerStart} of ${bounds.size})`,
    );
  return [start, start + size];
}

/**
 * Checks a decoded footer against itself and the file: the schema is a tree,
 * every row group has one chunk per leaf column that names it, row counts are
 * non-negative and add up to the file's, each chunk's value count fits its
 * row group's, and every chunk lies inside the file's data, no two sharing a
 * byte (a footer cannot then list more chunks than the file has bytes).
 * Throws {@link Corrupt}.
 */
export function checkMetadata(metadata: FileMetaData, bounds: FileBounds): void {
  const leaves = schemaLeaves(metadata.schema);
  if (!Array.isArray(metadata.row_groups)) throw new Corrupt('the footer lists no row groups');
  const total = count(metadata.num_rows, "the file's num_rows");
  const ranges: [number, number][] = [];
  let sum = 0;
  metadata.row_groups.forEach((rg, g) => {
    const where = `row group ${g}`;
    const rows = count(rg.num_rows, `${where}'s num_rows`);
    sum += rows;
    if (!Array.isArray(rg.columns) || rg.columns.length !== leaves.length)
      throw new Corrupt(`${where} has ${rg.columns?.length ?? 0} column chunks, the schema has ${leaves.length} columns`);
    leaves.forEach((leaf, c) => {
      const range = checkChunk(rg.columns[c]?.meta_data, leaf, rows, where, bounds);
      if (range[1] > range[0]) ranges.push(range);
    });
  });
  if (sum !== total) throw new Corrupt(`the footer claims ${total} rows, its row groups add up to ${sum}`);
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    const [prev, cur] = [ranges[i - 1] as [number, number], ranges[i] as [number, number]];
    if (cur[0] < prev[1]) throw new Corrupt(`two column chunks share bytes ${cur[0]}-${Math.min(prev[1], cur[1])}`);
  }
}
