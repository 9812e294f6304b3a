/**
 * The parquet source. The planner reads only the footer: the schema, the row
 * count and the row groups, which it splits into partitions of whole row groups
 * (`{ id, row_start, row_end }`). A worker opens the file, reads its footer
 * again, and decodes its row groups through positioned reads, a page of each
 * column at a time (see pages.ts): the file is never held in memory, nor a
 * whole row group as values — only the pages being turned into rows.
 */

import type { ColumnData, ColumnMetaData, FileMetaData, RowGroup } from 'hyparquet';
import { parquetRead, parquetSchema } from 'hyparquet';
import type { PlanContext, Source, TaskContext } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import { suggest } from '../../sdk/options.js';
import { type Column, emptyRow, type Partition, type Row, type Schema } from '../../sdk/types.js';
import { resolvePath } from '../shared/files.js';
import { DECOMPRESSORS } from './compression.js';
import { Corrupt, corruptFile } from './corrupt.js';
import { readPartitionEncoded } from './encoded.js';
import { assertReadableCodecs, type OpenParquet, openParquet, readInto } from './file.js';
import { NestedColumnReader } from './nested.js';
import { ColumnChunkReader, type Leaf, PageBuffers } from './pages.js';
import { NESTED_PARSERS, nestedReadSchema, type SourceColumn, sourceColumns } from './read-values.js';
import type { ParquetOptions } from './spec.js';

const WHO = 'parquet source';
/** Rows per array yielded by `read`. */
const CHUNK_ROWS = 2000;

/** The columns to read: all, or those named by the `columns` option (checked against the file). */
export function selectColumns(metadata: FileMetaData, opts: ParquetOptions, path: string): SourceColumn[] {
  const all = sourceColumns(parquetSchema(metadata));
  let chosen = all;
  if (opts.columns) {
    const byName = new Map(all.map((c) => [c.name, c]));
    const missing = opts.columns.filter((n) => !byName.has(n));
    if (missing.length) {
      const names = all.map((c) => c.name);
      const hints = missing.map((m) => {
        const near = suggest(m, names);
        return near ? `"${m}" (did you mean "${near}"?)` : `"${m}"`;
      });
      throw new WeirError(
        `${WHO}: columns ${hints.join(', ')} in the \`columns\` option are not in ${path}; its columns are ${names.join(', ')}`,
        { kind: 'config', code: 'unknown_column' },
      );
    }
    chosen = opts.columns.map((n) => byName.get(n) as SourceColumn);
  }
  const unsupported = chosen.filter((c) => c.unsupported);
  if (unsupported.length)
    throw new WeirError(
      `${WHO}: ${path} has column(s) of a type weir cannot read: ${unsupported.map((c) => `"${c.name}" (${c.unsupported})`).join(', ')}; leave them out by listing the other columns in the \`columns\` option`,
      { kind: 'config', code: 'unsupported_type' },
    );
  assertReadableCodecs(
    metadata,
    chosen.map((c) => c.name),
    path,
    WHO,
  );
  return chosen;
}

/** Row group boundaries: `[start, end)` row ranges in file order (empty groups left out). */
export function rowGroupRanges(metadata: FileMetaData): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  for (const rg of metadata.row_groups) {
    const n = Number(rg.num_rows);
    if (n > 0) out.push([start, start + n]);
    start += n;
  }
  return out;
}

/** Whole row groups combined until each partition holds at least `minRows` rows (planner). */
export function planPartitions(metadata: FileMetaData, minRows: number): Partition[] {
  const parts: Partition[] = [];
  let current: [number, number] | undefined;
  for (const [start, end] of rowGroupRanges(metadata)) {
    if (!current) current = [start, end];
    else current[1] = end;
    if (current[1] - current[0] >= minRows) {
      parts.push({ id: String(parts.length), row_start: current[0], row_end: current[1] });
      current = undefined;
    }
  }
  if (current) parts.push({ id: String(parts.length), row_start: current[0], row_end: current[1] });
  if (parts.length === 0) parts.push({ id: '0', row_start: 0, row_end: 0 });
  return parts;
}

