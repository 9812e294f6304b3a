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
 *
 * Every page is checked against its column chunk as it is read (see corrupt.ts):
 * its bytes inside the chunk, its value count within what the chunk has left,
 * levels within their maximum, values inside the page's bytes, dictionary
 * indexes inside the dictionary; {@link ColumnChunkReader.finish} checks that
 * the pages held exactly the values the footer claims. A lie is a {@link Corrupt}.
 */
import type { ColumnMetaData, CompressionCodec, DataReader, ParquetType, SchemaElement } from 'hyparquet';
import { alpDecode } from 'hyparquet/src/alp.js';
import { deltaBinaryUnpack, deltaByteArray, deltaLengthByteArray } from 'hyparquet/src/delta.js';
import { byteStreamSplit } from 'hyparquet/src/encoding.js';
import { decompress } from './compression.js';
import { Corrupt, chunkStart } from './corrupt.js';
import { decodeHybrid } from './hybrid.js';
import type { Convert } from './read-values.js';
import { STREAM_PAGE_BYTES, StreamedBytes, streamable, streamedPlainValues } from './stream.js';
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
const NO_BYTES = new Uint8Array(0);

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
  /** Records these are (fewer than asked only where the chunk ended). */
  records: number;
}

/** A non-negative i32 field of a page header; a missing required one, a negative one or one of another type is corrupt. */
function num(s: TStruct | undefined, id: number, what: string, optional = false): number {
  const value = s ? field(s, id)?.value : undefined;
  if (value === undefined && optional) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0x7fffffff)
    throw new Corrupt(
      `${what} is ${value === undefined ? 'missing' : `not a valid count (${typeof value === 'number' ? value : typeof value})`}`,
    );
  return value;
}

/** The struct field of a page header (its data or dictionary page header). */
function struct(s: TStruct, id: number, what: string): TStruct {
  const value = field(s, id)?.value as TStruct | undefined;
  if (!value || typeof value !== 'object' || !Array.isArray((value as TStruct).fields)) throw new Corrupt(`${what} is missing`);
  return value;
}

/** Bytes a PLAIN value of a fixed-width type takes (0: variable, BYTE_ARRAY; BOOLEAN counts bits). */
function plainWidth(type: ParquetType, typeLength: number): number {
  switch (type) {
    case 'INT32':
    case 'FLOAT':
      return 4;
    case 'INT64':
    case 'DOUBLE':
      return 8;
    case 'INT96':
      return 12;
    case 'FIXED_LEN_BYTE_ARRAY':
      return typeLength;
    default:
      return 0;
  }
}

/**
 * Throws unless `count` PLAIN values of a fixed-width type fill `bytes` from
 * `offset` exactly: fewer bytes cannot hold them, more mean the levels before
 * them were shorter than claimed (a byte array checks its own lengths).
 */
function checkPlainFits(bytes: Uint8Array, offset: number, count: number, type: ParquetType, typeLength: number, what: string): void {
  const width = plainWidth(type, typeLength);
  if (width === 0 && type !== 'BOOLEAN') return;
  const needed = type === 'BOOLEAN' ? Math.ceil(count / 8) : width * count;
  if (offset + needed !== bytes.length)
    throw new Corrupt(`${what}: ${count} values take ${needed} bytes, the page holds ${bytes.length - offset} for them`);
}

function textOf(bytes: Uint8Array): (start: number, end: number) => string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return (start, end) => buf.toString('utf8', start, end);
}

/**
 * PLAIN values of one physical type, read one at a time from `offset`; the
 * caller checked that `count` of them fit (a byte array checks its own length).
 */
