/**
 * The csv source's encoded (passthrough) fast path, for sinks that take CSV as it
 * is (PostgreSQL COPY) (worker, once per partition attempt): whole records cut
 * from the file's bytes by the scanner (encoded.ts), checked and, where the row
 * path would hand on other text, rewritten. Files and chunks it cannot vouch for
 * go the row path (source-rows.ts), so rows, rejected records and their errors
 * are the row path's.
 */
import { isUtf8 } from 'node:buffer';
import type { CsvError } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import type { TaskContext } from '../../sdk/connector.js';
import { locationsOf, RowError, type RowLocation, type RowLocator, withLocations } from '../../sdk/errors.js';
import type { ColumnType, EncodedRows, EncodingHints, Row } from '../../sdk/types.js';
import { byteDialectOk, type Dialect, encodeRowsCsv } from '../shared/csv-text.js';
import { lineLocator, openToRead } from '../shared/files.js';
import { ChunkScanner, type Field, fieldValueOf, KIND_OF, type LineEnding, numberAtOf } from './encoded.js';
import { recordDelimiters, WHO } from './limits.js';
import { countNewlines, emptyLine, fieldReader, type Prefix, parseOptions, readPrefix } from './parse.js';
import { assertUnchanged, type CsvRange } from './ranges.js';
import { RecordConverter, readCsv, readRange, typesFor } from './source-rows.js';
import { type CsvOptions, textEncoding } from './spec.js';
import { invalidUtf8Error } from './utf8.js';

/** Sizes of the encoded path (tests use tiny ones to put chunk boundaries everywhere). */
export interface EncodedTuning {
  /** Raw bytes per encoded chunk: one COPY each. */
  chunkBytes: number;
  /** The first chunk's size; each next one doubles up to `chunkBytes` (the sink starts sooner). */
  firstChunkBytes: number;
  /** Bytes per file read while a chunk fills (the event loop turns between reads). */
  readBytes: number;
  /** Chunks scanned ahead while the sink writes the current one. */
  readAhead: number;
  /** Rows per encoded chunk when the row path reads for the encoded path. */
  rowModeRows: number;
}

export const ENCODED_TUNING: EncodedTuning = {
  chunkBytes: 4 * 1024 * 1024,
  firstChunkBytes: 256 * 1024,
  readBytes: 1024 * 1024,
  readAhead: 2,
  rowModeRows: 20_000,
};

/**
 * Whether these options allow the passthrough path: UTF-8, and a delimiter,
 * quote and null text that PostgreSQL's COPY … (FORMAT csv) can take as they are
 * (one-byte delimiter and quote; a null text without them, line breaks or a
 * leading backslash, which could read as the end-of-data marker `\.`).
 */
export function encodable(opts: CsvOptions): boolean {
  return (
    textEncoding(opts) === 'utf8' &&
    byteDialectOk({ delimiter: opts.delimiter, quote: opts.quote, nullText: opts.null_value }) &&
    !opts.null_value.startsWith('\\')
  );
}

/** Where the row path's chunks start among the rows of one encoded batch, with their locators. */
type ChunkStarts = { at: number; locate: RowLocator | undefined }[];

/** EncodedRows made from rows the row path read (its rejects already went to ctx.reject). */
function encodedFromRows(rows: Row[], dialect: Dialect, starts: ChunkStarts): EncodedRows {
  const columns = Object.keys(rows[0] ?? {});
  const located: Row[] = starts.length
    ? withLocations(rows, (i) => {
        for (let k = starts.length - 1; k >= 0; k--) {
          const s = starts[k] as ChunkStarts[number];
          if (s.at <= i) return s.locate?.(i - s.at);
        }
        return undefined;
      })
    : rows;
  return {
    kind: 'encoded',
    format: 'csv',
    columns,
    ...dialect,
    data: encodeRowsCsv(rows, columns, dialect),
    rows: rows.length,
    decode: async () => located,
  };
}

/** The row path's rows, handed on encoded (files the scanner leaves to csv-parse), with their lines. */
async function* rowsEncoded(rows: AsyncIterable<Row[]>, dialect: Dialect, tuning: EncodedTuning): AsyncGenerator<EncodedRows> {
  let pending: Row[] = [];
  let starts: ChunkStarts = [];
  for await (const chunk of rows) {
    const locate = locationsOf(chunk);
    if (locate || starts.length) starts.push({ at: pending.length, locate });
    for (const row of chunk) pending.push(row);
    if (pending.length >= tuning.rowModeRows) {
      yield encodedFromRows(pending, dialect, starts);
      pending = [];
      starts = [];
    }
  }
  if (pending.length) yield encodedFromRows(pending, dialect, starts);
}

