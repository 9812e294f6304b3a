/** How Parquet leaf types become weir values, for types no writer at hand produces (INT96, TIME, unsigned, DECIMAL in INT32/bytes). */
import type { SchemaElement, SchemaTree } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import { Decimal } from '../../sdk/values.js';
import { bigIntFromBytes, sourceColumns } from './read-values.js';

/** The single column of a schema holding `element`, and its converter. */
function column(element: Omit<SchemaElement, 'name'>) {
  const leaf: SchemaTree = { element: { name: 'c', repetition_type: 'OPTIONAL', ...element }, children: [], count: 1, path: ['c'] };
  const tree: SchemaTree = { element: { name: 'root', num_children: 1 }, children: [leaf], count: 2, path: [] };
  const [c] = sourceColumns(tree);
  if (!c) throw new Error('no column');
  return { ...c, read: (v: unknown) => (c.convert as (x: unknown) => unknown)(v) };
}
const text = (v: unknown) => (Decimal.is(v) ? v.text : v);

describe('parquet leaf types', () => {
  it('INT96 timestamps with every nanosecond digit', () => {
    const int96 = (days: bigint, nanos: bigint) => (days << 64n) | nanos;
    const c = column({ type: 'INT96' });
    expect(c.type).toBe('timestamp');
    expect(c.read(int96(2_440_588n, 1n))).toBe('1970-01-01T00:00:00.000000001Z');
    expect(c.read(int96(2_460_311n, 11_045_123_456_789n))).toBe('2024-01-01T03:04:05.123456789Z');
  });

  it("DECIMAL from INT32, INT64 and big-endian two's-complement bytes, exactly", () => {
    const i32 = column({ type: 'INT32', converted_type: 'DECIMAL', precision: 9, scale: 2 });
    expect([i32.type, i32.precision, i32.scale]).toEqual(['decimal', 9, 2]);
    expect(text(i32.read(-12345))).toBe('-123.45');
    const i64 = column({ type: 'INT64', logical_type: { type: 'DECIMAL', precision: 18, scale: 0 } });
    expect(text(i64.read(-9223372036854775808n))).toBe('-9223372036854775808');
    const flba = column({ type: 'FIXED_LEN_BYTE_ARRAY', type_length: 16, converted_type: 'DECIMAL', precision: 38, scale: 10 });
    const max = 10n ** 38n - 1n;
    const bytes = (v: bigint, n: number) =>
      Uint8Array.from({ length: n }, (_, i) => Number((BigInt.asUintN(n * 8, v) >> BigInt(8 * (n - 1 - i))) & 0xffn));
    expect(text(flba.read(bytes(max, 16)))).toBe('9999999999999999999999999999.9999999999');
    expect(text(flba.read(bytes(-max, 16)))).toBe('-9999999999999999999999999999.9999999999');
    expect(bigIntFromBytes(Uint8Array.of(0xff))).toBe(-1n);
    expect(bigIntFromBytes(Uint8Array.of(0x00, 0x80))).toBe(128n);
    expect(bigIntFromBytes(new Uint8Array(0))).toBe(0n);
  });

  it('unsigned integers, times of day, dates, UUIDs', () => {
    expect(column({ type: 'INT32', converted_type: 'UINT_32' }).read(-1)).toBe(4294967295);
    expect(column({ type: 'INT64', converted_type: 'UINT_64' }).read(-1n)).toBe(18446744073709551615n);
    expect(column({ type: 'INT64', converted_type: 'INT_64' }).read(42n)).toBe(42);
    expect(column({ type: 'INT64', logical_type: { type: 'TIME', isAdjustedToUTC: false, unit: 'NANOS' } }).read(3_723_000_000_001n)).toBe(
      '01:02:03.000000001',
    );
    expect(column({ type: 'INT32', converted_type: 'DATE' }).read(-1)).toBe('1969-12-31');
    expect(
      column({ type: 'FIXED_LEN_BYTE_ARRAY', type_length: 16, logical_type: { type: 'UUID' } }).read(new Uint8Array(16).fill(0xab)),
    ).toBe('abababab-abab-abab-abab-abababababab');
  });
});
