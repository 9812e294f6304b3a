import { describe, expect, it } from 'vitest';
import { errorType, keyText, locateError, locationOf, locationText, RowError, type WeirError } from './errors.js';

describe('row locations', () => {
  it('has one text form for files, lines, tables and keys', () => {
    expect(locationText({ file: 'data/in.csv', line: 4 })).toBe('data/in.csv:4');
    expect(locationText({ file: 'data/in.parquet' })).toBe('data/in.parquet');
    expect(locationText({ line: 7 })).toBe('line 7');
    expect(locationText({ table: 'public.users', key: 'id=7' })).toBe('table public.users, key id=7');
    expect(locationText({})).toBeUndefined();
    expect(keyText({ id: 7, name: 'x', tags: ['a'] }, ['id', 'tags'])).toBe('id=7 tags=["a"]');
    expect(keyText({ id: 7 }, ['other'])).toBeUndefined();
  });

  it('leads the message with the location once; class, code, kind and cause stay', () => {
    const cause = new Error('inner');
    const error = new RowError('column "n": "x" is not an integer', { code: 'bad_field', cause });
    const located = locateError(error, { file: 'in.csv', line: 3 }) as RowError;
    expect(located).toBeInstanceOf(RowError);
    expect(located.message).toBe('in.csv:3: column "n": "x" is not an integer');
    expect([located.code, located.kind, located.retryable, located.cause]).toEqual(['bad_field', 'data', false, cause]);
    expect(locationOf(located)).toEqual({ file: 'in.csv', line: 3 });
    expect(error.message).toBe('column "n": "x" is not an integer'); // the original is not changed
    expect(locateError(located, { file: 'other.csv', line: 9 })).toBe(located);
    expect(locateError(error, undefined)).toBe(error);
  });

  it('makes a row error of an error that is no WeirError, keeping its type', () => {
    const located = locateError(Object.assign(new Error('boom'), { code: 'E_BOOM' }), { line: 2 }) as WeirError;
    expect(located).toBeInstanceOf(RowError);
    expect(located.message).toBe('line 2: boom');
    expect(errorType(located)).toBe('E_BOOM');
  });
});