interface ChunkInfo {
  /** The file the chunk is of, for the location of rejected records. */
  path: string;
  /** The chunk's records as read, for decode. */
  raw: Buffer;
  /** Indexes (csv-parse's record count within the chunk) of records already rejected while scanning. */
  rejected: Set<number>;
  /** Row path line number of the line before the chunk. */
  line: number;
  lineEnding: LineEnding;
}

/** Parses a chunk's raw records the row path's way (worker, when the sink cannot take the chunk as it is). */
function decodeChunk(
  chunk: ChunkInfo,
  opts: CsvOptions,
  converter: RecordConverter,
  reject: (record: unknown, error: unknown, at?: RowLocation) => Promise<void>,
): Promise<Row[]> {
  const skipped: CsvError[] = [];
  const fields = fieldReader(opts);
  const records = (
    parseSync(chunk.raw, {
      ...parseOptions(opts),
      bom: false,
      raw: true,
      skip_empty_lines: false,
      record_delimiter: recordDelimiters(chunk.lineEnding),
      on_skip: (error) => {
        if (error) skipped.push(error);
      },
    }) as unknown as { record: string[]; raw: string }[]
  ).map((item) => fields(item.record, item.raw));
  return (async () => {
    const rows: Row[] = [];
    const lines: number[] = [];
    let lastLine = chunk.line;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as Field[];
      const line = lastLine + 1;
      lastLine = line + countNewlines(record);
      if (emptyLine(record) || chunk.rejected.has(i)) continue;
      const result = converter.convert(record);
      if (result instanceof RowError) await reject({ line, raw: converter.raw(record) }, result, { file: chunk.path, line });
      else {
        rows.push(result);
        lines.push(line);
      }
    }
    for (const error of skipped as (CsvError & { lines?: number; record?: unknown })[])
      await reject(
        { line: error.lines ?? null, raw: Array.isArray(error.record) ? error.record.join(opts.delimiter) : null },
        new RowError(`malformed CSV: ${error.message}`, { code: 'bad_record', cause: error }),
        { file: chunk.path, ...(error.lines !== undefined ? { line: error.lines } : {}) },
      );
    return withLocations(rows, lineLocator(chunk.path, lines));
  })();
}

/** Runs an async iterator up to `depth` items ahead of its consumer, so reading overlaps writing. */
async function* readAhead<T>(iterator: AsyncIterator<T>, depth: number): AsyncGenerator<T> {
  const queue: Promise<IteratorResult<T>>[] = [];
  try {
    for (;;) {
      while (queue.length < depth) {
        const next = iterator.next();
        next.catch(() => {});
        queue.push(next);
      }
      const result = await (queue.shift() as Promise<IteratorResult<T>>);
      if (result.done) return;
      yield result.value;
    }
  } finally {
    await Promise.allSettled(queue);
    await iterator.return?.(undefined);
  }
}

/** Reads one partition for a sink that takes CSV as it is (worker, once per partition attempt). */
export async function* readCsvEncoded(
  path: string,
  opts: CsvOptions,
  ctx: TaskContext,
  tuning: EncodedTuning = ENCODED_TUNING,
  range: CsvRange = {},
  hints: EncodingHints = {},
): AsyncGenerator<EncodedRows> {
  const dialect: Dialect = { delimiter: opts.delimiter, quote: opts.quote, nullText: opts.null_value };
  await assertUnchanged(path, range);
  const head = await readPrefix(path, opts);
  if (head.utf16) {
    yield* rowsEncoded(readRange(path, opts, ctx, range, head), dialect, tuning);
    return;
  }
  const prefix: Prefix = range.start ? { ...head, ...range.start } : head;
  const names = prefix.names;
  if (!names || prefix.offset < 0) return;
  const types = typesFor(names, opts, ctx.schema);
  if (types.includes(undefined) || prefix.lineEnding === 'cr') {
    // types still to infer (the file changed since planning), or old Mac line endings: the row path does it all
    yield* rowsEncoded(readCsv(path, opts, ctx, { ...prefix, names }, range.end), dialect, tuning);
    return;
  }
  const converter = new RecordConverter(names, types as ColumnType[], opts);
  const sized = hints.batchBytes ? { ...tuning, chunkBytes: Math.max(64 * 1024, Math.min(tuning.chunkBytes, hints.batchBytes)) } : tuning;
  yield* readAhead(
    scanChunks(
      path,
      opts,
      ctx,
      prefix,
      names,
      types as ColumnType[],
      converter,
      dialect,
      sized,
      range.end ?? Number.POSITIVE_INFINITY,
      hints,
    ),
    Math.max(1, tuning.readAhead),
  );
}

