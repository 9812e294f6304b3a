import { parquetMetadata, parquetSchema } from 'hyparquet';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import type { CommitContext, Sink, TaskContext, Writer } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import type { Column, EncodedRows, JsonValue, Partition, Row, Schema } from '../../sdk/types.js';
import { convertText } from '../shared/columns.js';
import { fileError, isNotFound, resolvePath } from '../shared/files.js';
import { abortStagedMessages, fileLeftovers, makeTargetDir, parseMessages, StagedFile, type StagedMessage } from '../shared/staged.js';
import { CODEC, COMPRESSORS } from './compression.js';
import { type ChunkColumn, scanChunk, scannable } from './csv-columns.js';
import { openParquet } from './file.js';
import { commitParquet } from './merge.js';
import { sourceColumns } from './read-values.js';
import type { ParquetOptions } from './spec.js';
import {
  fieldNames,
  planColumn,
  type SinkColumn,
  schemaElements,
  type TimeUnit,
  type ToParquet,
  toParquet,
  typeLabel,
} from './write-values.js';

const WHO = 'parquet sink';
/** Bytes per encoded chunk the sink asks a csv source for. */
const CHUNK_BYTES = 1 << 20;
const CREATED_BY = 'weir (hyparquet-writer)';

/** A hyparquet-writer `Writer` whose flush hands the encoded bytes to `sink` and then reuses its buffer. */
class FlushingByteWriter extends ByteWriter {
  constructor(private readonly sink: (bytes: Uint8Array) => Promise<void>) {
    super(1 << 20);
  }

  flush(): Promise<void> {
    if (this.index === 0) return Promise.resolve();
    return this.sink(new Uint8Array(this.buffer, 0, this.index)).then(() => {
      this.index = 0;
    });
  }

  override finish(): Promise<void> {
    return this.flush();
  }
}

/** The columns one writer writes, decided from the options, the source schema or the first batch. */
interface Layout {
  columns: SinkColumn[];
  converters: ToParquet[];
  /** Whether rows may carry fields that are not written (the `columns` option lists what to keep). */
  explicit: boolean;
  known: Set<string>;
}

function chooseLayout(opts: ParquetOptions, schema: Schema | undefined, batch: readonly Row[]): Layout {
  const declared = new Map<string, Column>(schema?.map((c) => [c.name, c]));
  const names = opts.columns ?? (schema?.length ? schema.map((c) => c.name) : fieldNames(batch));
  const columns = names.map((name) =>
    planColumn(
      name,
      declared.get(name),
      batch.map((r) => r[name]),
    ),
  );
  return { columns, converters: columns.map(toParquet), explicit: opts.columns !== undefined, known: new Set(names) };
}

/** The Parquet file bytes of an empty file with these columns (exactly what the writers produce for them). */
function emptyFile(columns: readonly SinkColumn[]): ArrayBuffer {
  const writer = new ByteWriter();
  const pw = new ParquetWriter({ writer, schema: schemaElements(columns), createdBy: CREATED_BY });
  void pw.finish();
  return writer.getBuffer();
}

const describeColumns = (cols: { name: string; parquetType: string }[]) => cols.map((c) => `${c.name} ${c.parquetType}`).join(', ');

/**
 * How an encoded chunk's columns map onto the layout's buffers, or undefined when
 * the chunk must take the row path: a dialect the scanner does not read, a field
 * the layout does not write, a column whose type the run's schema does not give as
 * the layout's (the chunk's text is of the source's type).
 */
