/**
 * Hard CSV files for the comparisons with the loaders users trust (psql \copy,
 * sqlite3 .import, LOAD DATA): RFC 4180 quoting with doubled quotes, embedded
 * CR/LF, commas, empty quoted and unquoted fields, non-ASCII text, decimals of up
 * to 38 digits, integers beyond 2^53 and 2^63, leading zeros, `1e3`, `-0`, `NaN`.
 * Columns lean to one kind (so inference picks typed columns) or mix them.
 */
import fc from 'fast-check';

export interface CsvCase {
  /** The file's bytes (header `rid,c1,…`; `rid` is the row number, unique). */
  text: string;
  columns: string[];
  rows: number;
}

export interface CsvCaseOptions {
  /** Unquoted empty fields (NULL for weir and psql; '' for sqlite3 and LOAD DATA). Default true. */
  nulls?: boolean;
  /** Line breaks inside quoted fields. Default true. */
  multiline?: boolean;
  /** Column kinds to draw from. Default all. */
  kinds?: readonly Kind[];
}

export type Kind = 'text' | 'integer' | 'decimal' | 'numberish' | 'boolean' | 'timestamp' | 'mixed';
export const KINDS: readonly Kind[] = ['text', 'integer', 'decimal', 'numberish', 'boolean', 'timestamp', 'mixed'];

const digits = (min: number, max: number) =>
  fc.array(fc.constantFrom(...'0123456789'), { minLength: min, maxLength: max }).map((d) => d.join(''));
const noLeadingZero = (d: string) => d.replace(/^0+(?=\d)/, '');

const integer = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }).map(String),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String),
  fc.bigInt({ min: 2n ** 53n, max: 2n ** 53n + 1000n }).map(String),
  digits(20, 30).map((d) => `9${d}`), // beyond 64 bits
);

const decimal = fc
  .tuple(fc.boolean(), digits(1, 28), digits(1, 10))
  .map(([neg, int, frac]) => `${neg ? '-' : ''}${noLeadingZero(int)}.${frac}`)
  .filter((t) => t.replace(/\D/g, '').length <= 38);

const numberish = fc.constantFrom('1e3', '-0', '0.0', '4.0', '1305.020020', 'NaN', '007', '+5', ' 5', '1.5E-7', '-0.000', '.5', '5.');
const boolean = fc.constantFrom('true', 'false');
const timestamp = fc.constantFrom(
  '2024-05-01T10:00:00Z',
  '2024-05-01 10:00:00.123456+02',
  '2024-02-29T23:59:59.999999Z',
  '1999-12-31T00:00:00+05:30',
);
const text = fc.oneof(
  fc.string({ unit: fc.constantFrom('a', 'Z', ' ', ',', '"', '\n', '\r', '\t', 'é', '中', '😀', '\\', 'N', ';', "'"), maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
  fc.constantFrom('NULL', '\\N', 'null', ' ', '""'),
);

const VALUES: Record<Exclude<Kind, 'mixed'>, fc.Arbitrary<string>> = { text, integer, decimal, numberish, boolean, timestamp };

/** A value for a column of `kind`: null (unquoted empty), the empty string, or text. */
function cell(kind: Kind, nulls: boolean): fc.Arbitrary<string | null> {
  const value = kind === 'mixed' ? fc.oneof(...Object.values(VALUES)) : VALUES[kind];
  const choices: fc.WeightedArbitrary<string | null>[] = [{ weight: 8, arbitrary: value }];
  if (nulls) choices.push({ weight: 1, arbitrary: fc.constant(null) });
  if (kind === 'text' || kind === 'mixed') choices.push({ weight: 1, arbitrary: fc.constant('') });
  return fc.oneof(...choices);
}

/** One field as CSV: quoted when it must be (or when `quote` says so), doubled quotes inside. */
function field(value: string | null, quote: boolean): string {
  if (value === null) return '';
  if (quote || value === '' || /[",\r\n]/.test(value)) return `"${value.replaceAll('"', '""')}"`;
  return value;
}

export function csvCase(options: CsvCaseOptions = {}): fc.Arbitrary<CsvCase> {
  const nulls = options.nulls ?? true;
  const kinds = options.kinds ?? KINDS;
  return fc
    .tuple(fc.array(fc.constantFrom(...kinds), { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 25 }), fc.boolean())
    .chain(([columnKinds, rows, crlf]) =>
      fc
        .array(fc.tuple(...columnKinds.map((k) => fc.tuple(cell(k, nulls), fc.boolean()))), { minLength: rows, maxLength: rows })
        .map((records) => {
          const columns = columnKinds.map((_, i) => `c${i + 1}`);
          const eol = crlf ? '\r\n' : '\n';
          const lines = [['rid', ...columns].join(',')];
          records.forEach((record, r) => {
            const fields = record.map(([v, q]) => {
              const value = options.multiline === false && v !== null ? v.replace(/[\r\n]/g, ' ') : v;
              return field(value, q);
            });
            lines.push([String(r + 1), ...fields].join(','));
          });
          return { text: lines.join(eol) + eol, columns, rows };
        }),
    );
}

/** Fixed seed in CI; `WEIR_PROPERTY_RUNS=500` (and optionally `WEIR_PROPERTY_SEED`) for more locally. */
export function propertyRuns(defaultRuns: number): fc.Parameters<unknown> {
  const seed = process.env.WEIR_PROPERTY_SEED ? Number(process.env.WEIR_PROPERTY_SEED) : 20261201;
  return { numRuns: Number(process.env.WEIR_PROPERTY_RUNS ?? defaultRuns), seed, endOnFailure: true };
}
