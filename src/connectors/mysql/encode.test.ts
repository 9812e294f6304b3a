import { describe, expect, it } from 'vitest';
import { RowError } from '../../sdk/errors.js';
import { Decimal } from '../../sdk/values.js';
import { sqlType, type TableColumn } from './db.js';
import { encoderFor, isoDatetime, toDatetimeText } from './encode.js';

const col = (dataType: string, columnType = dataType, more: Partial<TableColumn> = {}): TableColumn => ({
  name: 'c',
  dataType,
  columnType,
  nullable: true,
  json: false,
  ...more,
});
const dec = (text: string) => Decimal.parse(text) as Decimal;
const decimal = (p: number, s: number, unsigned = false) =>
  encoderFor('c', col('decimal', `decimal(${p},${s})${unsigned ? ' unsigned' : ''}`, { precision: p, scale: s }));
const rowError = (fn: () => unknown): RowError => {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(RowError);
    return error as RowError;
  }
  return expect.unreachable('no RowError');
};

describe('mysql value encoding', () => {
  it('DECIMAL(p,s): exact text for values that fit, a row error for any that would be rounded or not fit', () => {
    const d38 = decimal(38, 9);
    expect(d38(dec('12345678901234567890123456789.123456789'))).toBe('12345678901234567890123456789.123456789');
    expect(decimal(30, 2)(dec('12345678901234567.89'))).toBe('12345678901234567.89');
    expect(decimal(10, 2)(dec('375.30'))).toBe('375.30');
    expect(decimal(10, 2)(dec('375.3'))).toBe('375.30');
    expect(decimal(10, 2)(dec('1.230'))).toBe('1.23'); // a trailing zero is no rounding
    expect(decimal(10, 2)(dec('1e3'))).toBe('1000.00');
    expect(decimal(10, 2)(dec('-0.00'))).toBe('0.00');
    expect(decimal(10, 2)(0.5)).toBe('0.50');
    expect(decimal(10, 2)('  +12.5 ')).toBe('12.50');
    expect(decimal(20, 0)(18446744073709551615n)).toBe('18446744073709551615');
    expect(decimal(10, 2)(null)).toBeNull();
    expect(decimal(10, 2)(undefined)).toBeNull();

    expect(rowError(() => decimal(10, 2)(dec('1.234'))).message).toMatch(
      /column c: "?1\.234"? has 3 digit\(s\) after the point; DECIMAL\(10,2\) keeps 2/,
    );
    expect(rowError(() => decimal(10, 2)(0.1 + 0.2)).code).toBe('decimal_scale');
    expect(rowError(() => decimal(10, 2)(dec('1234567890123456789012345678901234567890'))).message).toMatch(
      /40 digit\(s\) before the point; DECIMAL\(10,2\) holds 8/,
    );
    expect(rowError(() => decimal(10, 2)(dec('123456789.5'))).code).toBe('out_of_range');
    expect(rowError(() => decimal(10, 2)(dec('1e999999999'))).code).toBe('out_of_range'); // not expanded
    expect(rowError(() => decimal(10, 2)(dec('1e-999999999'))).code).toBe('decimal_scale');
    expect(rowError(() => decimal(10, 2, true)(dec('-1'))).message).toMatch(/negative/);
    expect(rowError(() => decimal(10, 2)('abc')).code).toBe('invalid_decimal');
    expect(rowError(() => decimal(10, 2)('')).code).toBe('invalid_decimal');
    expect(rowError(() => decimal(10, 2)(Number.NaN)).code).toBe('invalid_decimal');
  });

  it('integer columns: integers within the column range only; a fraction or text is a row error, never rounded', () => {
    const bigint = encoderFor('c', col('bigint', 'bigint(20)'));
    const unsigned = encoderFor('c', col('bigint', 'bigint(20) unsigned'));
    const int = encoderFor('c', col('int', 'int(11)'));
    expect(bigint(42)).toBe(42);
    expect(bigint(2n ** 60n + 1n)).toBe('1152921504606846977');
    expect(bigint(-(2n ** 63n))).toBe('-9223372036854775808');
    expect(unsigned(18446744073709551615n)).toBe('18446744073709551615');
    expect(bigint(dec('12.000'))).toBe(12);
    expect(bigint('  7 ')).toBe(7);
    expect(bigint(true)).toBe(true);
    expect(bigint(null)).toBeNull();
    expect(rowError(() => bigint(2n ** 63n)).message).toMatch(
      /9223372036854775808 is out of range for BIGINT \(-9223372036854775808 to 9223372036854775807\); a DECIMAL\(20,0\) column holds it/,
    );
    expect(rowError(() => unsigned(-1)).code).toBe('out_of_range');
    expect(rowError(() => int(3_000_000_000)).message).toMatch(/out of range for INT .* a BIGINT column holds it/);
    expect(rowError(() => int(1.5)).message).toMatch(/column c: 1\.5 has a fraction, which the INT column would round away/);
    expect(rowError(() => int('1.5')).code).toBe('invalid_integer');
    expect(rowError(() => int(dec('1.5'))).code).toBe('invalid_integer');
    expect(rowError(() => int('abc')).message).toMatch(/"abc" is not an integer, which the INT column needs/);
    expect(rowError(() => int('')).code).toBe('invalid_integer');
    expect(rowError(() => int({ a: 1 })).code).toBe('invalid_integer');
    expect(rowError(() => bigint(dec('1e999999999'))).code).toBe('out_of_range');
  });

  it('text columns get the text as it is; floating-point columns any number; JSON keeps decimals exact', () => {
    for (const t of ['text', 'varchar', 'longtext', 'char']) {
      const text = encoderFor('c', col(t));
      expect(text(dec('1305.020020'))).toBe('1305.020020');
      expect(text(2n ** 64n)).toBe('18446744073709551616');
      expect(text(0.1)).toBe('0.1');
      expect(text('')).toBe('');
      expect(text(null)).toBeNull();
    }
    const double = encoderFor('c', col('double'));
    expect(double(dec('12345678901234567890123456789.123456789'))).toBe('12345678901234567890123456789.123456789');
    expect(double(0.25)).toBe(0.25);
    expect(rowError(() => double('abc')).code).toBe('invalid_number');
    expect(rowError(() => double('')).code).toBe('invalid_number');
    expect(rowError(() => double(Number.POSITIVE_INFINITY)).code).toBe('invalid_number');
    const json = encoderFor('c', col('longtext', 'longtext', { json: true }));
    expect(json({ amount: dec('375.30'), big: 2n ** 64n })).toBe('{"amount":375.30,"big":18446744073709551616}');
  });

  it('DATETIME: ISO text in UTC with every fraction digit; the source reads it back as ISO text', () => {
    const dt = encoderFor('c', col('datetime', 'datetime(6)'));
    expect(dt('2024-05-01T10:00:00.123456Z')).toBe('2024-05-01 10:00:00.123456');
    expect(dt('2024-05-01T12:00:00.123456+02:00')).toBe('2024-05-01 10:00:00.123456');
    expect(toDatetimeText('2024-05-01 05:30:00.000001-0500')).toBe('2024-05-01 10:30:00.000001');
    expect(toDatetimeText('2024-05-01T10:00:00.5')).toBe('2024-05-01 10:00:00.5');
    expect(isoDatetime('2024-05-01 10:00:00.123456', false)).toBe('2024-05-01T10:00:00.123456');
    expect(isoDatetime('2024-05-01 10:00:00', true)).toBe('2024-05-01T10:00:00Z');
  });

  it('creates DECIMAL(p,s) wide enough, DECIMAL(65,30) when unknown, text beyond MySQL limits', () => {
    expect(sqlType({ type: 'decimal', precision: 38, scale: 9 }, false)).toBe('DECIMAL(38,9)');
    expect(sqlType({ type: 'decimal', precision: 2, scale: 5 }, false)).toBe('DECIMAL(5,5)');
    expect(sqlType({ type: 'decimal', precision: 0, scale: 0 }, false)).toBe('DECIMAL(1,0)');
    expect(sqlType({ type: 'decimal' }, false)).toBe('DECIMAL(65,30)');
    expect(sqlType({ type: 'decimal', precision: 66, scale: 0 }, false)).toBe('LONGTEXT');
    expect(sqlType({ type: 'decimal', precision: 40, scale: 31 }, false)).toBe('LONGTEXT');
    expect(sqlType({ type: 'decimal', precision: 70, scale: 2 }, true)).toBe('VARCHAR(255)');
    expect(sqlType({ type: 'integer' }, false)).toBe('BIGINT');
  });
});
