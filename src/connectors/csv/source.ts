/**
 * The csv source: one partition per file, streamed with csv-parse (the file is
 * never held in memory), fields converted to column types, bad records handed
 * to `ctx.reject` while the rest keep flowing.
 *
 * `readEncoded` is the passthrough fast path for sinks that take CSV as it is
 * (PostgreSQL COPY): whole records cut from the file's bytes, checked and, where
 * the row path would hand on other text, rewritten (see encoded.ts). Rows,
 * rejected records and their errors are the row path's.
 */
import { isUtf8 } from 'node:buffer';
import { open, stat } from 'node:fs/promises';
import bytesLib from 'bytes';
import { type CsvError, type Info, type Options as ParseOptions, parse } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import type { Source, TaskContext } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import { type ColumnType, type EncodedRows, type EncodingHints, emptyRow, type Partition, type Row, type Schema } from '../../sdk/types.js';
import { type Converted, convertText, TextTypeGuess } from '../shared/columns.js';
import { type Dialect, encodeRowsCsv } from '../shared/csv-text.js';
import { type FileSample, fileError, openToRead, resolvePath, singleFileSource } from '../shared/files.js';
import { ChunkScanner, type Field, fieldValueOf, KIND_OF, type LineEnding, numberAtOf } from './encoded.js';
import { type CsvOptions, textEncoding } from './spec.js';
import { type RangeStart, recordBoundaries } from './split.js';
import { INVALID_MARK, invalidUtf8Error, shownText, Utf8Marker } from './utf8.js';

/** Rows inspected to infer column types. */
export const INFER_ROWS = 1000;
/** Rows per array yielded by `read`. */
const CHUNK_ROWS = 1000;

const WHO = 'csv source';

/** A record and the line it starts on. */
interface ParsedRecord {
  record: Field[];
  line: number;
}

/** Where a parser starts when it does not start at the top of the file: a record boundary and csv-parse's state there. */
interface ParserStart {
  /** Byte offset of a record's first byte. */
  offset: number;
  /** csv-parse's line counter (`info.lines`) at that point. */
  lines: number;
  lineEnding: LineEnding | 'cr';
}

/**
 * Record delimiters as csv-parse takes them: a file of LF or CRLF records may mix
 * the two, record by record, as RFC 4180 readers allow (a CRLF header over LF
 * records, or the other way round); only old Mac files (bare CR) keep their own.
 */
const RECORD_DELIMITERS = { lf: ['\r\n', '\n'], crlf: ['\r\n', '\n'], cr: ['\r'] } as const;

/** The record delimiters for a file whose first line ending is `lineEnding` (unknown: LF or CRLF). */
const recordDelimiters = (lineEnding: LineEnding | 'cr') => [...RECORD_DELIMITERS[lineEnding ?? 'lf']];

/**
 * The fields of a record as the row path sees them ({@link Field}). csv-parse gives
 * '' for `""` and for an empty field alike, and the null text quoted or not; which
 * of those were quoted is read off the record's raw text, and only for a record that
 * has such a field (a cast function would tell, at 9x the parse time).
 */
function fieldReader(opts: CsvOptions): (record: string[], raw: string) => Field[] {
  const nullValue = opts.null_value;
  return (record, raw) => {
    if (!record.some((f) => f === '' || f === nullValue)) return record;
    const quoted = quotedFields(raw, opts.delimiter, opts.quote, record.length);
    const fields: Field[] = record.slice();
    for (let i = 0; i < record.length; i++) {
      const f = record[i];
      if ((f === '' || f === nullValue) && !quoted[i]) fields[i] = f === '' && record.length === 1 ? undefined : null;
    }
    return fields;
  };
}

/** Which fields of one record's raw text start with a quote (doubled quotes inside are escapes). */
export function quotedFields(raw: string, delimiter: string, quote: string, n: number): boolean[] {
  const quoted = new Array<boolean>(n).fill(false);
  let field = 0;
  let atStart = true;
  let inQuotes = false;
  for (let p = 0; p < raw.length && field < n; p++) {
    const c = raw[p];
    if (inQuotes) {
      if (c === quote) {
        if (raw[p + 1] === quote) p++;
        else inQuotes = false;
      }
    } else if (atStart && c === quote) {
      quoted[field] = true;
      inQuotes = true;
      atStart = false;
    } else if (c === delimiter) {
      field++;
      atStart = true;
    } else if (c === '\n' || c === '\r') break;
    else atStart = false;
  }
  return quoted;
}