/** Fills a buffer with bytes of an open file at a position: the page reader's reads (positioned, no copy). */
const bytesOf = (pq: OpenParquet) => (position: number, into: Uint8Array) => readInto(pq.handle, into, position);

/** The column chunk of a top-level leaf column in a row group. */
function chunkOf(rowGroup: RowGroup, name: string): ColumnMetaData {
  const chunk = rowGroup.columns.find((c) => c.meta_data?.path_in_schema.length === 1 && c.meta_data.path_in_schema[0] === name);
  if (!chunk?.meta_data) throw new Corrupt(`the row group has no column chunk for "${name}"`);
  return chunk.meta_data;
}

/**
 * The nested columns the page reader does not stream (VARIANT, or a leaf of a
 * type weir cannot read) for rows `[from, to)`, decoded by hyparquet — which
 * decodes a nested column chunk whole —, one array per column.
 */
async function readNested(pq: OpenParquet, columns: SourceColumn[], from: number, to: number): Promise<ArrayLike<unknown>[]> {
  const names = columns.map((c) => c.name);
  const pieces = new Map<string, ColumnData[]>(names.map((n) => [n, []]));
  const metadata = { ...pq.metadata, schema: nestedReadSchema(pq.metadata.schema, parquetSchema(pq.metadata)) };
  try {
    await parquetRead({
      file: pq.file,
      metadata,
      columns: names,
      rowStart: from,
      rowEnd: to,
      compressors: DECOMPRESSORS,
      parsers: NESTED_PARSERS,
      onChunk: (chunk) => pieces.get(chunk.columnName)?.push(chunk),
    });
  } catch (error) {
    // the footer was checked: what hyparquet stumbles on in these columns' pages is a lie of the pages
    throw new Corrupt(`column(s) ${names.map((n) => `"${n}"`).join(', ')} cannot be decoded (${(error as Error).message})`);
  }
  return names.map((name) => {
    const list = pieces.get(name) ?? [];
    const only = list.length === 1 ? list[0] : undefined;
    if (only && only.rowStart === from && only.rowEnd >= to && only.columnData.length >= to - from) return only.columnData;
    const out: unknown[] = new Array(to - from);
    let filled = 0;
    for (const p of list) {
      for (let r = Math.max(p.rowStart, from); r < Math.min(p.rowEnd, to, p.rowStart + p.columnData.length); r++, filled++)
        out[r - from] = p.columnData[r - p.rowStart];
    }
    // hyparquet stops where the pages do: rows it did not decode are not nulls
    if (filled < to - from) throw new Corrupt(`column "${name}" holds ${filled} values where its row group claims ${to - from} rows`);
    return out;
  });
}

/** One row group to read: where it starts in the file's rows, and the part of it wanted. */
interface GroupRead {
  index: number;
  start: number;
  from: number;
  to: number;
}

/**
 * Where each selected column's values of one row group come from: the page
 * reader (flat columns by rows, nested ones by records) or, for nested columns
 * the page reader does not stream, hyparquet's array of the whole group.
 */
type ColumnValues = { reader: ColumnChunkReader | NestedColumnReader } | { decoded: ArrayLike<unknown>; convert: (v: unknown) => unknown };

/** How the page reader reads a flat column. */
const flatLeaf = (c: SourceColumn): Leaf => ({
  name: c.name,
  element: c.node.element,
  maxDef: c.nullable ? 1 : 0,
  maxRep: 0,
  text: c.text,
  convert: c.convert,
});

/** The next `n` values of one column, `offset` rows into the part of the group being read. */
async function take(source: ColumnValues, name: string, offset: number, n: number): Promise<unknown[]> {
  if ('reader' in source) {
    const values = await source.reader.take(n);
    if (values.length < n) throw new Corrupt(`column "${name}" holds fewer values than its row group claims rows`);
    return values;
  }
  const { decoded, convert } = source;
  return Array.from({ length: n }, (_, r) => {
    const v = decoded[offset + r];
    return v === null || v === undefined ? null : convert(v);
  });
}

