/**
 * The csv source: one partition per file, streamed with csv-parse (the file is
 * never held in memory), fields converted to column types, bad records handed
 * to `ctx.reject` while the rest keep flowing.
 */
import { open } from 'node:fs/promises';
import { type CsvError, type Info, parse } from 'csv-parse';
import { stringify } from 'csv-stringify/sync';
import type { Source, TaskContext } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import type { ColumnType, Row, Schema } from '../../sdk/types.js';
import { type Converted, convertText, TextTypeGuess } from '../shared/columns.js';
import { type FileSample, fileError, singleFileSource } from '../shared/files.js';
import type { CsvOptions } from './spec.js';

/** Rows inspected to infer column types. */
export const INFER_ROWS = 1000;
/** Rows per array yielded by `read`. */
const CHUNK_ROWS = 1000;
/** A record larger than this is rejected (guards memory against a runaway unclosed quote). */
const MAX_RECORD_BYTES = 64 * 1024 * 1024;

const WHO = 'csv source';

/** A record and the line it starts on. */
interface ParsedRecord {
  record: string[];
  line: number;
}

/**
 * A parser over the file at `path`; malformed records land in `skipped`. With
 * `info`, records come with csv-parse's line and byte counts (2-3x slower: the
 * planner's sample only); without, they are plain arrays and empty lines come
 * through as `['']`, so the reader can count lines itself.
 */
async function openParser<I extends boolean>(path: string, opts: CsvOptions, info: I) {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
    if ((await handle.stat()).isDirectory()) {
      await handle.close();
      throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    }
  } catch (error) {
    throw fileError(error, { who: WHO, path, action: 'read' });
  }
  const skipped: CsvError[] = [];
  const parser = parse({
    delimiter: opts.delimiter,
    quote: opts.quote,
    escape: opts.quote,
    encoding: opts.encoding,
    bom: true,
    info,
    from_line: opts.skip_lines + 1,
    relax_column_count: true,
    relax_quotes: true, // keep `a"b` and `"a"b` as text rather than swallow the lines after them
    skip_empty_lines: info,
    skip_records_with_error: true,
    max_record_size: MAX_RECORD_BYTES,
    on_skip: (error) => {
      if (error) skipped.push(error);
    },
  });
  const stream = handle.createReadStream();
  stream.on('error', (error) => parser.destroy(fileError(error, { who: WHO, path, action: 'read' })));
  stream.pipe(parser);
  const close = () => {
    stream.unpipe(parser);
    stream.destroy();
    parser.destroy();
  };
  return { parser: parser as AsyncIterable<I extends true ? { record: string[]; info: Info } : string[]>, skipped, close };
}

/** Column names from a header record: trimmed; blanks become `column_<n>`; duplicates are a config error. */
function headerNames(record: string[], path: string): string[] {
  const names = record.map((n, i) => n.trim() || `column_${i + 1}`);
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

/** Fills undefined types by inference over sample records (positions aligned with `names`). */
function infer(types: (ColumnType | undefined)[], sample: string[][], nullValue: string): ColumnType[] {
  return types.map((t, i) => {
    if (t) return t;
    const guess = new TextTypeGuess();
    for (const record of sample) {
      const v = record[i];
      if (v !== undefined && v !== nullValue && v !== '') guess.add(v);
    }
    return guess.type;
  });
}

interface Sample extends FileSample {
  schema: Schema;
}

/** Reads the header and up to {@link INFER_ROWS} records (planner). */
async function takeSample(path: string, opts: CsvOptions): Promise<Sample> {
  const { parser, close } = await openParser(path, opts, true);
  let names: string[] | undefined = opts.header ? undefined : Object.keys(opts.columns ?? {});
  const records: string[][] = [];
  let bytes = 0;
  let headerBytes = 0;
  let complete = true;
  try {
    for await (const { record, info } of parser) {
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
  const types = infer(typesFor(names, opts), records, opts.null_value);
  return {
    schema: names.map((name, i) => ({ name, type: types[i] as ColumnType, nullable: true })),
    rows: records.length,
    bytes,
    complete,
  };
}

/** Line breaks inside the fields of a record (quoted multi-line fields). */
function countNewlines(fields: string[]): number {
  let n = 0;
  for (const f of fields) {
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

  /** The row, or the error that explains why the record is not one. */
  convert(record: string[]): Row | RowError {
    const { names, opts } = this;
    if (record.length !== names.length)
      return new RowError(
        `record has ${record.length} field(s), expected ${names.length} (${names.join(', ')}); check the delimiter and quoting on this line`,
        { code: 'bad_record' },
      );
    const row: Row = {};
    for (let i = 0; i < names.length; i++) {
      const text = record[i] as string;
      const name = names[i] as string;
      if (text === opts.null_value || (text === '' && !this.stringColumns[i])) {
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

  /** The record as CSV text, for the dead-letter entry. */
  raw(record: string[]): string {
    return stringify([record], { delimiter: this.opts.delimiter, quote: this.opts.quote, escape: this.opts.quote, eof: false });
  }
}

/** Reads one partition (worker). */
async function* readCsv(path: string, opts: CsvOptions, ctx: TaskContext): AsyncGenerator<Row[]> {
  const { parser, skipped, close } = await openParser(path, opts, false);
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
    let names: string[] | undefined = opts.header ? undefined : Object.keys(opts.columns ?? {});
    let converter: RecordConverter | undefined;
    /** Records held back while the column types are inferred. */
    const pending: ParsedRecord[] = [];
    let chunk: Row[] = [];

    const take = async (record: string[], line: number, c: RecordConverter) => {
      const result = c.convert(record);
      if (result instanceof RowError) await ctx.reject({ line, raw: c.raw(record) }, result);
      else chunk.push(result);
    };
    /** Settles the column types (inferring from `pending` where needed) and converts the held-back records. */
    const start = async (columnNames: string[]) => {
      const types = infer(
        typesFor(columnNames, opts, ctx.schema),
        pending.map((p) => p.record),
        opts.null_value,
      );
      const c = new RecordConverter(columnNames, types, opts);
      for (const p of pending) await take(p.record, p.line, c);
      pending.length = 0;
      return c;
    };
    const needsInference = (columnNames: string[]) => typesFor(columnNames, opts, ctx.schema).includes(undefined);
    if (names && !needsInference(names)) converter = await start(names);

    /** The last line of the previous record. */
    let lastLine = opts.skip_lines;
    for await (const record of parser) {
      const line = lastLine + 1;
      lastLine = line + countNewlines(record);
      if (record.length === 1 && record[0] === '') continue; // an empty line
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
  } finally {
    close();
  }
}

/** Creates the csv source for validated options. No I/O: runs on the planner and on every worker. */
export function csvSource(opts: CsvOptions): Source {
  return singleFileSource(opts, takeSample, readCsv);
}