/** The csv-parse options of the row path (the encoded path's decode uses the same). */
function parseOptions(opts: CsvOptions): ParseOptions {
  return {
    delimiter: opts.delimiter,
    quote: opts.quote,
    escape: opts.quote,
    encoding: textEncoding(opts),
    relax_column_count: true,
    relax_quotes: true, // keep `a"b` and `"a"b` as text rather than swallow the lines after them
    skip_records_with_error: true,
    max_record_size: opts.max_record_bytes,
  };
}

/**
 * A parser over the file at `path`; malformed records land in `skipped`. With
 * `info`, records come with csv-parse's line and byte counts (2-3x slower: the
 * planner's sample only); without, they are plain arrays and empty lines come
 * through as `['']`, so the reader can count lines itself. With `from`, it starts
 * mid-file, at a record boundary, as if it had read everything before.
 */
async function openParser<I extends boolean>(
  path: string,
  opts: CsvOptions,
  info: I,
  from?: ParserStart,
  skipEmptyLines: boolean = info,
  end?: number,
) {
  const handle = await openToRead(path, WHO);
  const skipped: CsvError[] = [];
  const lineEnding = from?.lineEnding ?? (await firstLineEnding(path, opts));
  /** A record over max_record_bytes: csv-parse drops the rest of the chunk it is in and would read on inside it, so reading stops there. */
  let oversized: Oversized | undefined;
  const stopAtOversized = () => {
    stream.unpipe(marker ?? parser);
    marker?.unpipe(parser);
    stream.destroy();
    marker?.destroy();
    parser.end();
  };
  const parser = parse({
    ...parseOptions(opts),
    bom: !from,
    info,
    raw: true,
    from_line: from ? 1 : opts.skip_lines + 1,
    skip_empty_lines: skipEmptyLines,
    record_delimiter: recordDelimiters(lineEnding),
    on_skip: (error) => {
      if (oversized) return;
      if ((error as CsvError | undefined)?.code === 'CSV_MAX_RECORD_SIZE') {
        oversized = { records: parser.info.records, lines: parser.info.lines };
        setImmediate(stopAtOversized);
      } else if (error) skipped.push(error);
    },
  });
  if (from) (parser.info as { lines: number }).lines = from.lines;
  // createReadStream's `end` is inclusive
  const stream = handle.createReadStream({
    ...(from ? { start: from.offset } : {}),
    ...(end !== undefined && Number.isFinite(end) ? { end: end - 1 } : {}),
  });
  stream.on('error', (error) => parser.destroy(fileError(error, { who: WHO, path, action: 'read' })));
  // strict UTF-8: invalid bytes are marked on their way to csv-parse, and the records holding them rejected
  const marker = opts.encoding === 'utf8' ? new Utf8Marker() : undefined;
  if (marker) stream.pipe(marker).pipe(parser);
  else stream.pipe(parser);
  const close = () => {
    stream.unpipe(marker ?? parser);
    marker?.unpipe(parser);
    stream.destroy();
    marker?.destroy();
    parser.destroy();
  };
  /** Whether a record holds bytes that are no UTF-8 (only a file with such bytes is looked at). */
  const invalid = (record: Field[]) => marker?.sawInvalid === true && record.some((f) => f?.includes(INVALID_MARK));
  type Item = I extends true ? { record: string[]; raw: string; info: Info } : { record: string[]; raw: string };
  return {
    parser: parser as AsyncIterable<Item>,
    fields: fieldReader(opts),
    skipped,
    close,
    invalid,
    lineEnding,
    oversized: () => oversized,
    /** Whether byte offsets counted from records are the file's (no invalid UTF-8 was marked, which changes lengths). */
    exactOffsets: () => marker?.sawInvalid !== true,
  };
}

/** Where csv-parse stopped at a record over max_record_bytes: records it gave before, and its line counter. */
interface Oversized {
  records: number;
  lines: number;
}

/** Column names from a header record: trimmed; blanks become `column_<n>`; duplicates are a config error. */
function headerNames(record: Field[], path: string): string[] {
  const names = record.map((n, i) => n?.trim() || `column_${i + 1}`);
  const seen = new Map<string, number>();
  names.forEach((name, i) => {
    const first = seen.get(name);
    if (first !== undefined)
      throw new WeirError(
        `${WHO}: the header of ${path} names column "${name}" twice (fields ${first + 1} and ${i + 1}); rename one in the file, or set header: false, skip_lines: 1 and columns`,
        { kind: 'config', code: 'duplicate_column' },
      );
    seen.set(name, i);
  });
  return names;
}

