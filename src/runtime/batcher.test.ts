import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withLocations } from '../sdk/errors.js';
import type { EncodedRows, Row } from '../sdk/types.js';
import { batches } from './batcher.js';

async function collect(input: (Row | Row[] | EncodedRows)[], limits: { rows: number; bytes: number }) {
  async function* gen() {
    yield* input;
  }
  const out = [];
  for await (const b of batches(gen(), limits)) out.push(b);
  return out;
}

describe('batcher', () => {
  it('keeps where each row is in the source across batches cut anywhere (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.boolean()), { maxLength: 10 }),
        fc.integer({ min: 1, max: 50 }),
        async (chunks, limit) => {
          let id = 0;
          const input = chunks.map(([n, located]) => {
            const rows = Array.from({ length: n }, () => ({ id: id++ }));
            const first = rows[0]?.id ?? 0;
            // the source's line of a row: its id + 100, given only by located chunks
            return located ? withLocations(rows, (i) => ({ line: first + i + 100 })) : rows;
          });
          const locatedIds = new Set(input.flatMap((rows, k) => (chunks[k]?.[1] ? rows.map((r) => r.id) : [])));
          for (const batch of await collect(input, { rows: limit, bytes: 1e12 }))
            batch.rows.forEach((row, i) => {
              expect(batch.locate?.(i)).toEqual(locatedIds.has(row.id as number) ? { line: (row.id as number) + 100 } : undefined);
            });
        },
      ),
      { numRuns: 100 },
    );
  });

  it('keeps every row, in order, and never exceeds the row limit', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 12 }),
        fc.integer({ min: 1, max: 500 }),
        async (sizes, limit) => {
          let id = 0;
          const input = sizes.map((n) => Array.from({ length: n }, () => ({ id: id++, text: 'x'.repeat(id % 50) })));
          const out = await collect(input, { rows: limit, bytes: 1e12 });
          expect(out.flatMap((b) => b.rows).map((r) => r.id)).toEqual([...Array(id).keys()]);
          for (const b of out) expect(b.rows.length).toBeLessThanOrEqual(limit);
          for (const b of out.slice(0, -1)) expect(b.rows.length).toBe(limit);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('cuts by bytes, with at least one row per batch', async () => {
    const rows = Array.from({ length: 1000 }, (_, i) => ({ id: i, blob: 'y'.repeat(1000) }));
    const out = await collect([rows], { rows: 100_000, bytes: 64 * 1024 });
    expect(out.flatMap((b) => b.rows)).toHaveLength(1000);
    for (const b of out) expect(b.bytes).toBeLessThanOrEqual(64 * 1024 + 1100);
    const huge = await collect([[{ id: 1, blob: 'z'.repeat(200_000) }]], { rows: 10, bytes: 1024 });
    expect(huge).toHaveLength(1);
  });

  it('passes encoded rows through as their own batches, flushing pending rows first', async () => {
    const enc: EncodedRows = {
      kind: 'encoded',
      format: 'csv',
      columns: ['id'],
      delimiter: ',',
      quote: '"',
      nullText: '',
      data: Buffer.from('1\n2\n'),
      rows: 2,
      decode: async () => [{ id: 1 }, { id: 2 }],
    };
    const out = await collect([{ id: 0 }, enc, [{ id: 3 }]], { rows: 10, bytes: 1e9 });
    expect(out.map((b) => (b.encoded ? 'enc' : b.rows.map((r) => r.id).join(',')))).toEqual(['0', 'enc', '3']);
    expect(out[1]?.bytes).toBe(4);
  });
});
