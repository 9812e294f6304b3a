/**
 * An LZ4 block compressor (the raw block format, no frame): what Parquet's
 * LZ4_RAW codec holds. Greedy matching over a 64 KiB window with a hash table
 * of 4-byte sequences, like the reference compressor's fast mode. Runs on
 * workers, once per Parquet page the sink writes. Decompression is
 * hyparquet-compressors' (the source).
 */

const MIN_MATCH = 4;
/** The last match must start at least this many bytes before the end of the block. */
const MF_LIMIT = 12;
/** The last bytes of a block are always literals. */
const LAST_LITERALS = 5;
const MAX_OFFSET = 65_535;
const HASH_LOG = 16;

/** Writes a length of 15 or more in LZ4's continuation form (255, 255, …, rest). */
function writeLength(out: Uint8Array, at: number, length: number): number {
  let rest = length - 15;
  while (rest >= 255) {
    out[at++] = 255;
    rest -= 255;
  }
  out[at++] = rest;
  return at;
}

/** Compresses `input` into one LZ4 block. */
export function lz4CompressBlock(input: Uint8Array): Uint8Array {
  const n = input.length;
  const out = new Uint8Array(n + Math.ceil(n / 255) + 16);
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const table = new Int32Array(1 << HASH_LOG).fill(-1);
  const matchEnd = n - LAST_LITERALS;
  let op = 0;
  let anchor = 0;
  let ip = 0;

  const emit = (literalsEnd: number, offset: number, matchLength: number) => {
    const literals = literalsEnd - anchor;
    const extra = matchLength - MIN_MATCH;
    out[op++] = (Math.min(literals, 15) << 4) | (matchLength ? Math.min(extra, 15) : 0);
    if (literals >= 15) op = writeLength(out, op, literals);
    out.set(input.subarray(anchor, literalsEnd), op);
    op += literals;
    if (!matchLength) return;
    out[op++] = offset & 0xff;
    out[op++] = offset >> 8;
    if (extra >= 15) op = writeLength(out, op, extra);
  };

  while (ip < n - MF_LIMIT) {
    const sequence = view.getUint32(ip, true);
    const h = Math.imul(sequence, 2654435761) >>> (32 - HASH_LOG);
    const ref = table[h] as number;
    table[h] = ip;
    if (ref < 0 || ip - ref > MAX_OFFSET || view.getUint32(ref, true) !== sequence) {
      ip++;
      continue;
    }
    let start = ip;
    let from = ref;
    while (start > anchor && from > 0 && input[start - 1] === input[from - 1]) {
      start--;
      from--;
    }
    let length = ip - start + MIN_MATCH;
    while (start + length < matchEnd && input[start + length] === input[from + length]) length++;
    emit(start, start - from, length);
    ip = start + length;
    anchor = ip;
  }
  emit(n, 0, 0);
  return out.slice(0, op);
}