/** Cuts the file after the prefix into encoded chunks (worker; see encoded.ts). */
async function* scanChunks(
  path: string,
  opts: CsvOptions,
  ctx: TaskContext,
  prefix: Prefix,
  names: string[],
  types: ColumnType[],
  converter: RecordConverter,
  dialect: Dialect,
  tuning: EncodedTuning,
  end: number,
  hints: EncodingHints,
): AsyncGenerator<EncodedRows> {
  const handle = await openToRead(path, WHO);
  const fieldValue = fieldValueOf(types);
  const numberAt = numberAtOf(types);
  const scanner = new ChunkScanner({
    ...dialect,
    names,
    kinds: types.map((t) => KIND_OF[t]),
    lineEnding: prefix.lineEnding === 'cr' ? undefined : prefix.lineEnding,
    check: { convert: (fields) => converter.convert(fields) },
    ...(hints.valueColumns ? { valueColumns: hints.valueColumns } : {}),
    ...(hints.fractionDigits ? { fractionDigits: hints.fractionDigits } : {}),
    ...(opts.encoding === 'utf8' ? { invalidUtf8: invalidUtf8Error } : {}),
    maxRecordBytes: opts.max_record_bytes,
  });
  try {
    let filePos = prefix.offset; // next byte to read
    let line = prefix.line;
    let lines = prefix.lines;
    let carry: Buffer | undefined;
    let eof = false;
    let target = Math.min(tuning.firstChunkBytes, tuning.chunkBytes);
    for (;;) {
      if (ctx.signal.aborted) return;
      let cap = Math.max(target, 2 * (carry?.length ?? 0));
      target = Math.min(target * 2, tuning.chunkBytes);
      let buf = Buffer.allocUnsafe(cap);
      let filled = 0;
      if (carry) filled = carry.copy(buf, 0);
      carry = undefined;
      const chunkStart = filePos - filled; // file offset of buf[0]
      scanner.begin(buf, line);
      const lineEnding = scanner.lineEnding;
      let scanned = 0;
      for (;;) {
        if (!eof && filled < cap) {
          const want = Math.min(tuning.readBytes, cap - filled, end - filePos);
          const { bytesRead } = want > 0 ? await handle.read(buf, filled, want, filePos) : { bytesRead: 0 };
          filePos += bytesRead;
          filled += bytesRead;
          if (bytesRead === 0) eof = true;
        }
        scanned = scanner.scan(scanned, filled, eof);
        if (scanner.stop || eof || filled < cap) {
          if (scanner.stop || eof) break;
          continue;
        }
        if (scanned > 0) break; // full: the partial record at the end goes with the next chunk
        if (cap > opts.max_record_bytes) {
          scanner.stop = { at: 0, reason: 'record_size' };
          break;
        }
        const bigger = Buffer.allocUnsafe(cap * 2); // one record larger than the buffer
        buf.copy(bigger, 0, 0, filled);
        buf = bigger;
        cap *= 2;
        scanner.rebase(buf);
      }
      if (!isUtf8(buf.subarray(0, scanned))) {
        // chunks end at line breaks, so a chunk is valid UTF-8 or not on its own: re-encode this one from text
        const lineEndingAfter = scanner.lineEnding;
        scanner.lineEnding = lineEnding;
        scanner.begin(buf, line, true);
        scanned = scanner.scan(0, scanned, eof && scanned === filled);
        scanner.lineEnding = lineEndingAfter;
      }
      const data = scanner.finish(scanned);
      const rows = scanner.rows;
      const chunk: ChunkInfo = {
        path,
        raw: buf.subarray(0, scanned),
        rejected: new Set(scanner.rejects.map((r) => r.index)),
        line,
        lineEnding: lineEnding ?? scanner.lineEnding,
      };
      for (const r of scanner.rejects)
        await ctx.reject({ line: r.line, raw: converter.raw(r.fields) }, r.error, { file: path, line: r.line });
      line += scanner.lf;
      lines += scanner.csvParseLines;
      if (rows > 0)
        yield {
          kind: 'encoded',
          format: 'csv',
          columns: names,
          ...dialect,
          data,
          rows,
          fieldValue,
          numberAt,
          decode: (reject) => decodeChunk(chunk, opts, converter, reject),
        };
      const stop = scanner.stop as { at: number; reason: string } | undefined;
      if (stop) {
        ctx.log.debug('csv passthrough: the rest of the file goes through the row path', {
          reason: stop.reason,
          offset: chunkStart + stop.at,
        });
        await handle.close();
        yield* rowsEncoded(
          readCsv(path, opts, ctx, { offset: chunkStart + stop.at, lines, lineEnding: scanner.lineEnding, names, line }, end),
          dialect,
          tuning,
        );
        return;
      }
      if (eof && scanned >= filled) return;
      carry = buf.subarray(scanned, filled);
    }
  } finally {
    await handle.close().catch(() => {});
  }
}
