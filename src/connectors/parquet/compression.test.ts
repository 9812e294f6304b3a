/** weir's own compressors (zstd, LZ4 block) against the decompressors the source reads with. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { COMPRESSORS, decompress } from './compression.js';
import { lz4CompressBlock } from './lz4.js';
import { zstdCompress } from './zstd.js';

/** Bytes with long repeats, as Parquet pages have (dictionary indexes, levels, similar values). */
function pageLike(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7919) % 251 < 30 ? i & 255 : (i >> 10) & 7;
  return out;
}
const text = new TextEncoder().encode(Array.from({ length: 20_000 }, (_, i) => `row ${i} name ${i % 977} ñ€`).join('\n'));

/** Byte-for-byte equality (vitest's deep equality walks a million elements slowly). */
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);

const codecs = [
  ['ZSTD', zstdCompress],
  ['LZ4_RAW', lz4CompressBlock],
] as const;

describe.each(codecs)('%s compressor', (codec, compress) => {
  it('round trips pages, text, incompressible and tiny inputs through the reader', () => {
    const random = Uint8Array.from({ length: 200_000 }, () => Math.floor(Math.random() * 256));
    for (const input of [pageLike(1_000_000), text, random, Uint8Array.of(7), new Uint8Array(13), pageLike(300_001)]) {
      expect(same(decompress(codec, compress(input), input.length), input)).toBe(true);
    }
    expect(compress(pageLike(1_000_000)).length).toBeLessThan(250_000);
    expect(compress(text).length).toBeLessThan(text.length / 2);
  });

  it('round trips any bytes (property)', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 5000 }),
      // runs of a few symbols: matches of every length and offset
      fc
        .array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 400 })), { minLength: 1, maxLength: 60 })
        .map((runs) => Uint8Array.from(runs.flatMap(([v, n]) => Array.from({ length: n }, (_, i) => (v * 37 + (i % (v + 1))) & 255)))),
    );
    fc.assert(
      fc.property(bytes, (input) => {
        expect(same(decompress(codec, compress(input), input.length), input)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('compressors handed to hyparquet-writer', () => {
  it('cover every codec the sink writes besides snappy (built in) and uncompressed', () => {
    expect(Object.keys(COMPRESSORS).sort()).toEqual(['BROTLI', 'GZIP', 'LZ4_RAW', 'ZSTD']);
  });
});
