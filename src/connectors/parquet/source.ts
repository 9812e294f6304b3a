/**
 * The parquet source. The planner reads only the footer: the schema, the row
 * count and the row groups, which it splits into partitions of whole row groups
 * (`{ id, row_start, row_end }`). A worker opens the file, reads its footer
 * again, and decodes one row group at a time through positioned reads — the
 * file is never held in memory, only the row group being turned into rows.
 */

import type { ColumnData, FileMetaData } from 'hyparquet';
import { parquetRead, parquetSchema } from 'hyparquet';
import type { PlanContext, Source, TaskContext } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import { suggest } from '../../sdk/options.js';
import type { Partition, Row, Schema } from '../../sdk/types.js';
import { resolvePath } from '../shared/files.js';
import { assertReadableCodecs, DECOMPRESSORS, type OpenParquet, openParquet } from './file.js';
import type { ParquetOptions } from './spec.js';
import { PARSERS, type SourceColumn, sourceColumns } from './types.js';

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

/** Decodes rows `[from, to)` of one row group: columns first (hyparquet), then rows in chunks. */
async function* decodeRows(pq: OpenParquet, columns: SourceColumn[], from: number, to: number): AsyncGenerator<Row[]> {
  const names = columns.map((c) => c.name);
  const pieces = new Map<string, ColumnData[]>(names.map((n) => [n, []]));
  await parquetRead({
    file: pq.file,
    metadata: pq.metadata,
    columns: names,
    rowStart: from,
    rowEnd: to,
    compressors: DECOMPRESSORS,
    parsers: PARSERS,
    utf8: false, // unannotated bytes: the column converter decides between text and base64
    useOffsetIndex: true, // a slice of a large row group fetches only its pages when the file has an offset index
    onChunk: (chunk) => pieces.get(chunk.columnName)?.push(chunk),
  });
  const length = to - from;
  // One array per column covering exactly [from, to): usually hyparquet's own chunk.
  const data = columns.map((c) => {
    const list = pieces.get(c.name) ?? [];
    const only = list.length === 1 ? list[0] : undefined;
    if (only && only.rowStart === from && only.rowEnd >= to) return only.columnData;
    const out: unknown[] = new Array(length).fill(null);
    for (const p of list) {
      for (let r = Math.max(p.rowStart, from); r < Math.min(p.rowEnd, to); r++) out[r - from] = p.columnData[r - p.rowStart];
    }
    return out;
  });
  pieces.clear();
  const converts = columns.map((c) => c.convert);
  const width = columns.length;
  for (let start = 0; start < length; start += CHUNK_ROWS) {
    const end = Math.min(length, start + CHUNK_ROWS);
    const rows: Row[] = new Array(end - start);
    for (let i = start; i < end; i++) {
      const row: Row = {};
      for (let c = 0; c < width; c++) {
        const v = (data[c] as ArrayLike<unknown>)[i];
        const convert = converts[c];
        row[names[c] as string] = convert ? convert(v) : (v ?? null);
      }
      rows[i - start] = row;
    }
    yield rows;
  }
}

/** Reads one partition, row group by row group, large groups in slices of `slice_rows` (worker). */
async function* readPartition(partition: Partition, opts: ParquetOptions, ctx: TaskContext): AsyncGenerator<Row[]> {
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
    for (const [start, end] of rowGroupRanges(pq.metadata)) {
      const from = Math.max(start, rowStart);
      const to = Math.min(end, rowEnd);
      if (from >= to) continue;
      try {
        for (let slice = from; slice < to; slice += opts.slice_rows) {
          if (ctx.signal.aborted) return;
          yield* decodeRows(pq, columns, slice, Math.min(to, slice + opts.slice_rows));
        }
      } catch (error) {
        if (error instanceof WeirError) throw error;
        throw new WeirError(`${WHO}: cannot decode rows ${from}-${to} of ${path}: ${(error as Error).message}; the file may be damaged`, {
          kind: 'connector',
          code: 'parquet_decode',
          cause: error,
        });
      }
    }
  } finally {
    await pq.close();
  }
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
            schema: columns.map((c) => ({ name: c.name, type: c.type, nullable: c.nullable })),
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
  };
}
