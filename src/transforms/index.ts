/**
 * A pipeline's `transforms:` — the built-in steps, the option of the pipeline file
 * that validates and builds them (each step's own option spec: validation, docs and
 * JSON Schema come from it), and the {@link TransformChain} a task applies to every
 * batch between the source and the sink (worker), with its per-step counts.
 */
import { ConfigError, type ConfigIssue, errorMessage, RowError, WeirError } from '../sdk/errors.js';
import {
  base,
  isPlainObject,
  joinPath,
  Opt,
  type OptionMeta,
  o,
  type ParseIssues,
  type ParseResult,
  type Rule,
  type Spec,
  validateOptions,
} from '../sdk/options.js';
import { type AnyTransform, type Transform, type TransformContext, validateTransformOptions } from '../sdk/transform.js';
import type { Row, Schema } from '../sdk/types.js';
import cast from './cast.js';
import { EncodedTransforms } from './encoded.js';
import { stringOf } from './expr.js';
import filter from './filter.js';
import mask from './mask.js';
import rename from './rename.js';
import { drop, select } from './select.js';
import set from './set.js';
import { StepOptionError } from './step.js';
import timestamp from './timestamp.js';

export const builtinTransforms = [rename, select, drop, cast, filter, set, mask, timestamp] as unknown as readonly AnyTransform[];

/** One built step of a chain. */
export interface Step {
  /** 0-based position in `transforms:`. */
  readonly index: number;
  /** The step's name (`filter`, or a custom transform's). */
  readonly name: string;
  readonly transform: Transform;
}

/** The counts of one step, over a partition attempt (or summed over a run). */
export interface StepMetrics {
  /** 0-based position in `transforms:`. */
  step: number;
  name: string;
  rows_in: number;
  rows_out: number;
  rows_filtered: number;
  rows_failed: number;
}

/** An issue of an expression: where in the expression's text, to locate it in the pipeline file. */
export interface ExpressionIssue extends ConfigIssue {
  expression: { line: number; col: number; text: string };
}

export const isExpressionIssue = (i: ConfigIssue): i is ExpressionIssue =>
  typeof (i as Partial<ExpressionIssue>).expression?.text === 'string';

/** What the chain does with a row a step could not transform: hands it to the run's error policy (which may throw). */
export type RejectRow = (record: Row, error: unknown) => Promise<void>;

/**
 * The built steps of a pipeline, in order. Built once per run at validation (and
 * once per worker process); {@link start} gives each partition attempt its own
 * counters. Holds secrets (an HMAC key) only inside the steps' closures: printing
 * it shows the step names.
 */
export class TransformChain {
  /** Fields masked by some step (their raw values never leave the task). */
  readonly masked: ReadonlySet<string>;

  constructor(readonly steps: readonly Step[]) {
    this.masked = new Set(steps.flatMap((s) => s.transform.masks ?? []));
  }

  get empty(): boolean {
    return this.steps.length === 0;
  }

  /**
   * The columns after every step (planner, once per run), for the sink's table. A
   * step that names a column the rows do not have at that point is a config error.
   */
  schema(input: Schema | undefined): Schema | undefined {
    if (!input) return undefined;
    let schema = input;
    for (const step of this.steps) {
      if (!step.transform.schema) continue;
      try {
        schema = step.transform.schema(schema);
      } catch (error) {
        const option = error instanceof StepOptionError ? `.${error.option}` : '';
        throw new ConfigError(
          [{ path: `transforms[${step.index}].${step.name}${option}`, message: errorMessage(error) }],
          `transforms do not fit the source's columns`,
        );
      }
    }
    return schema;
  }

  /** The counters and the row loop of one partition attempt (worker). */
  start(ctx: TransformContext): ChainRun {
    return new ChainRun(this, ctx);
  }

  toJSON(): string[] {
    return this.steps.map((s) => s.name);
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `TransformChain(${this.steps.map((s) => s.name).join(' → ')})`;
  }
}

