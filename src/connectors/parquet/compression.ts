/**
 * Parquet compression codecs: every codec the usual writers produce (pyarrow,
 * DuckDB, Polars, Spark) is read through hyparquet-compressors; the sink writes
 * snappy (hyparquet-writer's own), gzip and brotli (node:zlib), lz4_raw (weir's
 * block compressor) and zstd (weir's encoder, or node:zlib's where the Node
 * version has one). Used on workers (pages) and the planner (codec checks).
 */
import * as zlib from 'node:zlib';
import { type CompressionCodec, type Compressors, snappyUncompress } from 'hyparquet';
import { compressors as decompressors } from 'hyparquet-compressors';
import { Corrupt } from './corrupt.js';
import { lz4CompressBlock } from './lz4.js';
import type { Compression } from './spec.js';
import { zstdCompress } from './zstd.js';

/** node:zlib's zstd decompressor, where the Node version has one (22.15 and later). */
const nativeZstd = (zlib as { zstdDecompressSync?: (input: Uint8Array, options: { maxOutputLength: number }) => Buffer })
  .zstdDecompressSync;

/**
 * Decompressors handed to hyparquet and used by the page reader: hyparquet-compressors'
 * snappy (WebAssembly), zstd, lz4 (hadoop framing, or plain blocks as older writers
 * wrote) and lz4_raw; node:zlib's gzip and brotli (native, several times faster than
 * the JavaScript inflaters).
 */
export const DECOMPRESSORS: Compressors = {
  ...decompressors,
  // never more than the page header says: a page that inflates beyond it is corrupt, not a reason to fill memory
  GZIP: (input, length) => zlib.unzipSync(input, { maxOutputLength: Math.max(1, length) }),
  BROTLI: (input, length) => zlib.brotliDecompressSync(input, { maxOutputLength: Math.max(1, length) }),
  ...(nativeZstd ? { ZSTD: (input: Uint8Array, length: number) => nativeZstd(input, { maxOutputLength: Math.max(1, length) }) } : {}),
};

/** Codecs the source can read; LZO is the only one left out (no writer in use produces it). */
export const READABLE_CODECS: ReadonlySet<CompressionCodec> = new Set([
  'UNCOMPRESSED',
  'SNAPPY',
  'GZIP',
  'BROTLI',
  'ZSTD',
  'LZ4',
  'LZ4_RAW',
]);

/**
 * Decompresses one page's bytes (`size` is the page header's uncompressed size).
 * `into`, when given, lends a buffer of `size` bytes that snappy pages are
 * decompressed into, so one column's pages reuse one buffer: a fresh one per page
 * (8 MB for a DuckDB page of a million BIGINTs) is garbage that V8 collects only
 * once 64 MB of it have piled up. Not zstd: fzstd allocates a window of the page's
 * size either way (and decompressing into a given buffer is 15 times slower).
 */
export function decompress(codec: CompressionCodec, bytes: Uint8Array, size: number, into?: (size: number) => Uint8Array): Uint8Array {
  checkClaimedSize(codec, bytes, size);
  if (codec === 'UNCOMPRESSED') return bytes;
  let out: Uint8Array;
  try {
    if (into && codec === 'SNAPPY') {
      out = into(size);
      snappyUncompress(bytes, out);
    } else {
      const fn = DECOMPRESSORS[codec];
      if (!fn) throw new Error(`no decompressor for ${codec}`);
      out = fn(bytes, size);
    }
  } catch (error) {
    throw new Corrupt(`a ${codec} page cannot be decompressed (${(error as Error).message})`);
  }
  if (out.length !== size) throw new Corrupt(`a ${codec} page decompressed to ${out.length} bytes, its header says ${size}`);
  return out;
}

/** Most bytes one compressed byte can become: deflate's and LZ4's limits (brotli and zstd have none worth a bound). */
const MAX_RATIO: Partial<Record<CompressionCodec, number>> = { GZIP: 1032, LZ4: 256, LZ4_RAW: 256 };

/**
 * Throws unless a page's claimed uncompressed size is one its compressed bytes
 * can hold, before a buffer of that size is allocated: the size itself for
 * uncompressed pages, the length snappy and zstd write into their own headers,
 * the codec's highest ratio for deflate and LZ4.
 */
