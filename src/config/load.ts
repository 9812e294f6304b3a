/**
 * Loads a pipeline file safely: bounded size, text only, YAML 1.2 core schema
 * (no custom tags), duplicate keys refused, alias expansion bounded. Keeps the
 * parsed document so errors can point at a line.
 */
import { readFileSync, statSync } from 'node:fs';
import { type Document, isMap, isSeq, LineCounter, parseDocument, visit } from 'yaml';
import { ConfigError, type ConfigIssue } from '../sdk/errors.js';
import { isCredentialKey, REDACTED } from '../secrets/redactor.js';
import { applyOverrides, type Override } from './overrides.js';

export const MAX_FILE_BYTES = 1024 * 1024;
const MAX_ALIASES = 50;

export interface LoadedFile {
  path: string;
  /** The file's text as written (references unresolved): what a task carries to another process. */
  text: string;
  data: unknown;
  /** Where a dotted path such as `sink.port` or `alerts[0].name` is written (its key), if known. */
  positionOf(path: string): Position | undefined;
  /** The file's line at `pos` with a caret under its column, secret values masked ({@link excerpt}). */
  excerptAt(pos: Position, isSecretKey?: (key: string) => boolean): string;
}

/** A place in a pipeline file: 1-based line and column. */
export interface Position {
  line: number;
  col: number;
}

/** Reads and parses a pipeline file; `overrides` (`--set`) change its text first (see overrides.ts). */
export function loadPipelineFile(path: string, overrides: readonly Override[] = []): LoadedFile {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new ConfigError([{ path: '', message: `${path} is not a file` }], 'cannot read pipeline file');
    size = st.size;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const code = (error as { code?: string }).code;
    throw new ConfigError(
      [{ path: '', message: code === 'ENOENT' ? `${path} does not exist; check the path` : `${path} cannot be read (${code})` }],
      'cannot read pipeline file',
    );
  }
  if (size > MAX_FILE_BYTES)
    throw new ConfigError(
      [{ path: '', message: `${path} is ${size} bytes; a pipeline file may be at most ${MAX_FILE_BYTES} bytes` }],
      'refused pipeline file',
    );
  const bytes = readFileSync(path);
  const loaded = parsePipelineText(bytes, path);
  return overrides.length ? parsePipelineText(applyOverrides(loaded.text, overrides), path) : loaded;
}

export function parsePipelineText(bytes: Buffer | string, path = '<input>'): LoadedFile {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  if (buf.includes(0)) throw refused(path, 'it contains NUL bytes: is it a binary file?');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw refused(path, 'it is not valid UTF-8 text');
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, schema: 'core', prettyErrors: false, strict: true });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length) {
    throw new ConfigError(
      problems.slice(0, 10).map((e) => {
        const message = e.message.split('\n')[0] as string;
        // an error at the end of the file (an unclosed quote or bracket) points just after its last character
        const pos = lineCounter.linePos(Math.min(e.pos[0], text.trimEnd().length));
        return yamlIssue(text, message, pos);
      }),
      `${path} is not valid YAML`,
    );
  }
  const unresolved = unresolvedAliases(doc, lineCounter);
  if (unresolved.length)
    throw new ConfigError(
      unresolved.map((pos) => yamlIssue(text, 'Unresolved alias: the anchor (&name) must be set before the alias (*name)', pos)),
      `${path} is not valid YAML`,
    );
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (error) {
    throw refused(path, `${(error as Error).message.split('\n')[0]} (at most ${MAX_ALIASES} alias expansions are allowed)`);
  }
  if (data === null || data === undefined) throw refused(path, 'it is empty; see `weir schema` for the file format');
  return {
    path,
    text,
    data,
    positionOf: (p) => positionOf(doc, lineCounter, p),
    excerptAt: (pos, isSecretKey) => excerpt(text, pos, isSecretKey),
  };
}

/**
 * A YAML syntax error at `pos`. The parser's message may repeat the text of a value
 * ("Unresolved tag: !<value>"): on the line of a secret value (see {@link excerpt})
 * that text is replaced, in the message as in the excerpt, since nothing has been
 * registered with the redactor yet.
 */
function yamlIssue(text: string, message: string, pos: Position): ConfigIssue {
  const { value } = maskSecrets(text.split('\n'), pos.line - 1, isCredentialKey);
  return at({ path: '', message: value === undefined ? message : hideValue(message, value) }, pos, excerpt(text, pos));
}

/** The message with every word of a hidden value (without its YAML `!<…>`, `!`, `*`, `&`) replaced. */
function hideValue(message: string, value: string): string {
  const words = value
    .split(/[\s,{}[\]]+/)
    .map((w) => w.replace(/^(?:!<|!!|[!*&])/, '').replace(/>$/, ''))
    .filter((w) => w.length > 0)
    .sort((a, b) => b.length - a.length);
  let out = message;
  // a word of one or two characters would also match inside the message's own words: only at its end
  for (const w of words) out = w.length > 2 ? out.split(w).join(REDACTED) : out.endsWith(w) ? `${out.slice(0, -w.length)}${REDACTED}` : out;
  return out;
}

/** Where the aliases (`*name`) without an anchor before them are. */
function unresolvedAliases(doc: Document, lc: LineCounter): Position[] {
  const found: Position[] = [];
  visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) === undefined && node.range) found.push(lc.linePos(node.range[0]));
    },
  });
  return found;
}

