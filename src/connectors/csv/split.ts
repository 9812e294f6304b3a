/**
 * Cutting one CSV file into byte ranges of whole records, so its partitions can be
 * read (and loaded) in parallel (planner, once per run).
 *
 * A line break is a record boundary only outside quoted fields, and only a scan
 * from the start can tell: the walker below reads the file once, jumping from
 * quote to quote (`Buffer.indexOf`), and follows csv-parse's reading of quotes
 * with `relax_quotes`: a quote opens a quoted field only at the start of a field
 * (after the delimiter or a record delimiter), a doubled quote inside is a quote,
 * and anything after a closing quote (`"a"b`) or a quote inside an unquoted field
 * (`a"b`) is text. Each range starts with csv-parse's counters as they are there,
 * so line numbers in dead letters are those of a whole-file read.
 */
import { open } from 'node:fs/promises';
import type { LineEnding } from './encoded.js';

const LF = 0x0a;
const CR = 0x0d;

/** Bytes read per step of the walk. */
const BLOCK_BYTES = 1024 * 1024;

/** Where a range starts: a record's first byte and the row path's counters before it. */
export interface RangeStart {
  /** Byte offset of the record. */
  offset: number;
  /** The row path's line number of the last line before it (line feeds before it, plus the prefix's). */
  line: number;
  /** csv-parse's line counter (`info.lines`) there. */
  lines: number;
  /** The file's record delimiter (csv-parse settles it at the file's first line break, not the range's). */
  lineEnding: 'lf' | 'crlf';
}

/** The data's dialect as the walker needs it (one-byte delimiter and quote). */
export interface SplitDialect {
  delimiter: number;
  quote: number;
  lineEnding: Exclude<LineEnding, undefined>;
}

/**
 * Record boundaries near `targets` (ascending byte offsets): for each, the start of
 * the first record that begins at or after it, with the counters there (several
 * targets inside one long record share one boundary). `start` is a record start
 * with its counters; the data ends at `size`. Targets in the last record give none.
 */
export async function recordBoundaries(
  path: string,
  d: SplitDialect,
  start: Omit<RangeStart, 'lineEnding'>,
  size: number,
  targets: readonly number[],
  blockBytes = BLOCK_BYTES,
): Promise<RangeStart[]> {
  const found: RangeStart[] = [];
  let t = 0; // next target
  while (t < targets.length && (targets[t] as number) <= start.offset) t++;
  if (t >= targets.length) return found;
  const handle = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(Math.max(2, blockBytes)); // two bytes at least: a doubled quote is never cut in two
    let pos = start.offset; // file offset of buf[0]
    let inQuote = false;
    // the two bytes before the block: `start` is a record start, as if after a CRLF
    let prev1 = LF;
    let prev2 = CR;
    // before the block: line feeds, carriage returns, CRLF pairs; and (CRLF files) the pairs inside quoted fields
    let lf = 0;
    let cr = 0;
    let crlfPairs = 0;
    let crlfInside = 0;
    while (pos < size && t < targets.length) {
      const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, size - pos), pos);
      if (bytesRead === 0) break;
      const n = bytesRead;
      const block = buf.subarray(0, n);
      let consumed = n;
      const byteAt = (k: number) => (k >= 0 ? (block[k] as number) : k === -1 ? prev1 : prev2);
      /** Line feeds, carriage returns and CRLF pairs in block[0, b). */
      const counts = (b: number) => {
        let lfs = 0;
        let pairs = 0;
        for (let k = block.indexOf(LF); k >= 0 && k < b; k = block.indexOf(LF, k + 1)) {
          lfs++;
          if (byteAt(k - 1) === CR) pairs++;
        }
        let crs = 0;
        for (let k = block.indexOf(CR); k >= 0 && k < b; k = block.indexOf(CR, k + 1)) crs++;
        return { lfs, crs, pairs };
      };
      let i = 0;
      while (i < n && t < targets.length) {
        const q = block.indexOf(d.quote, i);
        const stop = q < 0 ? n : q;
        if (inQuote) {
          // a CRLF inside a quoted field is two lines to csv-parse, not a record delimiter
          for (let k = block.indexOf(LF, i); k >= 0 && k < stop; k = block.indexOf(LF, k + 1)) if (byteAt(k - 1) === CR) crlfInside++;
          if (q < 0) break;
          if (q + 1 === n && pos + n < size) {
            consumed = q; // maybe the first of a doubled pair: read it again with the next block
            break;
          }
          if (q + 1 < n && block[q + 1] === d.quote) {
            i = q + 2; // a doubled quote: still inside
            continue;
          }
          inQuote = false;
          i = q + 1;
          continue;
        }
        // outside quotes up to `stop`: a record delimiter here may be the boundary a target waits for
        while (t < targets.length && (targets[t] as number) - pos < stop) {
          // a line feed outside quotes ends a record, after a CR or not: LF and CRLF records may mix (as the readers take them)
          const lineFeed = block.indexOf(LF, Math.max(i, (targets[t] as number) - pos));
          const end = lineFeed >= 0 && lineFeed < stop ? lineFeed + 1 : -1;
          if (end < 0) break;
          i = end;
          if (pos + end < size) {
            const c = counts(end);
            // csv-parse counts a CRLF record delimiter as one line (LF and CRLF records may mix)
            const ends = crlfPairs + c.pairs - crlfInside;
            found.push({
              offset: pos + end,
              line: start.line + lf + c.lfs,
              lines: start.lines + lf + c.lfs + cr + c.crs - ends,
              lineEnding: d.lineEnding,
            });
          }
          while (t < targets.length && (targets[t] as number) <= pos + end) t++;
        }
        if (q < 0) break;
        // a quote opens a quoted field only where a field starts; elsewhere it is text
        const b1 = byteAt(q - 1);
        inQuote = b1 === d.delimiter || b1 === LF;
        i = q + 1;
      }
      if (t >= targets.length) break; // every boundary found: the rest of the file is not read
      const c = counts(consumed);
      lf += c.lfs;
      cr += c.crs;
      crlfPairs += c.pairs;
      prev2 = consumed > 1 ? (block[consumed - 2] as number) : prev1;
      prev1 = block[consumed - 1] as number;
      pos += consumed;
    }
  } finally {
    await handle.close();
  }
  return found;
}