function plainValues(
  bytes: Uint8Array,
  offset: number,
  count: number,
  type: ParquetType,
  typeLength: number,
  text: boolean,
  convert: Convert,
  what: string,
): Values {
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
      let left = count;
      return () => {
        if (o + 4 > bytes.length) throw new Corrupt(`${what}: a value's length lies past the end of its page`);
        const length = view.getUint32(o, true);
        const start = o + 4;
        o = start + length;
        if (o > bytes.length) throw new Corrupt(`${what}: a value of ${length} bytes runs past the end of its page`);
        if (--left === 0 && o !== bytes.length) throw new Corrupt(`${what}: ${bytes.length - o} bytes follow its last value`);
        return c(slice ? slice(start, o) : bytes.subarray(start, o));
      };
    }
  }
}

/** Values decoded a whole page at a time (the rarer encodings), through hyparquet's decoders. */
function decodedValues(reader: DataReader, encoding: number, count: number, type: ParquetType, typeLength: number, column: Leaf): Values {
  let values: ArrayLike<unknown>;
  try {
    values = decodeWhole(reader, encoding, count, type, typeLength, column);
  } catch (error) {
    if (error instanceof Corrupt) throw error;
    // hyparquet's decoders trust the page: what they stumble on (a read out of bounds, a prefix before the first value) is a lie in the file
    throw new Corrupt(`column "${column.name}": a page of encoding ${encoding} cannot be decoded (${(error as Error).message})`);
  }
  // they read through the page's underlying buffer, which may be larger than the page
  if (reader.offset > reader.view.byteLength || values.length < count)
    throw new Corrupt(`column "${column.name}": a page of encoding ${encoding} holds fewer values than it claims`);
  const c = column.convert as (v: unknown) => unknown;
  const decoder = new TextDecoder();
  let i = 0;
  return column.text ? () => c(decoder.decode(values[i++] as Uint8Array)) : () => c(values[i++]);
}

function decodeWhole(
  reader: DataReader,
  encoding: number,
  count: number,
  type: ParquetType,
  typeLength: number,
  column: Leaf,
): ArrayLike<unknown> {
  let values: ArrayLike<unknown>;
  if (encoding === ENCODING.BYTE_STREAM_SPLIT)
    checkPlainFits(
      new Uint8Array(reader.view.buffer, reader.view.byteOffset, reader.view.byteLength),
      reader.offset,
      count,
      type,
      typeLength,
      `column "${column.name}"`,
    );
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
  else throw new Corrupt(`column "${column.name}": a page has the unknown encoding ${encoding}`);
  return values;
}

/** One decoded data page: its levels and a cursor over its values. */
interface Page {
  /** Level entries: rows for a flat column. */
  entries: number;
  /** Entries with a value (at the highest definition level). */
  count: number;
  /** Repetition levels; absent outside lists and maps. */
  rep?: Uint8Array;
  /** Definition levels (the highest where an entry has a value); absent when every entry has one. */
  def?: Uint8Array;
  values: Values;
  /** Streamed pages (see stream.ts): makes the next `k` values readable; await it before calling `values` for them. */
  prepare?: (k: number) => Promise<void>;
}

/** A page's header as the reader uses it, checked against its column chunk. */
interface PageHead {
  type: number;
  header: TStruct;
  /** Where the page starts in the file, for messages. */
  at: number;
  uncompressed: number;
  /** The page's bytes as read (empty when it is streamed). */
  body: Uint8Array;
  /** A large zstd page's bytes, decompressed as they are read (see stream.ts). */
  stream?: StreamedBytes;
}

/** Reads one leaf column chunk of one row group, a page at a time: flat columns by rows, nested leaves by records. */
export class ColumnChunkReader {
  private position: number;
  private readonly end: number;
  private readonly codec: CompressionCodec;
  private readonly maxPageSize: number;
  private dictionary: unknown[] | undefined;
  private page: Page | undefined;
  /** Entries of the current page already taken. */
  private used = 0;
  /** Level entries the footer claims for the chunk that no page has held yet. */
  private valuesLeft: number;
  private readonly claimed: number;

