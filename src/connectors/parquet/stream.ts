/**
 * Large zstd pages decompressed as they are read. DuckDB and Spark write a
 * million values per page (a text column of a 1M-row group: 20 MB compressed,
 * 48 MB decompressed); decompressed whole, one row group's pages alone would
 * hold ~90 MB. Their zstd frames use a window of a few MB, so the page is
 * streamed instead: compressed bytes are read in slices, fzstd's streaming
 * decompressor turns them into blocks, and the values are decoded from a small
 * rolling window of those blocks. Flat PLAIN pages only (the common case of a
 * large page); runs on workers, once per such page.
 */
import { Decompress } from 'fzstd';
import type { ParquetType } from 'hyparquet';
import { Corrupt } from './corrupt.js';
import type { Convert } from './read-values.js';

/** Fills `into` with the file's bytes at `position`. */
type ReadBytes = (position: number, into: Uint8Array) => Promise<Uint8Array>;

/** Compressed bytes read at a time. */
const READ_BYTES = 128 << 10; // zstd turns each into up to ~1 MB of blocks, all queued until read
/** A page decompressing to at least this many bytes is streamed. */
export const STREAM_PAGE_BYTES = 1 << 20;

/** The decompressed bytes of one page, available a window at a time from a cursor. */
export class StreamedBytes {
  private window = new Uint8Array(0);
  private text = Buffer.alloc(0);
  view = new DataView(this.window.buffer);
  /** The cursor: the next unread byte, as an offset into `bytes`. */
  at = 0;
  private end = 0;
  private readonly blocks: Uint8Array[] = [];
  private position: number;
  private readonly stop: number;
  private produced = 0;
  private readonly decompressor = new Decompress((block) => {
    this.produced += block.length;
    this.blocks.push(block);
  });

  constructor(
    private readonly read: ReadBytes,
    position: number,
    compressedSize: number,
    private readonly size: number,
  ) {
    this.position = position;
    this.stop = position + compressedSize;
  }

  /** The window's bytes (valid until the next `ensure`). */
  get bytes(): Uint8Array {
    return this.window;
  }

  /** Bytes readable past the cursor without waiting. */
  get available(): number {
    return this.end - this.at;
  }

  /** UTF-8 text of window bytes `[start, end)`. */
  utf8(start: number, end: number): string {
    return this.text.toString('utf8', start, end);
  }

  /** Makes bytes `[at, at + n)` readable; throws when the page holds fewer. */
  async ensure(n: number): Promise<void> {
    while (this.available < n) {
      const block = this.blocks.shift() ?? (await this.decompressMore());
      if (!block)
        throw new Corrupt(`a zstd page decompressed to ${this.produced} bytes, its header says ${this.size}, and its values need more`);
      this.append(block);
    }
  }

  /** Decompresses the next slice of compressed bytes; undefined at the end of the page. */
  private async decompressMore(): Promise<Uint8Array | undefined> {
    while (this.blocks.length === 0 && this.position < this.stop) {
      const length = Math.min(READ_BYTES, this.stop - this.position);
      // a fresh buffer each time: the decompressor keeps views of input it has not used up
      const chunk = await this.read(this.position, new Uint8Array(length));
      this.position += length;
      this.decompressor.push(chunk, this.position >= this.stop);
      if (this.produced > this.size) throw new Corrupt(`a zstd page decompressed to more than the ${this.size} bytes its header says`);
    }
    return this.blocks.shift();
  }

  /** Moves the unread bytes to the front of the window (grown when needed) and adds `block` after them. */
  private append(block: Uint8Array): void {
    const unread = this.end - this.at;
    const needed = unread + block.length;
    if (needed > this.window.length) {
      const grown = new Uint8Array(Math.max(needed, 2 * this.window.length));
      grown.set(this.window.subarray(this.at, this.end));
      this.window = grown;
      this.view = new DataView(grown.buffer);
      this.text = Buffer.from(grown.buffer, 0, grown.length);
    } else if (this.at > 0) this.window.copyWithin(0, this.at, this.end);
    this.window.set(block, unread);
    this.at = 0;
    this.end = needed;
  }
}

/** Values of a streamed PLAIN page: `prepare(k)` makes the next `k` readable, then `next()` reads one. */
export interface StreamedValues {
  prepare(k: number): Promise<void>;
  next(): unknown;
}

/** Byte widths of the fixed-width physical types a page can be streamed for. */
const WIDTH: Partial<Record<ParquetType, number>> = { INT32: 4, INT64: 8, INT96: 12, FLOAT: 4, DOUBLE: 8 };

/** Whether PLAIN values of `type` can be streamed (booleans are bit-packed, and small anyway). */
export const streamable = (type: ParquetType): boolean => type !== 'BOOLEAN';

/** A reader of PLAIN values of one physical type from a streamed page, each converted to its weir form. */
export function streamedPlainValues(
  s: StreamedBytes,
  type: ParquetType,
  typeLength: number,
  text: boolean,
  convert: Convert,
  what: string,
): StreamedValues {
  const c = convert as (v: unknown) => unknown;
  const width = type === 'FIXED_LEN_BYTE_ARRAY' ? typeLength : WIDTH[type];
  // a page that ends before its values, or bytes zstd cannot decode, name the column and the page
  const named = (prepare: (k: number) => Promise<void>) => async (k: number) => {
    try {
      await prepare(k);
    } catch (error) {
      throw new Corrupt(`${what}: ${(error as Error).message}`);
    }
  };
  if (width !== undefined) {
    const next = fixedValue(s, type, width, c);
    return { prepare: named((k) => s.ensure(k * width)), next };
  }
  // BYTE_ARRAY: each value is a 4-byte length and its bytes
  return {
    prepare: named(async (k) => {
      let offset = 0;
      for (let i = 0; i < k; i++) {
        if (s.available < offset + 4) await s.ensure(offset + 4);
        const length = s.view.getUint32(s.at + offset, true);
        offset += 4 + length;
        if (s.available < offset) await s.ensure(offset);
      }
    }),
    next() {
      const length = s.view.getUint32(s.at, true);
      const start = s.at + 4;
      s.at = start + length;
      return c(text ? s.utf8(start, s.at) : s.bytes.slice(start, s.at));
    },
  };
}

function fixedValue(s: StreamedBytes, type: ParquetType, width: number, c: (v: unknown) => unknown): () => unknown {
  const step =
    <T>(read: (at: number) => T) =>
    () => {
      const v = read(s.at);
      s.at += width;
      return c(v);
    };
  switch (type) {
    case 'INT32':
      return step((at) => s.view.getInt32(at, true));
    case 'INT64':
      return step((at) => s.view.getBigInt64(at, true));
    case 'INT96':
      return step((at) => (BigInt(s.view.getInt32(at + 8, true)) << 64n) | s.view.getBigUint64(at, true));
    case 'FLOAT':
      return step((at) => s.view.getFloat32(at, true));
    case 'DOUBLE':
      return step((at) => s.view.getFloat64(at, true));
    default:
      return step((at) => s.bytes.slice(at, at + width));
  }
}