/** Checks that every declared column is in the header. */
function checkDeclared(names: string[], opts: CsvOptions, path: string): void {
  const missing = Object.keys(opts.columns ?? {}).filter((c) => !names.includes(c));
  if (missing.length)
    throw new WeirError(
      `${WHO}: columns ${missing.map((c) => `"${c}"`).join(', ')} in the \`columns\` option are not in the header of ${path} (header: ${names.join(', ')}); fix the names in \`columns\` or in the file`,
      { kind: 'config', code: 'unknown_column' },
    );
}

/** Column types: declared first, then `known` (the planner's schema), else undefined (to infer). */
function typesFor(names: string[], opts: CsvOptions, known?: Schema): (ColumnType | undefined)[] {
  const fromSchema = new Map(known?.map((c) => [c.name, c.type]));
  return names.map((n) => opts.columns?.[n] ?? fromSchema.get(n));
}

/**
 * The columns: declared or known types as they are, the rest inferred from sample
 * records (positions aligned with `names`). Nulls are no evidence; quoted text, even
 * `""`, is.
 */
function infer(names: string[], types: (ColumnType | undefined)[], sample: Field[][]): Schema {
  return names.map((name, i) => {
    const t = types[i];
    if (t) return { name, type: t, nullable: true };
    const guess = new TextTypeGuess();
    for (const record of sample) {
      const v = record[i];
      if (typeof v === 'string') guess.add(v); // quoted text too: `""` says the column holds text
    }
    return guess.column(name);
  });
}

interface Sample extends FileSample {
  schema: Schema;
}

/** Reads the header and up to {@link INFER_ROWS} records (planner). */
async function takeSample(path: string, opts: CsvOptions): Promise<Sample> {
  const { parser, fields, close } = await openParser(path, opts, true);
  let names: string[] | undefined = opts.header ? undefined : Object.keys(opts.columns ?? {});
  const records: Field[][] = [];
  let bytes = 0;
  let headerBytes = 0;
  let complete = true;
  try {
    for await (const item of parser) {
      const { info } = item;
      const record = fields(item.record, item.raw);
      if (!names) {
        names = headerNames(record, path);
        headerBytes = info.bytes;
        continue;
      }
      if (records.length === INFER_ROWS) {
        complete = false;
        break;
      }
      records.push(record);
      bytes = info.bytes - headerBytes;
    }
  } finally {
    close();
  }
  names ??= [];
  if (opts.header) checkDeclared(names, opts, path);
  return {
    schema: infer(names, typesFor(names, opts), records),
    rows: records.length,
    bytes,
    complete,
  };
}

/** An empty line, or one holding only `""`: the row path skips both (as the encoded path does). */
const emptyLine = (record: Field[]) => record.length === 1 && (record[0] === undefined || record[0] === '');

/** Line breaks inside the fields of a record (quoted multi-line fields). */
function countNewlines(fields: Field[]): number {
  let n = 0;
  for (const f of fields) {
    if (!f) continue;
    for (let i = f.indexOf('\n'); i !== -1; i = f.indexOf('\n', i + 1)) n++;
  }
  return n;
}

/** Turns records into rows, rejecting those that do not fit (worker). */
class RecordConverter {
  private readonly converters: ((text: string) => Converted)[];
  private readonly stringColumns: boolean[];

  constructor(
    private readonly names: string[],
    types: ColumnType[],
    private readonly opts: CsvOptions,
  ) {
    this.converters = types.map((type) => (text: string) => convertText(text, type));
    this.stringColumns = types.map((t) => t === 'string');
  }

  /**
   * The row, or the error that explains why the record is not one. Nulls are the
   * parser's (unquoted empty or null text); in a column that is not text, empty
   * text and the null text are null too (those types have no empty value).
   */
  convert(record: Field[]): Row | RowError {
    const { names, opts } = this;
    if (record.length !== names.length)
      return new RowError(
        `record has ${record.length} field(s), expected ${names.length} (${names.join(', ')}); check the delimiter and quoting on this line`,
        { code: 'bad_record' },
      );
    const row = emptyRow();
    for (let i = 0; i < names.length; i++) {
      const text = record[i];
      const name = names[i] as string;
      if (text === null || text === undefined || (!this.stringColumns[i] && (text === '' || text === opts.null_value))) {
        row[name] = null;
        continue;
      }
      if (this.stringColumns[i]) {
        row[name] = text;
        continue;
      }
      const r = (this.converters[i] as (t: string) => Converted)(text);
      if (!r.ok) return new RowError(`column "${name}": ${r.reason}`, { code: 'bad_field' });
      row[name] = r.value;
    }
    return row;
  }

