import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RowError } from '../sdk/errors.js';
import { asRow, type Row } from '../sdk/types.js';
import { Decimal } from '../sdk/values.js';
import { compileExpression, ExpressionError, type ExprMeta, MAX_DEPTH, MAX_EXPRESSION_LENGTH } from './expr.js';

const meta: ExprMeta = { runId: 'r-1', pipeline: 'p', partitionId: '3', attempt: 1, loadTime: new Date('2024-01-02T03:04:05Z') };
const row = (o: Record<string, unknown>): Row => asRow({ ...o });
const ev = (src: string, r: Record<string, unknown> = {}) => compileExpression(src).evaluate(row(r), meta);
const d = (t: string) => Decimal.parse(t) as Decimal;

function syntaxError(src: string): ExpressionError {
  try {
    compileExpression(src);
  } catch (error) {
    if (error instanceof ExpressionError) return error;
    throw error;
  }
  throw new Error(`${src} compiled`);
}

describe('expressions', () => {
  it('compares, combines and reads fields', () => {
    expect(ev('amount > 0 and country in ["DE", "FR"]', { amount: 5, country: 'DE' })).toBe(true);
    expect(ev('amount > 0 and country in ["DE", "FR"]', { amount: 5, country: 'US' })).toBe(false);
    expect(ev('not (a == 1) || b != "x"', { a: 1, b: 'x' })).toBe(false);
    expect(ev('`Cost Total $` >= 10', { 'Cost Total $': 10 })).toBe(true);
    expect(ev('country not in ["DE"]', { country: 'FR' })).toBe(true);
    expect(ev('missing == null')).toBe(true);
    expect(ev('missing > 3')).toBe(false);
  });

  it('keeps decimals and big integers exact', () => {
    expect(ev('a + b == 0.3', { a: d('0.1'), b: d('0.2') })).toBe(true);
    expect((ev('price * 100', { price: d('12.34') }) as Decimal).text).toBe('1234.00');
    expect(ev('n + 1', { n: 9007199254740993n })).toBe(9007199254740994n);
    expect(ev('9007199254740991 + 2')).toBe(9007199254740993n);
    expect(ev('amount > 0', { amount: d('0.000000000000000000001') })).toBe(true);
    expect((ev('round(x, 1)', { x: d('2.25') }) as Decimal).text).toBe('2.3');
    expect(ev('x == "12.50"', { x: d('12.5') })).toBe(true);
  });

  it('gives the run metadata', () => {
    expect(ev('$run_id')).toBe('r-1');
    expect(ev('$partition')).toBe('3');
    expect(ev('$load_time')).toEqual(meta.loadTime);
    expect(ev('concat($pipeline, "-", $attempt)')).toBe('p-1');
  });

  it('has string functions and null handling', () => {
    expect(ev('lower(trim(e))', { e: ' A@B.DE ' })).toBe('a@b.de');
    expect(ev('coalesce(a, b, "z")', { a: null, b: 'y' })).toBe('y');
    expect(ev('if(x > 1, "big", "small")', { x: 5 })).toBe('big');
    expect(ev('length(s)', { s: 'héllo' })).toBe(5);
    expect(ev('replace(s, ".", "")', { s: 'a.b.c' })).toBe('abc');
    expect(ev('substr(s, 1, 2)', { s: 'abcd' })).toBe('bc');
    expect(ev('upper(null)')).toBe(null);
  });

  it('turns wrong types into row errors that name the values and the fix', () => {
    expect(() => ev('a > 1', { a: 'abc' })).toThrow(RowError);
    expect(() => ev('a > 1', { a: 'abc' })).toThrow(/cannot compare string "abc" > integer 1; cast the field first/);
    expect(() => ev('a + 1', { a: true })).toThrow(/cannot compute boolean true \+ integer 1/);
    expect(() => ev('a and true', { a: 3 })).toThrow(/and needs true or false/);
    expect(() => ev('1 / x', { x: 0 })).toThrow(/division by zero/);
    expect(() => ev('lower(x)', { x: 5 })).toThrow(/lower\(\): needs text/);
  });

  it('reports syntax errors with line and column', () => {
    const e = syntaxError('amount > > 0');
    expect([e.line, e.col]).toEqual([1, 10]);
    expect(e.message).toMatch(/a value was expected/);
    const m = syntaxError('a > 0 and\n  b = 2');
    expect([m.line, m.col]).toEqual([2, 5]);
    expect(m.message).toMatch(/use == to compare/);
    expect(syntaxError('nope(1)').message).toMatch(/unknown function nope\(\); known: lower/);
    expect(syntaxError('$secret').message).toMatch(/unknown run variable \$secret/);
    expect(syntaxError('(a > 1').message).toMatch(/expected a closing \)/);
    expect(syntaxError('"open').message).toMatch(/unclosed string/);
    expect(syntaxError('lower()').message).toMatch(/lower\(\) takes 1 argument/);
    expect(syntaxError('').message).toMatch(/empty/);
  });
});

