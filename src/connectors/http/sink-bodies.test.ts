/** The http sink's request bodies: the one-go JSON serialisation gives the bytes of the row-by-row cut (`rowBodies`). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Row } from '../../sdk/types.js';
import { Decimal } from '../../sdk/values.js';
import { bodies, rowBodies } from './sink.js';

const plainValue = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.date({ noInvalidDate: false }),
);
const exactValue = fc.oneof(
  fc.bigInt(),
  fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map((n) => Decimal.fromUnscaled(n, 3)),
  fc.array(plainValue, { maxLength: 3 }),
  fc.dictionary(fc.string(), plainValue, { maxKeys: 3 }),
);
const key = fc.oneof(fc.constantFrom('id', 'name', 'amount', '__proto__x', '0', '1e3'), fc.string({ unit: 'binary', maxLength: 6 }));
const plainRow = fc.dictionary(key, plainValue, { maxKeys: 8 }) as fc.Arbitrary<Row>;
const anyRow = fc.dictionary(key, fc.oneof(plainValue, exactValue), { maxKeys: 8 }) as fc.Arbitrary<Row>;
const rowsOf = fc.oneof(fc.array(plainRow, { minLength: 1, maxLength: 40 }), fc.array(anyRow, { minLength: 1, maxLength: 40 }));

describe('http sink bodies', () => {
  it('are byte for byte the row-by-row cut (json and ndjson, any batch_bytes)', () => {
    fc.assert(
      fc.property(
        rowsOf,
        fc.constantFrom('json', 'ndjson') as fc.Arbitrary<'json' | 'ndjson'>,
        fc.integer({ min: 1, max: 4000 }),
        (rows, format, maxBytes) => {
          const got = bodies(rows, format, maxBytes).map((b) => Buffer.from(b).toString('hex'));
          const want = rowBodies(rows, format, maxBytes).map((s) => Buffer.from(s).toString('hex'));
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('are byte for byte the row-by-row cut for batches of several pieces (hundreds of rows)', () => {
    const smallRow = fc.dictionary(fc.constantFrom('id', 'name', 'ü'), fc.oneof(plainValue, exactValue), {
      maxKeys: 3,
    }) as fc.Arbitrary<Row>;
    const many = fc.oneof(
      fc.array(smallRow, { minLength: 100, maxLength: 400 }),
      fc
        .array(smallRow, { minLength: 100, maxLength: 400 })
        .map((rows) =>
          rows.map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => typeof v !== 'object' && typeof v !== 'bigint'))),
        ),
    );
    fc.assert(
      fc.property(many, fc.integer({ min: 1, max: 200_000 }), (rows, maxBytes) => {
        const got = bodies(rows, 'json', maxBytes).map((b) => Buffer.from(b).toString('hex'));
        expect(got).toEqual(rowBodies(rows, 'json', maxBytes).map((s) => Buffer.from(s).toString('hex')));
      }),
      { numRuns: 100 },
    );
  });

  it('keep decimals and big integers exact on the fast path’s fallback', () => {
    const rows: Row[] = [
      { id: 1, price: Decimal.parse('375.30') as Decimal, big: 18446744073709551615n },
      { id: 2, name: 'x' },
    ];
    expect(bodies(rows, 'json', 1 << 20).map(String)).toEqual(['[{"id":1,"price":375.30,"big":18446744073709551615},{"id":2,"name":"x"}]']);
  });

  it('are one body when the batch fits batch_bytes exactly, two when one byte short', () => {
    const rows: Row[] = [{ a: 'xx' }, { a: 'yy' }];
    const joined = '{"a":"xx"},{"a":"yy"}'.length;
    expect(bodies(rows, 'json', joined)).toHaveLength(1);
    expect(bodies(rows, 'json', joined - 1).map(String)).toEqual(['[{"a":"xx"}]', '[{"a":"yy"}]']);
  });
});
