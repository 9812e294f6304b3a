/**
 * A Zstandard compressor (RFC 8878) for Parquet's ZSTD codec on Node versions
 * whose node:zlib has no zstd (Node 20). Runs on workers, once per page the
 * sink writes; the output is one frame any zstd decoder reads.
 *
 * What it does: greedy LZ77 matching over the whole page (4-byte hash table,
 * like the LZ4 compressor), each block's literals stored raw, its sequences
 * encoded with the format's predefined FSE tables. What it leaves out: Huffman
 * literals, repeat offsets, tuned tables, so it compresses repetitive data (the
 * dictionary indexes, levels and plain values of a column) well and prose less
 * than the reference encoder. A block that would not shrink is stored raw.
 */

const MAGIC = 0xfd2fb528;
const MAX_BLOCK = 128 * 1024;
const MIN_MATCH = 4;
const HASH_LOG = 16;

/** A predefined FSE table: normalized counts (-1: "less than one") and accuracy. */
interface Distribution {
  counts: readonly number[];
  log: number;
}
const LL_DIST: Distribution = {
  counts: [4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1],
  log: 6,
};
const ML_DIST: Distribution = {
  counts: [
    1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, -1, -1, -1, -1, -1, -1, -1,
  ],
  log: 6,
};
const OF_DIST: Distribution = {
  counts: [1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1],
  log: 5,
};

/** Extra bits of each literal-length and match-length code; the baselines follow from them. */
const LL_BITS = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
const ML_BITS = [
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9,
  10, 11, 12, 13, 14, 15, 16,
];
const baselines = (bits: readonly number[], first: number) => {
  const out: number[] = [];
  let b = first;
  for (const n of bits) {
    out.push(b);
    b += 1 << n;
  }
  return out;
};
const LL_BASE = baselines(LL_BITS, 0);
const ML_BASE = baselines(ML_BITS, 3);

const highBit = (v: number) => 31 - Math.clz32(v);

/** The code of a length: the last code whose baseline is not above it. */
function codeOf(value: number, base: readonly number[]): number {
  let code = Math.min(value, base.length - 1);
  while ((base[code] as number) > value) code--;
  return code;
}

/** An FSE encoding table built from a distribution, as the reference encoder builds it (FSE_buildCTable). */
class FseTable {
  readonly log: number;
  readonly states: Uint16Array;
  readonly deltaBits: Int32Array;
  readonly deltaState: Int32Array;

  constructor({ counts, log }: Distribution) {
    const size = 1 << log;
    const mask = size - 1;
    const symbols = new Uint8Array(size);
    const cumul = new Int32Array(counts.length + 1);
    let high = size - 1;
    for (let s = 0; s < counts.length; s++) {
      const c = counts[s] as number;
      if (c === -1) {
        cumul[s + 1] = (cumul[s] as number) + 1;
        symbols[high--] = s;
      } else cumul[s + 1] = (cumul[s] as number) + c;
    }
    const step = (size >> 1) + (size >> 3) + 3;
    let position = 0;
    for (let s = 0; s < counts.length; s++) {
      for (let i = 0; i < (counts[s] as number); i++) {
        symbols[position] = s;
        do position = (position + step) & mask;
        while (position > high);
      }
    }
    this.log = log;
    this.states = new Uint16Array(size);
    const next = Int32Array.from(cumul);
    for (let u = 0; u < size; u++) {
      const s = symbols[u] as number;
      this.states[(next[s] as number)++] = size + u;
    }
    this.deltaBits = new Int32Array(counts.length);
    this.deltaState = new Int32Array(counts.length);
    let total = 0;
    for (let s = 0; s < counts.length; s++) {
      const c = counts[s] as number;
      if (c === -1 || c === 1) {
        this.deltaBits[s] = (log << 16) - size;
        this.deltaState[s] = total - 1;
        total++;
      } else if (c > 1) {
        const maxBitsOut = log - highBit(c - 1);
        this.deltaBits[s] = (maxBitsOut << 16) - (c << maxBitsOut);
        this.deltaState[s] = total - c;
        total += c;
      }
    }
  }
}

const LL_TABLE = new FseTable(LL_DIST);
const ML_TABLE = new FseTable(ML_DIST);
const OF_TABLE = new FseTable(OF_DIST);

/** A bit stream written forward, LSB first, to be read backward by the decoder. */
class BitWriter {
  private bytes: number[] = [];
  private container = 0;
  private bits = 0;

  add(value: number, count: number): void {
    while (count > 0) {
      const take = Math.min(count, 16);
      this.container |= (value & ((1 << take) - 1)) << this.bits;
      this.bits += take;
      value = Math.floor(value / (1 << take));
      count -= take;
      while (this.bits >= 8) {
        this.bytes.push(this.container & 0xff);
        this.container >>>= 8;
        this.bits -= 8;
      }
    }
  }

  /** The stream with its end mark (one 1 bit). */
  close(): number[] {
    this.add(1, 1);
    if (this.bits > 0) this.bytes.push(this.container & 0xff);
    return this.bytes;
  }
}

/** One FSE state, encoding symbols of one table. */
class FseState {
  value = 0;
  constructor(
    private readonly table: FseTable,
    first: number,
  ) {
    const nbBits = ((table.deltaBits[first] as number) + (1 << 15)) >> 16;
    const value = (nbBits << 16) - (table.deltaBits[first] as number);
    this.value = table.states[(value >> nbBits) + (table.deltaState[first] as number)] as number;
  }