  /** The record as CSV text, for the dead-letter entry (invalid UTF-8 shown as U+FFFD). */
  raw(record: Field[]): string {
    return stringify([record.map((f) => (f ? shownText(f) : f))], {
      delimiter: this.opts.delimiter,
      quote: this.opts.quote,
      escape: this.opts.quote,
      eof: false,
    });
  }
}

/** Where the row path picks up a file the encoded path started: after the header, at a record boundary. */
interface Resume extends ParserStart {
  names: string[];
  /** The row path's line number of the last line before `offset`. */
  line: number;
}

/** Reads one partition (worker); with `resume`, from the middle of the file; with `end`, up to that byte. */
async function* readCsv(path: string, opts: CsvOptions, ctx: TaskContext, resume?: Resume, end?: number): AsyncGenerator<Row[]> {
  const { parser, fields, skipped, close, invalid, lineEnding, oversized, exactOffsets } = await openParser(
    path,
    opts,
    false,
    resume,
    false,
    end,
  );
  /** Where reading goes on after a record over max_record_bytes. */
  let after: Resume | undefined;
  const flushSkipped = async () => {
    while (skipped.length) {
      const error = skipped.shift() as CsvError & { lines?: number; record?: unknown };
      await ctx.reject(
        { line: error.lines ?? null, raw: Array.isArray(error.record) ? error.record.join(opts.delimiter) : null },
        new RowError(`malformed CSV: ${error.message}`, { code: 'bad_record', cause: error }),
      );
    }
  };
  try {
    let names: string[] | undefined = resume?.names ?? (opts.header ? undefined : Object.keys(opts.columns ?? {}));
    let converter: RecordConverter | undefined;
    /** Records held back while the column types are inferred. */
    const pending: ParsedRecord[] = [];
    let chunk: Row[] = [];

    const take = async (record: Field[], line: number, c: RecordConverter) => {
      if (invalid(record)) {
        await ctx.reject({ line, raw: c.raw(record) }, invalidUtf8Error());
        return;
      }
      const result = c.convert(record);
      if (result instanceof RowError) await ctx.reject({ line, raw: c.raw(record) }, result);
      else chunk.push(result);
    };
    /** Settles the column types (inferring from `pending` where needed) and converts the held-back records. */
    const start = async (columnNames: string[]) => {
      const columns = infer(
        columnNames,
        typesFor(columnNames, opts, ctx.schema),
        pending.map((p) => p.record),
      );
      const c = new RecordConverter(
        columnNames,
        columns.map((col) => col.type),
        opts,
      );
      for (const p of pending) await take(p.record, p.line, c);
      pending.length = 0;
      return c;
    };
    const needsInference = (columnNames: string[]) => typesFor(columnNames, opts, ctx.schema).includes(undefined);
    if (names && !needsInference(names)) converter = await start(names);

    /** The last line of the previous record. */
    let lastLine = resume?.line ?? opts.skip_lines;
    /** Records taken from the parser, and the bytes of those after the header (for where an oversized record starts). */
    let taken = 0;
    let dataBytes = 0;
    for await (const item of parser) {
      const stop = oversized();
      if (stop && taken >= stop.records) break; // what csv-parse read after the oversized record's start is not data
      taken++;
      if (names) dataBytes += rawBytes(item.raw, lineEnding);
      const record = fields(item.record, item.raw);
      const line = lastLine + 1;
      lastLine = line + countNewlines(record);
      if (emptyLine(record)) continue;
      if (!names) {
        names = headerNames(record, path);
        checkDeclared(names, opts, path);
        if (!needsInference(names)) converter = await start(names);
        continue;
      }
      if (converter) await take(record, line, converter);
      else {
        pending.push({ record, line });
        if (pending.length >= INFER_ROWS) converter = await start(names);
      }
      if (skipped.length) await flushSkipped();
      if (chunk.length >= CHUNK_ROWS) {
        yield chunk;
        chunk = [];
        if (ctx.signal.aborted) return;
      }
    }
    if (!converter && names) await start(names);
    await flushSkipped();
    if (chunk.length) yield chunk;
    const stop = oversized();
    if (stop && names) {
      const line = lastLine + 1;
      await ctx.reject(
        { line, raw: null },
        new RowError(
          `the record starting at line ${line} is larger than max_record_bytes (${formatBytes(opts.max_record_bytes)}): an unclosed quote or a runaway field; fix the file, or raise max_record_bytes if such records are expected`,
          { code: 'record_too_large' },
        ),
      );
      const next = await afterOversized(path, opts, {
        resume,
        dataBytes,
        lineEnding,
        line: lastLine,
        lines: stop.lines,
        end,
        exact: exactOffsets(),
      });
      if (next) after = { ...next, names };
    }
  } finally {
    close();
  }
  if (after) yield* readCsv(path, opts, ctx, after, end);
}

