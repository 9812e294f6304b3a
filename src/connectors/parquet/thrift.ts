/**
 * A minimal Thrift compact-protocol codec that keeps every field's wire type,
 * so a Parquet footer can be decoded, have its byte offsets shifted, and be
 * encoded again without losing anything (the readers and writers of the
 * parquet libraries map values to JS types and back, which is lossy for i16,
 * doubles and empty lists). Runs on the planner, at the job commit, and on
 * workers, where the source's page reader decodes page headers with it.
 *
 * What it reads is untrusted (a file's footer and page headers): a container
 * may not claim more entries than the bytes left could hold, structs nest at
 * most {@link MAX_DEPTH} deep, and {@link checkCompact} checks a whole footer
 * that way without building anything, before hyparquet's own decoder (which
 * allocates what a count says) sees it.
 */

export const T = {
  STOP: 0,
  TRUE: 1,
  FALSE: 2,
  BYTE: 3,
  I16: 4,
  I32: 5,
  I64: 6,
  DOUBLE: 7,
  BINARY: 8,
  LIST: 9,
  SET: 10,
  MAP: 11,
  STRUCT: 12,
} as const;

export interface TStruct {
  fields: TField[];
}
export interface TField {
  id: number;
  type: number;
  value: TValue;
}
export interface TList {
  elemType: number;
  items: TValue[];
}
export interface TMap {
  keyType: number;
  valueType: number;
  entries: [TValue, TValue][];
}
/** Structs inside structs, at most: Parquet's own footer nests 6 deep (a statistics value in a column chunk). */
export const MAX_DEPTH = 64;

/** boolean (struct fields), number (byte, i16, i32, double, booleans inside lists), bigint (i64), bytes, or a container. */
export type TValue = boolean | number | bigint | Uint8Array | TStruct | TList | TMap;

