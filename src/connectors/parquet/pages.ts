/**
 * The page reader of flat columns (top-level, not repeated: nearly every
 * column of a table). It streams one column chunk page by page through
 * positioned reads, decompresses one page at a time and decodes its values
 * only as rows are taken, so a worker's memory follows the size of a page's
 * bytes, never the row count of a row group (DuckDB writes one page per
 * column chunk: a million values) and never one JavaScript object per value
 * of a whole group. Runs on workers, once per column per row group read.
 *
 * Encodings: PLAIN, dictionary (PLAIN_DICTIONARY, RLE_DICTIONARY) and RLE
 * booleans are decoded lazily; the DELTA encodings, BYTE_STREAM_SPLIT and ALP
 * (rarer) are decoded a page at a time by hyparquet's own decoders.
 */
import type { ColumnMetaData, CompressionCodec, DataReader, ParquetType, SchemaElement } from 'hyparquet';
import { alpDecode } from 'hyparquet/src/alp.js';
import { deltaBinaryUnpack, deltaByteArray, deltaLengthByteArray } from 'hyparquet/src/delta.js';
import { byteStreamSplit, readRleBitPackedHybrid } from 'hyparquet/src/encoding.js';
import { decompress } from './compression.js';
import type { Convert } from './read-values.js';
import { STREAM_PAGE_BYTES, StreamedBytes, streamable, streamedLevels, streamedPlainValues } from './stream.js';
import { decodeStructPrefix, field, type TStruct } from './thrift.js';

/** Fills `into` with the file's bytes at `position`. */
export type ReadBytes = (position: number, into: Uint8Array) => Promise<Uint8Array>;

/** A buffer reused for one role (a column's header window, page bytes, decompressed pages): grown, never shrunk. */
class Scratch {
  private buffer = new Uint8Array(0);
  take = (size: number): Uint8Array => {
    // small buffers grow with headroom; large ones (a DuckDB page: 8 MB) to the size asked for
    if (this.buffer.length < size) this.buffer = new Uint8Array(size < 1 << 20 ? Math.max(size, 2 * this.buffer.length) : size);
    return this.buffer.subarray(0, size);
  };
}

/**
 * The buffers one column's pages are read and decompressed into, reused from page
 * to page and row group to row group: a page's bytes are dead once its rows are
 * taken (values are converted to strings, numbers and Decimals, never views into
 * the page; a dictionary is converted when it is read).
 */
export class PageBuffers {
  readonly window = new Scratch();
  readonly body = new Scratch();
  readonly pages = new Scratch();
}

const PAGE = { DATA: 0, INDEX: 1, DICTIONARY: 2, DATA_V2: 3 } as const;
const ENCODING = {
  PLAIN: 0,
  PLAIN_DICTIONARY: 2,
  RLE: 3,
  DELTA_BINARY_PACKED: 5,
  DELTA_LENGTH_BYTE_ARRAY: 6,
  DELTA_BYTE_ARRAY: 7,
  RLE_DICTIONARY: 8,
  BYTE_STREAM_SPLIT: 9,
  ALP: 10,
} as const;
/** Bytes fetched at once for a page header (and the page itself when it fits). */
const HEADER_WINDOW = 64 * 1024;
/** A compressed page at least this large is read into a buffer of its own (see `bodyBuffer`). */
const LARGE_BODY = 1 << 20;

/** A cursor over a page's non-null values, each already converted to its weir form. */
type Values = () => unknown;

/** The leaf column a chunk holds, as the page reader needs it. */
export interface Leaf {
  /** For messages: the column's name (or path). */
  name: string;
  element: SchemaElement;
  /** Highest definition level (0: required; 1: a flat optional column; more inside optional groups). */
  maxDef: number;
  /** Highest repetition level (0 outside lists and maps). */
  maxRep: number;
  /** Byte values arrive as UTF-8 text. */
  text: boolean;
  convert: Convert;
}