function checkClaimedSize(codec: CompressionCodec, bytes: Uint8Array, size: number): void {
  const lie = (what: string) => new Corrupt(`a ${codec} page of ${bytes.length} bytes claims ${size} bytes uncompressed, ${what}`);
  if (codec === 'UNCOMPRESSED' && bytes.length !== size) throw lie('but it is not compressed');
  const ratio = MAX_RATIO[codec];
  if (ratio && size > bytes.length * ratio + 64) throw lie('more than the codec can produce');
  if (codec === 'SNAPPY') {
    const own = snappyLength(bytes);
    if (own !== size) throw lie(`its own header says ${own}`);
  }
  if (codec === 'ZSTD') {
    const problem = zstdFrameProblem(bytes, size);
    if (problem) throw lie(problem);
  }
}

/** The uncompressed length a snappy block starts with (a varint), or -1 when it has none. */
function snappyLength(bytes: Uint8Array): number {
  let value = 0;
  for (let i = 0, scale = 1; i < 5 && i < bytes.length; i++, scale *= 128) {
    const b = bytes[i] as number;
    value += (b & 0x7f) * scale;
    if (!(b & 0x80)) return value;
  }
  return -1;
}

const ZSTD_MAGIC = 0xfd2fb528;
/** Largest window weir lets fzstd allocate for a frame that does not declare its size. */
const ZSTD_MAX_WINDOW = 8 * 2 ** 20;

/**
 * What is wrong with a zstd page's frame header, if anything: fzstd allocates
 * the content size it declares at once (or, when it declares none, its window),
 * so that must be at most the page's size (or a window no larger than the page or 8 MiB).
 */
function zstdFrameProblem(bytes: Uint8Array, size: number): string | undefined {
  if (bytes.length < 6 || new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true) !== ZSTD_MAGIC)
    return 'but it does not start with a zstd frame';
  const flags = bytes[4] as number;
  const single = (flags >> 5) & 1;
  const fcf = flags >> 6;
  const sizeBytes = fcf ? 1 << fcf : single;
  if (!sizeBytes) {
    const window = 1 << (10 + ((bytes[5] as number) >> 3));
    const total = window + (window >> 3) * ((bytes[5] as number) & 7);
    return total > Math.max(size, ZSTD_MAX_WINDOW) ? `and its frame asks for a window of ${total} bytes` : undefined;
  }
  let at = 5 + (single ? 0 : 1) + ([0, 1, 2, 4][flags & 3] as number);
  if (at + sizeBytes > bytes.length) return 'but its frame header is cut short';
  let declared = 0;
  for (let i = 0; i < sizeBytes; i++, at++) declared += (bytes[at] as number) * 2 ** (8 * i);
  if (fcf === 1) declared += 256;
  // a page may hold several frames: each declares its own part
  return declared <= size ? undefined : `but its frame header says ${declared}`;
}

/** The Parquet codec the sink's `compression` option writes (`lz4` is LZ4_RAW, as DuckDB and pyarrow write it). */
export const CODEC: Record<Compression, CompressionCodec> = {
  snappy: 'SNAPPY',
  gzip: 'GZIP',
  brotli: 'BROTLI',
  zstd: 'ZSTD',
  lz4: 'LZ4_RAW',
  lz4_raw: 'LZ4_RAW',
  uncompressed: 'UNCOMPRESSED',
};

type Compress = (input: Uint8Array) => Uint8Array;
const nodeZstd = (zlib as unknown as { zstdCompressSync?: (input: Uint8Array) => Buffer }).zstdCompressSync;

/**
 * Compressors handed to hyparquet-writer, which builds in only snappy and calls
 * `compressors[codec](page)` for every other codec. Brotli at quality 5: near its
 * best ratio at a usable speed; zstd through node:zlib when this Node has it (22.15+).
 */
export const COMPRESSORS: Partial<Record<CompressionCodec, Compress>> = {
  GZIP: (input) => zlib.gzipSync(input),
  BROTLI: (input) => zlib.brotliCompressSync(input, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } }),
  ZSTD: nodeZstd ? (input) => nodeZstd(input) : zstdCompress,
  LZ4_RAW: lz4CompressBlock,
};