  constructor(
    private readonly read: ReadBytes,
    meta: ColumnMetaData,
    private readonly column: Leaf,
    private readonly buffers = new PageBuffers(),
  ) {
    // the footer's figures were checked against the file (corrupt.ts): the chunk lies inside its data
    this.position = chunkStart(meta);
    this.end = this.position + Number(meta.total_compressed_size);
    this.codec = meta.codec;
    this.claimed = Number(meta.num_values);
    this.valuesLeft = this.claimed;
    this.maxPageSize = Number(meta.total_uncompressed_size);
  }

  private get element() {
    return this.column.element;
  }

  private get what() {
    return `column "${this.column.name}"`;
  }

  /** The next page's header and bytes, or undefined at the end of the chunk. */
  private async nextPage(): Promise<PageHead | undefined> {
    let window = HEADER_WINDOW;
    for (;;) {
      if (this.position >= this.end) return undefined;
      const at = this.position;
      const available = Math.min(window, this.end - at);
      const bytes = await this.read(at, this.buffers.window.take(available));
      let decoded: ReturnType<typeof decodeStructPrefix>;
      try {
        decoded = decodeStructPrefix(bytes);
      } catch (error) {
        if (available < this.end - at) {
          window *= 4; // a header with large statistics: fetch more
          continue;
        }
        throw new Corrupt(`${this.what}: the page header at byte ${at} cannot be decoded (${(error as Error).message})`);
      }
      const what = `${this.what}: the page at byte ${at}`;
      const type = num(decoded.struct, 1, `${what}'s type`);
      const uncompressed = num(decoded.struct, 2, `${what}'s uncompressed size`);
      const size = num(decoded.struct, 3, `${what}'s compressed size`);
      const start = at + decoded.length;
      if (start + size > this.end) throw new Corrupt(`${what} claims ${size} bytes, past the end of its column chunk at byte ${this.end}`);
      if (uncompressed > this.maxPageSize)
        throw new Corrupt(`${what} claims ${uncompressed} bytes uncompressed, more than its whole column chunk's ${this.maxPageSize}`);
      this.position = start + size;
      if (this.streams(type, decoded.struct, uncompressed))
        return {
          type,
          header: decoded.struct,
          at,
          uncompressed,
          body: NO_BYTES,
          stream: new StreamedBytes(this.read, start, size, uncompressed),
        };
      const body =
        decoded.length + size <= bytes.length
          ? bytes.subarray(decoded.length, decoded.length + size)
          : await this.read(start, this.bodyBuffer(size));
      return { type, header: decoded.struct, at, uncompressed, body };
    }
  }

  /** A page's bytes decompressed; a lie about their size names the column and the page. */
  private decompress(bytes: Uint8Array, size: number, at: number): Uint8Array {
    try {
      return decompress(this.codec, bytes, size, this.buffers.pages.take);
    } catch (error) {
      if (error instanceof Corrupt) throw new Corrupt(`${this.what}: the page at byte ${at}: ${error.message}`);
      throw error;
    }
  }

  /** The level entries of a data page (0 for other pages), counted against what the chunk has left. */
  private entriesOf(page: PageHead): number {
    if (page.type !== PAGE.DATA && page.type !== PAGE.DATA_V2) {
      if (page.type !== PAGE.DICTIONARY && page.type !== PAGE.INDEX)
        throw new Corrupt(`${this.what}: the page at byte ${page.at} has the unknown type ${page.type}`);
      return 0;
    }
    const what = `${this.what}: the data page at byte ${page.at}`;
    const dph = struct(page.header, page.type === PAGE.DATA ? 5 : 8, `${what}'s header`);
    const entries = num(dph, 1, `${what}'s num_values`);
    if (entries > this.valuesLeft)
      throw new Corrupt(
        `${what} holds ${entries} values, but its column chunk claims ${this.claimed} and ${this.claimed - this.valuesLeft} came before`,
      );
    this.valuesLeft -= entries;
    return entries;
  }

  /**
   * Where a page's bytes are read to. The shared buffer when they outlive their
   * page (uncompressed pages are decoded from it) or are small; else a buffer of
   * their own, dead once decompressed, rather than held beside what it decompressed
   * to until the row group ends.
   */
  private bodyBuffer(size: number): Uint8Array {
    const keep = this.codec === 'UNCOMPRESSED' || this.codec === 'SNAPPY' || size < LARGE_BODY;
    return keep ? this.buffers.body.take(size) : new Uint8Array(size);
  }

