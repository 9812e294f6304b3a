/**
 * The jsonl source: one partition per file, read line by line (never the whole
 * file in memory); a line that is not a JSON object is handed to `ctx.reject`
 * and reading goes on.
 */
import { createInterface } from 'node:readline';
import type { Source, TaskContext } from '../../sdk/connector.js';
import { RowError, withLocations } from '../../sdk/errors.js';
import { asRow, type ColumnType, type Row, type Schema } from '../../sdk/types.js';
import { JsonDepthError, parseJsonExact } from '../../sdk/values.js';
import { convertValue, JsonTypeGuess } from '../shared/columns.js';
import { type FileSample, fileError, lineLocator, openToRead, singleFileSource } from '../shared/files.js';
import type { JsonlOptions } from './spec.js';

/** Lines inspected to infer the schema. */
export const INFER_ROWS = 1000;
/** Rows per array yielded by `read`. */
const CHUNK_ROWS = 1000;

const WHO = 'jsonl source';

/** Opens the file as an async iterable of lines. */
async function openLines(path: string) {
  const handle = await openToRead(path, WHO);
  const stream = handle.createReadStream({ encoding: 'utf8' });
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  // readline does not forward stream errors to its iterator: close it, and rethrow after the loop.
  let failure: unknown;
  stream.on('error', (error) => {
    failure = fileError(error, { who: WHO, path, action: 'read' });
    lines.close();
  });
  return {
    lines,
    check: () => {
      if (failure) throw failure;
    },
    close: () => {
      lines.close();
      stream.destroy();
    },
  };
}

/** One parsed line: the object, or why the line is not one. */
function parseLine(text: string, maxDepth: number): Row | RowError {
  let value: unknown;
  try {
    value = parseJsonExact(text, maxDepth);
  } catch (error) {
    if (error instanceof JsonDepthError)
      return new RowError(
        `the line nests arrays and objects deeper than ${maxDepth} levels; raise source.max_depth if such lines are expected`,
        { code: 'json_too_deep', cause: error },
      );
    return new RowError(`the line is not valid JSON (${(error as Error).message})`, { code: 'bad_json', cause: error });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return new RowError(
      `the line is ${value === null ? 'null' : Array.isArray(value) ? 'a JSON array' : `a JSON ${typeof value}`}, not a JSON object; each line must be one object such as {"id": 1}`,
      { code: 'bad_record' },
    );
  // a row inherits nothing (see emptyRow): JSON.parse keeps a "__proto__" key as an own field, and it stays one
  return asRow(value);
}

interface Sample extends FileSample {
  schema: Schema;
}

/** Reads up to {@link INFER_ROWS} objects and infers their fields' types (planner). */
async function takeSample(path: string, opts: JsonlOptions): Promise<Sample> {
  const { lines, check, close } = await openLines(path);
  const guesses = new Map<string, JsonTypeGuess>();
  let rows = 0;
  let bytes = 0;
  let complete = true;
  let n = 0;
  try {
    for await (const text of lines) {
      n++;
      if (rows === INFER_ROWS) {
        complete = false;
        break;
      }
      bytes += Buffer.byteLength(text) + 1;
      if (text.trim() === '') continue;
      const row = parseLine(n === 1 ? text.replace(/^\uFEFF/, '') : text, opts.max_depth);
      if (row instanceof RowError) continue;
      rows++;
      for (const key in row) {
        let guess = guesses.get(key);
        if (!guess) {
          guess = new JsonTypeGuess();
          guesses.set(key, guess);
        }
        guess.add(row[key]);
      }
    }
    check();
  } finally {
    close();
  }
  for (const key of Object.keys(opts.columns ?? {})) if (!guesses.has(key)) guesses.set(key, new JsonTypeGuess());
  const schema = [...guesses].map(([name, guess]) => ({
    name,
    type: opts.columns?.[name] ?? guess.type,
    nullable: true,
  }));
  return { schema, rows, bytes, complete };
}

/** Reads one partition (worker). */
async function* readJsonl(path: string, opts: JsonlOptions, ctx: TaskContext): AsyncGenerator<Row[]> {
  const { lines, check, close } = await openLines(path);
  const declared = Object.entries(opts.columns ?? {}) as [string, ColumnType][];
  let chunk: Row[] = [];
  /** The line of each row of `chunk` (for the errors a sink raises on it). */
  let rowLines: number[] = [];
  let n = 0;
  try {
    for await (const raw of lines) {
      n++;
      const text = n === 1 ? raw.replace(/^\uFEFF/, '') : raw;
      if (text.trim() === '') continue;
      const row = parseLine(text, opts.max_depth);
      let error = row instanceof RowError ? row : undefined;
      if (!error) {
        for (const [name, type] of declared) {
          if (!Object.hasOwn(row as Row, name)) continue;
          const r = convertValue((row as Row)[name], type);
          if (!r.ok) {
            error = new RowError(`field "${name}": ${r.reason}`, { code: 'bad_field' });
            break;
          }
          (row as Row)[name] = r.value;
        }
      }
      if (error) await ctx.reject({ line: n, raw: text }, error, { file: path, line: n });
      else {
        chunk.push(row as Row);
        rowLines.push(n);
      }
      if (chunk.length >= CHUNK_ROWS) {
        yield withLocations(chunk, lineLocator(path, rowLines));
        chunk = [];
        rowLines = [];
        if (ctx.signal.aborted) return;
      }
    }
    check();
    if (chunk.length) yield withLocations(chunk, lineLocator(path, rowLines));
  } finally {
    close();
  }
}

/** Creates the jsonl source for validated options. No I/O: runs on the planner and on every worker. */
export function jsonlSource(opts: JsonlOptions): Source {
  return singleFileSource(opts, takeSample, readJsonl);
}