/** The levels and values of whole records of a nested column's leaf, for Dremel assembly. */
export interface LeafRecords {
  rep: number[];
  def: number[];
  /** The values of the entries whose definition level is the highest. */
  values: unknown[];
}

const num = (s: TStruct | undefined, id: number): number => Number(s ? (field(s, id)?.value ?? 0) : 0);

function textOf(bytes: Uint8Array): (start: number, end: number) => string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return (start, end) => buf.toString('utf8', start, end);
}

/** PLAIN values of one physical type, read one at a time from `offset`. */
function plainValues(bytes: Uint8Array, offset: number, type: ParquetType, typeLength: number, text: boolean, convert: Convert): Values {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = offset;
  const c = convert as (v: unknown) => unknown;
  switch (type) {
    case 'BOOLEAN': {
      let bit = 0;
      return () => {
        const v = ((bytes[o + (bit >> 3)] as number) >> (bit & 7)) & 1;
        bit++;
        return c(v === 1);
      };
    }
    case 'INT32':
      return () => {
        const v = view.getInt32(o, true);
        o += 4;
        return c(v);
      };
    case 'INT64':
      return () => {
        const v = view.getBigInt64(o, true);
        o += 8;
        return c(v);
      };
    case 'INT96':
      return () => {
        const v = (BigInt(view.getInt32(o + 8, true)) << 64n) | view.getBigUint64(o, true);
        o += 12;
        return c(v);
      };
    case 'FLOAT':
      return () => {
        const v = view.getFloat32(o, true);
        o += 4;
        return c(v);
      };
    case 'DOUBLE':
      return () => {
        const v = view.getFloat64(o, true);
        o += 8;
        return c(v);
      };
    case 'FIXED_LEN_BYTE_ARRAY':
      return () => {
        const v = bytes.subarray(o, o + typeLength);
        o += typeLength;
        return c(v);
      };
    default: {
      const slice = text ? textOf(bytes) : undefined;
      return () => {
        const length = view.getUint32(o, true);
        const start = o + 4;
        o = start + length;
        return c(slice ? slice(start, o) : bytes.subarray(start, o));
      };
    }
  }
}

/** Values decoded a whole page at a time (the rarer encodings), through hyparquet's decoders. */
function decodedValues(reader: DataReader, encoding: number, count: number, type: ParquetType, typeLength: number, column: Leaf): Values {
  let values: ArrayLike<unknown>;
  if (encoding === ENCODING.DELTA_BINARY_PACKED) {
    const out = type === 'INT32' ? new Int32Array(count) : new BigInt64Array(count);
    deltaBinaryUnpack(reader, count, out);
    values = out;
  } else if (encoding === ENCODING.DELTA_LENGTH_BYTE_ARRAY || encoding === ENCODING.DELTA_BYTE_ARRAY) {
    const out = new Array<Uint8Array>(count);
    (encoding === ENCODING.DELTA_BYTE_ARRAY ? deltaByteArray : deltaLengthByteArray)(reader, count, out);
    values = out;
  } else if (encoding === ENCODING.BYTE_STREAM_SPLIT) values = byteStreamSplit(reader, count, type, typeLength);
  else if (encoding === ENCODING.ALP) values = alpDecode(reader, count, type);
  else throw new Error(`column "${column.name}": unsupported encoding ${encoding}`);
  const c = column.convert as (v: unknown) => unknown;
  const decoder = new TextDecoder();
  let i = 0;
  return column.text ? () => c(decoder.decode(values[i++] as Uint8Array)) : () => c(values[i++]);
}

/** One decoded data page: its levels and a cursor over its values. */
interface Page {
  /** Level entries: rows for a flat column. */
  entries: number;
  /** Repetition levels; absent outside lists and maps. */
  rep?: Uint8Array;
  /** Definition levels (the highest where an entry has a value); absent when every entry has one. */
  def?: Uint8Array;
  values: Values;
  /** Streamed pages (see stream.ts): makes the next `k` values readable; await it before calling `values` for them. */
  prepare?: (k: number) => Promise<void>;
}

