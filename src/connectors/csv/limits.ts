/**
 * The constants and dialect rules that the csv source's paths share: the row path
 * (source-rows.ts), the encoded fast path (source-encoded.ts, encoded.ts) and the
 * planner's split into byte ranges (ranges.ts, split.ts). A value both paths must
 * agree on lives here once, so the paths cannot drift apart.
 */
import type { LineEnding } from './encoded.js';

export { oneByte } from '../shared/csv-text.js';

/** The name errors and logs give the csv source. */
export const WHO = 'csv source';

/**
 * The record-size cap by default (`max_record_bytes`): a larger record is one row
 * error on the row path, and the scanner of the encoded path leaves it to the row path.
 */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

/** Rows inspected to infer column types (planner and worker alike). */
export const INFER_ROWS = 1000;

/** Most partitions one file is cut into (a tiny `split_bytes` on a large file gives larger ones): each is a task, a checkpoint and a transaction. */
export const MAX_PARTITIONS = 4096;

/** Bytes read at once to find the header: a first try, a second (also how far the first line ending is looked for). */
export const PREFIX_BLOCK_BYTES = [4 * 1024, 64 * 1024] as const;

/**
 * Record delimiters as csv-parse takes them: a file of LF or CRLF records may mix
 * the two, record by record, as RFC 4180 readers allow (a CRLF header over LF
 * records, or the other way round); only old Mac files (bare CR) keep their own.
 */
const RECORD_DELIMITERS = { lf: ['\r\n', '\n'], crlf: ['\r\n', '\n'], cr: ['\r'] } as const;

/** The record delimiters for a file whose first line ending is `lineEnding` (unknown: LF or CRLF). */
export const recordDelimiters = (lineEnding: LineEnding | 'cr') => [...RECORD_DELIMITERS[lineEnding ?? 'lf']];