/** Bytes of a record in the file from csv-parse's raw text, which leaves out the LF of a CRLF record delimiter. */
function rawBytes(raw: string, lineEnding: LineEnding | 'cr'): number {
  const n = Buffer.byteLength(raw);
  return lineEnding !== 'cr' && raw.charCodeAt(raw.length - 1) === 0x0d ? n + 1 : n;
}

const formatBytes = (n: number) => bytesLib.format(n, { unitSeparator: '' }) ?? `${n} bytes`;

/**
 * Where the record after an oversized one starts (worker): the oversized record's
 * start is the data's start plus the bytes of the records before it, and its end
 * is found as the splitter finds record boundaries (following quotes). Undefined
 * when it runs to the end of the range.
 */
async function afterOversized(
  path: string,
  opts: CsvOptions,
  at: {
    resume: Resume | undefined;
    dataBytes: number;
    lineEnding: LineEnding | 'cr';
    line: number;
    lines: number;
    end: number | undefined;
    exact: boolean;
  },
): Promise<Omit<Resume, 'names'> | undefined> {
  if (!at.exact || at.lineEnding === 'cr' || !oneByte(opts.delimiter) || !oneByte(opts.quote))
    throw new WeirError(
      `${WHO}: ${path} has a record larger than max_record_bytes (${formatBytes(opts.max_record_bytes)}) after line ${at.line}, and with ${at.exact ? 'this dialect' : 'invalid UTF-8 before it'} weir cannot find where it ends; fix the file, or raise max_record_bytes`,
      { kind: 'data', code: 'record_too_large', retryable: false },
    );
  const base = at.resume ? at.resume.offset : (await readPrefix(path, opts)).offset;
  const offset = base + at.dataBytes;
  let size: number;
  try {
    size = at.end ?? (await stat(path)).size;
  } catch (error) {
    throw fileError(error, { who: WHO, path, action: 'read' });
  }
  const dialect = { delimiter: opts.delimiter.charCodeAt(0), quote: opts.quote.charCodeAt(0), lineEnding: at.lineEnding ?? 'lf' };
  const [next] = await recordBoundaries(path, dialect, { offset, line: at.line, lines: at.lines }, size, [offset + 1]);
  return next;
}

// ---------------------------------------------------------------------------
// the encoded (passthrough) path

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

/** A character that is one byte in UTF-8 and latin1, and not a line break. */
const oneByte = (c: string) => c.length === 1 && c.charCodeAt(0) < 0x80 && c !== '\n' && c !== '\r';

/**
 * Whether these options allow the passthrough path: UTF-8, and a delimiter,
 * quote and null text that PostgreSQL's COPY … (FORMAT csv) can take as they are
 * (one-byte delimiter and quote; a null text without them, line breaks or a
 * leading backslash, which could read as the end-of-data marker `\.`).
 */
export function encodable(opts: CsvOptions): boolean {
  const n = opts.null_value;
  return (
    textEncoding(opts) === 'utf8' &&
    oneByte(opts.delimiter) &&
    oneByte(opts.quote) &&
    opts.delimiter !== opts.quote &&
    !/[\r\n]/.test(n) &&
    !n.includes(opts.delimiter) &&
    !n.includes(opts.quote) &&
    !n.startsWith('\\')
  );
}

/** What precedes the data: skipped lines, the header, and csv-parse's state after them. */
interface Prefix extends ParserStart {
  /** Column names; undefined when the file has no header record. */
  names: string[] | undefined;
  line: number;
  /** The file starts with a UTF-16 byte-order mark (csv-parse then switches encoding): row path. */
  utf16: boolean;
}

async function readHead(path: string, n: number): Promise<Buffer> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, 'r');
    const buf = Buffer.alloc(n);
    const { bytesRead } = await handle.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } catch (error) {
    throw fileError(error, { who: WHO, path, action: 'read' });
  } finally {
    await handle?.close();
  }
}

