import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AhoCorasick, foldCase } from './aho-corasick.js';

function naive(needles: string[], text: string): string[] {
  const out: string[] = [];
  needles.forEach((n, needle) => {
    if (!n) return;
    for (let i = text.indexOf(n); i >= 0; i = text.indexOf(n, i + 1)) out.push(`${i + n.length}:${needle}`);
  });
  return out.sort();
}

describe('AhoCorasick', () => {
  it('finds overlapping needles and needles inside needles', () => {
    const hits = new AhoCorasick(['he', 'she', 'hers', 'his']).search('ushers');
    expect(hits.map((h) => `${h.end}:${h.needle}`).sort()).toEqual(['4:0', '4:1', '6:2']);
  });

  it('finds exactly what a naive search finds', () => {
    const alphabet = fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'é', '\ud83d'), maxLength: 6 });
    fc.assert(
      fc.property(
        fc.array(alphabet, { maxLength: 12 }),
        fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'é', '\ud83d'), maxLength: 200 }),
        (needles, text) => {
          const got = new AhoCorasick(needles)
            .search(text)
            .map((h) => `${h.end}:${h.needle}`)
            .sort();
          expect(got).toEqual(naive(needles, text));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('stays linear in the text with thousands of needles', () => {
    const needles = Array.from({ length: 5000 }, (_, i) => `needle-${i.toString(36)}-${'x'.repeat(i % 40)}`);
    const ac = new AhoCorasick(needles);
    const text = 'needle-'.repeat(150_000); // 1 MB of partial matches
    const t0 = performance.now();
    expect(ac.search(text)).toEqual([]);
    expect(performance.now() - t0).toBeLessThan(1500);
  });
});

describe('foldCase', () => {
  it('lower-cases without moving any index', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 100 }), (s) => {
        const f = foldCase(s);
        expect(f.length).toBe(s.length);
      }),
    );
    expect(foldCase('ÄBC İx')).toBe('äbc İx');
  });
});