/**
 * Locates an issue in the file: `line L:C` after its path (or before its message when
 * it has no path) and the excerpt of that line. The one rendering of a place in a
 * pipeline file, for YAML syntax errors and validation issues alike.
 */
function at(issue: ConfigIssue, pos: Position, lines: string): ConfigIssue {
  const where = `line ${pos.line}:${pos.col}`;
  return {
    ...issue,
    ...(issue.path ? { path: `${issue.path} (${where})` } : { message: `${where}: ${issue.message}` }),
    excerpt: lines,
  };
}

/** Characters of a line shown around the column when the line is longer. */
const EXCERPT_WIDTH = 100;

/**
 * The line at `pos`, numbered, and a caret under its column:
 * ```
 *  6 |   tabel: events
 *    |   ^
 * ```
 * The value of a credential key (`password:`, `api_key:` or any key `isSecretKey`
 * names) is masked, from the key to the end of the line, and so is a line that
 * continues such a value (indented below it): a file that fails to parse or validate
 * has not registered its secrets yet, so the output guard could not scrub them. A long
 * line is cut to {@link EXCERPT_WIDTH} characters around the column (`…` marks the
 * cuts); tabs are kept in the caret line so the caret stays under its character.
 */
export function excerpt(text: string, pos: Position, isSecretKey: (key: string) => boolean = isCredentialKey): string {
  const lines = text.split('\n');
  const index = Math.min(Math.max(pos.line, 1), lines.length) - 1;
  let line = maskSecrets(lines, index, isSecretKey).line;
  let col = Math.max(1, Math.min(pos.col, line.length + 1));
  if (line.length > EXCERPT_WIDTH) {
    const from = Math.max(0, Math.min(col - 1 - EXCERPT_WIDTH / 2, line.length - EXCERPT_WIDTH));
    const cut = line.slice(from, from + EXCERPT_WIDTH);
    line = `${from > 0 ? '…' : ''}${cut}${from + EXCERPT_WIDTH < line.length ? '…' : ''}`;
    col = col - from + (from > 0 ? 1 : 0);
  }
  const number = String(pos.line);
  const pad = ' '.repeat(number.length);
  const caret = `${line.slice(0, col - 1).replace(/[^\t]/g, ' ')}^`;
  return `${number} | ${line}\n${pad} | ${caret}`;
}

/** `key:` in block or flow style, the key bare or quoted. */
const KEY = /(["']?)([A-Za-z0-9_][A-Za-z0-9_.-]*)\1\s*:(?=\s|$)/g;

/**
 * Line `index` with the value of any secret key on it, or of the secret key it continues,
 * masked; and the text it hid (undefined: nothing was hidden).
 */
function maskSecrets(lines: readonly string[], index: number, isSecretKey: (key: string) => boolean): { line: string; value?: string } {
  const line = (lines[index] ?? '').replace(/\r$/, '');
  for (const m of line.matchAll(KEY)) {
    if (!isSecretKey(m[2] as string)) continue;
    const end = (m.index ?? 0) + m[0].length;
    return { line: `${line.slice(0, end)} ${REDACTED}`, value: line.slice(end) };
  }
  // a continuation of the value of the nearest less-indented line above
  const indent = (l: string) => /^[\t ]*/.exec(l)?.[0].length ?? 0;
  const own = indent(line);
  for (let i = index - 1; i >= 0; i--) {
    const above = lines[i] as string;
    if (above.trim() === '' || indent(above) >= own) continue;
    if ([...above.matchAll(KEY)].some((m) => isSecretKey(m[2] as string)))
      return { line: `${line.slice(0, own)}${REDACTED}`, value: line.slice(own) };
    break;
  }
  return { line };
}

function refused(path: string, why: string): ConfigError {
  return new ConfigError([{ path: '', message: `${path} was refused: ${why}` }], 'refused pipeline file');
}

function positionOf(doc: Document, lc: LineCounter, path: string): Position | undefined {
  const keys: (string | number)[] = [];
  for (const part of path.split('.')) {
    const m = /^([^[]*)((\[\d+\])*)$/.exec(part);
    if (!m) return undefined;
    if (m[1]) keys.push(m[1]);
    for (const idx of (m[2] ?? '').matchAll(/\[(\d+)\]/g)) keys.push(Number(idx[1]));
  }
  // the deepest node that exists
  while (keys.length) {
    const parent = keys.length > 1 ? doc.getIn(keys.slice(0, -1), true) : doc.contents;
    const key = keys[keys.length - 1];
    if (isMap(parent)) {
      const pair = parent.items.find((p) => (p.key as { value?: unknown })?.value === key);
      const range = (pair?.key as { range?: [number, number, number] } | undefined)?.range;
      if (range) return lc.linePos(range[0]);
    } else if (isSeq(parent) && typeof key === 'number') {
      const range = (parent.items[key] as { range?: [number, number, number] } | undefined)?.range;
      if (range) return lc.linePos(range[0]);
    }
    keys.pop();
  }
  return undefined;
}

/**
 * Locates the issues whose path is in the file: `(line L:C)` after the path, and the
 * line with a caret (values of credential keys and of `isSecretKey` keys masked).
 */
export function withLines(issues: ConfigIssue[], file: LoadedFile | undefined, isSecretKey?: (key: string) => boolean): ConfigIssue[] {
  if (!file) return issues;
  return issues.map((i) => {
    const pos = i.path ? file.positionOf(i.path) : undefined;
    return pos ? at(i, pos, file.excerptAt(pos, isSecretKey)) : i;
  });
}