const lineEndingOf = (delimiters: Buffer[] | undefined): LineEnding | 'cr' => {
  const d = delimiters?.[0];
  if (!d) return undefined;
  return d.length === 2 ? 'crlf' : d[0] === 0x0a ? 'lf' : 'cr';
};

/**
 * Finds where the data starts (worker, once per partition attempt): csv-parse reads
 * the skipped lines and the header exactly as the row path does.
 */
async function readPrefix(path: string, opts: CsvOptions): Promise<Prefix> {
  const head = await readHead(path, 3);
  const utf16 = head[0] === 0xff && head[1] === 0xfe;
  const bom = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
  const declared = opts.header ? undefined : Object.keys(opts.columns ?? {});
  const start: Prefix = { names: declared, offset: bom, lines: 1, lineEnding: undefined, line: opts.skip_lines, utf16 };
  if (utf16 || (!opts.header && opts.skip_lines === 0)) return start;
  const delimiters = recordDelimiters(await firstLineEnding(path, opts));
  // most headers sit in the first few KB: parsed at once; else csv-parse streams the file up to it
  for (const size of PREFIX_BLOCK_BYTES) {
    const block = await readHead(path, size);
    const records = parseSync(block, {
      ...parseOptions(opts),
      bom: true,
      info: true,
      skip_empty_lines: false,
      record_delimiter: delimiters,
    } as ParseOptions) as unknown as {
      record: Field[];
      info: Info;
    }[];
    const found = findData(records, opts, path, start, () => lineEndingIn(block, records[0]?.info.bytes ?? 0));
    const whole = block.length < size;
    // a record ending at the block's end may continue past it
    if (found && (whole || found.offset < block.length)) return found;
    if (whole) return { ...start, names: undefined, offset: -1 }; // no data
  }
  const { parser, close } = await openParser(path, { ...opts, skip_lines: 0 }, true, undefined, false);
  const streamed: { record: Field[]; info: Info }[] = [];
  try {
    for await (const item of parser) {
      streamed.push({ record: item.record, info: item.info });
      const r = findData(streamed, opts, path, start, () =>
        lineEndingOf((parser as unknown as { options: { record_delimiter?: Buffer[] } }).options.record_delimiter),
      );
      if (r) return r;
    }
  } finally {
    close();
  }
  return { ...start, names: undefined, offset: -1 }; // no data
}

/** Bytes read at once to find the header: a first try, a second. */
const PREFIX_BLOCK_BYTES = [4 * 1024, 64 * 1024];

/**
 * Where the data starts among the first records (csv-parse's `from_line` applied
 * by hand: it would not say where the skipped records end), or undefined when
 * these records do not reach it.
 */
function findData(
  records: { record: Field[]; info: Info }[],
  opts: CsvOptions,
  path: string,
  start: Prefix,
  lineEnding: () => LineEnding | 'cr',
): Prefix | undefined {
  let enabled = opts.skip_lines === 0;
  let lastLine = opts.skip_lines;
  const at = (info: Info) => ({ offset: info.bytes, lines: info.lines + 1, lineEnding: lineEnding() });
  for (const { record, info } of records) {
    if (!enabled) {
      // csv-parse starts emitting after the record delimiter at which its line count reaches from_line
      if (info.lines + 1 >= opts.skip_lines + 1) {
        enabled = true;
        if (!opts.header) return { ...start, ...at(info) };
      }
      continue;
    }
    const line = lastLine + 1;
    lastLine = line + countNewlines(record);
    if (emptyLine(record)) continue;
    const names = headerNames(record, path);
    checkDeclared(names, opts, path);
    return { ...start, ...at(info), names, line: lastLine };
  }
  return undefined;
}

/**
 * The record delimiter csv-parse settled on: the one ending the first record
 * (`offset` is that record's end), as it discovers it at the first line break
 * outside quotes, which ends that record.
 */
function lineEndingIn(block: Buffer, offset: number): LineEnding | 'cr' {
  if (offset === 0) return undefined;
  const last = block[offset - 1];
  if (last === 0x0a) return block[offset - 2] === 0x0d ? 'crlf' : 'lf';
  if (last === 0x0d) return 'cr';
  return undefined; // the header is the last record, without a line ending
}

/** EncodedRows made from rows the row path read (its rejects already went to ctx.reject). */
function encodedFromRows(rows: Row[], dialect: Dialect): EncodedRows {
  const columns = Object.keys(rows[0] ?? {});
  return {
    kind: 'encoded',
    format: 'csv',
    columns,
    ...dialect,
    data: encodeRowsCsv(rows, columns, dialect),
    rows: rows.length,
    decode: async () => rows,
  };
}

