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
import { lz4CompressBlock } from './lz4.js';
import type { Compression } from './spec.js';
import { zstdCompress } from './zstd.js';

/**
 * Decompressors handed to hyparquet and used by the page reader: hyparquet-compressors'
 * snappy (WebAssembly), zstd, lz4 (hadoop framing, or plain blocks as older writers
 * wrote) and lz4_raw; node:zlib's gzip and brotli (native, several times faster than
 * the JavaScript inflaters).
 */
export const DECOMPRESSORS: Compressors = {
  ...decompressors,
  GZIP: (input) => zlib.unzipSync(input),
  BROTLI: (input) => zlib.brotliDecompressSync(input),
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
  if (codec === 'UNCOMPRESSED') return bytes;
  let out: Uint8Array;
  if (into && codec === 'SNAPPY') {
    out = into(size);
    snappyUncompress(bytes, out);
  } else {
    const fn = DECOMPRESSORS[codec];
    if (!fn) throw new Error(`no decompressor for ${codec}`);
    out = fn(bytes, size);
  }
  if (out.length !== size) throw new Error(`a ${codec} page decompressed to ${out.length} bytes, its header says ${size}`);
  return out;
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