/** A page as read from the chunk: its header and bytes, or its decompressed bytes as a stream. */
type RawPage = { header: TStruct; body: Uint8Array } | { header: TStruct; stream: StreamedBytes };

/** Reads one leaf column chunk of one row group, a page at a time: flat columns by rows, nested leaves by records. */
export class ColumnChunkReader {
  private position: number;
  private readonly end: number;
  private readonly codec: CompressionCodec;
  private dictionary: unknown[] | undefined;
  private page: Page | undefined;
  /** Entries of the current page already taken. */
  private used = 0;

  constructor(
    private readonly read: ReadBytes,
    meta: ColumnMetaData,
    private readonly column: Leaf,
    private readonly buffers = new PageBuffers(),
  ) {
    const dict = Number(meta.dictionary_page_offset ?? 0);
    const data = Number(meta.data_page_offset);
    // The chunk starts at its dictionary page when there is one; polars leaves dictionary_page_offset out
    // and lets data_page_offset point at the chunk's start, dictionary first (as hyparquet reads it).
    this.position = dict > 0 && dict < data ? dict : data;
    this.end = this.position + Number(meta.total_compressed_size);
    this.codec = meta.codec;
  }

  private get element() {
    return this.column.element;
  }

  /** The next page's header and bytes, or undefined at the end of the chunk. */
  private async nextPage(): Promise<RawPage | undefined> {
    let window = HEADER_WINDOW;
    for (;;) {
      if (this.position >= this.end) return undefined;
      const available = Math.min(window, this.end - this.position);
      const bytes = await this.read(this.position, this.buffers.window.take(available));
      let decoded: ReturnType<typeof decodeStructPrefix>;
      try {
        decoded = decodeStructPrefix(bytes);
      } catch (error) {
        if (available < this.end - this.position) {
          window *= 4; // a header with large statistics: fetch more
          continue;
        }
        throw error;
      }
      const size = num(decoded.struct, 3);
      const start = this.position + decoded.length;
      this.position = start + size;
      if (this.streams(decoded.struct))
        return { header: decoded.struct, stream: new StreamedBytes(this.read, start, size, num(decoded.struct, 2)) };
      const body =
        decoded.length + size <= bytes.length
          ? bytes.subarray(decoded.length, decoded.length + size)
          : await this.read(start, this.bodyBuffer(size));
      return { header: decoded.struct, body };
    }
  }

  /**
   * Where a page's bytes are read to. The shared buffer when they outlive their
   * page (uncompressed pages are decoded from it) or are small; else a buffer of
   * their own, dead once decompressed: a DuckDB page of a million strings is 20 MB
   * compressed, which the reader would otherwise hold beside the 48 MB it
   * decompressed to until the row group ends.
   */
  private bodyBuffer(size: number): Uint8Array {
    const keep = this.codec === 'UNCOMPRESSED' || this.codec === 'SNAPPY' || size < LARGE_BODY;
    return keep ? this.buffers.body.take(size) : new Uint8Array(size);
  }

  /** Whether a page is decompressed as it is read (see stream.ts): a large zstd V1 page of PLAIN values of a flat column. */
  private streams(header: TStruct): boolean {
    return (
      this.codec === 'ZSTD' &&
      num(header, 1) === PAGE.DATA &&
      num(header, 2) >= STREAM_PAGE_BYTES &&
      num(field(header, 5)?.value as TStruct, 2) === ENCODING.PLAIN &&
      this.column.maxRep === 0 &&
      streamable(this.element.type as ParquetType)
    );
  }

  /** A data page's levels and values. */
  private async readData(next: RawPage): Promise<Page> {
    if ('stream' in next) return this.readStreamed(next.header, next.stream);
    return num(next.header, 1) === PAGE.DATA ? this.readPageV1(next.header, next.body) : this.readPageV2(next.header, next.body);
  }