/** The row path's rows, handed on encoded (files the scanner leaves to csv-parse). */
async function* rowsEncoded(rows: AsyncIterable<Row[]>, dialect: Dialect, tuning: EncodedTuning): AsyncGenerator<EncodedRows> {
  let pending: Row[] = [];
  for await (const chunk of rows) {
    for (const row of chunk) pending.push(row);
    if (pending.length >= tuning.rowModeRows) {
      yield encodedFromRows(pending, dialect);
      pending = [];
    }
  }
  if (pending.length) yield encodedFromRows(pending, dialect);
}

interface ChunkInfo {
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
  reject: (record: unknown, error: unknown) => Promise<void>,
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
    let lastLine = chunk.line;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as Field[];
      const line = lastLine + 1;
      lastLine = line + countNewlines(record);
      if (emptyLine(record) || chunk.rejected.has(i)) continue;
      const result = converter.convert(record);
      if (result instanceof RowError) await reject({ line, raw: converter.raw(record) }, result);
      else rows.push(result);
    }
    for (const error of skipped as (CsvError & { lines?: number; record?: unknown })[])
      await reject(
        { line: error.lines ?? null, raw: Array.isArray(error.record) ? error.record.join(opts.delimiter) : null },
        new RowError(`malformed CSV: ${error.message}`, { code: 'bad_record', cause: error }),
      );
    return rows;
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
      tuning,
      range.end ?? Number.POSITIVE_INFINITY,
      hints,
    ),
    Math.max(1, tuning.readAhead),
  );
}

/** A partition's byte range: from a record boundary (else the file's data start) up to a byte (else the end of the file). */
export interface CsvRange {
  start?: RangeStart;
  end?: number;
  /** The file as it was when the ranges were found: offsets are boundaries of that file only. */
  file?: { size: number; mtimeMs: number };
}

/** The byte range of a partition the planner cut (see {@link csvSource}). */
function rangeOf(partition: Partition): CsvRange {
  const { offset, line, lines, lineEnding, end, size, mtime_ms } = partition;
  return {
    ...(typeof size === 'number' && typeof mtime_ms === 'number' ? { file: { size, mtimeMs: mtime_ms } } : {}),
    ...(typeof offset === 'number'
      ? { start: { offset, line: line as number, lines: lines as number, lineEnding: lineEnding === 'crlf' ? 'crlf' : 'lf' } as const }
      : {}),
    ...(typeof end === 'number' ? { end } : {}),
  };
}

/** Reads a range the row path's way (worker); `head` is the file's prefix when already read. */
async function* readRange(path: string, opts: CsvOptions, ctx: TaskContext, range: CsvRange, head?: Prefix): AsyncGenerator<Row[]> {
  await assertUnchanged(path, range);
  if (!range.start) {
    yield* readCsv(path, opts, ctx, undefined, range.end);
    return;
  }
  const prefix = head ?? (await readPrefix(path, opts));
  if (!prefix.names) return;
  yield* readCsv(path, opts, ctx, { ...prefix, ...range.start, names: prefix.names }, range.end);
}

/**
 * Refuses to read a range of a file that changed since the planner cut it (worker):
 * its offsets would no longer fall between records. The plan, and with it a resume,
 * is tied to the file's size and modification time.
 */