/** Row objects from one array of values per column. */
function rowsOf(names: readonly string[], data: readonly unknown[][], n: number): Row[] {
  const rows: Row[] = new Array(n);
  for (let r = 0; r < n; r++) {
    const row = emptyRow();
    for (let c = 0; c < names.length; c++) row[names[c] as string] = (data[c] as unknown[])[r];
    rows[r] = row;
  }
  return rows;
}

/**
 * Decodes rows `[from, to)` of one row group in arrays of at most `chunkRows`
 * rows: flat columns through the page reader (a page at a time, values decoded
 * as rows are built), nested ones through hyparquet.
 */
async function* decodeGroup(
  pq: OpenParquet,
  columns: SourceColumn[],
  buffers: PageBuffers[][],
  group: GroupRead,
  chunkRows: number,
): AsyncGenerator<Row[]> {
  const rowGroup = pq.metadata.row_groups[group.index] as RowGroup;
  const root = parquetSchema(pq.metadata);
  const whole = columns.filter((c) => !c.flat && !c.streamed);
  // hyparquet decodes these whole and trusts their pages: weir's page reader checks them first
  for (const c of whole) await new NestedColumnReader(bytesOf(pq), rowGroup, root, c, []).checkPages(Number(rowGroup.num_rows));
  const decoded = whole.length ? await readNested(pq, whole, group.from, group.to) : [];
  const sources = columns.map((c, i): ColumnValues => {
    const own = buffers[i] as PageBuffers[];
    if (c.flat) return { reader: new ColumnChunkReader(bytesOf(pq), chunkOf(rowGroup, c.name), flatLeaf(c), new PageBuffers()) };
    if (c.streamed) return { reader: new NestedColumnReader(bytesOf(pq), rowGroup, root, c, own) };
    return { decoded: decoded[whole.indexOf(c)] as ArrayLike<unknown>, convert: c.convert as (v: unknown) => unknown };
  });
  if (group.from > group.start)
    await Promise.all(sources.map((s) => ('reader' in s ? s.reader.skip(group.from - group.start) : undefined)));
  const names = columns.map((c) => c.name);
  const last = group.to === group.start + Number(rowGroup.num_rows);
  for (let at = group.from; at < group.to; at += chunkRows) {
    const n = Math.min(chunkRows, group.to - at);
    const data = await Promise.all(sources.map((s, i) => take(s, names[i] as string, at - group.from, n)));
    // the group's last rows wait until its pages were found to hold no more than the footer claims
    if (last && at + n >= group.to) await finishGroup(sources);
    yield rowsOf(names, data, n);
  }
}

/** Checks that every streamed column's pages held exactly its row group's rows. */
async function finishGroup(sources: readonly ColumnValues[]): Promise<void> {
  await Promise.all(sources.map((s) => ('reader' in s ? s.reader.finish() : undefined)));
}

/** Turns handed out first come, first served: at most `total` taken at once. */
class Turns {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(total: number) {
    this.free = total;
  }

  /** Resolves with a release function once a turn is free. */
  async take(): Promise<() => void> {
    if (this.waiting.length === 0 && this.free > 0) this.free--;
    else await new Promise<void>((grant) => this.waiting.push(grant));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }
}

/**
 * Row groups decoded at once in this process. One: decoding and encoding share the one
 * JavaScript thread, and batches already wait for the sink as bytes, so a second group
 * gained nothing (3M DuckDB rows into PostgreSQL: 15 s either way) but ~30 MB of peak;
 * and DuckDB and Spark write a million rows per group, one page per column, which a
 * partition decodes while the others wait for their turn.
 */
const GROUPS_AT_ONCE = 1;
const decodeTurns = new Turns(GROUPS_AT_ONCE);

/**
 * Reads one partition, row group by row group, `slice_rows` rows at a time at most
 * (worker), each row group in its turn (see {@link GROUPS_AT_ONCE}). `queued: false`
 * reads without waiting for a turn: for a re-read of rows whose group the caller's
 * partition is decoding (see encoded.ts).
 */
