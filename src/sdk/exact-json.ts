/**
 * JSON.parse with every number kept exact, at close to JSON.parse's speed: the fast
 * path of {@link parseJsonExact} (values.ts) for text whose numbers JSON.parse alone
 * would round (a fraction, an exponent, 16 digits or more).
 *
 * Each such number token outside strings is rewritten into a string that starts with
 * U+0000 (`1.50` → `"\u00001.50"`), the text goes through JSON.parse, and every string
 * of the result that starts with U+0000 is the number's text, converted by the
 * caller. No string of the input can start with U+0000 when its text has no `\u0000`
 * escape (a raw U+0000 is not valid JSON): such input, and any input this path cannot
 * vouch for (a token that is not a JSON number, text JSON.parse refuses, an object with
 * a key twice, whose first value JSON.parse would drop), returns undefined, and the
 * caller takes its exact parser, which also gives the error.
 *
 * Duplicate keys are found by counting: the scan counts the keys of the text (strings
 * followed by `:`), and the parsed value must hold as many, else a key came twice.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
/** U+0000 as a JSON escape (a raw one is not valid inside a JSON string). */
const MARK = '\\u0000';
/** JSON's number grammar. */
const JSON_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;
/** A number token JSON.parse may round: a fraction or exponent, or 16+ digits. */
const INEXACT = /[.eE]|\d{16}/;

/**
 * `text` parsed, each number JSON.parse may round replaced by `exact(its text)`;
 * undefined when this path cannot vouch for the result (see the module comment).
 */
export function parseWithExactNumbers(text: string, exact: (numberText: string) => unknown): unknown {
  if (text.includes('\\u0000')) return undefined;
  const scan = markInexactNumbers(text);
  if (scan === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(scan.marked);
  } catch {
    return undefined;
  }
  if (scan.keys > 0 && countKeys(value) !== scan.keys) return undefined;
  return scan.marked === text ? value : restore(value, exact);
}

/**
 * The text with each inexact number token as a marked string, and how many object keys
 * it has; undefined when a token is not a JSON number.
 */
function markInexactNumbers(text: string): { marked: string; keys: number } | undefined {
  let out = '';
  let from = 0;
  let keys = 0;
  for (let i = 0; i < text.length; ) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = stringEnd(text, i) + 1;
      let j = i;
      while (isSpace(text.charCodeAt(j))) j++;
      if (text.charCodeAt(j) === COLON) keys++;
      continue;
    }
    if (c !== 0x2d && (c < 0x30 || c > 0x39)) {
      i++;
      continue;
    }
    const start = i;
    while (i < text.length && isNumberChar(text.charCodeAt(i))) i++;
    const token = text.slice(start, i);
    if (!INEXACT.test(token)) continue;
    if (!JSON_NUMBER.test(token)) return undefined;
    out += `${text.slice(from, start)}"${MARK}${token}"`;
    from = i;
  }
  return { marked: from === 0 ? text : out + text.slice(from), keys };
}

/** JSON's whitespace: space, tab, line feed, carriage return. */
function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** How many keys the objects of a parsed value hold, all levels together. */
function countKeys(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  let n = 0;
  if (Array.isArray(value)) {
    for (const v of value) if (typeof v === 'object') n += countKeys(v);
    return n;
  }
  const keys = Object.keys(value);
  n = keys.length;
  for (const key of keys) {
    const v = (value as Record<string, unknown>)[key];
    if (typeof v === 'object') n += countKeys(v);
  }
  return n;
}

/** Digits, `-`, `+`, `.`, `e`, `E`. */
function isNumberChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45;
}

/** The index of the quote closing the string that opens at `start` (the text's end when it never closes). */
function stringEnd(text: string, start: number): number {
  for (let i = text.indexOf('"', start + 1); i >= 0; i = text.indexOf('"', i + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(i - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return i;
  }
  return text.length;
}

/** Replaces the marked strings of a parsed value, in place (own keys only: `__proto__` stays a plain key). */
function restore(value: unknown, exact: (numberText: string) => unknown): unknown {
  if (typeof value === 'string') return value.charCodeAt(0) === 0 ? exact(value.slice(1)) : value;
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      if (typeof v === 'object' || typeof v === 'string') value[i] = restore(v, exact);
    }
    return value;
  }
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    const v = o[key];
    if (typeof v !== 'object' && typeof v !== 'string') continue;
    const r = restore(v, exact);
    if (r === v) continue;
    if (key === '__proto__') Object.defineProperty(o, key, { value: r, writable: true, enumerable: true, configurable: true });
    else o[key] = r;
  }
  return value;
}
