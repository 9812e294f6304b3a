import type { CommitContext, Sink, TaskContext, Writer } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import { type EncodedRows, type JsonValue, type Partition, type Row, rowOf, rowValue } from '../../sdk/types.js';
import { csvField, fileValueText } from '../shared/csv-text.js';
import { resolvePath } from '../shared/files.js';
import {
  abortStagedMessages,
  commitStaged,
  fileLeftovers,
  makeTargetDir,
  parseMessages,
  StagedFile,
  type StagedMessage,
} from '../shared/staged.js';
import { appendable, fileDialect } from './sink-encoded.js';
import { type CsvOptions, textEncoding } from './spec.js';

const WHO = 'csv sink';

/** One value as CSV text (null for null): {@link fileValueText}, dates checked. */
function formatValue(value: unknown, column: string): string | null {
  if (value instanceof Date && Number.isNaN(value.getTime())) throw new RowError(`column "${column}": invalid Date`, { code: 'bad_field' });
  try {
    return fileValueText(value);
  } catch (error) {
    throw new RowError(`column "${column}": value cannot be written as JSON (${(error as Error).message})`, {
      code: 'bad_field',
      cause: error,
    });
  }
}

/** Text a spreadsheet would run as a formula (OWASP's list): `=`, `+`, `-`, `@`, tab or CR first. */
const FORMULA_START = /^[=+\-@\t\r]/;

/** With `formula_escape`, text a spreadsheet would run as a formula gets a `'` in front. */
function escapeFormula(text: string, opts: CsvOptions): string {
  return opts.formula_escape && FORMULA_START.test(text) ? `'${text}` : text;
}

/** One value as the CSV field's text, null for null (only text values are escaped as formulas: numbers are numbers). */
function fieldText(value: unknown, column: string, opts: CsvOptions): string | null {
  const text = formatValue(value, column);
  return typeof value === 'string' && text !== null ? escapeFormula(text, opts) : text;
}

/**
 * Records as CSV text, each field as {@link csvField} writes it: null as the
 * unquoted null text, and text that would read as null (`""` when the null text
 * is empty) quoted, so the file reads back to the same values.
 */
function csvText(records: (string | null)[][], opts: CsvOptions): string {
  const dialect = { delimiter: opts.delimiter, quote: opts.quote, nullText: opts.null_value };
  let out = '';
  for (const record of records) out += `${record.map((f, i) => csvField(f, dialect, i === 0)).join(opts.delimiter)}\n`;
  return out;
}

/** The header line of these columns, as the file holds it (each partition's file starts with it; the target keeps one). */
function headerOf(names: readonly string[], opts: CsvOptions): Buffer {
  return Buffer.from(csvText([names.map((n) => escapeFormula(n, opts))], opts), textEncoding(opts));
}

/** The columns to write: the `columns` option, else the source schema, else the first row's keys. */
function chooseColumns(opts: CsvOptions, ctx: TaskContext, first: Row | undefined): { names: string[]; explicit: boolean } {
  if (opts.columns && Object.keys(opts.columns).length) return { names: Object.keys(opts.columns), explicit: true };
  if (ctx.schema?.length) return { names: ctx.schema.map((c) => c.name), explicit: false };
  return { names: first ? Object.keys(first) : [], explicit: false };
}