function chunkColumns(chunk: EncodedRows, l: Layout, buffers: unknown[][], schema: Schema | undefined): ChunkColumn[] | undefined {
  if (!scannable(chunk)) return undefined;
  const declared = new Map(schema?.map((c) => [c.name, c.type]));
  const index = new Map(l.columns.map((c, i) => [c.name, i]));
  const out: ChunkColumn[] = [];
  for (const name of chunk.columns) {
    const i = index.get(name);
    if (i === undefined) {
      if (!l.explicit) return undefined; // the row path names the unknown field
      out.push({ name, buffer: undefined, convert: () => null });
      continue;
    }
    const column = l.columns[i] as SinkColumn;
    if (declared.get(name) !== column.type) return undefined;
    const convert = l.converters[i] as ToParquet;
    out.push({ name, buffer: buffers[i], convert: column.type === 'json' ? fromJsonText(convert) : convert });
  }
  return out;
}

/** A json column's converter for the JSON text of its value (the others take a value's text as they take the value). */
const fromJsonText =
  (convert: ToParquet): ToParquet =>
  (text, column) => {
    const r = convertText(text as string, 'json');
    if (!r.ok) throw new RowError(`column "${column}": ${r.reason}`, { code: 'bad_field' });
    return convert(r.value, column);
  };

/** Opens the writer of one partition (worker). */
async function openWriter(partition: Partition, opts: ParquetOptions, ctx: TaskContext): Promise<Writer> {
  const target = resolvePath(ctx.baseDir, opts.path);
  const file = await StagedFile.open(target, partition.id, ctx.runId, WHO, { ownerOnly: ctx.ownerOnly });
  const groupSize = opts.row_group_size;
  let layout: Layout | undefined;
  let pw: ParquetWriter | undefined;
  let buffers: unknown[][] = [];
  let buffered = 0;
  let rows = 0;
  let broken: unknown;

  const byteWriter = new FlushingByteWriter(async (bytes) => {
    const n = await file.append(bytes, 0);
    ctx.count('bytes_sent', n);
  });

  const start = (batch: readonly Row[]) => {
    layout = chooseLayout(opts, ctx.schema, batch);
    pw = new ParquetWriter({
      writer: byteWriter,
      schema: schemaElements(layout.columns, { encoding: true }),
      codec: CODEC[opts.compression],
      compressors: COMPRESSORS,
      createdBy: CREATED_BY,
    });
    buffers = layout.columns.map(() => []);
    return layout;
  };

  /** Encodes the first `groupRows` buffered rows as one row group and flushes it to the temporary file. */
  const flushGroup = async (groupRows: number) => {
    const l = layout as Layout;
    const whole = groupRows === buffered;
    const columnData = l.columns.map((c, i) => ({
      name: c.name,
      data: whole ? (buffers[i] as unknown[]) : (buffers[i] as unknown[]).slice(0, groupRows),
    }));
    try {
      await (pw as ParquetWriter).write({ columnData, rowGroupSize: groupRows });
    } catch (error) {
      broken = error;
      if (error instanceof WeirError) throw error;
      throw new WeirError(`${WHO}: cannot encode a row group of ${file.tmp}: ${(error as Error).message}`, {
        kind: 'connector',
        code: 'parquet_encode',
        cause: error,
      });
    }
    if (whole) for (const b of buffers) b.length = 0;
    else buffers = buffers.map((b) => b.slice(groupRows));
    buffered -= groupRows;
  };

  const assertUsable = () => {
    if (broken)
      throw new WeirError(`${WHO}: the writer of partition ${partition.id} failed earlier and cannot continue`, {
        kind: 'connector',
        code: 'writer_failed',
        cause: broken,
      });
  };

  return {
    async write(batch) {
      assertUsable();
      if (batch.length === 0) return;
      const l = layout ?? start(batch);
      const { columns, explicit, known } = l;
      const converters = l.converters;
      const width = columns.length;
      const n = batch.length;
      // Convert straight into the row-group buffers; a bad row rolls the whole batch back.
      try {
        for (let r = 0; r < n; r++) {
          const row = batch[r] as Row;
          if (!explicit) {
            for (const key in row) {
              if (!known.has(key))
                throw new RowError(
                  `row has field "${key}" that is not one of the Parquet columns (${[...known].join(', ')}); set the sink's \`columns\` option to choose the columns to write`,
                  { code: 'unknown_field' },
                );
            }
          }
          const at = buffered + r;
          for (let c = 0; c < width; c++) {
            const col = columns[c] as SinkColumn;
            const v = row[col.name];
            (buffers[c] as unknown[])[at] = v === null || v === undefined ? null : (converters[c] as ToParquet)(v, col.name);
          }
        }
      } catch (error) {
        for (const b of buffers) b.length = buffered;
        throw error;
      }
      buffered += n;
      rows += n;
      while (buffered >= groupSize) await flushGroup(groupSize);
    },
    /**
     * The fast path: a csv source's chunk read straight into the buffers. The first
     * batch takes the row path (it decides the layout, as it does there); a chunk
     * with a bad record rolls back and throws, so the runtime writes it as rows.
     */
    async writeEncoded(chunk) {
      assertUsable();
      if (!layout) return false;
      const columns = chunkColumns(chunk, layout, buffers, ctx.schema);
      if (!columns) return false;
      const width = layout.columns.length;
      let n: number;
      try {
        n = scanChunk(chunk, columns, buffered);
        // columns the chunk does not carry are null, as a row without the field is
        for (let c = 0; c < width; c++) {
          const b = buffers[c] as unknown[];
          if (b.length < buffered + n) for (let r = b.length; r < buffered + n; r++) b[r] = null;
        }
      } catch (error) {
        for (const b of buffers) b.length = buffered;
        throw error;
      }
      buffered += n;
      rows += n;
      while (buffered >= groupSize) await flushGroup(groupSize);
      return true;
    },
    /**
     * The fast path reads every field as the row path's text (nothing to relax), in
     * chunks of at most {@link CHUNK_BYTES}: each partition holds a few chunks at once
     * (read, scanned, queued), and at the source's 4 MiB they were ~50 MB of a
     * 1M-row, 3-partition run's live memory (peak RSS 481 → 398 MB at 1 MiB).
     */
    encodingHints: () => ({ batchBytes: CHUNK_BYTES }),
    async commit() {
      assertUsable();
      const l = layout ?? start([]);
      if (buffered > 0) await flushGroup(buffered);
      try {
        (pw as ParquetWriter).schema = schemaElements(l.columns); // the footer: JSON columns labelled JSON
        await (pw as ParquetWriter).finish();
      } catch (error) {
        broken = error;
        throw error instanceof WeirError ? error : fileError(error, { who: WHO, path: file.tmp, action: 'write' });
      }
      buffers = [];
      const message = await file.commit();
      return {
        ...message,
        rows,
        columns: l.columns.map((c) => c.name),
        types: l.columns.map(typeLabel),
      } satisfies StagedMessage;
    },
    async abort() {
      buffers = [];
      await file.abort();
    },
    close: () => file.close(),
  };
}

