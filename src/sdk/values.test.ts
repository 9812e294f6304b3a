import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { estimateRowBytes } from './types.js';
import { Decimal, JsonDepthError, parseJsonExact, stringifyJson } from './values.js';

describe('Decimal', () => {
  it('keeps text in JSON number grammar as it is', () => {
    for (const t of ['375.30', '0', '-0.0', '1E3', '1e-7', '12345678901234567890123456789012345678.1234567890'])
      expect(Decimal.parse(t)?.text).toBe(t);
  });

  it('normalises lenient text, keeping the digits of the fraction', () => {
    const cases: [string, string][] = [
      ['+1.50', '1.50'],
      [' 007.5 ', '7.5'],
      ['.5', '0.5'],
      ['5.', '5'],
      ['-.5', '-0.5'],
      ['-00.10', '-0.10'],
      ['00', '0'],
    ];
    for (const [input, text] of cases) expect(Decimal.parse(input)?.text, input).toBe(text);
  });

  it('refuses what is no number', () => {
    for (const t of ['', '.', '-', '+', 'e5', 'abc', '1.2.3', 'NaN', 'Infinity', '1e', '0x10']) expect(Decimal.parse(t), t).toBeUndefined();
  });

  it('gives scale, integer digits and the unscaled integer exactly', () => {
    const d = Decimal.parse('0.0050') as Decimal;
    expect([d.scale, d.integerDigits, d.unscaled(4), d.unscaled(3), d.unscaled(2)]).toEqual([4, 0, 50n, 5n, undefined]);
    const e = Decimal.parse('-1.5e3') as Decimal;
    expect([e.scale, e.integerDigits, e.unscaled(0), e.unscaled(2)]).toEqual([0, 4, -1500n, -150000n]);
    expect((Decimal.parse('12345678901234567.89') as Decimal).unscaled(2)).toBe(1234567890123456789n);
    expect((Decimal.parse('0e5') as Decimal).integerDigits).toBe(0);
    expect((Decimal.parse('0.000') as Decimal).integerDigits).toBe(0);
  });

  it('fromUnscaled is the inverse of unscaled', () => {
    expect(Decimal.fromUnscaled(37530n, 2).text).toBe('375.30');
    expect(Decimal.fromUnscaled(-5n, 3).text).toBe('-0.005');
    expect(Decimal.fromUnscaled(0n, 2).text).toBe('0.00');
    expect(Decimal.fromUnscaled(7n, -2).text).toBe('700');
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }), fc.integer({ min: 0, max: 30 }), (n, scale) => {
        const d = Decimal.fromUnscaled(n, scale);
        expect(d.unscaled(scale)).toBe(n);
        expect(Decimal.parse(d.text)?.text).toBe(d.text);
      }),
    );
  });

  it('is recognised by brand, prints as its text', () => {
    const d = Decimal.parse('1.10') as Decimal;
    expect(Decimal.is(d)).toBe(true);
    expect(Decimal.is({ text: '1.10' })).toBe(false);
    expect(String(d)).toBe('1.10');
    expect(JSON.stringify({ d })).toBe('{"d":"1.10"}');
  });
});

describe('exact JSON', () => {
  it('writes decimals and bigints as number literals', () => {
    const row = { a: Decimal.parse('375.30'), b: 18446744073709551615n, c: [Decimal.parse('1e3')], d: 'x', e: new Date(0) };
    expect(stringifyJson(row)).toBe('{"a":375.30,"b":18446744073709551615,"c":[1e3],"d":"x","e":"1970-01-01T00:00:00.000Z"}');
    expect(stringifyJson({ a: 1.5, b: 'x' })).toBe('{"a":1.5,"b":"x"}');
  });

  it('reads fractions as decimals and large integers as bigints, on both paths', () => {
    expect(parseJsonExact('{"a":375.30,"b":12345678901234567890,"c":5,"d":"1.5"}')).toEqual({
      a: Decimal.parse('375.30'),
      b: 12345678901234567890n,
      c: 5,
      d: '1.5',
    });
    expect(parseJsonExact('{"c":5,"d":"x"}')).toEqual({ c: 5, d: 'x' });
  });

  it('keeps __proto__ an own key and never touches Object.prototype', () => {
    const v = parseJsonExact('{"a":1.5,"__proto__":{"polluted":1}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('round-trips any JSON exactly', () => {
    fc.assert(
      fc.property(fc.json(), (text) => {
        expect(JSON.parse(stringifyJson(parseJsonExact(text)))).toEqual(JSON.parse(text));
      }),
    );
  });
});

describe('estimateRowBytes', () => {
  it('sizes rows with bigints and decimals nested in JSON values (JSON.stringify throws on them)', () => {
    const row = { a: [2n ** 70n, Decimal.parse('1.50')], b: { c: 1n }, d: Decimal.parse('375.30') };
    expect(estimateRowBytes(row)).toBeGreaterThan(30);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(estimateRowBytes({ cyclic })).toBeGreaterThan(0);
  });
});

describe('JSON nesting depth', () => {
  const nested = (depth: number, open = '[', close = ']', inner = '1') => `${open.repeat(depth)}${inner}${close.repeat(depth)}`;
  const objects = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

  it('parses up to the limit (64 by default), and refuses one level more with an error naming the limit', () => {
    expect(parseJsonExact(nested(64))).toBeDefined();
    expect(parseJsonExact(objects(64))).toBeDefined();
    expect(() => parseJsonExact(nested(65))).toThrow(JsonDepthError);
    expect(() => parseJsonExact(objects(65))).toThrow(/nested deeper than 64 levels/);
    expect(parseJsonExact(nested(100), 100)).toBeDefined();
    expect(() => parseJsonExact(nested(3), 2)).toThrow(/deeper than 2 levels/);
  });

  it('refuses a hostile depth on both parsers (plain and exact numbers) without exhausting the stack', () => {
    for (const inner of ['1', '1.5', '12345678901234567890']) {
      const e = (() => {
        try {
          parseJsonExact(`{"x": ${nested(200_000, '[', ']', inner)}}`);
        } catch (error) {
          return error;
        }
      })();
      expect(e).toBeInstanceOf(JsonDepthError);
    }
  });

  it('counts only brackets outside strings', () => {
    const text = JSON.stringify({ s: '['.repeat(500), t: '{"a":'.repeat(100), q: 'a\\"[[[[' });
    expect(parseJsonExact(text)).toEqual(JSON.parse(text));
    // many brackets in all, but never deep
    expect(parseJsonExact(JSON.stringify(Array.from({ length: 500 }, () => [[1]])))).toHaveLength(500);
  });

  it('agrees with a depth computed from the value (property)', () => {
    const depthOf = (v: unknown): number =>
      v !== null && typeof v === 'object' ? 1 + Math.max(0, ...Object.values(v as object).map(depthOf)) : 0;
    fc.assert(
      fc.property(fc.jsonValue({ depthSize: 'large', maxDepth: 12 }), fc.integer({ min: 1, max: 8 }), (value, limit) => {
        const text = JSON.stringify(value);
        if (depthOf(value) > limit) expect(() => parseJsonExact(text, limit)).toThrow(JsonDepthError);
        else expect(() => parseJsonExact(text, limit)).not.toThrow();
      }),
      { seed: 64 },
    );
  });

  it('the size estimate of a row with a hostile value is a number, not a stack overflow', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(typeof estimateRowBytes({ id: 1, deep })).toBe('number');
  });
});
