/** The bounded RLE/bit-packed decoder against hyparquet's, and against runs that lie. */
import fc from 'fast-check';
import { readRleBitPackedHybrid } from 'hyparquet/src/encoding.js';
import { describe, expect, it } from 'vitest';
import { Corrupt } from './corrupt.js';
import { decodeHybrid } from './hybrid.js';

type Run = { rle: number; value: number } | { groups: number; seed: number };

const varint = (v: number): number[] => {
  const out: number[] = [];
  let x = v;
  while (x >= 0x80) {
    out.push((x % 128) | 0x80);
    x = Math.floor(x / 128);
  }
  out.push(x);
  return out;
};

/** Runs in the hybrid encoding, and the values they hold (an RLE run's value cut to `width` bits). */
function encode(width: number, runs: Run[]): { bytes: Uint8Array; values: number[] } {
  const bytes: number[] = [];
  const values: number[] = [];
  for (const r of runs) {
    if ('rle' in r) {
      bytes.push(...varint(r.rle * 2));
      const value = width >= 32 ? r.value : r.value % 2 ** width;
      for (let i = 0; i < (width + 7) >> 3; i++) bytes.push(Math.floor(value / 2 ** (8 * i)) & 0xff);
      for (let i = 0; i < r.rle; i++) values.push(value);
    } else {
      bytes.push(...varint(r.groups * 2 + 1));
      const body = Array.from({ length: r.groups * width }, (_, i) => (r.seed * 31 + i * 2654435761) & 0xff);
      bytes.push(...body);
      for (let v = 0; v < r.groups * 8; v++) {
        let value = 0;
        for (let b = 0; b < width; b++) {
          const bit = v * width + b;
          value += (((body[bit >> 3] as number) >> (bit & 7)) & 1) * 2 ** b;
        }
        values.push(value);
      }
    }
  }
  return { bytes: Uint8Array.from(bytes), values };
}

describe('decodeHybrid', () => {
  it('decodes random RLE and bit-packed runs (widths 0-32) to their values, as hyparquet does', () => {
    // runs of bounded counts: hyparquet's decoder loops over a run's whole count, so a random header could spin it
    const run = fc.oneof(
      fc.record({ rle: fc.integer({ min: 0, max: 300 }), value: fc.nat() }),
      fc.record({ groups: fc.integer({ min: 0, max: 40 }), seed: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 32 }), fc.array(run, { maxLength: 8 }), fc.integer({ min: 0, max: 1000 }), (width, runs, n) => {
        const { bytes, values } = encode(width, runs);
        const ours = new Int32Array(n);
        if (values.length < n) {
          expect(() => decodeHybrid(bytes, 0, bytes.length, width, ours, 'levels')).toThrow(Corrupt);
          return;
        }
        decodeHybrid(bytes, 0, bytes.length, width, ours, 'levels');
        expect(Array.from(ours)).toEqual(values.slice(0, n).map((v) => v | 0));
        // hyparquet reads a byte that a 0-bit or 0-group run does not have, and its 32-bit window garbles widths over 24
        if (width === 0 || width > 24 || runs.some((r) => 'groups' in r && r.groups === 0)) return;
        const theirs = new Int32Array(n);
        readRleBitPackedHybrid({ view: new DataView(bytes.buffer), offset: 0 }, width, theirs, bytes.length);
        expect(Array.from(theirs)).toEqual(Array.from(ours));
      }),
      { numRuns: 1000 },
    );
  });

  it('a run claiming 2^31 entries fills only the entries asked for, at once', () => {
    // RLE run header 2^32 (count 2^31, even: a repeated value), value 1
    const bytes = Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x10, 0x01);
    const out = new Uint8Array(10);
    const started = performance.now();
    decodeHybrid(bytes, 0, bytes.length, 1, out, 'levels');
    expect(Array.from(out)).toEqual(new Array(10).fill(1));
    expect(performance.now() - started).toBeLessThan(50);
  });

  it('bytes that end before every entry is decoded are corrupt, naming what they were', () => {
    expect(() => decodeHybrid(Uint8Array.of(0x06, 0x01), 0, 2, 1, new Uint8Array(5), 'definition levels of "x"')).toThrow(
      /definition levels of "x" end after 3 of 5 entries/,
    );
    expect(() => decodeHybrid(Uint8Array.of(0x03), 0, 1, 8, new Uint8Array(5), 'indexes')).toThrow(/indexes end inside a bit-packed run/);
    expect(() => decodeHybrid(Uint8Array.of(0x03), 0, 9, 1, new Uint8Array(5), 'indexes')).toThrow(/lie at bytes 0-9 of a page of 1 bytes/);
  });
});