  private async readStreamed(header: TStruct, stream: StreamedBytes): Promise<Page> {
    const entries = num(field(header, 5)?.value as TStruct, 1);
    const { maxDef, text, convert } = this.column;
    const levels = maxDef ? await streamedLevels(stream, entries, maxDef) : undefined;
    const { type, type_length } = this.element;
    const values = streamedPlainValues(stream, type as ParquetType, type_length ?? 0, text, convert);
    return { entries, def: allPresent(levels, entries, maxDef) ? undefined : levels, values: values.next, prepare: values.prepare };
  }

  /** Loads pages until one has rows left; false at the end of the chunk. */
  private async ensurePage(): Promise<boolean> {
    while (!this.page || this.used >= this.page.entries) {
      this.page = undefined; // spent: collectable while the next one is read
      const next = await this.nextPage();
      if (!next) return false;
      const type = num(next.header, 1);
      if (type === PAGE.DICTIONARY && 'body' in next) this.dictionary = this.readDictionary(next.header, next.body);
      else if (type === PAGE.DATA || type === PAGE.DATA_V2) {
        this.page = await this.readData(next);
        this.used = 0;
      }
    }
    return true;
  }

  private readDictionary(header: TStruct, body: Uint8Array): unknown[] {
    const dph = field(header, 7)?.value as TStruct;
    const count = num(dph, 1);
    const bytes = decompress(this.codec, body, num(header, 2), this.buffers.pages.take);
    const { type, type_length } = this.element;
    const next = plainValues(bytes, 0, type as ParquetType, type_length ?? 0, this.column.text, this.column.convert);
    const out = new Array(count);
    for (let i = 0; i < count; i++) out[i] = next();
    return out;
  }

