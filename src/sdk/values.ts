/**
 * Exact values JavaScript has no type for, and JSON text that keeps them exact.
 *
 * A decimal never passes through a double: sources hand on a {@link Decimal} that
 * holds the number's digits as they came (`375.30` keeps its zero, a 38-digit
 * value all its digits), sinks write its text or its scaled integer. Integers
 * beyond 2^53 are `bigint`. Runs wherever rows are (workers).
 */
import { parse as losslessParse, stringify as losslessStringify } from 'lossless-json';
import { parseWithExactNumbers } from './exact-json.js';

/** JSON's number grammar: the text every Decimal holds. */
const CANONICAL = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;
/** What {@link Decimal.parse} accepts: also `+`, leading zeros, `.5`, `5.`, surrounding spaces. */
const LENIENT = /^([+-]?)0*(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;
const BRAND = Symbol.for('weir.decimal');

/**
 * An exact decimal number, kept as its text in JSON number grammar. Compare and
 * convert through {@link Decimal.text}, {@link Decimal.unscaled} or
 * {@link Decimal.toNumber} (the last rounds to the nearest double, on purpose).
 *
 * @example
 * const d = Decimal.parse('375.30')!;
 * d.text;          // '375.30'
 * d.scale;         // 2
 * d.unscaled(4);   // 3753000n
 */
export class Decimal {
  /** Brand instead of `instanceof`: a connector may load its own copy of the SDK. */
  readonly [BRAND] = true;

  private constructor(
    /** The number's digits in JSON number grammar, e.g. `-12.50`, `1E+3`. */
    readonly text: string,
  ) {}

  /** Whether `v` is a Decimal (from any copy of the SDK). */
  static is(v: unknown): v is Decimal {
    return typeof v === 'object' && v !== null && (v as { [BRAND]?: unknown })[BRAND] === true;
  }

  /**
   * The decimal a number's text means, or undefined when it is not one. Text in
   * JSON number grammar is kept as it is; otherwise a leading `+`, leading zeros
   * and surrounding spaces are dropped and `.5` / `5.` are completed, while the
   * digits of the fraction (trailing zeros too) are kept.
   */
  static parse(text: string): Decimal | undefined {
    if (CANONICAL.test(text)) return new Decimal(text);
    const m = LENIENT.exec(text.trim());
    if (!m) return undefined;
    const [, sign, int = '', frac, exp] = m;
    if (int === '' && !frac && !/^[+-]?0/.test(text.trim())) return undefined; // '', '.', '+', 'e5'
    const t = `${sign === '-' ? '-' : ''}${int || '0'}${frac ? `.${frac}` : ''}${exp !== undefined ? `e${exp}` : ''}`;
    return CANONICAL.test(t) ? new Decimal(t) : undefined;
  }

  /** `unscaled × 10^-scale`, e.g. `(37530n, 2)` → `375.30`. */
  static fromUnscaled(unscaled: bigint, scale: number): Decimal {
    const negative = unscaled < 0n;
    let digits = (negative ? -unscaled : unscaled).toString();
    if (scale <= 0)
      return new Decimal(`${negative && unscaled !== 0n ? '-' : ''}${digits}${scale < 0 && unscaled !== 0n ? '0'.repeat(-scale) : ''}`);
    digits = digits.padStart(scale + 1, '0');
    return new Decimal(`${negative ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`);
  }

  /** The parts: sign, all digits without the point, and the power of ten of the last digit. */
  private parts(): { negative: boolean; digits: string; exponent: number } {
    const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(this.text) as RegExpExecArray;
    const frac = m[3] ?? '';
    return { negative: m[1] === '-', digits: `${m[2]}${frac}`, exponent: Number(m[4] ?? 0) - frac.length };
  }

  /** Digits after the point needed to write the value exactly (0 for integers, also `1e3`). */
  get scale(): number {
    return Math.max(0, -this.parts().exponent);
  }

  /** Digits before the point (0 when the value is below 1 in magnitude). */
  get integerDigits(): number {
    const { digits, exponent } = this.parts();
    const significant = digits.replace(/^0+/, '');
    return significant === '' ? 0 : Math.max(0, significant.length + exponent);
  }

  /** The value × 10^scale when that is an integer, else undefined (the value has more fraction digits). */
  unscaled(scale: number): bigint | undefined {
    const { negative, digits, exponent } = this.parts();
    const shift = exponent + scale;
    let n: bigint;
    if (shift >= 0) n = BigInt(digits) * 10n ** BigInt(shift);
    else {
      const cut = digits.length + shift;
      const dropped = cut > 0 ? digits.slice(cut) : digits;
      if (/[^0]/.test(dropped)) return undefined;
      n = cut > 0 ? BigInt(digits.slice(0, cut)) : 0n;
    }
    return negative ? -n : n;
  }

  /** The nearest double (lossy where the value has more than ~15 significant digits). */
  toNumber(): number {
    return Number(this.text);
  }

  toString(): string {
    return this.text;
  }

  /** In plain `JSON.stringify`, a string (exact); {@link stringifyJson} writes it as a number. */
  toJSON(): string {
    return this.text;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Decimal(${this.text})`;
  }
}

const decimalStringifier = { test: (v: unknown) => Decimal.is(v), stringify: (v: unknown) => (v as Decimal).text };

/**
 * JSON text of a value with decimals and bigints as exact number literals
 * (`375.30`, `18446744073709551615`); Dates as ISO strings, as `JSON.stringify`.
 */
export function stringifyJson(value: unknown): string {
  const shape = topLevelShape(value);
  if (shape === 'plain') return JSON.stringify(value);
  if (shape === 'nested') {
    // something deeper may hold a bigint or a Decimal: the replacer finds out in one pass
    let exact = false;
    const text = JSON.stringify(value, function (this: Record<string, unknown>, key, v) {
      // `v` has been through toJSON already (a Decimal is its string by now); the holder still has the original
      if (typeof v === 'bigint' || Decimal.is(this[key])) exact = true;
      return typeof v === 'bigint' ? null : v;
    });
    if (!exact) return text ?? 'null';
  }
  return losslessStringify(value, undefined, undefined, [decimalStringifier]) ?? 'null';
}

/**
 * JSON text of an array, exactly `[${values.map(stringifyJson).join(',')}]`: one
 * `JSON.stringify` of the whole array when every element is a plain row (no bigint,
 * Decimal, list or object inside), which skips a string per row and the join.
 */
export function stringifyJsonArray(values: readonly unknown[]): string {
  for (const value of values) if (topLevelShape(value) !== 'plain') return `[${values.map(stringifyJson).join(',')}]`;
  return JSON.stringify(values);
}

/**
 * What plain `JSON.stringify` would make of a value, judged from its top level:
 * `plain` when every value of an object is a string, number, boolean, null or
 * Date (most rows: exact as it is); `exact` when one is a bigint or Decimal (it
 * needs lossless-json); `nested` when there are lists or objects to look into.
 */
function topLevelShape(value: unknown): 'plain' | 'exact' | 'nested' {
  if (typeof value === 'bigint' || Decimal.is(value)) return 'exact';
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'nested';
  let shape: 'plain' | 'exact' = 'plain';
  for (const key in value) {
    const v = (value as Record<string, unknown>)[key];
    if (typeof v === 'bigint' || Decimal.is(v)) shape = 'exact';
    else if (typeof v === 'object' && v !== null && !(v instanceof Date)) return 'nested';
  }
  return shape;
}

/** Numbers in JSON text that JSON.parse may not keep exactly: a fraction or exponent, or 16+ digits. */
const INEXACT_NUMBER = /\d[.eE]|\d{16}/;

/** JSON numbers as exact values: safe integers as numbers, larger ones as bigint, the rest as {@link Decimal}. */
export function exactJsonNumber(text: string): number | bigint | Decimal {
  if (/^-?\d+$/.test(text)) {
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : BigInt(text);
  }
  return Decimal.parse(text) as Decimal;
}

/** How deeply JSON that weir reads may nest by default (a source's `max_depth` option). */
export const DEFAULT_MAX_JSON_DEPTH = 64;

/** JSON nested deeper than the reader allows: a row error where a row holds it. */
export class JsonDepthError extends SyntaxError {
  constructor(readonly maxDepth: number) {
    super(`JSON nested deeper than ${maxDepth} levels (arrays and objects inside each other); raise max_depth if it is expected`);
    this.name = 'JsonDepthError';
  }
}

/**
 * Parses JSON keeping every number exact ({@link exactJsonNumber}); as fast as
 * `JSON.parse` for text without fractions, exponents or long digit runs, close to
 * it for the rest (exact-json.ts: JSON.parse with those numbers marked; a key given
 * twice keeps its last value there, as JSON.parse does). Throws
 * a SyntaxError on invalid JSON, as `JSON.parse` does, and a {@link JsonDepthError}
 * when arrays and objects nest deeper than `maxDepth` (what is read, and each later
 * step such as JSON.stringify, then stays far from the stack's limit).
 */
export function parseJsonExact(text: string, maxDepth: number = DEFAULT_MAX_JSON_DEPTH): unknown {
  if (nestsDeeper(text, maxDepth)) throw new JsonDepthError(maxDepth);
  if (!INEXACT_NUMBER.test(text)) return JSON.parse(text);
  return parseWithExactNumbers(text, exactJsonNumber) ?? losslessParse(text, undefined, exactJsonNumber);
}

/** Whether arrays and objects in JSON text nest deeper than `max` (brackets inside strings do not count). */
function nestsDeeper(text: string, max: number): boolean {
  if (countOpenings(text, max) <= max) return false; // too few brackets in all: the common case, found natively
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) i = stringEnd(text, i);
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** `[` and `{` in the text, counted up to `max + 1`. */
function countOpenings(text: string, max: number): number {
  let n = 0;
  for (const bracket of ['[', '{']) {
    for (let i = text.indexOf(bracket); i >= 0 && n <= max; i = text.indexOf(bracket, i + 1)) n++;
  }
  return n;
}

/** The index of the quote closing the string that opens at `start` (the text's end when it never closes). */
function stringEnd(text: string, start: number): number {
  for (let i = text.indexOf('"', start + 1); i >= 0; i = text.indexOf('"', i + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(i - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return i;
  }
  return text.length;
}
