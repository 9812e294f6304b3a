/**
 * Strict UTF-8 for the csv source's row path (worker, per partition): csv-parse
 * decodes bytes that encode no character as U+FFFD without a word, so invalid
 * bytes are marked before it sees them and the record holding them becomes a
 * row error (`encoding: utf8`, the default). Valid chunks — nearly all — pass
 * through untouched after one native check (`isUtf8`).
 */
import { isUtf8 } from 'node:buffer';
import { Transform, type TransformCallback } from 'node:stream';
import { RowError } from '../../sdk/errors.js';

/**
 * What stands for each invalid byte sequence in the decoded text: U+FFFF, a
 * noncharacter ("permanently reserved for internal use"), so the reader can tell
 * it from a U+FFFD the file really holds.
 */
export const INVALID_MARK = '\uffff';
const MARK_BYTES = Buffer.from(INVALID_MARK, 'utf8');

/** The row error of a record with bytes that encode no character. */
export function invalidUtf8Error(): RowError {
  return new RowError(
    'record is not valid UTF-8 (bytes that encode no character); fix the file, or set encoding: latin1 (each byte one character) or utf8-lossy (such bytes become U+FFFD)',
    { code: 'invalid_utf8' },
  );
}

/** A field's text as a dead letter shows it: each invalid sequence as U+FFFD, as a lossy read has it. */
export const shownText = (text: string) => text.replaceAll(INVALID_MARK, '\ufffd');

/** Bytes at the end of `buf` that start a multi-byte character the next chunk completes (0 to 3). */
function incompleteTail(buf: Buffer): number {
  for (let i = buf.length - 1; i >= Math.max(0, buf.length - 3); i--) {
    const b = buf[i] as number;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return buf.length - i < need ? buf.length - i : 0;
  }
  return 0;
}

/**
 * `bytes` with each invalid sequence replaced by {@link INVALID_MARK}, one mark
 * where a WHATWG decoder writes one U+FFFD (so a dead letter's text is the lossy
 * read's). An unfinished character at the end is invalid too.
 */
export function markInvalid(bytes: Buffer): Buffer {
  const out: Buffer[] = [];
  let from = 0;
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need = 0;
    let lower = 0x80;
    let upper = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lower = 0xa0;
      if (b === 0xed) upper = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lower = 0x90;
      if (b === 0xf4) upper = 0x8f;
    }
    let j = i + 1;
    let ok = need > 0;
    for (let k = 0; ok && k < need; k++, j++) {
      const c = bytes[j];
      if (c === undefined || c < lower || c > upper) ok = false;
      else {
        lower = 0x80;
        upper = 0xbf;
      }
    }
    if (ok) {
      i = j;
      continue;
    }
    // the lead byte and the continuation bytes that fit so far are one invalid sequence; the byte that broke it is read again
    const end = need === 0 ? i + 1 : j - 1 > i ? j - 1 : i + 1;
    out.push(bytes.subarray(from, i), MARK_BYTES);
    from = i = end;
  }
  if (out.length === 0) return bytes;
  out.push(bytes.subarray(from));
  return Buffer.concat(out);
}

/** A stream stage that marks invalid UTF-8 ({@link markInvalid}); `sawInvalid` says whether it ever did. */
export class Utf8Marker extends Transform {
  sawInvalid = false;
  private carry: Buffer | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let buf = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = undefined;
    const tail = incompleteTail(buf);
    if (tail > 0) {
      this.carry = Buffer.from(buf.subarray(buf.length - tail));
      buf = buf.subarray(0, buf.length - tail);
    }
    callback(null, this.checked(buf));
  }

  override _flush(callback: TransformCallback): void {
    callback(null, this.carry ? this.checked(this.carry) : undefined);
  }

  private checked(buf: Buffer): Buffer {
    if (isUtf8(buf)) return buf;
    this.sawInvalid = true;
    return markInvalid(buf);
  }
}