/** Opens the writer of one partition (worker). */
async function openWriter(partition: Partition, opts: CsvOptions, ctx: TaskContext): Promise<Writer> {
  const target = resolvePath(ctx.baseDir, opts.path);
  const file = await StagedFile.open(target, partition.id, ctx.runId, WHO, { ownerOnly: ctx.ownerOnly });
  let columns: { names: string[]; explicit: boolean; set: Set<string> } | undefined;
  /** Chooses the columns at the first batch, and starts the file with their header. */
  const choose = async (first: Row | undefined) => {
    const chosen = chooseColumns(opts, ctx, first);
    if (opts.header && chosen.names.length) await file.writeHeader(headerOf(chosen.names, opts));
    columns = { ...chosen, set: new Set(chosen.names) };
    return columns;
  };
  const dialect = fileDialect(opts);

  return {
    async write(batch) {
      if (batch.length === 0) return;
      columns ??= await choose(batch[0]);
      const { names, explicit, set } = columns;
      const records: (string | null)[][] = new Array(batch.length);
      for (let r = 0; r < batch.length; r++) {
        const row = batch[r] as Row;
        if (!explicit) {
          for (const key in row) {
            if (!set.has(key))
              throw new RowError(
                `row has field "${key}" that is not one of the CSV columns (${names.join(', ')}); set the sink's \`columns\` option to choose the columns to write`,
                { code: 'unknown_field' },
              );
          }
        }
        const record: (string | null)[] = new Array(names.length);
        for (let i = 0; i < names.length; i++) {
          const name = names[i] as string;
          record[i] = fieldText(rowValue(row, name), name, opts);
        }
        records[r] = record;
      }
      const bytes = await file.append(Buffer.from(csvText(records, opts), textEncoding(opts)), batch.length);
      ctx.count('bytes_sent', bytes);
    },
    ...(dialect
      ? {
          encodingHints: () => ({ dialect }),
          /** Canonical CSV of the file's columns, appended as it is; anything else is declined (the runtime writes its rows). */
          async writeEncoded(batch: EncodedRows) {
            const names = columns?.names ?? (ctx.schema?.length ? ctx.schema.map((c) => c.name) : undefined);
            if (!appendable(batch, dialect, names)) return false;
            columns ??= await choose(rowOf(batch.columns, []));
            if (batch.rows === 0) return true;
            ctx.count('bytes_sent', await file.append(batch.data, batch.rows));
            return true;
          },
        }
      : {}),
    async commit() {
      const message = await file.commit();
      return { ...message, columns: columns?.names ?? chooseColumns(opts, ctx, undefined).names } satisfies StagedMessage;
    },
    abort: () => file.abort(),
    close: () => file.close(),
  };
}

/** The columns of the job (planner): those the partitions wrote, which must agree. */
function jobColumns(parts: StagedMessage[], opts: CsvOptions, ctx: CommitContext): string[] {
  const written = parts.filter((p) => p.rows > 0 && Array.isArray(p.columns)).map((p) => p.columns as string[]);
  const names = written[0] ?? (opts.columns ? Object.keys(opts.columns) : (ctx.schema?.map((c) => c.name) ?? []));
  for (const other of written) {
    if (other.join('\0') !== names.join('\0'))
      throw new WeirError(
        `${WHO}: partitions wrote different columns (${names.join(', ')} vs ${other.join(', ')}); set the sink's \`columns\` option so every partition writes the same columns`,
        { kind: 'config', code: 'column_mismatch' },
      );
  }
  return names;
}

/** Creates the csv sink for validated options. No I/O: runs on the planner and on every worker. */
export function csvSink(opts: CsvOptions): Sink {
  return {
    // canonical CSV (the postgres source's export) is appended as it is where the options allow
    ...(fileDialect(opts) ? { accepts: ['csv'] as const } : {}),
    /** Planner: creates the target's directory so a bad path fails before any row is read. */
    async setup(ctx) {
      const target = resolvePath(ctx.baseDir, opts.path);
      await makeTargetDir(WHO, target);
    },
    /** Worker: a writer to a temporary file beside the target. */
    writer: (partition, ctx) => openWriter(partition, opts, ctx),
    /** Planner: concatenates the partitions into the target atomically. Idempotent. */
    async commit(messages: JsonValue[], ctx) {
      const parts = parseMessages(messages, WHO);
      const target = resolvePath(ctx.baseDir, opts.path);
      const names = jobColumns(parts, opts, ctx);
      const header = opts.header && names.length ? headerOf(names, opts) : undefined;
      await commitStaged({
        who: WHO,
        target,
        mode: opts.mode,
        parts,
        runId: ctx.runId,
        log: ctx.log,
        ownerOnly: ctx.ownerOnly,
        header,
        checkExisting: (head) => {
          if (!header) return;
          const firstLine = head.subarray(0, head.indexOf(0x0a) + 1 || head.length).toString(textEncoding(opts));
          const expected = Buffer.from(header).toString(textEncoding(opts));
          if (firstLine.replace(/\r?\n$/, '').replace(/^\uFEFF/, '') !== expected.replace(/\n$/, ''))
            throw new WeirError(
              `${WHO}: cannot append to ${target}: its header ${JSON.stringify(firstLine.trim())} differs from the columns of this run ${JSON.stringify(expected.trim())}; use mode: overwrite, write to another path, or set \`columns\` to match the file`,
              { kind: 'config', code: 'header_mismatch' },
            );
        },
      });
    },
    /** Planner: deletes the run's temporary files. Idempotent. */
    async abort(messages: JsonValue[], ctx) {
      await abortStagedMessages(WHO, resolvePath(ctx.baseDir, opts.path), messages, ctx);
    },
    leftovers: fileLeftovers((ctx) => resolvePath(ctx.baseDir, opts.path)),
  };
}
