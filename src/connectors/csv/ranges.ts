/**
 * A csv source's partitions as byte ranges of one file: the planner cuts a large
 * file into ranges of whole records (`split_bytes`, boundaries found by split.ts),
 * and a worker reads a partition's range back from it, refusing a file that
 * changed since the plan.
 */
import { stat } from 'node:fs/promises';
import { WeirError } from '../../sdk/errors.js';
import type { Partition } from '../../sdk/types.js';
import { fileError } from '../shared/files.js';
import { MAX_PARTITIONS, oneByte, WHO } from './limits.js';
import { firstLineEnding, readPrefix } from './parse.js';
import type { CsvOptions } from './spec.js';
import { type RangeStart, recordBoundaries } from './split.js';

/** A partition's byte range: from a record boundary (else the file's data start) up to a byte (else the end of the file). */
export interface CsvRange {
  start?: RangeStart;
  end?: number;
  /** The file as it was when the ranges were found: offsets are boundaries of that file only. */
  file?: { size: number; mtimeMs: number };
}

/** The byte range of a partition the planner cut (see {@link splitFile}). */
export function rangeOf(partition: Partition): CsvRange {
  const { offset, line, lines, lineEnding, end, size, mtime_ms } = partition;
  return {
    ...(typeof size === 'number' && typeof mtime_ms === 'number' ? { file: { size, mtimeMs: mtime_ms } } : {}),
    ...(typeof offset === 'number'
      ? { start: { offset, line: line as number, lines: lines as number, lineEnding: lineEnding === 'crlf' ? 'crlf' : 'lf' } as const }
      : {}),
    ...(typeof end === 'number' ? { end } : {}),
  };
}

/**
 * Refuses to read a range of a file that changed since the planner cut it (worker):
 * its offsets would no longer fall between records. The plan, and with it a resume,
 * is tied to the file's size and modification time.
 */
export async function assertUnchanged(path: string, range: CsvRange): Promise<void> {
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

/**
 * The byte ranges a file is read in (planner): one, unless it holds more than
 * `split_bytes` of data and its dialect lets {@link recordBoundaries} find record
 * boundaries (one-byte delimiter and quote, LF or CRLF line endings, not UTF-16).
 */
export async function splitFile(path: string, opts: CsvOptions): Promise<CsvRange[]> {
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
