/**
 * Parquet's RLE/bit-packed hybrid encoding (levels, dictionary indexes, RLE
 * booleans), decoded within bounds: a run never writes past the entries the
 * page declares, no byte is read past the end given, and bytes that end before
 * every entry is decoded are a {@link Corrupt} file. hyparquet's decoder loops
 * over a run's count whatever the output's size (a run header claiming 2^31
 * entries spins for seconds), so the page reader uses this one. Runs on workers.
 */
import { Corrupt } from './corrupt.js';

/**
 * Fills `out` with values of `width` bits (0-32) from `bytes[start, end)`.
 * `what` names the values in messages ("definition levels of column x").
 */
export function decodeHybrid(
  bytes: Uint8Array,
  start: number,
  end: number,
  width: number,
  out: Uint8Array | Int32Array,
  what: string,
): void {
  if (start < 0 || end > bytes.length || start > end)
    throw new Corrupt(`${what} lie at bytes ${start}-${end} of a page of ${bytes.length} bytes`);
  if (width > 32) throw new Corrupt(`${what} have a bit width of ${width}`);
  let pos = start;
  let seen = 0;
  const valueBytes = (width + 7) >> 3;
  while (seen < out.length) {
    let header = 0;
    let scale = 1;
    for (;;) {
      if (pos >= end) throw new Corrupt(`${what} end after ${seen} of ${out.length} entries`);
      const b = bytes[pos++] as number;
      header += (b & 0x7f) * scale;
      if (!(b & 0x80)) break;
      scale *= 128;
      if (scale > 2 ** 35) throw new Corrupt(`${what} have a run header longer than 5 bytes`);
    }
    const n = Math.floor(header / 2);
    if (header % 2 === 1) {
      const values = Math.min(n * 8, out.length - seen);
      const needed = Math.ceil((values * width) / 8);
      if (pos + needed > end) throw new Corrupt(`${what} end inside a bit-packed run (${seen} of ${out.length} entries decoded)`);
      unpack(bytes, pos, width, out, seen, values);
      pos = Math.min(end, pos + n * width);
      seen += values;
    } else {
      if (pos + valueBytes > end) throw new Corrupt(`${what} end inside a run (${seen} of ${out.length} entries decoded)`);
      let value = 0;
      for (let i = 0; i < valueBytes; i++) value += (bytes[pos + i] as number) * 2 ** (8 * i);
      pos += valueBytes;
      const count = Math.min(n, out.length - seen);
      out.fill(value, seen, seen + count);
      seen += count;
    }
  }
}

/** `count` values of `width` bits, least significant bit first, from `bytes` at `pos` into `out` at `at`. */
function unpack(bytes: Uint8Array, pos: number, width: number, out: Uint8Array | Int32Array, at: number, count: number): void {
  if (width === 0) {
    out.fill(0, at, at + count);
    return;
  }
  if (width > 24) {
    // rare (dictionaries of more than 16M entries): exact arithmetic beyond 31 bits
    for (let i = 0; i < count; i++) {
      let v = 0;
      for (let b = 0; b < width; b++) {
        const bit = i * width + b;
        v += (((bytes[pos + (bit >> 3)] as number) >> (bit & 7)) & 1) * 2 ** b;
      }
      out[at + i] = v;
    }
    return;
  }
  const mask = (1 << width) - 1;
  let acc = 0;
  let bits = 0;
  let p = pos;
  for (let i = 0; i < count; i++) {
    while (bits < width) {
      acc |= (bytes[p++] as number) << bits;
      bits += 8;
    }
    out[at + i] = acc & mask;
    acc >>>= width;
    bits -= width;
  }
}
