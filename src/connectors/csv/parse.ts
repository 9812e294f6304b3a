/**
 * Reading records with csv-parse, as every path of the csv source does (worker and
 * planner): the parser options, a streaming parser over a file or a range of it,
 * the fields of a record (null or quoted text), the header, and where the data
 * starts (skipped lines, header, line ending). What the records become is the
 * row path's (source-rows.ts).
 */
import { open } from 'node:fs/promises';
import { type CsvError, type Info, type Options as ParseOptions, parse } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import { WeirError } from '../../sdk/errors.js';
import { fileError, openToRead } from '../shared/files.js';
import type { Field, LineEnding } from './encoded.js';
import { PREFIX_BLOCK_BYTES, recordDelimiters, WHO } from './limits.js';
import { type CsvOptions, textEncoding } from './spec.js';
import { INVALID_MARK, Utf8Marker } from './utf8.js';

/** Where a parser starts when it does not start at the top of the file: a record boundary and csv-parse's state there. */
export interface ParserStart {
  /** Byte offset of a record's first byte. */
  offset: number;
  /** csv-parse's line counter (`info.lines`) at that point. */
  lines: number;
  lineEnding: LineEnding | 'cr';
}

/**
 * The fields of a record as the row path sees them ({@link Field}). csv-parse gives
 * '' for `""` and for an empty field alike, and the null text quoted or not; which
 * of those were quoted is read off the record's raw text, and only for a record that
 * has such a field (a cast function would tell, at 9x the parse time).
 */
export function fieldReader(opts: CsvOptions): (record: string[], raw: string) => Field[] {
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
export function parseOptions(opts: CsvOptions): ParseOptions {
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

export async function openParser<I extends boolean>(
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
  /** Stops the file's bytes reaching the parser, and closes the file. */
  const detach = () => {
    stream.unpipe(marker ?? parser);
    marker?.unpipe(parser);
    stream.destroy();
    marker?.destroy();
  };
  const stopAtOversized = () => {
    detach();
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
    detach();
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
export interface Oversized {
  records: number;
  lines: number;
}

/** Column names from a header record: trimmed; blanks become `column_<n>`; duplicates are a config error. */
export function headerNames(record: Field[], path: string): string[] {
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
export function checkDeclared(names: string[], opts: CsvOptions, path: string): void {
  const missing = Object.keys(opts.columns ?? {}).filter((c) => !names.includes(c));
  if (missing.length)
    throw new WeirError(
      `${WHO}: columns ${missing.map((c) => `"${c}"`).join(', ')} in the \`columns\` option are not in the header of ${path} (header: ${names.join(', ')}); fix the names in \`columns\` or in the file`,
      { kind: 'config', code: 'unknown_column' },
    );
}

/** An empty line, or one holding only `""`: the row path skips both (as the encoded path does). */
export const emptyLine = (record: Field[]) => record.length === 1 && (record[0] === undefined || record[0] === '');

/** Line breaks inside the fields of a record (quoted multi-line fields). */
export function countNewlines(fields: Field[]): number {
  let n = 0;
  for (const f of fields) {
    if (!f) continue;
    for (let i = f.indexOf('\n'); i !== -1; i = f.indexOf('\n', i + 1)) n++;
  }
  return n;
}

/** What precedes the data: skipped lines, the header, and csv-parse's state after them. */
export interface Prefix extends ParserStart {
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
export async function readPrefix(path: string, opts: CsvOptions): Promise<Prefix> {
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

/** The record delimiter of a file without header or skipped lines: the one ending its first record, if within the first 64 KiB. */
export async function firstLineEnding(path: string, opts: CsvOptions): Promise<LineEnding | 'cr'> {
  const block = await readHead(path, PREFIX_BLOCK_BYTES[1]);
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