export async function* readPartition(partition: Partition, opts: ParquetOptions, ctx: TaskContext, queued = true): AsyncGenerator<Row[]> {
  const path = resolvePath(ctx.baseDir, opts.path);
  const rowStart = Number(partition.row_start ?? 0);
  const rowEnd = Number(partition.row_end ?? Number.POSITIVE_INFINITY);
  const pq = await openParquet(path, WHO);
  try {
    const total = Number(pq.metadata.num_rows);
    if (Number.isFinite(rowEnd) && rowEnd > total)
      throw new WeirError(
        `${WHO}: ${path} has ${total} rows but partition ${partition.id} covers rows ${rowStart}-${rowEnd}: the file changed after the run was planned; run the pipeline again`,
        { kind: 'connector', code: 'file_changed' },
      );
    const columns = selectColumns(pq.metadata, opts, path);
    const chunkRows = Math.min(CHUNK_ROWS, opts.slice_rows);
    let index = -1;
    let start = 0;
    for (const rg of pq.metadata.row_groups) {
      index++;
      const end = start + Number(rg.num_rows);
      const group = { index, start, from: Math.max(start, rowStart), to: Math.min(end, rowEnd) };
      start = end;
      if (group.from >= group.to) continue;
      if (ctx.signal.aborted) return;
      const release = queued ? await decodeTurns.take() : () => {};
      try {
        // buffers of this group only: collectable once it is done
        yield* decodeGroup(
          pq,
          columns,
          columns.map((): PageBuffers[] => []),
          group,
          chunkRows,
        );
      } catch (error) {
        if (error instanceof WeirError) throw error;
        if (error instanceof Corrupt) throw corruptFile(path, WHO, `${error.message} (row group ${index})`, error);
        throw new WeirError(
          `${WHO}: cannot decode rows ${group.from}-${group.to} of ${path}: ${(error as Error).message}; the file may be damaged`,
          { kind: 'connector', code: 'parquet_decode', cause: error },
        );
      } finally {
        release();
      }
    }
  } finally {
    await pq.close();
  }
}

/** A source column as the run's schema lists it (decimals with their precision and scale). */
function schemaColumn(c: SourceColumn): Column {
  const column: Column = { name: c.name, type: c.type, nullable: c.nullable };
  if (c.precision !== undefined) column.precision = c.precision;
  if (c.scale !== undefined) column.scale = c.scale;
  return column;
}

interface Plan {
  path: string;
  schema: Schema;
  partitions: Partition[];
  rows: number;
}

/** Creates the parquet source for validated options (no I/O until called). */
export function parquetSource(opts: ParquetOptions): Source {
  let plan: Promise<Plan> | undefined;
  let planPath: string | undefined;
  const planOf = (ctx: PlanContext): Promise<Plan> => {
    const path = resolvePath(ctx.baseDir, opts.path);
    if (!plan || planPath !== path) {
      planPath = path;
      plan = (async () => {
        const pq = await openParquet(path, WHO);
        try {
          const columns = selectColumns(pq.metadata, opts, path);
          return {
            path,
            schema: columns.map(schemaColumn),
            partitions: planPartitions(pq.metadata, opts.partition_rows),
            rows: Number(pq.metadata.num_rows),
          };
        } finally {
          await pq.close();
        }
      })();
    }
    return plan;
  };
  return {
    /** Planner: the column types from the file's Parquet schema (footer only). */
    async schema(ctx) {
      return (await planOf(ctx)).schema;
    },
    /** Planner: whole row groups, combined up to `partition_rows` rows per partition. */
    async partitions(ctx) {
      return (await planOf(ctx)).partitions;
    },
    /** Planner: the exact row count from the footer. */
    async estimate(ctx) {
      return (await planOf(ctx)).rows;
    },
    /** Worker: streams the partition's row groups as arrays of rows. */
    read: (partition, ctx) => readPartition(partition, opts, ctx),
    /** Worker: the same rows as CSV records, for a sink that takes CSV as it is (see encoded.ts). */
    readEncoded: (partition, ctx, format, hints) => readPartitionEncoded(partition, opts, ctx, format, hints),
  };
}
