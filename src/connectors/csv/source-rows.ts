/**
 * The csv source's row path (worker; the sample on the planner): records become
 * rows of declared, known or inferred column types, and records that do not fit
 * go to `ctx.reject` while the rest keep flowing. The encoded path hands files and
 * chunks it cannot pass through to this path, so rows, rejected records and their
 * errors are the same on both.
 */
import { stat } from 'node:fs/promises';
import bytesLib from 'bytes';
import type { CsvError } from 'csv-parse';
import { stringify } from 'csv-stringify/sync';
import type { TaskContext } from '../../sdk/connector.js';
import { RowError, WeirError, withLocations } from '../../sdk/errors.js';
import { type ColumnType, emptyRow, type Row, type Schema } from '../../sdk/types.js';
import { type Converted, convertText, TextTypeGuess } from '../shared/columns.js';
import { type FileSample, fileError, lineLocator } from '../shared/files.js';
import type { Field, LineEnding } from './encoded.js';
import { INFER_ROWS, oneByte, WHO } from './limits.js';
import { checkDeclared, countNewlines, emptyLine, headerNames, openParser, type ParserStart, type Prefix, readPrefix } from './parse.js';
import { assertUnchanged, type CsvRange } from './ranges.js';
import type { CsvOptions } from './spec.js';
import { recordBoundaries } from './split.js';
import { invalidUtf8Error, shownText } from './utf8.js';

/** Rows per array yielded by `read`. */
const CHUNK_ROWS = 1000;

/** A record and the line it starts on. */
interface ParsedRecord {
  record: Field[];
  line: number;
}

/** Column types: declared first, then `known` (the planner's schema), else undefined (to infer). */
export function typesFor(names: string[], opts: CsvOptions, known?: Schema): (ColumnType | undefined)[] {
  const fromSchema = new Map(known?.map((c) => [c.name, c.type]));
  return names.map((n) => opts.columns?.[n] ?? fromSchema.get(n));
}

/**
 * The columns: declared or known types as they are, the rest inferred from sample
 * records (positions aligned with `names`). Nulls are no evidence; quoted text, even
 * `""`, is.
 */
export function infer(names: string[], types: (ColumnType | undefined)[], sample: Field[][]): Schema {
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
export async function takeSample(path: string, opts: CsvOptions): Promise<Sample> {
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

/** Turns records into rows, rejecting those that do not fit (worker). */
export class RecordConverter {
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
export interface Resume extends ParserStart {
  names: string[];
  /** The row path's line number of the last line before `offset`. */
  line: number;
}

/** Reads one partition (worker); with `resume`, from the middle of the file; with `end`, up to that byte. */
export async function* readCsv(path: string, opts: CsvOptions, ctx: TaskContext, resume?: Resume, end?: number): AsyncGenerator<Row[]> {
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
        { file: path, ...(error.lines !== undefined ? { line: error.lines } : {}) },
      );
    }
  };
  try {
    let names: string[] | undefined = resume?.names ?? (opts.header ? undefined : Object.keys(opts.columns ?? {}));
    let converter: RecordConverter | undefined;
    /** Records held back while the column types are inferred. */
    const pending: ParsedRecord[] = [];
    let chunk: Row[] = [];
    /** The line each row of `chunk` starts on (for the errors a sink raises on it). */
    let lines: number[] = [];

    const take = async (record: Field[], line: number, c: RecordConverter) => {
      if (invalid(record)) {
        await ctx.reject({ line, raw: c.raw(record) }, invalidUtf8Error(), { file: path, line });
        return;
      }
      const result = c.convert(record);
      if (result instanceof RowError) await ctx.reject({ line, raw: c.raw(record) }, result, { file: path, line });
      else {
        chunk.push(result);
        lines.push(line);
      }
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
        yield withLocations(chunk, lineLocator(path, lines));
        chunk = [];
        lines = [];
        if (ctx.signal.aborted) return;
      }
    }
    if (!converter && names) await start(names);
    await flushSkipped();
    if (chunk.length) yield withLocations(chunk, lineLocator(path, lines));
    const stop = oversized();
    if (stop && names) {
      const line = lastLine + 1;
      await ctx.reject(
        { line, raw: null },
        new RowError(
          `the record starting on this line is larger than max_record_bytes (${formatBytes(opts.max_record_bytes)}): an unclosed quote or a runaway field; fix the file, or raise max_record_bytes if such records are expected`,
          { code: 'record_too_large' },
        ),
        { file: path, line },
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

/** Reads a range the row path's way (worker); `head` is the file's prefix when already read. */
export async function* readRange(path: string, opts: CsvOptions, ctx: TaskContext, range: CsvRange, head?: Prefix): AsyncGenerator<Row[]> {
  await assertUnchanged(path, range);
  if (!range.start) {
    yield* readCsv(path, opts, ctx, undefined, range.end);
    return;
  }
  const prefix = head ?? (await readPrefix(path, opts));
  if (!prefix.names) return;
  yield* readCsv(path, opts, ctx, { ...prefix, ...range.start, names: prefix.names }, range.end);
}