  /** Whether a page is decompressed as it is read (see stream.ts): a large zstd V1 page of PLAIN values of a flat column. */
  private streams(type: number, header: TStruct, uncompressed: number): boolean {
    if (this.codec !== 'ZSTD' || type !== PAGE.DATA || uncompressed < STREAM_PAGE_BYTES) return false;
    const encoding = field(field(header, 5)?.value as TStruct, 2)?.value;
    return encoding === ENCODING.PLAIN && this.column.maxRep === 0 && streamable(this.element.type as ParquetType);
  }

  /** A data page's levels and values. */
  private async readData(page: PageHead, entries: number): Promise<Page> {
    if (page.stream) return this.readStreamed(page, page.stream, entries);
    return page.type === PAGE.DATA ? this.readPageV1(page, entries) : this.readPageV2(page, entries);
  }

  private async readStreamed(page: PageHead, stream: StreamedBytes, entries: number): Promise<Page> {
    const { maxDef, text, convert } = this.column;
    let levels: Uint8Array | undefined;
    if (maxDef) {
      await stream.ensure(4);
      await stream.ensure(4 + stream.view.getUint32(stream.at, true));
      const reader: DataReader = { view: stream.view, offset: stream.at };
      levels = this.levels(stream.bytes, reader, entries, maxDef, undefined, 'definition');
      stream.at = reader.offset;
    }
    const { def, count } = presence(levels, entries, maxDef);
    const { type, type_length } = this.element;
    const values = streamedPlainValues(
      stream,
      type as ParquetType,
      type_length ?? 0,
      text,
      convert,
      `${this.what}: the page at byte ${page.at}`,
    );
    return { entries, count, ...(def ? { def } : {}), values: values.next, prepare: values.prepare };
  }

  /** Loads pages until one has rows left; false at the end of the chunk. */
  private async ensurePage(): Promise<boolean> {
    while (!this.page || this.used >= this.page.entries) {
      this.page = undefined; // spent: collectable while the next one is read
      const next = await this.nextPage();
      if (!next) return false;
      const entries = this.entriesOf(next);
      if (next.type === PAGE.DICTIONARY) this.dictionary = this.readDictionary(next);
      else if (next.type === PAGE.DATA || next.type === PAGE.DATA_V2) {
        this.page = await this.readData(next, entries);
        this.used = 0;
      }
    }
    return true;
  }

  private readDictionary(page: PageHead): unknown[] {
    const what = `${this.what}: the dictionary page at byte ${page.at}`;
    const count = num(struct(page.header, 7, `${what}'s header`), 1, `${what}'s num_values`);
    const bytes = this.decompress(page.body, page.uncompressed, page.at);
    const { type, type_length } = this.element;
    checkPlainFits(bytes, 0, count, type as ParquetType, type_length ?? 0, what);
    const next = plainValues(bytes, 0, count, type as ParquetType, type_length ?? 0, this.column.text, this.column.convert, what);
    const out = new Array(count);
    for (let i = 0; i < count; i++) out[i] = next();
    return out;
  }

