/**
 * A Zstandard frame writer for Parquet's ZSTD codec, for Node versions whose
 * node:zlib has no zstd (Node 20). Runs on workers, once per page the sink writes.
 */

const MAGIC = 0xfd2fb528;
const MAX_BLOCK = 128 * 1024;

/** Compresses `input` into one zstd frame (single segment, content size recorded). */
export function zstdCompress(input: Uint8Array): Uint8Array {
  const blocks = Math.max(1, Math.ceil(input.length / MAX_BLOCK));
  const out = new Uint8Array(9 + blocks * 3 + input.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  out[4] = 0xa0; // 4-byte frame content size, single segment, no checksum, no dictionary
  view.setUint32(5, input.length, true);
  let op = 9;
  for (let at = 0, b = 0; b < blocks; b++, at += MAX_BLOCK) {
    const size = Math.min(MAX_BLOCK, input.length - at);
    const last = b === blocks - 1 ? 1 : 0;
    const header = (size << 3) | last; // block type 0: raw
    out[op++] = header & 0xff;
    out[op++] = (header >> 8) & 0xff;
    out[op++] = (header >> 16) & 0xff;
    out.set(input.subarray(at, at + size), op);
    op += size;
  }
  return out.subarray(0, op);
}
