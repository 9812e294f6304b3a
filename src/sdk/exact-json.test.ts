import fc from 'fast-check';
import { parse as losslessParse } from 'lossless-json';
import { describe, expect, it } from 'vitest';
import { parseWithExactNumbers } from './exact-json.js';
import { Decimal, exactJsonNumber, parseJsonExact } from './values.js';

/** A value with its types, key order and prototypes spelled out (toEqual lets 0 and -0, or key order, pass). */
function show(v: unknown): string {
  if (typeof v === 'number') return `n:${Object.is(v, -0) ? '-0' : String(v)}`;
  if (typeof v === 'bigint') return `b:${v}`;
  if (typeof v === 'string') return `s:${JSON.stringify(v)}`;
  if (v === null || typeof v === 'boolean') return String(v);
  if (Decimal.is(v)) return `d:${v.text}`;
  if (Array.isArray(v)) return `[${v.map(show).join(',')}]`;
  const o = v as Record<string, unknown>;
  const proto = Object.getPrototypeOf(o) === Object.prototype ? '' : '!proto';
  return `{${proto}${Object.keys(o)
    .map((k) => `${JSON.stringify(k)}:${show(o[k])}`)
    .join(',')}}`;
}

/** The row path: lossless-json with weir's number conversion. */
const lossless = (text: string) => losslessParse(text, undefined, exactJsonNumber);

const digits = (min: number, max: number) =>
  fc.array(fc.constantFrom(...'0123456789'), { minLength: min, maxLength: max }).map((d) => d.join(''));
/** JSON number text of every kind: small and huge integers, fractions with trailing zeros, exponents, -0. */
const numberText = fc.oneof(
  fc.integer().map(String),
  fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 9 }), digits(14, 30)).map(([neg, d, rest]) => `${neg ? '-' : ''}${d}${rest}`),
  fc
    .tuple(fc.boolean(), fc.oneof(fc.constant('0'), fc.integer({ min: 1, max: 1e9 }).map(String)), digits(1, 20))
    .map(([neg, int, frac]) => `${neg ? '-' : ''}${int}.${frac}`),
  fc
    .tuple(
      fc.integer({ min: -99, max: 99 }),
      fc.option(digits(1, 3)),
      fc.constantFrom('e', 'E'),
      fc.constantFrom('', '+', '-'),
      digits(1, 3),
    )
    .map(([m, f, e, s, x]) => `${m}${f ? `.${f}` : ''}${e}${s}${x}`),
  fc.constantFrom('-0', '0.0', '-0.0', '1e400', '5e-324', '9007199254740993'),
);
/** Strings that look like numbers, quote and escape characters, NUL as an escape and not. */
const stringText = fc
  .oneof(
    fc.string({ unit: 'binary' }),
    fc.constantFrom('1.50', '12345678901234567890', '\\', '"', '1e5"', 'x\u0000y', '\u0000', '2024-01-01T10:00:00.000Z'),
  )
  .map((s) => JSON.stringify(s));
const space = fc.constantFrom('', ' ', '\n', '\t ', '\r\n');

const { value: jsonText } = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    numberText,
    stringText,
    fc.constantFrom('true', 'false', 'null'),
    fc.array(fc.tuple(space, tie('value'), space), { maxLength: 5 }).map((xs) => `[${xs.map((x) => x.join('')).join(',')}]`),
    fc
      .uniqueArray(fc.tuple(fc.oneof(fc.string(), fc.constantFrom('__proto__', '1', '0.5', 'constructor')), tie('value')), {
        maxLength: 5,
        selector: ([k]) => k,
      })
      .map((kvs) => `{${kvs.map(([k, v]) => `${JSON.stringify(k)} :${v}`).join(',')}}`),
  ),
}));

describe('parseWithExactNumbers', () => {
  it('gives what lossless-json gives, for any JSON (numbers of every kind, strings that look like numbers)', () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        const fast = parseWithExactNumbers(text, exactJsonNumber);
        if (text.includes('\\u0000')) expect(fast).toBeUndefined();
        else expect(show(fast)).toBe(show(lossless(text)));
        expect(show(parseJsonExact(text))).toBe(show(lossless(text)));
      }),
      { numRuns: 3000 },
    );
  });

  it('never vouches for text that is not JSON: parseJsonExact still refuses it', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          jsonText.chain((t) => fc.nat(t.length).map((cut) => t.slice(0, cut) + t.slice(cut + 1))),
          jsonText.map((t) => `${t}1.5`),
        ),
        (text) => {
          let reference: string;
          try {
            reference = show(lossless(text));
          } catch {
            expect(() => parseJsonExact(text)).toThrow();
            return;
          }
          expect(show(parseJsonExact(text))).toBe(reference);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('leaves an object with a key twice to the exact parser, which refuses two values and keeps one', () => {
    expect(parseWithExactNumbers('{"a":1,"b":{"a":2},"a":3}', exactJsonNumber)).toBeUndefined();
    expect(parseWithExactNumbers('{"a" : 1.5, "a"\t:1.5}', exactJsonNumber)).toBeUndefined();
    expect(() => parseJsonExact('{"":false,"75":true,"":"12345678901234567890"}')).toThrow(/Duplicate key/);
    expect(show(parseJsonExact('{"a":1,"a":1}'))).toBe(show(lossless('{"a":1,"a":1}')));
    expect(show(parseWithExactNumbers('{"k":"a:b","v":["x", "y"],"o":{"k":1}}', exactJsonNumber))).toBe(
      show(lossless('{"k":"a:b","v":["x", "y"],"o":{"k":1}}')),
    );
  });

  it('reads the numbers and leaves look-alike strings alone', () => {
    const v = parseWithExactNumbers('{"a":1.50,"t":"2024-01-01T10:00:00.000Z","b":[1e3,12345678901234567890,-0.0,7]}', exactJsonNumber);
    expect(show(v)).toBe('{"a":d:1.50,"t":s:"2024-01-01T10:00:00.000Z","b":[d:1e3,b:12345678901234567890,d:-0.0,n:7]}');
  });

  it('keeps __proto__ an own key and never touches Object.prototype', () => {
    const v = parseWithExactNumbers('{"__proto__":1.5,"x":{"__proto__":{"polluted":2.5}}}', exactJsonNumber) as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(['__proto__', 'x']);
    expect(show(v)).toBe('{"__proto__":d:1.5,"x":{"__proto__":{"polluted":d:2.5}}}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('leaves text with a \\u0000 escape, or a token that is no JSON number, to the exact parser', () => {
    expect(parseWithExactNumbers('{"a":1.5,"b":"\\u0000"}', exactJsonNumber)).toBeUndefined();
    expect(parseWithExactNumbers('[1.5.5]', exactJsonNumber)).toBeUndefined();
    expect(parseWithExactNumbers('[01.5]', exactJsonNumber)).toBeUndefined();
    expect(parseWithExactNumbers('[1.5,]', exactJsonNumber)).toBeUndefined();
    expect(show(parseJsonExact('{"a":1.5,"b":"\\u0000"}'))).toBe('{"a":d:1.5,"b":s:"\\u0000"}');
  });
});