  private readPageV1(page: PageHead, entries: number): Page {
    const dph = struct(page.header, 5, `${this.what}'s data page header`);
    const bytes = this.decompress(page.body, page.uncompressed, page.at);
    const reader: DataReader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 };
    const { maxRep, maxDef } = this.column;
    const rep = maxRep ? this.levels(bytes, reader, entries, maxRep, undefined, 'repetition') : undefined;
    const def = maxDef ? this.levels(bytes, reader, entries, maxDef, undefined, 'definition') : undefined;
    return this.withValues(entries, rep, def, bytes, reader, num(dph, 2, `${this.what}: a data page's encoding`), page.at);
  }

  private readPageV2(page: PageHead, entries: number): Page {
    const what = `${this.what}: the data page at byte ${page.at}`;
    const dph = struct(page.header, 8, `${what}'s header`);
    const repLength = num(dph, 6, `${what}'s repetition levels length`);
    const defLength = num(dph, 5, `${what}'s definition levels length`);
    const { body } = page;
    if (repLength + defLength > body.length || repLength + defLength > page.uncompressed)
      throw new Corrupt(`${what}'s levels claim ${repLength + defLength} bytes, the page holds ${body.length}`);
    const { maxRep, maxDef } = this.column;
    const levelsAt = (at: number, length: number, max: number, kind: 'repetition' | 'definition') =>
      max && length > 0
        ? this.levels(body, { view: new DataView(body.buffer, body.byteOffset + at, length), offset: 0 }, entries, max, length, kind)
        : undefined;
    const rep = levelsAt(0, repLength, maxRep, 'repetition');
    const def = levelsAt(repLength, defLength, maxDef, 'definition');
    const compressed = (field(dph, 7)?.value ?? true) !== false;
    const size = page.uncompressed - repLength - defLength;
    let bytes = body.subarray(repLength + defLength);
    if (compressed && size > 0) bytes = this.decompress(bytes, size, page.at);
    const built = this.withValues(
      entries,
      rep,
      def,
      bytes,
      { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 },
      num(dph, 4, `${what}'s encoding`),
      page.at,
    );
    const nulls = num(dph, 2, `${what}'s num_nulls`);
    if (nulls !== entries - built.count) throw new Corrupt(`${what} claims ${nulls} nulls, its levels hold ${entries - built.count}`);
    return built;
  }

  /**
   * Repetition or definition levels, each checked to be at most `max` (RLE/bit-packed;
   * `length` undefined: prefixed with it, as in V1 pages). `bytes` holds the reader's view.
   */
  private levels(
    bytes: Uint8Array,
    reader: DataReader,
    entries: number,
    max: number,
    length: number | undefined,
    kind: 'repetition' | 'definition',
  ): Uint8Array {
    const what = `${this.what}: ${kind} levels`;
    const base = reader.view.byteOffset - bytes.byteOffset;
    let start = base + reader.offset;
    let size = length;
    if (size === undefined) {
      if (reader.offset + 4 > reader.view.byteLength) throw new Corrupt(`${what} lie past the end of their page`);
      size = reader.view.getUint32(reader.offset, true);
      start += 4;
    }
    const out = new Uint8Array(entries);
    decodeHybrid(bytes, start, start + size, 32 - Math.clz32(max), out, what);
    for (let i = 0; i < entries; i++)
      if ((out[i] as number) > max) throw new Corrupt(`${what}: level ${out[i]} is more than the column's highest, ${max}`);
    if (kind === 'repetition' && entries > 0 && out[0] !== 0 && !this.page)
      throw new Corrupt(`${what}: the column chunk does not start a record`);
    reader.offset = start + size - base;
    return out;
  }

  private withValues(
    entries: number,
    rep: Uint8Array | undefined,
    levels: Uint8Array | undefined,
    bytes: Uint8Array,
    reader: DataReader,
    encoding: number,
    at: number,
  ): Page {
    const { def, count } = presence(levels, entries, this.column.maxDef);
    const page = (values: Values): Page => ({ entries, count, rep, def, values });
    const { type, type_length } = this.element;
    const physical = type as ParquetType;
    const { text, convert } = this.column;
    const what = `${this.what}: the data page at byte ${at}`;
    if (encoding === ENCODING.PLAIN) {
      checkPlainFits(bytes, reader.offset, count, physical, type_length ?? 0, what);
      return page(plainValues(bytes, reader.offset, count, physical, type_length ?? 0, text, convert, what));
    }
    if (encoding === ENCODING.PLAIN_DICTIONARY || encoding === ENCODING.RLE_DICTIONARY) {
      const dictionary = this.dictionary;
      if (!dictionary) throw new Corrupt(`${what} is dictionary-encoded, but its column chunk has no dictionary page before it`);
      const indexes = new Int32Array(count);
      if (count > 0) {
        if (reader.offset >= bytes.length) throw new Corrupt(`${what}: its dictionary indexes are missing`);
        const width = bytes[reader.offset] as number;
        decodeHybrid(bytes, reader.offset + 1, bytes.length, width, indexes, `${what}: dictionary indexes`);
        for (let i = 0; i < count; i++) {
          const index = indexes[i] as number;
          if (index < 0 || index >= dictionary.length)
            throw new Corrupt(`${what}: dictionary index ${index >>> 0} is outside its dictionary of ${dictionary.length} values`);
        }
      }
      let i = 0;
      return page(() => dictionary[indexes[i++] as number]);
    }
    if (encoding === ENCODING.RLE && physical === 'BOOLEAN') {
      const bits = new Uint8Array(count);
      if (reader.offset + 4 > bytes.length) throw new Corrupt(`${what}: its booleans are missing`);
      const length = reader.view.getUint32(reader.offset, true);
      decodeHybrid(bytes, reader.offset + 4, reader.offset + 4 + length, 1, bits, `${what}: booleans`);
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
    const out: LeafRecords = { rep: [], def: [], values: [], records: 0 };
    const { maxDef } = this.column;
    while (await this.ensurePage()) {
      const { entries, rep, def, values, prepare } = this.page as Page;
      for (; this.used < entries; this.used++) {
        const r = rep ? (rep[this.used] as number) : 0;
        if (r === 0 && out.records++ === n) {
          out.records = n;
          return out;
        }
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
      const rows = this.entriesOf(next);
      if (next.type === PAGE.DICTIONARY) this.dictionary = this.readDictionary(next);
      else if (next.type === PAGE.DATA || next.type === PAGE.DATA_V2) {
        if (rows <= left) left -= rows;
        else {
          this.page = await this.readData(next, rows);
          this.used = 0;
        }
      }
    }
  }

  /**
   * Reads the whole chunk with every check, keeping nothing: for the columns
   * hyparquet decodes (it trusts pages), before it is given them. `rows` is the
   * row group's: the records the chunk must hold.
   */
  async checkAll(rows: number): Promise<void> {
    const { maxDef } = this.column;
    let records = 0;
    while (await this.ensurePage()) {
      const { entries, rep, def, values, prepare } = this.page as Page;
      for (; this.used < entries; this.used++) {
        if (!rep || rep[this.used] === 0) records++;
        if (!def || def[this.used] === maxDef) {
          if (prepare) await prepare(1);
          values();
        }
      }
    }
    if (records !== rows) throw new Corrupt(`${this.what} holds ${records} records, its row group claims ${rows} rows`);
    await this.finish();
  }

  /**
   * Once the row group's rows were taken: the chunk held exactly the values its
   * footer claims, none left over in its pages (a footer claiming fewer rows
   * than the pages hold would otherwise drop rows silently).
   */
  async finish(): Promise<void> {
    const more = () => new Corrupt(`${this.what} holds more values than its row group has rows`);
    if (this.page && this.used < this.page.entries) throw more();
    for (let next = await this.nextPage(); next; next = await this.nextPage()) if (this.entriesOf(next) > 0) throw more();
    if (this.valuesLeft > 0)
      throw new Corrupt(`${this.what}'s pages hold ${this.claimed - this.valuesLeft} values, its column chunk claims ${this.claimed}`);
  }
}

/** A page's entries with a value, and its definition levels unless every entry has one. */
function presence(levels: Uint8Array | undefined, entries: number, max: number): { def?: Uint8Array; count: number } {
  const count = levels ? present(levels, 0, entries, max) : entries;
  return count === entries ? { count } : { def: levels, count };
}

/** Entries of `def[from, to)` at the highest level `max`: those with a value. */
function present(def: Uint8Array, from: number, to: number, max: number): number {
  let count = 0;
  for (let i = from; i < to; i++) if (def[i] === max) count++;
  return count;
}
