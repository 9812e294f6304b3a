import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { INVALID_MARK, markInvalid, Utf8Marker } from './utf8.js';

const lossy = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');
const shown = (b: Buffer) => b.toString('utf8').replaceAll(INVALID_MARK, '\ufffd');
const noMark = (bytes: Uint8Array) => !Buffer.from(bytes).includes(Buffer.from(INVALID_MARK));

describe('markInvalid', () => {
  it('marks exactly where a lossy decoder writes U+FFFD (property), and leaves valid text as it is', () => {
    const bytes = fc.uint8Array({ maxLength: 40 }).filter(noMark);
    fc.assert(
      fc.property(bytes, (b) => {
        const marked = markInvalid(Buffer.from(b));
        expect(shown(marked)).toBe(lossy(b));
        // valid input is left as it is; anything else gets marks
        expect(marked.equals(Buffer.from(b))).toBe(Buffer.from(lossy(b)).equals(Buffer.from(b)));
      }),
      { seed: 12, numRuns: 2000 },
    );
    const text = Buffer.from('héllo \ufffd wörld 𝄞');
    expect(markInvalid(text)).toBe(text);
  });

  it('finds the same marks whatever the chunks the stream is cut into (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 40 }).filter(noMark), fc.integer({ min: 1, max: 7 }), async (b, size) => {
        const chunks: Buffer[] = [];
        for (let i = 0; i < b.length; i += size) chunks.push(Buffer.from(b.subarray(i, i + size)));
        const marker = new Utf8Marker();
        const out: Buffer[] = [];
        for await (const c of Readable.from(chunks).pipe(marker)) out.push(c as Buffer);
        expect(shown(Buffer.concat(out))).toBe(lossy(b));
        expect(marker.sawInvalid).toBe(!Buffer.from(lossy(b)).equals(Buffer.from(b)));
      }),
      { seed: 13, numRuns: 500 },
    );
  });
});
