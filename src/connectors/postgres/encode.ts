/**
 * Rows → PostgreSQL COPY text format (worker, once per batch). One line per row,
 * fields separated by tabs, NULL as `\N`; backslash, newline, carriage return and
 * tab inside values are escaped, so any string survives the round trip.
 */
import type { Row } from '../../sdk/types.js';
import { valueText } from '../shared/columns.js';

const NEEDS_ESCAPE = /[\\\n\r\t]/;
const ESCAPES = /[\\\n\r\t]/g;
const ESCAPED: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
const replaceEscape = (c: string) => ESCAPED[c] as string;

function escapeText(s: string): string {
  return NEEDS_ESCAPE.test(s) ? s.replace(ESCAPES, replaceEscape) : s;
}

/** One value in COPY text format: its text ({@link valueText}) escaped, `\\N` for null. */
export function encodeValue(v: unknown): string {
  const text = valueText(v);
  return text === null ? '\\N' : escapeText(text);
}

/** Encodes rows `[from, to)` of a batch, reading `columns` in order. */
export function encodeRows(rows: readonly Row[], columns: readonly string[], from: number, to: number): string {
  const n = columns.length;
  let out = '';
  for (let i = from; i < to; i++) {
    const row = rows[i] as Row;
    let line = '';
    for (let j = 0; j < n; j++) {
      const v = row[columns[j] as string];
      // the common cases inline: plain strings and finite numbers
      const text =
        typeof v === 'string'
          ? NEEDS_ESCAPE.test(v)
            ? v.replace(ESCAPES, replaceEscape)
            : v
          : typeof v === 'number' && Number.isFinite(v)
            ? String(v)
            : encodeValue(v);
      line = j === 0 ? text : `${line}\t${text}`;
    }
    out += `${line}\n`;
  }
  return out;
}