/** One partition attempt's pass of rows through a chain. */
export class ChainRun {
  private readonly rowsIn: number[];
  private readonly filtered: number[];
  private readonly failed: number[];
  private readonly fns: ((row: Row, ctx: TransformContext) => Row | null)[];

  constructor(
    readonly chain: TransformChain,
    private readonly ctx: TransformContext,
  ) {
    const n = chain.steps.length;
    this.rowsIn = new Array(n).fill(0);
    this.filtered = new Array(n).fill(0);
    this.failed = new Array(n).fill(0);
    this.fns = chain.steps.map((s) => s.transform.row.bind(s.transform));
  }

  /**
   * The rows of one batch through every step, in order (worker, once per batch).
   * Filtered rows are left out; a row a step fails on goes to `reject` — masked
   * fields masked, their raw values hidden in the error — and is left out.
   * Returns the rows for the sink.
   */
  async apply(rows: Row[], reject: RejectRow): Promise<Row[]> {
    const { fns, ctx } = this;
    const n = fns.length;
    const out: Row[] = [];
    let failures: { row: Row; step: number; error: unknown }[] | undefined;
    this.rowsIn[0] = (this.rowsIn[0] ?? 0) + rows.length;
    for (const input of rows) {
      let row: Row | null = input;
      let i = 0;
      try {
        for (; i < n; i++) {
          row = (fns[i] as (typeof fns)[number])(row as Row, ctx);
          if (row === null) break;
        }
      } catch (error) {
        this.failed[i] = (this.failed[i] ?? 0) + 1;
        failures ??= [];
        failures.push({ row: row as Row, step: i, error });
        continue;
      }
      if (row === null) this.filtered[i] = (this.filtered[i] ?? 0) + 1;
      else out.push(row);
    }
    if (failures) for (const f of failures) await this.rejectFailed(f.row, f.step, f.error, reject);
    return out;
  }

  /** A failed row, made safe to output: the later steps replayed on it as far as they go (so masks apply), raw masked values hidden. */
  private async rejectFailed(row: Row, step: number, error: unknown, reject: RejectRow): Promise<void> {
    const steps = this.chain.steps;
    const raw: string[] = [];
    // masked fields the failing step saw raw, before a later mask replaces them in place
    for (const f of this.chain.masked) collectRaw(row, f, raw);
    let record = row;
    for (let j = step + 1; j < steps.length; j++) {
      const t = (steps[j] as Step).transform;
      if (t.masks) for (const f of t.masks) collectRaw(record, f, raw);
      try {
        record = t.row(record, this.ctx) ?? record;
      } catch {
        // a later step that fails too is skipped: the record stays as far as it got
      }
    }
    const s = steps[step] as Step;
    let message = `transforms[${s.index}] ${s.name}: ${errorMessage(error)}`;
    if (error instanceof WeirError && error.message.startsWith(`${s.name}`)) message = `transforms[${s.index}] ${errorMessage(error)}`;
    for (const value of raw.sort((a, b) => b.length - a.length)) message = message.split(value).join('***MASKED***');
    const rowError = new RowError(message, {
      code: error instanceof WeirError ? error.code : 'transform_failed',
      ...(raw.length ? {} : { cause: error }),
    });
    await reject(hideRaw(record, raw), rowError);
  }

  /**
   * This chain on encoded batches for a source with the planner's columns (worker,
   * once per partition attempt), or undefined when a step needs rows (see encoded.ts).
   * Batches done there are counted here, as the row path counts them.
   */
  encoded(schema: Schema | undefined): EncodedTransforms | undefined {
    return EncodedTransforms.of(
      {
        steps: this.chain.steps,
        ctx: this.ctx,
        count: (rowsIn, filtered) => {
          this.rowsIn[0] = (this.rowsIn[0] ?? 0) + rowsIn;
          for (let i = 0; i < this.filtered.length; i++) this.filtered[i] = (this.filtered[i] ?? 0) + (filtered[i] ?? 0);
        },
      },
      schema,
    );
  }