/** Partitions that wrote rows must agree on their columns (a friendlier message than the merge's). */
function checkSameColumns(parts: StagedMessage[]): void {
  const sig = (p: StagedMessage) =>
    Array.isArray(p.columns) && Array.isArray(p.types)
      ? p.columns.map((c, i) => `${String(c)} ${String(p.types && (p.types as JsonValue[])[i])}`)
      : undefined;
  const written = parts.filter((p) => p.rows > 0 && sig(p));
  const first = written[0];
  if (!first) return;
  const expected = (sig(first) as string[]).join(', ');
  for (const p of written) {
    const got = (sig(p) as string[]).join(', ');
    if (got !== expected)
      throw new WeirError(
        `${WHO}: partitions wrote different columns (partition ${first.partition}: ${expected}; partition ${p.partition}: ${got}); what the schema leaves open (a column's type, a decimal's precision and scale, a timestamp's unit) each partition decides from its first batch. Use a source whose schema declares them (decimals with precision and scale), or one partition`,
        { kind: 'config', code: 'column_mismatch' },
      );
  }
}

/** In append mode, checks an existing target against the columns this run will write (when the schema says them all). */
async function checkAppendTarget(target: string, opts: ParquetOptions, ctx: CommitContext): Promise<void> {
  let pq: Awaited<ReturnType<typeof openParquet>>;
  try {
    pq = await openParquet(target, WHO);
  } catch (error) {
    if (error instanceof WeirError && error.code === 'ENOENT') return;
    if (isNotFound(error)) return;
    throw error;
  }
  try {
    if (pq.metadata.num_rows === 0n || !ctx.schema?.length) return;
    const declared = new Map(ctx.schema.map((c) => [c.name, c]));
    const names = opts.columns ?? ctx.schema.map((c) => c.name);
    const columns = names.map((name) => declared.get(name));
    // types decided by the writers (no declaration, a decimal without precision and scale): the commit checks
    if (columns.some((c) => !c || (c.type === 'decimal' && (c.precision === undefined || c.scale === undefined)))) return;
    // a timestamp's unit is decided by the first batch: take the existing file's
    const units = new Map<string, TimeUnit>();
    for (const e of pq.metadata.schema) {
      if (e.logical_type?.type === 'DATE' || e.converted_type === 'DATE') units.set(e.name, 'DATE');
      else if (e.logical_type?.type === 'TIMESTAMP' && e.logical_type.unit === 'NANOS') units.set(e.name, 'NANOS');
    }
    const planned = (columns as Column[]).map((c) => {
      const column = planColumn(c.name, c, []);
      const unit = units.get(c.name);
      return column.type === 'timestamp' && unit ? { ...column, unit } : column;
    });
    const ours = parquetMetadata(emptyFile(planned));
    const existing = sourceColumns(parquetSchema(pq.metadata));
    const expected = sourceColumns(parquetSchema(ours));
    const same =
      pq.metadata.schema.length === ours.schema.length &&
      pq.metadata.schema.every((e, i) => i === 0 || JSON.stringify(e) === JSON.stringify(ours.schema[i]));
    if (!same)
      throw new WeirError(
        `${WHO}: cannot append to ${target}: its columns (${describeColumns(existing)}) differ from the columns this run writes (${describeColumns(expected)}); use mode: overwrite, write to another path, or set \`columns\` to match the file`,
        { kind: 'config', code: 'schema_mismatch' },
      );
  } finally {
    await pq.close();
  }
}

