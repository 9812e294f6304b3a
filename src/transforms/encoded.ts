/**
 * The pipeline's transforms on encoded rows (worker, once per batch), so that a
 * chain of the steps below keeps the encoded fast path (CSV bytes into COPY):
 *
 * - `rename`, `select`, `drop` only choose and name columns: they change the
 *   batch's column list, and each record's fields are cut and written in the new
 *   order (a rename alone leaves the bytes as they are);
 * - `filter` evaluates its expression on the values of the fields it reads,
 *   decoded by the source ({@link EncodedRows.fieldValue}) exactly as its row path
 *   gives them, and keeps or leaves out the record's bytes.
 *
 * Any other step (a custom one too) keeps the row path: {@link EncodedTransforms.of}
 * says so before the partition is read. A batch this cannot vouch for — a filter
 * that fails on a record, a field the source cannot decode from its text — is
 * handed back (`apply` gives undefined) and the task sends it through the row
 * path, so counts, dead letters and rows are then the row path's own. Per-step
 * counts of a batch done here are the row path's counts for the same records.
 *
 * The data is read as PostgreSQL's CSV format reads it: fields cut at the
 * delimiter, doubled quotes inside a quoted field one quote, NULL the unquoted
 * null text, every record ending with LF or CRLF.
 */
import type { Transform, TransformContext } from '../sdk/transform.js';
import { type EncodedRows, type EncodingHints, emptyRow, type Row, type Schema } from '../sdk/types.js';

/** The column list after a step that only chooses and names columns: new names, and for each the index of the column it comes from; undefined when the step cannot do it here (two columns would get one name: a row error on the row path). */
export type ColumnsStep = (names: readonly string[]) => { names: string[]; from: number[] } | undefined;

/** How a built-in step runs on encoded rows. */
export type EncodedForm =
  | { readonly kind: 'columns'; readonly columns: ColumnsStep }
  | { readonly kind: 'filter'; readonly fields: ReadonlySet<string> };

const forms = new WeakMap<Transform, EncodedForm>();

/** Declares how a built step runs on encoded rows (the step's own module, in `create`); returns the step. */
export function encodedForm<T extends Transform>(transform: T, form: EncodedForm): T {
  forms.set(transform, form);
  return transform;
}

/** A step as the encoded path needs it. */
export interface EncodedStepInfo {
  readonly transform: Transform;
}

/** What a chain run lends the encoded path: its steps, context, and where the counts of a batch done here go. */
export interface ChainAccess {
  readonly steps: readonly EncodedStepInfo[];
  readonly ctx: TransformContext;
  /** Adds a batch's counts: records that entered the first step, and records each step left out. */
  count(rowsIn: number, filtered: ArrayLike<number>): void;
}

interface FilterPlan {
  /** Position of the step in the chain. */
  readonly step: number;
  /** The fields the expression reads, by their name at this step and the source column they come from. */
  readonly names: readonly string[];
  readonly columns: readonly number[];
  readonly transform: Transform;
  /** The record's values as this filter sees them (reused record to record: a filter keeps no reference). */
  readonly row: Row;
}

/** The chain for one list of source columns. */
interface Plan {
  readonly source: readonly string[];
  /** Output columns, and the source column each comes from. */
  readonly names: readonly string[];
  readonly from: readonly number[];
  /** The output records are the source records as they are. */
  readonly identity: boolean;
  readonly filters: readonly FilterPlan[];
  /** Fields to cut from each record: 1 + the highest source column read. */
  readonly need: number;
}