  encode(out: BitWriter, symbol: number): void {
    const t = this.table;
    const nbBits = (this.value + (t.deltaBits[symbol] as number)) >> 16;
    out.add(this.value, nbBits);
    this.value = t.states[(this.value >> nbBits) + (t.deltaState[symbol] as number)] as number;
  }

  flush(out: BitWriter): void {
    out.add(this.value, this.table.log);
  }
}

interface Sequence {
  literals: number;
  offset: number;
  match: number;
}

/** The literals section header of raw literals (RFC 8878 3.1.1.3.1.1). */
function rawLiteralsHeader(size: number): number[] {
  if (size < 32) return [size << 3];
  if (size < 4096) return [((size & 0x0f) << 4) | 0b0100, size >> 4];
  return [((size & 0x0f) << 4) | 0b1100, (size >> 4) & 0xff, size >> 12];
}

/** The sequences section: count, compression modes (all predefined), FSE bit stream. */
function sequencesSection(seqs: readonly Sequence[]): number[] {
  const n = seqs.length;
  if (n === 0) return [0];
  const head = n < 128 ? [n] : n < 0x7f00 ? [(n >> 8) + 128, n & 0xff] : [0xff, (n - 0x7f00) & 0xff, (n - 0x7f00) >> 8];
  const ll = seqs.map((s) => codeOf(s.literals, LL_BASE));
  const ml = seqs.map((s) => codeOf(s.match, ML_BASE));
  const offBase = seqs.map((s) => s.offset + 3); // never a repeat offset
  const of = offBase.map(highBit);
  const out = new BitWriter();
  const last = n - 1;
  const mlState = new FseState(ML_TABLE, ml[last] as number);
  const ofState = new FseState(OF_TABLE, of[last] as number);
  const llState = new FseState(LL_TABLE, ll[last] as number);
  const extras = (i: number) => {
    const s = seqs[i] as Sequence;
    out.add(s.literals - (LL_BASE[ll[i] as number] as number), LL_BITS[ll[i] as number] as number);
    out.add(s.match - (ML_BASE[ml[i] as number] as number), ML_BITS[ml[i] as number] as number);
    out.add((offBase[i] as number) - 2 ** (of[i] as number), of[i] as number);
  };
  extras(last);
  for (let i = last - 1; i >= 0; i--) {
    ofState.encode(out, of[i] as number);
    mlState.encode(out, ml[i] as number);
    llState.encode(out, ll[i] as number);
    extras(i);
  }
  mlState.flush(out);
  ofState.flush(out);
  llState.flush(out);
  return [...head, 0, ...out.close()];
}

/** Greedy matches of one block `[start, end)` (references may reach back into earlier blocks). */
function findSequences(input: Uint8Array, view: DataView, table: Int32Array, start: number, end: number) {
  const seqs: Sequence[] = [];
  const literals: number[] = [];
  let anchor = start;
  let ip = start;
  while (ip + MIN_MATCH <= end) {
    const sequence = view.getUint32(ip, true);
    const h = Math.imul(sequence, 2654435761) >>> (32 - HASH_LOG);
    const ref = table[h] as number;
    table[h] = ip;
    if (ref < 0 || view.getUint32(ref, true) !== sequence) {
      ip++;
      continue;
    }
    let length = MIN_MATCH;
    while (ip + length < end && input[ip + length] === input[ref + length]) length++;
    for (let i = anchor; i < ip; i++) literals.push(input[i] as number);
    seqs.push({ literals: ip - anchor, offset: ip - ref, match: length });
    ip += length;
    anchor = ip;
  }
  for (let i = anchor; i < end; i++) literals.push(input[i] as number);
  return { seqs, literals };
}

/** Compresses `input` into one zstd frame (single segment, content size recorded). */
export function zstdCompress(input: Uint8Array): Uint8Array {
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const table = new Int32Array(1 << HASH_LOG).fill(-1);
  const chunks: Uint8Array[] = [];
  const header = new Uint8Array(9);
  new DataView(header.buffer).setUint32(0, MAGIC, true);
  header[4] = 0xa0; // 4-byte frame content size, single segment, no checksum, no dictionary
  new DataView(header.buffer).setUint32(5, input.length, true);
  chunks.push(header);
  const blocks = Math.max(1, Math.ceil(input.length / MAX_BLOCK));
  for (let b = 0; b < blocks; b++) {
    const start = b * MAX_BLOCK;
    const end = Math.min(input.length, start + MAX_BLOCK);
    const last = b === blocks - 1 ? 1 : 0;
    const { seqs, literals } = findSequences(input, view, table, start, end);
    const body = seqs.length ? [...rawLiteralsHeader(literals.length), ...literals, ...sequencesSection(seqs)] : undefined;
    const raw = !body || body.length >= end - start;
    const size = raw ? end - start : (body as number[]).length;
    const blockHeader = (size << 3) | ((raw ? 0 : 2) << 1) | last;
    chunks.push(Uint8Array.of(blockHeader & 0xff, (blockHeader >> 8) & 0xff, (blockHeader >> 16) & 0xff));
    chunks.push(raw ? input.subarray(start, end) : Uint8Array.from(body as number[]));
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
