/**
 * Loads a pipeline file safely: bounded size, text only, YAML 1.2 core schema
 * (no custom tags), duplicate keys refused, alias expansion bounded. Keeps the
 * parsed document so errors can point at a line.
 */
import { readFileSync, statSync } from 'node:fs';
import { type Document, isMap, isSeq, LineCounter, parseDocument } from 'yaml';
import { ConfigError, type ConfigIssue } from '../sdk/errors.js';

export const MAX_FILE_BYTES = 1024 * 1024;
const MAX_ALIASES = 50;

export interface LoadedFile {
  path: string;
  data: unknown;
  /** The line of a dotted path such as `sink.port` or `alerts[0].name`, if known. */
  lineOf(path: string): number | undefined;
}

export function loadPipelineFile(path: string): LoadedFile {
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
  return parsePipelineText(bytes, path);
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
        const pos = e.linePos?.[0];
        return { path: '', message: `${pos ? `line ${pos.line}, column ${pos.col}: ` : ''}${e.message.split('\n')[0]}` };
      }),
      `${path} is not valid YAML`,
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (error) {
    throw refused(path, `${(error as Error).message.split('\n')[0]} (at most ${MAX_ALIASES} alias expansions are allowed)`);
  }
  if (data === null || data === undefined) throw refused(path, 'it is empty; see `weir schema` for the file format');
  return { path, data, lineOf: (p) => lineOf(doc, lineCounter, p) };
}

function refused(path: string, why: string): ConfigError {
  return new ConfigError([{ path: '', message: `${path} was refused: ${why}` }], 'refused pipeline file');
}

function lineOf(doc: Document, lc: LineCounter, path: string): number | undefined {
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
      if (range) return lc.linePos(range[0]).line;
    } else if (isSeq(parent) && typeof key === 'number') {
      const range = (parent.items[key] as { range?: [number, number, number] } | undefined)?.range;
      if (range) return lc.linePos(range[0]).line;
    }
    keys.pop();
  }
  return undefined;
}

/** Adds `(line N)` to issues whose path is in the file. */
export function withLines(issues: ConfigIssue[], file: LoadedFile | undefined): ConfigIssue[] {
  if (!file) return issues;
  return issues.map((i) => {
    const line = i.path ? file.lineOf(i.path) : undefined;
    return line ? { ...i, path: `${i.path} (line ${line})` } : i;
  });
}