class Reader {
  offset = 0;
  private readonly view: DataView;
  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get left(): number {
    return this.bytes.length - this.offset;
  }
  byte(): number {
    if (this.offset >= this.bytes.length) throw new Error('thrift: unexpected end of data');
    return this.bytes[this.offset++] as number;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
      if (shift > 70n) throw new Error('thrift: varint too long');
    }
  }
  smallVarint(): number {
    return Number(this.varint());
  }
  zigzag(): bigint {
    const z = this.varint();
    return (z >> 1n) ^ -(z & 1n);
  }
  double(): number {
    if (this.offset + 8 > this.bytes.length) throw new Error('thrift: unexpected end of data');
    const v = this.view.getFloat64(this.offset, true);
    this.offset += 8;
    return v;
  }
  binary(): Uint8Array {
    const n = this.binaryLength();
    const v = this.bytes.slice(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  binaryLength(): number {
    const n = this.smallVarint();
    if (n > this.left) throw new Error(`thrift: a binary of ${n} bytes with ${this.left} bytes left`);
    return n;
  }
  /** The entry count of a list or set, after its header byte; at most one entry per byte left. */
  listSize(header: number): number {
    const size = header >> 4 === 15 ? this.smallVarint() : header >> 4;
    if (size > this.left) throw new Error(`thrift: a list of ${size} entries with ${this.left} bytes left`);
    return size;
  }
  /** The entry count of a map; each entry takes two bytes at least. */
  mapSize(): number {
    const size = this.smallVarint();
    if (size * 2 > this.left) throw new Error(`thrift: a map of ${size} entries with ${this.left} bytes left`);
    return size;
  }
}

function readValue(r: Reader, type: number, inContainer: boolean, depth: number): TValue {
  switch (type) {
    case T.TRUE:
    case T.FALSE:
      return inContainer ? r.byte() : type === T.TRUE;
    case T.BYTE:
      return r.byte();
    case T.I16:
    case T.I32:
      return Number(r.zigzag());
    case T.I64:
      return r.zigzag();
    case T.DOUBLE:
      return r.double();
    case T.BINARY:
      return r.binary();
    case T.LIST:
    case T.SET: {
      const header = r.byte();
      const elemType = header & 0x0f;
      const size = r.listSize(header);
      const items: TValue[] = new Array(size);
      for (let i = 0; i < size; i++) items[i] = readValue(r, elemType, true, depth);
      return { elemType, items } satisfies TList;
    }
    case T.MAP: {
      const size = r.mapSize();
      const types = size > 0 ? r.byte() : 0;
      const keyType = types >> 4;
      const valueType = types & 0x0f;
      const entries: [TValue, TValue][] = [];
      for (let i = 0; i < size; i++) entries.push([readValue(r, keyType, true, depth), readValue(r, valueType, true, depth)]);
      return { keyType, valueType, entries } satisfies TMap;
    }
    case T.STRUCT:
      return readStruct(r, depth + 1);
    default:
      throw new Error(`thrift: unsupported compact type ${type}`);
  }
}

function readStruct(r: Reader, depth: number): TStruct {
  if (depth > MAX_DEPTH) throw new Error(`thrift: structs nested more than ${MAX_DEPTH} deep`);
  const fields: TField[] = [];
  let id = 0;
  for (;;) {
    const header = r.byte();
    const type = header & 0x0f;
    if (type === T.STOP) return { fields };
    const delta = header >> 4;
    id = delta ? id + delta : Number(r.zigzag());
    fields.push({ id, type, value: readValue(r, type, false, depth) });
  }
}

/** Decodes one compact-protocol struct (a Parquet FileMetaData footer). */
export function decodeStruct(bytes: Uint8Array): TStruct {
  return readStruct(new Reader(bytes), 0);
}

/**
 * Decodes the struct at the start of `bytes` (a page header before its page) and
 * says how many bytes it took. Throws when `bytes` ends inside the struct.
 */
export function decodeStructPrefix(bytes: Uint8Array): { struct: TStruct; length: number } {
  const reader = new Reader(bytes);
  const struct = readStruct(reader, 0);
  return { struct, length: reader.offset };
}

/** Passes over one value, checking every count and length against the bytes left; allocates nothing. */
function skipValue(r: Reader, type: number, inContainer: boolean, depth: number): void {
  switch (type) {
    case T.TRUE:
    case T.FALSE:
      if (inContainer) r.byte();
      return;
    case T.BYTE:
      r.byte();
      return;
    case T.I16:
    case T.I32:
    case T.I64:
      r.varint();
      return;
    case T.DOUBLE:
      r.double();
      return;
    case T.BINARY: {
      const n = r.binaryLength(); // before the offset is read: the length's varint moves it
      r.offset += n;
      return;
    }
    case T.LIST:
    case T.SET: {
      const header = r.byte();
      const size = r.listSize(header);
      for (let i = 0; i < size; i++) skipValue(r, header & 0x0f, true, depth);
      return;
    }
    case T.MAP: {
      const size = r.mapSize();
      const types = size > 0 ? r.byte() : 0;
      for (let i = 0; i < size; i++) {
        skipValue(r, types >> 4, true, depth);
        skipValue(r, types & 0x0f, true, depth);
      }
      return;
    }
    case T.STRUCT:
      skipStruct(r, depth + 1);
      return;
    default:
      throw new Error(`thrift: unsupported compact type ${type}`);
  }
}

function skipStruct(r: Reader, depth: number): void {
  if (depth > MAX_DEPTH) throw new Error(`thrift: structs nested more than ${MAX_DEPTH} deep`);
  let id = 0;
  for (;;) {
    const header = r.byte();
    const type = header & 0x0f;
    if (type === T.STOP) return;
    id = header >> 4 ? id + (header >> 4) : Number(r.zigzag());
    skipValue(r, type, false, depth);
  }
}

/**
 * Checks that `bytes` hold exactly one well-formed struct whose every count and
 * length fits in them, without decoding it: what a decoder that allocates what a
 * count says (hyparquet's) may then be given.
 */
export function checkCompact(bytes: Uint8Array): void {
  const r = new Reader(bytes);
  skipStruct(r, 0);
  if (r.left > 0) throw new Error(`thrift: ${r.left} bytes after the end of the struct`);
}

class Writer {
  private buf = new Uint8Array(1024);
  length = 0;
  private ensure(n: number) {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
  byte(b: number) {
    this.ensure(1);
    this.buf[this.length++] = b & 0xff;
  }
  varint(v: bigint) {
    let x = BigInt.asUintN(64, v);
    while (x >= 0x80n) {
      this.byte(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.byte(Number(x));
  }
  zigzag(v: bigint) {
    this.varint((v << 1n) ^ (v >> 63n));
  }
  bytes(b: Uint8Array) {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  double(v: number) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.bytes(b);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

function writeValue(w: Writer, type: number, value: TValue, inContainer: boolean): void {
  switch (type) {
    case T.TRUE:
    case T.FALSE:
      if (inContainer) w.byte(value as number);
      return;
    case T.BYTE:
      w.byte(value as number);
      return;
    case T.I16:
    case T.I32:
      w.zigzag(BigInt(value as number));
      return;
    case T.I64:
      w.zigzag(value as bigint);
      return;
    case T.DOUBLE:
      w.double(value as number);
      return;
    case T.BINARY: {
      const b = value as Uint8Array;
      w.varint(BigInt(b.length));
      w.bytes(b);
      return;
    }
    case T.LIST:
    case T.SET: {
      const { elemType, items } = value as TList;
      if (items.length < 15) w.byte((items.length << 4) | elemType);
      else {
        w.byte(0xf0 | elemType);
        w.varint(BigInt(items.length));
      }
      for (const item of items) writeValue(w, elemType, item, true);
      return;
    }
    case T.MAP: {
      const { keyType, valueType, entries } = value as TMap;
      w.varint(BigInt(entries.length));
      if (entries.length) w.byte((keyType << 4) | valueType);
      for (const [k, v] of entries) {
        writeValue(w, keyType, k, true);
        writeValue(w, valueType, v, true);
      }
      return;
    }
    case T.STRUCT:
      writeStruct(w, value as TStruct);
      return;
    default:
      throw new Error(`thrift: unsupported compact type ${type}`);
  }
}

function writeStruct(w: Writer, s: TStruct): void {
  let last = 0;
  for (const f of [...s.fields].sort((a, b) => a.id - b.id)) {
    const type = f.type === T.TRUE || f.type === T.FALSE ? (f.value ? T.TRUE : T.FALSE) : f.type;
    const delta = f.id - last;
    if (delta > 0 && delta <= 15) w.byte((delta << 4) | type);
    else {
      w.byte(type);
      w.zigzag(BigInt(f.id));
    }
    writeValue(w, type, f.value, false);
    last = f.id;
  }
  w.byte(T.STOP);
}

/** Encodes one struct in the compact protocol. */
export function encodeStruct(s: TStruct): Uint8Array {
  const w = new Writer();
  writeStruct(w, s);
  return w.result();
}

/** The field with this id, if present. */
export function field(s: TStruct, id: number): TField | undefined {
  return s.fields.find((f) => f.id === id);
}

/** Sets (or adds) a field. */
export function setField(s: TStruct, id: number, type: number, value: TValue): void {
  const f = field(s, id);
  if (f) {
    f.type = type;
    f.value = value;
  } else s.fields.push({ id, type, value });
}

export function removeField(s: TStruct, id: number): void {
  s.fields = s.fields.filter((f) => f.id !== id);
}