async function assertUnchanged(path: string, range: CsvRange): Promise<void> {
  if (!range.file) return;
  let now: { size: number; mtimeMs: number };
  try {
    now = await stat(path);
  } catch (error) {
    throw fileError(error, { who: WHO, path, action: 'read' });
  }
  if (now.size !== range.file.size || now.mtimeMs !== range.file.mtimeMs)
    throw new WeirError(
      `${WHO}: ${path} changed since the run was planned (${range.file.size} bytes, modified ${new Date(range.file.mtimeMs).toISOString()}; now ${now.size} bytes, modified ${new Date(now.mtimeMs).toISOString()}); its partitions are byte ranges of the planned file. Do not change the file during a run; run again to plan the file as it is now`,
      { kind: 'connector', code: 'file_changed', retryable: false },
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
        raw: buf.subarray(0, scanned),
        rejected: new Set(scanner.rejects.map((r) => r.index)),
        line,
        lineEnding: lineEnding ?? scanner.lineEnding,
      };
      for (const r of scanner.rejects) await ctx.reject({ line: r.line, raw: converter.raw(r.fields) }, r.error);
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

// ---------------------------------------------------------------------------
// partitions: byte ranges of one file

/**
 * The byte ranges a file is read in (planner): one, unless it holds more than
 * `split_bytes` of data and its dialect lets {@link recordBoundaries} find record
 * boundaries (one-byte delimiter and quote, LF or CRLF line endings, not UTF-16).
 */
async function splitFile(path: string, opts: CsvOptions): Promise<CsvRange[]> {
  const whole: CsvRange[] = [{}];
  if (!opts.split_bytes || !oneByte(opts.delimiter) || !oneByte(opts.quote)) return whole;
  let file: { size: number; mtimeMs: number };
  try {
    const { size, mtimeMs } = await stat(path);
    file = { size, mtimeMs };
  } catch (error) {
    throw fileError(error, { who: WHO, path, action: 'read' });
  }
  const size = file.size;
  if (size <= opts.split_bytes) return whole;
  const prefix = await readPrefix(path, opts);
  if (prefix.utf16 || !prefix.names || prefix.offset < 0) return whole;
  const lineEnding = prefix.lineEnding ?? (await firstLineEnding(path, opts));
  if (lineEnding !== 'lf' && lineEnding !== 'crlf') return whole;
  const data = size - prefix.offset;
  const parts = Math.min(MAX_PARTITIONS, Math.ceil(data / opts.split_bytes));
  if (parts < 2) return whole;
  const targets = Array.from({ length: parts - 1 }, (_, k) => prefix.offset + Math.round(((k + 1) * data) / parts));
  const dialect = { delimiter: opts.delimiter.charCodeAt(0), quote: opts.quote.charCodeAt(0), lineEnding };
  let starts: RangeStart[];
  try {
    starts = await recordBoundaries(path, dialect, prefix, size, targets);
  } catch (error) {
    throw fileError(error, { who: WHO, path, action: 'read' });
  }
  if (!starts.length) return whole;
  // the last range runs to the end of the file
  return [
    { file, end: (starts[0] as RangeStart).offset },
    ...starts.map((start, k) => ({ file, start, ...(starts[k + 1] ? { end: starts[k + 1]?.offset } : {}) })),
  ];
}

/** Most partitions one file is cut into (a tiny `split_bytes` on a large file gives larger ones): each is a task, a checkpoint and a transaction. */
export const MAX_PARTITIONS = 4096;

/** The record delimiter of a file without header or skipped lines: the one ending its first record, if within the first 64 KiB. */
async function firstLineEnding(path: string, opts: CsvOptions): Promise<LineEnding | 'cr'> {
  const block = await readHead(path, PREFIX_BLOCK_BYTES[1] as number);
  try {
    const records = parseSync(block, {
      ...parseOptions(opts),
      bom: true,
      info: true,
      skip_empty_lines: false,
      to: 1,
    } as ParseOptions) as unknown as {
      info: Info;
    }[];
    const end = records[0]?.info.bytes ?? 0;
    return end < block.length ? lineEndingIn(block, end) : undefined;
  } catch {
    return undefined; // e.g. a quote still open at the block's end: read as one partition
  }
}

/**
 * Creates the csv source for validated options. No I/O: runs on the planner and on
 * every worker. A large file becomes several partitions, each a byte range of
 * whole records (`split_bytes`), read the row path's way or passed through as it is.
 */
export function csvSource(opts: CsvOptions): Source {
  const source = singleFileSource(opts, takeSample, readCsv);
  const pathOf = (partition: Partition, ctx: TaskContext) =>
    typeof partition.path === 'string' ? partition.path : resolvePath(ctx.baseDir, opts.path);
  return {
    ...source,
    async partitions(ctx) {
      const path = resolvePath(ctx.baseDir, opts.path);
      const ranges = await splitFile(path, opts);
      return ranges.map((r, k) => ({
        id: String(k),
        path,
        ...r.start,
        ...(r.end !== undefined ? { end: r.end } : {}),
        ...(r.file ? { size: r.file.size, mtime_ms: r.file.mtimeMs } : {}),
      }));
    },
    read(partition, ctx) {
      return readRange(pathOf(partition, ctx), opts, ctx, rangeOf(partition));
    },
    readEncoded(partition, ctx, format, hints) {
      if (format !== 'csv' || !encodable(opts)) return undefined;
      return readCsvEncoded(pathOf(partition, ctx), opts, ctx, ENCODED_TUNING, rangeOf(partition), hints);
    },
  };
}