  /** The per-step counts so far. */
  metrics(): StepMetrics[] {
    const out: StepMetrics[] = [];
    let rowsIn = this.rowsIn[0] ?? 0;
    for (const [i, s] of this.chain.steps.entries()) {
      const filtered = this.filtered[i] ?? 0;
      const failed = this.failed[i] ?? 0;
      const rowsOut = rowsIn - filtered - failed;
      out.push({ step: s.index, name: s.name, rows_in: rowsIn, rows_out: rowsOut, rows_filtered: filtered, rows_failed: failed });
      rowsIn = rowsOut;
    }
    return out;
  }

  /** Rows left out by filters so far. */
  get rowsFiltered(): number {
    return this.filtered.reduce((a, b) => a + b, 0);
  }
}

/** Raw values shorter than this are not hidden inside other text (they would hide ordinary words). */
const MIN_HIDDEN = 3;

function collectRaw(row: Row, field: string, into: string[]): void {
  if (!Object.hasOwn(row, field)) return;
  const text = stringOf(row[field]);
  if (text !== null && text.length >= MIN_HIDDEN && !into.includes(text)) into.push(text);
}

/** The record with every raw masked value hidden in its text values (a copy of the value in another column too). */
function hideRaw(record: Row, raw: readonly string[]): Row {
  if (raw.length === 0) return record;
  for (const key in record) {
    const v = record[key];
    if (typeof v !== 'string') continue;
    let s = v;
    for (const value of raw) s = s.split(value).join('***MASKED***');
    record[key] = s;
  }
  return record;
}

/** Sums the step metrics of several partitions (the run's summary). */
export function sumStepMetrics(lists: readonly (readonly StepMetrics[] | undefined)[]): StepMetrics[] {
  const out: StepMetrics[] = [];
  for (const list of lists) {
    for (const m of list ?? []) {
      let into = out.find((x) => x.step === m.step);
      if (!into) {
        into = { step: m.step, name: m.name, rows_in: 0, rows_out: 0, rows_filtered: 0, rows_failed: 0 };
        out.push(into);
      }
      into.rows_in += m.rows_in;
      into.rows_out += m.rows_out;
      into.rows_filtered += m.rows_filtered;
      into.rows_failed += m.rows_failed;
    }
  }
  return out.sort((a, b) => a.step - b.step);
}

// ---------------------------------------------------------------------------
// The pipeline file's `transforms:` option

interface BuiltStep {
  name: string;
  transform: Transform;
}

/** Whether a mapping is the full form of a step (holds one of its options) rather than a mapping shorthand. */
function isFullForm(def: AnyTransform, value: unknown): boolean {
  if (!def.shorthand) return true;
  if (!isPlainObject(value)) return false;
  const kind = def.shorthand.of.meta.kind;
  if (kind !== 'map' && kind !== 'object') return true;
  const keys = Object.keys(value);
  return keys.some((k) => Object.hasOwn(def.options, k));
}

/** One step's option (`rename: {...}`): its spec for docs and schema, a parser that validates and builds it. */
function stepOption(def: AnyTransform): Opt<BuiltStep> {
  const meta: OptionMeta = base('object', {
    spec: def.options,
    rules: def.rules ?? [],
    description: def.description,
    ...(def.shorthand ? { shorthand: def.shorthand.of } : {}),
  });
  return new Opt<BuiltStep>(meta, (value, _meta, path): ParseResult<BuiltStep> | ParseIssues => {
    let input: unknown = value;
    if (!isFullForm(def, value)) {
      const short = def.shorthand?.of.parse(value, path);
      if (!short || 'issues' in short) return short ?? { ok: false, message: 'is invalid' };
      if (!short.ok) return { ok: false, message: `${short.message}; or write the options as a mapping (see weir docs transforms)` };
      input = def.shorthand?.expand(short.value);
    }
    const r = validateTransformOptions(def, input, path);
    if (!r.value) return { ok: false, issues: r.issues };
    try {
      return { ok: true, value: { name: def.name, transform: def.create(r.value) } };
    } catch (error) {
      if (error instanceof StepOptionError) {
        const issue: ConfigIssue = { path: joinPath(path, error.option), message: error.message };
        return { ok: false, issues: [error.at ? ({ ...issue, expression: error.at } as ExpressionIssue) : issue] };
      }
      if (error instanceof ConfigError) return { ok: false, issues: error.issues.map((i) => ({ ...i, path: joinPath(path, i.path) })) };
      return { ok: false, message: `cannot be built: ${errorMessage(error)}` };
    }
  });
}