function plan(steps: readonly EncodedStepInfo[], source: readonly string[]): Plan | undefined {
  let names: readonly string[] = source;
  let from = source.map((_, i) => i);
  const filters: FilterPlan[] = [];
  for (const [step, s] of steps.entries()) {
    const form = forms.get(s.transform);
    if (!form) return undefined;
    if (form.kind === 'columns') {
      const r = form.columns(names);
      if (!r) return undefined;
      from = r.from.map((j) => from[j] as number);
      names = r.names;
      continue;
    }
    // a field this step's rows do not have reads as null on the row path: left out of the row here too
    const read = [...form.fields].filter((f) => names.includes(f));
    filters.push({
      step,
      names: read,
      columns: read.map((f) => from[names.indexOf(f)] as number),
      transform: s.transform,
      row: emptyRow(),
    });
  }
  if (names.length === 0) return undefined;
  const identity = from.length === source.length && from.every((f, i) => f === i);
  const used = [...(identity ? [] : from), ...filters.flatMap((f) => f.columns)];
  return { source, names, from, identity, filters, need: used.length ? Math.max(...used) + 1 : 0 };
}

const sameNames = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((n, i) => n === b[i]);

const LF = 0x0a;
const CR = 0x0d;
const BACKSLASH = 0x5c;
const QUOTED = 1;
const ESCAPED = 2;

/** Field spans of the current record (raw: a quoted field's span includes its quotes). */
interface Spans {
  start: Int32Array;
  end: Int32Array;
  flags: Uint8Array;
}

/** One batch's result: the data and rows for the writer, the records each step left out. */
interface Pass {
  data: Buffer;
  rows: number;
  filtered: Int32Array;
}

/**
 * A chain's encoded form for one partition attempt (worker). Built by
 * {@link EncodedTransforms.of} for the source's columns; `sourceHints` turns the
 * writer's hints into the source's column names, `apply` does a batch.
 */
export class EncodedTransforms {
  private bound: Plan;
  private spans: Spans = { start: new Int32Array(16), end: new Int32Array(16), flags: new Uint8Array(16) };

  private constructor(
    private readonly chain: ChainAccess,
    private readonly planned: Plan,
  ) {
    this.bound = planned;
  }

  /**
   * The encoded form of a chain for a source with these columns (the planner's
   * schema), or undefined when a step needs rows (mask, timestamp, cast, set, a
   * custom step), a rename would give two columns one name, or the columns are unknown.
   */
  static of(chain: ChainAccess, schema: Schema | undefined): EncodedTransforms | undefined {
    if (!schema?.length) return undefined;
    const p = plan(
      chain.steps,
      schema.map((c) => c.name),
    );
    return p ? new EncodedTransforms(chain, p) : undefined;
  }

  /** The output columns for the planner's source columns. */
  get columns(): readonly string[] {
    return this.planned.names;
  }

  /**
   * The writer's hints (keyed by the columns it gets) keyed by the source's columns,
   * for `Source.readEncoded`: a renamed column's digit limit applies to its source column.
   */
  sourceHints(hints: EncodingHints | undefined): EncodingHints | undefined {
    if (!hints) return hints;
    const { names, from, source } = this.planned;
    const toSource = new Map(names.map((n, i) => [n, source[from[i] as number] as string]));
    const out: { valueColumns?: string[]; fractionDigits?: Record<string, number> } = {};
    if (hints.valueColumns) out.valueColumns = hints.valueColumns.flatMap((n) => toSource.get(n) ?? []);
    if (hints.fractionDigits) {
      const digits: Record<string, number> = {};
      for (const [n, d] of Object.entries(hints.fractionDigits)) {
        const s = toSource.get(n);
        if (s !== undefined) digits[s] = d;
      }
      out.fractionDigits = digits;
    }
    return out;
  }

  /**
   * One batch through the chain (worker, once per batch), counted into the chain's
   * metrics; undefined when the row path must do it (nothing counted then).
   */
  apply(batch: EncodedRows): EncodedRows | undefined {
    if (!sameNames(batch.columns, this.bound.source)) {
      // columns other than planned: the writer's hints were mapped for the planned ones
      return undefined;
    }
    const p = this.bound;
    if (p.filters.length && !batch.fieldValue) return undefined;
    let pass: Pass | undefined;
    if (p.identity && p.filters.length === 0)
      pass = { data: batch.data, rows: batch.rows, filtered: new Int32Array(this.chain.steps.length) };
    else pass = this.scan(batch, p);
    if (!pass) return undefined;
    this.chain.count(batch.rows, pass.filtered);
    return this.output(batch, p, pass);
  }

