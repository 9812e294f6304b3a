/**
 * Parquet file access shared by the source, the sink and the checks: an
 * AsyncBuffer that reads byte ranges through a file handle (hyparquet fetches
 * only the footer and the row groups it is asked for, never the whole file),
 * the codec check, and raw footer access for the merge.
 * Used on the planner and on workers alike.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { type AsyncBuffer, type FileMetaData, parquetMetadata } from 'hyparquet';
import { markGeoColumns } from 'hyparquet/src/geoparquet.js';
import { WeirError } from '../../sdk/errors.js';
import { fileError } from '../shared/files.js';
import { READABLE_CODECS } from './compression.js';
import { Corrupt, checkMetadata, corruptFile, MAX_FOOTER_BYTES } from './corrupt.js';
import { checkCompact } from './thrift.js';

const MAGIC = 0x31524150; // "PAR1" little-endian
const ENCRYPTED_MAGIC = 0x45524150; // "PARE"

/** Fills `out` with the bytes at `position`. */
export async function readInto(handle: FileHandle, out: Uint8Array, position: number): Promise<Uint8Array> {
  let done = 0;
  while (done < out.length) {
    const { bytesRead } = await handle.read(out, done, out.length - done, position + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${position + done} (the file shrank while being read?)`);
    done += bytesRead;
  }
  return out;
}

/** Reads exactly `length` bytes at `position` into a fresh ArrayBuffer. */
export async function readRange(handle: FileHandle, position: number, length: number): Promise<ArrayBuffer> {
  return (await readInto(handle, new Uint8Array(length), position)).buffer as ArrayBuffer;
}

/** An {@link AsyncBuffer} over an open file handle: each slice is one positioned read. */
export function fileAsyncBuffer(handle: FileHandle, byteLength: number): AsyncBuffer {
  return {
    byteLength,
    slice: (start: number, end: number = byteLength) => readRange(handle, start, Math.max(0, end - start)),
  };
}

/** An open Parquet file with its parsed metadata. Close it when done. */
export interface OpenParquet {
  handle: FileHandle;
  size: number;
  file: AsyncBuffer;
  metadata: FileMetaData;
  close(): Promise<void>;
}

/** Opens a Parquet file and parses its footer; errors name the path and the fix. */
export async function openParquet(path: string, who: string, option = 'path'): Promise<OpenParquet> {
  let handle: FileHandle;
  let size: number;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw fileError(error, { who, path, option, action: 'read' });
  }
  try {
    const st = await handle.stat();
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    size = st.size;
    await checkMagic(handle, size, path, who, option);
    const metadata = await readMetadata(handle, size, path, who);
    return { handle, size, file: fileAsyncBuffer(handle, size), metadata, close: () => handle.close() };
  } catch (error) {
    await handle.close().catch(() => {});
    throw fileError(error, { who, path, option, action: 'read' });
  }
}

/**
 * Reads, checks and decodes the footer: its length against the file's size, its
 * thrift against its own length (before hyparquet's decoder allocates what a
 * count says), and the decoded metadata against itself and the file.
 */
async function readMetadata(handle: FileHandle, size: number, path: string, who: string): Promise<FileMetaData> {
  const length = new DataView(await readRange(handle, size - 8, 4)).getUint32(0, true);
  const footerStart = size - 8 - length;
  if (footerStart < 4) throw corruptFile(path, who, `its footer length ${length} does not fit in its ${size} bytes`);
  if (length > MAX_FOOTER_BYTES)
    throw corruptFile(
      path,
      who,
      `its footer is ${length} bytes, more than the ${MAX_FOOTER_BYTES} weir reads (a file with that many row groups is better written with fewer, larger ones)`,
    );
  // the footer and its 8-byte tail, as hyparquet's decoder takes them
  const footer = new Uint8Array(await readRange(handle, footerStart, length + 8));
  let metadata: FileMetaData;
  try {
    checkCompact(footer.subarray(0, length));
    // GeoParquet columns are marked after the schema is checked: hyparquet's marking loops forever on a negative num_children
    metadata = parquetMetadata(footer.buffer as ArrayBuffer, { geoparquet: false });
  } catch (error) {
    throw corruptFile(path, who, `its footer is not valid Parquet metadata (${(error as Error).message})`, error);
  }
  try {
    checkMetadata(metadata, { size, footerStart });
  } catch (error) {
    if (error instanceof Corrupt) throw corruptFile(path, who, error.message, error);
    throw error;
  }
  try {
    markGeoColumns(metadata.schema, metadata.key_value_metadata);
  } catch (error) {
    throw corruptFile(path, who, `its "geo" metadata is not valid GeoParquet (${(error as Error).message})`, error);
  }
  return metadata;
}

function notParquet(path: string, who: string, option: string, reason: string, cause?: unknown): WeirError {
  return new WeirError(`${who}: ${path} is not a readable Parquet file (${reason}); check the \`${option}\` option`, {
    kind: 'connector',
    code: 'not_parquet',
    cause,
  });
}

async function checkMagic(handle: FileHandle, size: number, path: string, who: string, option: string): Promise<void> {
  const head = new DataView(await readRange(handle, 0, Math.min(4, size)));
  if (size < 12) {
    if (size >= 4 && head.getUint32(0, true) === MAGIC)
      throw corruptFile(path, who, `it starts as Parquet but is only ${size} bytes long: it was cut short`);
    throw notParquet(path, who, option, `only ${size} bytes long`);
  }
  const tail = new DataView(await readRange(handle, size - 4, 4));
  if (tail.getUint32(0, true) === ENCRYPTED_MAGIC)
    throw new WeirError(`${who}: ${path} is an encrypted Parquet file, which weir cannot read; decrypt it first`, {
      kind: 'connector',
      code: 'parquet_encrypted',
    });
  if (head.getUint32(0, true) === MAGIC && tail.getUint32(0, true) !== MAGIC)
    throw corruptFile(path, who, 'it starts as Parquet but does not end in PAR1: it was cut short (truncated while written or copied?)');
  if (head.getUint32(0, true) !== MAGIC || tail.getUint32(0, true) !== MAGIC)
    throw notParquet(path, who, option, 'no PAR1 magic bytes at its start and end');
}

/** Throws when a column chunk uses a codec the source cannot decompress. */
export function assertReadableCodecs(metadata: FileMetaData, columns: readonly string[] | undefined, path: string, who: string): void {
  const bad = new Map<string, Set<string>>();
  for (const rg of metadata.row_groups) {
    for (const chunk of rg.columns) {
      const meta = chunk.meta_data;
      if (!meta || READABLE_CODECS.has(meta.codec)) continue;
      const name = meta.path_in_schema[0] ?? '?';
      if (columns && !columns.includes(name)) continue;
      const set = bad.get(meta.codec) ?? new Set<string>();
      bad.set(meta.codec, set.add(name));
    }
  }
  if (bad.size === 0) return;
  const detail = [...bad].map(([codec, cols]) => `${codec} (columns ${[...cols].join(', ')})`).join('; ');
  throw new WeirError(
    `${who}: ${path} uses compression weir cannot read: ${detail}. Supported: uncompressed, snappy, gzip, brotli, zstd, lz4, lz4_raw; rewrite the file with one of them (e.g. pyarrow compression="zstd")`,
    { kind: 'connector', code: 'unsupported_codec' },
  );
}

/** Where a Parquet file's footer (the thrift FileMetaData) sits. */
export interface FooterLocation {
  size: number;
  /** Offset of the first footer byte = end of the data (row groups, indexes, bloom filters). */
  footerStart: number;
  footer: Uint8Array;
}

/** Reads the raw footer of an open Parquet file. */
export async function readFooter(handle: FileHandle, path: string, who: string): Promise<FooterLocation> {
  const { size } = await handle.stat();
  await checkMagic(handle, size, path, who, 'path');
  const length = new DataView(await readRange(handle, size - 8, 4)).getUint32(0, true);
  const footerStart = size - 8 - length;
  if (footerStart < 4) throw notParquet(path, who, 'path', `footer length ${length} does not fit in ${size} bytes`);
  return { size, footerStart, footer: new Uint8Array(await readRange(handle, footerStart, length)) };
}

/** The PAR1 magic as bytes. */
export const MAGIC_BYTES = Uint8Array.of(0x50, 0x41, 0x52, 0x31);