/** What the `transforms:` option needs to know of the registry. */
export interface TransformSource {
  transforms(): readonly AnyTransform[];
}

/** The spec of one item of `transforms:`: one key per known step (exactly one of them set). */
export function stepSpec(registry: TransformSource): { spec: Spec; rules: Rule[] } {
  const spec: Spec = {};
  for (const def of registry.transforms()) spec[def.name] = stepOption(def);
  const names = Object.keys(spec);
  const rule: Rule = {
    description: 'each item is one step: exactly one of its keys',
    fields: names,
    check: (x) => {
      const set = names.filter((n) => x[n] !== undefined);
      if (set.length === 1) return undefined;
      return set.length === 0
        ? `a step needs one of ${names.join(', ')}, e.g. - filter: amount > 0`
        : `${set.join(' and ')} are two steps in one item; write each as its own list item (- ${set[0]}: …)`;
    },
  };
  return { spec, rules: [rule] };
}

/**
 * The `transforms:` option of the pipeline file: a list of one-key mappings
 * (`- rename: { case: snake }`, `- filter: amount > 0`), parsed into a {@link TransformChain}.
 */
export function transformsOption(registry: TransformSource): Opt<TransformChain> {
  const { spec, rules } = stepSpec(registry);
  const object = o.object(spec, rules);
  // an unknown step name is one issue (with its did-you-mean), not also "a step needs one of …"
  const item = new Opt<Record<string, unknown>>(object.meta, (v, _meta, path) => {
    const unknown = isPlainObject(v) && Object.keys(v).some((k) => !Object.hasOwn(spec, k));
    const r = validateOptions(spec, v, path, unknown ? [] : rules);
    return r.issues.length ? { ok: false, issues: r.issues } : { ok: true, value: r.value as Record<string, unknown> };
  });
  const list = o.list(item, { max: 256 });
  return new Opt<TransformChain>(list.meta, (value, _meta, path) => {
    if (!Array.isArray(value)) return { ok: false, message: 'must be a list of steps, such as - rename: { case: snake }' };
    const r = list.parse(value, path);
    if ('issues' in r || !r.ok) return r as ParseIssues;
    const steps = (r.value as Record<string, BuiltStep | undefined>[]).map((item, index) => {
      const built = Object.values(item).find((x) => x !== undefined) as BuiltStep;
      return { index, name: built.name, transform: built.transform };
    });
    return { ok: true, value: new TransformChain(steps) };
  });
}

/** Secret option values of the steps written literally (not as references), to register with the redactor. */
export function literalSecrets(data: unknown, registry: TransformSource): string[] {
  const out: string[] = [];
  if (!Array.isArray(data)) return out;
  const defs = new Map(registry.transforms().map((d) => [d.name, d]));
  for (const item of data) {
    if (!isPlainObject(item)) continue;
    for (const [name, options] of Object.entries(item)) {
      const def = defs.get(name);
      if (!def || !isPlainObject(options)) continue;
      for (const [key, opt] of Object.entries(def.options)) if (opt.meta.secret && typeof options[key] === 'string') out.push(options[key]);
    }
  }
  return out;
}

export { EncodedTransforms } from './encoded.js';
export { compileExpression, ExpressionError, FUNCTION_USAGE } from './expr.js';
export { StepOptionError } from './step.js';