  /** The batch as the writer gets it: the new columns and data; decoding it gives the rows the row path would. */
  private output(batch: EncodedRows, p: Plan, pass: Pass): EncodedRows {
    const { fieldValue, numberAt, release } = batch;
    return {
      kind: 'encoded',
      format: batch.format,
      columns: p.names,
      delimiter: batch.delimiter,
      quote: batch.quote,
      nullText: batch.nullText,
      data: pass.data,
      rows: pass.rows,
      decode: async (reject) => this.replay(await batch.decode(reject)),
      ...(fieldValue ? { fieldValue: (i: number, text: string | null) => fieldValue(p.from[i] as number, text) } : {}),
      ...(numberAt ? { numberAt: (i: number, data: Buffer, a: number, b: number) => numberAt(p.from[i] as number, data, a, b) } : {}),
      ...(release ? { release: () => release.call(batch) } : {}),
    };
  }

  /** Decoded rows of a batch done here, through the steps again (uncounted: the batch was counted once). */
  private replay(rows: Row[]): Row[] {
    const { steps, ctx } = this.chain;
    const out: Row[] = [];
    for (let row of rows) {
      let kept = true;
      for (const s of steps) {
        const next = s.transform.row(row, ctx);
        if (next === null) {
          kept = false;
          break;
        }
        row = next;
      }
      if (kept) out.push(row);
    }
    return out;
  }

  private growSpans(n: number): Spans {
    if (this.spans.start.length < n) this.spans = { start: new Int32Array(n), end: new Int32Array(n), flags: new Uint8Array(n) };
    return this.spans;
  }