describe('hostile expressions', () => {
  // each must fail to compile, or evaluate to something harmless, and never reach a prototype or a global
  const corpus = [
    'constructor',
    '__proto__',
    'constructor.constructor("return process")()',
    '__proto__.polluted = 1',
    'x["__proto__"]',
    'x.constructor',
    '`__proto__`',
    '`constructor`',
    'toString',
    'hasOwnProperty("a")',
    'constructor("return 1")',
    'valueOf()',
    'process.exit(1)',
    'require("fs")',
    'globalThis',
    'this',
    'eval("1")',
    'Function("return 1")()',
    'import("fs")',
    '${env:HOME}',
    'a = 1',
    '[].constructor',
    'lower.constructor',
    '"".constructor',
    '$__proto__',
    '`a`.b',
  ];

  it.each(corpus)('%s is refused or harmless', (src) => {
    const before = Object.getOwnPropertyNames(Object.prototype).length;
    let value: unknown;
    try {
      value = compileExpression(src).evaluate(row({ x: {} }), meta);
    } catch (error) {
      expect(error instanceof ExpressionError || error instanceof RowError).toBe(true);
      return;
    }
    // a name is a field of the row: the row has none of these, so the value is null
    expect(value === null || typeof value === 'boolean' || typeof value === 'string').toBe(true);
    expect(typeof value).not.toBe('function');
    expect(Object.getOwnPropertyNames(Object.prototype).length).toBe(before);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('a field named __proto__ or constructor is the row own value, never an inherited one', () => {
    const r = asRow(JSON.parse('{"__proto__": "p", "constructor": "c"}'));
    expect(compileExpression('`__proto__`').evaluate(r, meta)).toBe('p');
    expect(compileExpression('constructor').evaluate(r, meta)).toBe('c');
    expect(compileExpression('toString').evaluate(asRow({}), meta)).toBe(null);
    expect(compileExpression('constructor').evaluate({} as Row, meta)).toBe(null);
  });

  it('refuses huge and deeply nested input', () => {
    expect(() => compileExpression('a + '.repeat(2000) + 'a')).toThrow(ExpressionError);
    expect(() => compileExpression('x'.repeat(MAX_EXPRESSION_LENGTH + 1))).toThrow(/at most 4096/);
    expect(() => compileExpression(`${'('.repeat(MAX_DEPTH + 1)}1${')'.repeat(MAX_DEPTH + 1)}`)).toThrow(/nests too deeply/);
    expect(() => compileExpression(`${'-'.repeat(200)}1`)).toThrow(/nests too deeply/);
    expect(() => compileExpression(`${'not '.repeat(200)}true`)).toThrow(/nests too deeply/);
    expect(() => compileExpression(`${'lower('.repeat(100)}a${')'.repeat(100)}`)).toThrow(/nests too deeply/);
    // nesting within the limit works
    expect(compileExpression(`${'('.repeat(MAX_DEPTH - 1)}1${')'.repeat(MAX_DEPTH - 1)}`).evaluate(row({}), meta)).toBe(1);
  });

  it('bounds the work of exact arithmetic on hostile values', () => {
    expect(() => ev('x * 1', { x: d('1e999999') })).toThrow(RowError);
    expect(() => ev('x * x * x * x * x * x * x * x * x * x * x * x', { x: d(`${'9'.repeat(300)}`) })).toThrow(/more than 2000 digits/);
    expect(ev('x == 1', { x: 'a'.repeat(1_000_000) })).toBe(false);
  });

  it('never throws anything but its own errors on random text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (src) => {
        try {
          compileExpression(src).evaluate(row({ a: 1, b: 'x' }), meta);
        } catch (error) {
          if (!(error instanceof ExpressionError || error instanceof RowError)) throw error;
        }
      }),
      { numRuns: 2000 },
    );
  });
});
