import { describe, expect, it } from 'vitest';
import { Decimal } from '../../sdk/values.js';
import { convertText, convertValue, isIsoTimestamp, JsonTypeGuess, TextTypeGuess } from './columns.js';

const guessText = (...values: string[]) => {
  const g = new TextTypeGuess();
  for (const v of values) g.add(v);
  return g.type;
};

const guessJson = (...values: unknown[]) => {
  const g = new JsonTypeGuess();
  for (const v of values) g.add(v);
  return g.type;
};

describe('column conversion', () => {
  it('converts text leniently where it is safe', () => {
    expect(convertText(' +42 ', 'integer')).toEqual({ ok: true, value: 42 });
    expect(convertText('9007199254740993', 'integer')).toEqual({ ok: true, value: 9007199254740993n });
    expect(convertText('1e3', 'number')).toEqual({ ok: true, value: 1000 });
    expect(convertText('Yes', 'boolean')).toEqual({ ok: true, value: true });
    expect(convertText('2024-05-01 10:00:00', 'timestamp')).toEqual({ ok: true, value: '2024-05-01 10:00:00' });
    expect(convertText('{"a":[1]}', 'json')).toEqual({ ok: true, value: { a: [1] } });
  });

  it('explains what does not fit', () => {
    expect(convertText('abc', 'integer')).toEqual({ ok: false, reason: '"abc" is not an integer' });
    expect(convertText('1.5', 'integer')).toMatchObject({ ok: false });
    expect(convertText('maybe', 'boolean')).toMatchObject({ ok: false });
    expect(convertText('2024-13-01', 'timestamp')).toMatchObject({ ok: false });
    expect(convertText('{', 'json')).toEqual({ ok: false, reason: '"{" is not valid JSON' });
  });

  it('converts JSON values to declared types', () => {
    expect(convertValue('7', 'integer')).toEqual({ ok: true, value: 7 });
    expect(convertValue(7, 'string')).toEqual({ ok: true, value: '7' });
    expect(convertValue(null, 'integer')).toEqual({ ok: true, value: null });
    expect(convertValue(1.5, 'integer')).toMatchObject({ ok: false });
    expect(convertValue({}, 'string')).toMatchObject({ ok: false });
  });

  it('recognises ISO-8601 timestamps', () => {
    expect(isIsoTimestamp('2024-05-01')).toBe(true);
    expect(isIsoTimestamp('2024-05-01T12:00:00.123456+05:30')).toBe(true);
    expect(isIsoTimestamp('2024-05-01T24:00:00Z')).toBe(false);
    expect(isIsoTimestamp('05/01/2024')).toBe(false);
  });
});

describe('type inference', () => {
  it('from text', () => {
    expect(guessText('1', '-2')).toBe('integer');
    expect(guessText('1', '2.5')).toBe('decimal');
    expect(guessText('1.50', '1e3', '-0')).toBe('decimal');
    expect(guessText('9223372036854775807', '-9223372036854775808')).toBe('integer');
    expect(guessText('9223372036854775808')).toBe('decimal');
    expect(guessText('007')).toBe('string');
    expect(guessText('+5')).toBe('string');
    expect(guessText('true', 'false')).toBe('boolean');
    expect(guessText('true', 'FALSE')).toBe('string');
    expect(guessText('2024-05-01', '2024-05-02T00:00:00Z')).toBe('timestamp');
    expect(guessText('1', 'x')).toBe('string');
    expect(guessText()).toBe('string');
  });

  it('gives decimal columns the precision and scale of what it saw', () => {
    const g = new TextTypeGuess();
    for (const v of ['1.50', '-123.4', '0.0001', '12345678901234567890123456789.123456789']) g.add(v);
    expect(g.column('amount')).toEqual({ name: 'amount', type: 'decimal', nullable: true, precision: 38, scale: 9 });
  });

  it('from JSON values', () => {
    expect(guessJson(1, null, 2)).toBe('integer');
    expect(guessJson(1, 2.5)).toBe('number');
    expect(guessJson(1, Decimal.parse('2.50'), 2n)).toBe('decimal');
    expect(guessJson('2024-05-01', 'x')).toBe('string');
    expect(guessJson(1, 'x')).toBe('json');
    expect(guessJson([1], { a: 1 })).toBe('json');
    expect(guessJson()).toBe('string');
  });
});