  /** Cuts every record of the batch, runs the filters, writes the kept records' fields. Undefined: the row path must do it. */
  private scan(batch: EncodedRows, p: Plan): Pass | undefined {
    const buf = batch.data;
    const n = buf.length;
    const D = batch.delimiter.charCodeAt(0);
    const Q = batch.quote.charCodeAt(0);
    const nullBytes = Buffer.from(batch.nullText, 'utf8');
    const need = p.need;
    const { start, end, flags } = this.growSpans(Math.max(1, need));
    const filtered = new Int32Array(this.chain.steps.length);
    const { filters, from, identity } = p;
    const { fieldValue, numberAt } = batch;
    const ctx = this.chain.ctx;
    const isNull = (a: number, b: number) => {
      if (b - a !== nullBytes.length) return false;
      for (let i = 0; i < nullBytes.length; i++) if (buf[a + i] !== nullBytes[i]) return false;
      return true;
    };
    const quote = batch.quote;
    const value = (c: number): unknown => {
      const a = start[c] as number;
      const b = end[c] as number;
      const f = flags[c] as number;
      let text: string | null;
      if (!(f & QUOTED)) {
        if (isNull(a, b)) return (fieldValue as NonNullable<typeof fieldValue>)(c, null);
        // a plain number read from its bytes (most numeric filters), else its text
        const v = numberAt?.(c, buf, a, b);
        if (v !== undefined) return v;
        text = buf.toString('utf8', a, b);
      } else {
        text = buf.toString('utf8', a + 1, b - 1);
        if (f & ESCAPED) text = text.split(quote + quote).join(quote);
      }
      return (fieldValue as NonNullable<typeof fieldValue>)(c, text);
    };

    // identity: kept records are copied in runs (none left out: the data as it is); otherwise written field by field
    let out: Buffer | undefined = identity ? undefined : Buffer.allocUnsafe(n + 2 * batch.rows + 16);
    let o = 0;
    let runStart = 0;
    let records = 0;
    let kept = 0;
    let pos = 0;
    let nextQuote = -1; // the next quote at or after the record, once looked for
    while (pos < n) {
      const recStart = pos;
      let q = pos;
      let k = 0;
      let lineAt = -1; // where the record's line ending starts
      let recEnd = n;
      // pass 1: the spans of the first `need` fields, then the record's end
      for (;;) {
        const s = q;
        let f = 0;
        if (buf[q] === Q) {
          let j = q + 1;
          for (;;) {
            j = buf.indexOf(Q, j);
            if (j < 0) return undefined;
            if (buf[j + 1] === Q) {
              f = ESCAPED;
              j += 2;
              continue;
            }
            break;
          }
          f |= QUOTED;
          q = j + 1;
        } else {
          while (q < n) {
            const c = buf[q] as number;
            if (c === D || c === LF || c === CR) break;
            q++;
          }
        }
        if (k < need) {
          start[k] = s;
          end[k] = q;
          flags[k] = f;
        }
        k++;
        if (q >= n) break;
        const c = buf[q] as number;
        if (c === D) {
          q++;
          if (k >= need && identity) {
            // the fields left are not read: skip to the record's end — the next LF when no quote
            // comes before it, else past the quotes (they pair up: a line break inside them is text)
            if (nextQuote < q) {
              nextQuote = buf.indexOf(Q, q);
              if (nextQuote < 0) nextQuote = n;
            }
            const lf = buf.indexOf(LF, q);
            if (lf >= 0 && lf < nextQuote) q = lf;
            else {
              let inQuote = false;
              while (q < n) {
                const x = buf[q] as number;
                if (x === Q) inQuote = !inQuote;
                else if (x === LF && !inQuote) break;
                q++;
              }
            }
            if (q >= n) return undefined; // no line ending after a field: not data as written
            lineAt = buf[q - 1] === CR ? q - 1 : q;
            recEnd = q + 1;
            k = -1; // fields not counted
            break;
          }
          continue;
        }
        if (c === LF) lineAt = q;
        else if (c === CR && buf[q + 1] === LF) lineAt = q;
        else return undefined; // a byte after a closing quote that is no delimiter: not data as written
        recEnd = lineAt + (c === CR ? 2 : 1);
        break;
      }
      if (k >= 0 && k !== p.source.length) return undefined; // not the source's columns
      records++;
      pos = recEnd;
      // pass 2: the filters, in step order, on the values of the fields they read
      let keep = true;
      for (let i = 0; i < filters.length; i++) {
        const fp = filters[i] as FilterPlan;
        const row = fp.row;
        for (let j = 0; j < fp.columns.length; j++) {
          const v = value(fp.columns[j] as number);
          if (v === undefined) return undefined;
          row[fp.names[j] as string] = v;
        }
        let r: Row | null;
        try {
          r = fp.transform.row(row, ctx);
        } catch {
          return undefined; // the row path dead-letters it, with the row as that step saw it
        }
        if (r === null) {
          filtered[fp.step] = (filtered[fp.step] as number) + 1;
          keep = false;
          break;
        }
      }
      if (identity) {
        if (keep) kept++;
        else {
          out ??= Buffer.allocUnsafe(n);
          o += buf.copy(out, o, runStart, recStart);
          runStart = recEnd;
        }
        continue;
      }
      if (!keep) continue;
      kept++;
      const ob = out as Buffer;
      for (let i = 0; i < from.length; i++) {
        const c = from[i] as number;
        if (i > 0) ob[o++] = D;
        const a = start[c] as number;
        const b = end[c] as number;
        // a line starting with a backslash may read as `\.` (end of data) to PostgreSQL: quoted
        const guard = i === 0 && c !== 0 && buf[a] === BACKSLASH && !((flags[c] as number) & QUOTED) && !isNull(a, b);
        if (guard) ob[o++] = Q;
        if (b - a < 32) for (let x = a; x < b; x++) ob[o++] = buf[x] as number;
        else o += buf.copy(ob, o, a, b);
        if (guard) ob[o++] = Q;
      }
      if (lineAt < 0) ob[o++] = LF;
      else for (let x = lineAt; x < recEnd; x++) ob[o++] = buf[x] as number;
    }
    if (records !== batch.rows) return undefined; // not the records the source counted
    let data: Buffer;
    if (identity) {
      if (!out) data = buf;
      else {
        o += buf.copy(out, o, runStart, n);
        data = out.subarray(0, o);
      }
    } else data = (out as Buffer).subarray(0, o);
    return { data, rows: kept, filtered };
  }
}