  private readPageV1(header: TStruct, body: Uint8Array): Page {
    const dph = field(header, 5)?.value as TStruct;
    const entries = num(dph, 1);
    const bytes = decompress(this.codec, body, num(header, 2), this.buffers.pages.take);
    const reader: DataReader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 };
    const { maxRep, maxDef } = this.column;
    const rep = maxRep ? levels(reader, entries, maxRep, undefined) : undefined;
    const def = maxDef ? levels(reader, entries, maxDef, undefined) : undefined;
    return this.withValues(entries, rep, def, bytes, reader, num(dph, 2));
  }

  private readPageV2(header: TStruct, body: Uint8Array): Page {
    const dph = field(header, 8)?.value as TStruct;
    const entries = num(dph, 1);
    const repLength = num(dph, 6);
    const defLength = num(dph, 5);
    const { maxRep, maxDef } = this.column;
    const levelsAt = (at: number, length: number, max: number) =>
      max && length > 0
        ? levels({ view: new DataView(body.buffer, body.byteOffset + at, length), offset: 0 }, entries, max, length)
        : undefined;
    const rep = levelsAt(0, repLength, maxRep);
    const def = levelsAt(repLength, defLength, maxDef);
    const compressed = (field(dph, 7)?.value ?? true) !== false;
    const size = num(header, 2) - repLength - defLength;
    let bytes = body.subarray(repLength + defLength);
    if (compressed && size > 0) bytes = decompress(this.codec, bytes, size, this.buffers.pages.take);
    return this.withValues(
      entries,
      rep,
      def,
      bytes,
      { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 },
      num(dph, 4),
    );
  }

  private withValues(
    entries: number,
    rep: Uint8Array | undefined,
    levels: Uint8Array | undefined,
    bytes: Uint8Array,
    reader: DataReader,
    encoding: number,
  ): Page {
    const def = allPresent(levels, entries, this.column.maxDef) ? undefined : levels;
    const count = def ? present(def, 0, entries, this.column.maxDef) : entries;
    const page = (values: Values): Page => ({ entries, rep, def, values });
    const { type, type_length } = this.element;
    const physical = type as ParquetType;
    const { text, convert } = this.column;
    if (encoding === ENCODING.PLAIN) return page(plainValues(bytes, reader.offset, physical, type_length ?? 0, text, convert));
    if (encoding === ENCODING.PLAIN_DICTIONARY || encoding === ENCODING.RLE_DICTIONARY) {
      const dictionary = this.dictionary;
      if (!dictionary) throw new Error(`column "${this.column.name}": a dictionary-encoded page without a dictionary page`);
      const width = reader.view.getUint8(reader.offset++);
      const indexes = new Int32Array(count);
      if (width) readRleBitPackedHybrid(reader, width, indexes, bytes.length - reader.offset);
      let i = 0;
      return page(() => dictionary[indexes[i++] as number]);
    }
    if (encoding === ENCODING.RLE && physical === 'BOOLEAN') {
      const bits = new Uint8Array(count);
      readRleBitPackedHybrid(reader, 1, bits, undefined);
      const c = convert as (v: unknown) => unknown;
      let i = 0;
      return page(() => c(bits[i++] === 1));
    }
    return page(decodedValues(reader, encoding, count, physical, type_length ?? 0, this.column));
  }

  /** Flat columns: the next `n` values (null where a row has none); fewer only at the end of the chunk. */
  async take(n: number): Promise<unknown[]> {
    const out = new Array<unknown>(n);
    let filled = 0;
    while (filled < n && (await this.ensurePage())) {
      const page = this.page as Page;
      const count = Math.min(n - filled, page.entries - this.used);
      const { def, values } = page;
      if (page.prepare) await page.prepare(def ? present(def, this.used, this.used + count, this.column.maxDef) : count);
      if (def) for (let i = 0; i < count; i++) out[filled + i] = def[this.used + i] ? values() : null;
      else for (let i = 0; i < count; i++) out[filled + i] = values();
      this.used += count;
      filled += count;
    }
    if (filled < n) out.length = filled;
    return out;
  }

  /**
   * Nested leaves: the levels and values of the next `n` records (a record starts
   * at repetition level 0); fewer only at the end of the chunk.
   */
  async takeRecords(n: number): Promise<LeafRecords> {
    const out: LeafRecords = { rep: [], def: [], values: [] };
    const { maxDef } = this.column;
    let records = 0;
    while (await this.ensurePage()) {
      const { entries, rep, def, values, prepare } = this.page as Page;
      for (; this.used < entries; this.used++) {
        const r = rep ? (rep[this.used] as number) : 0;
        if (r === 0 && records++ === n) return out;
        const d = def ? (def[this.used] as number) : maxDef;
        out.rep.push(r);
        out.def.push(d);
        if (d === maxDef) {
          if (prepare) await prepare(1);
          out.values.push(values());
        }
      }
    }
    return out;
  }

  /** Flat columns: passes over the next `n` rows (pages entirely inside them are not decompressed). */
  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.page && this.used < this.page.entries) {
        const count = Math.min(left, this.page.entries - this.used);
        await this.take(count);
        left -= count;
        continue;
      }
      const next = await this.nextPage();
      if (!next) return;
      const type = num(next.header, 1);
      if (type === PAGE.DICTIONARY && 'body' in next) this.dictionary = this.readDictionary(next.header, next.body);
      else if (type === PAGE.DATA || type === PAGE.DATA_V2) {
        const rows = num(field(next.header, type === PAGE.DATA ? 5 : 8)?.value as TStruct, 1);
        if (rows <= left) left -= rows;
        else {
          this.page = await this.readData(next);
          this.used = 0;
        }
      }
    }
  }
}

/** Repetition or definition levels up to `max` (RLE/bit-packed; `length` undefined: prefixed with it, as in V1 pages). */
function levels(reader: DataReader, entries: number, max: number, length: number | undefined): Uint8Array {
  const out = new Uint8Array(entries);
  readRleBitPackedHybrid(reader, 32 - Math.clz32(max), out, length);
  return out;
}

/** Entries of `def[from, to)` at the highest level `max`: those with a value. */
function present(def: Uint8Array, from: number, to: number, max: number): number {
  let count = 0;
  for (let i = from; i < to; i++) if (def[i] === max) count++;
  return count;
}

/** Whether every entry has a value (no levels, or all at the highest). */
function allPresent(def: Uint8Array | undefined, entries: number, max: number): boolean {
  return !def || present(def, 0, entries, max) === entries;
}