/** Creates the parquet sink for validated options (no I/O until called). */
export function parquetSink(opts: ParquetOptions): Sink {
  return {
    /** A csv source's chunks are read straight into the column buffers (see csv-columns.ts). */
    accepts: ['csv'],
    /** Planner: creates the target's directory; in append mode checks the existing file's columns. */
    async setup(ctx) {
      const target = resolvePath(ctx.baseDir, opts.path);
      await makeTargetDir(WHO, target);
      if (opts.mode === 'append') await checkAppendTarget(target, opts, ctx);
    },
    /** Worker: a writer to a temporary Parquet file beside the target. */
    writer: (partition, ctx) => openWriter(partition, opts, ctx),
    /** Planner: publishes the partitions' files as the target, atomically. Idempotent. */
    async commit(messages: JsonValue[], ctx) {
      const parts = parseMessages(messages, WHO);
      checkSameColumns(parts);
      await commitParquet({
        who: WHO,
        target: resolvePath(ctx.baseDir, opts.path),
        mode: opts.mode,
        parts,
        runId: ctx.runId,
        log: ctx.log,
        ownerOnly: ctx.ownerOnly,
      });
    },
    /** Planner: deletes the run's temporary files. Idempotent. */
    async abort(messages: JsonValue[], ctx) {
      await abortStagedMessages(WHO, resolvePath(ctx.baseDir, opts.path), messages, ctx);
    },
    leftovers: fileLeftovers((ctx) => resolvePath(ctx.baseDir, opts.path)),
  };
}
