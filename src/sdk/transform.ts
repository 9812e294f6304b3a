/**
 * The transform author's API: one {@link defineTransform} call, an option spec
 * plus a factory, like a connector's (`defineConnector`). A transform is one step
 * of a pipeline's `transforms:` list; it changes each row between the source and
 * the sink, inside the task (wherever the partition runs).
 *
 * Where each part runs:
 * - `create(options)`     planner at validation, and once per worker process; no I/O
 * - `Transform.schema()`  planner, once per run: how the step changes the columns
 * - `Transform.row()`     worker, once per row, in order; synchronous
 */
import { type Opt, type OptionsOf, type Rule, type Spec, type ValidationResult, validateOptions } from './options.js';
import type { Row, Schema } from './types.js';

/** What a step's `row()` gets besides the row: the run it belongs to. */
export interface TransformContext {
  readonly runId: string;
  readonly pipeline: string;
  readonly partitionId: string;
  readonly attempt: number;
  /** When this partition attempt started: the same for each of its rows. */
  readonly loadTime: Date;
}

export interface Transform {
  /**
   * One row (worker, once per row). Returns the row to hand on — the same object
   * changed, or a new one (build it with `emptyRow()`) — or `null` to leave it out
   * (counted as filtered). Throws a `RowError` for a row it cannot transform: the
   * run's error policy applies (dead-lettered with `errors.tolerance: all`).
   */
  row(row: Row, ctx: TransformContext): Row | null;
  /**
   * The columns after this step, given those before it (planner, once per run), so the
   * sink creates its table right. Absent: the step keeps the columns as they are.
   */
  schema?(input: Schema): Schema;
  /**
   * Fields whose values this step replaces by masked ones. The runtime keeps their
   * raw values out of every output: a row that fails in a later or earlier step is
   * dead-lettered with these fields masked, and its error message with them hidden.
   */
  readonly masks?: readonly string[];
}

export interface TransformDefinition<S extends Spec = Spec> {
  /** The key users write in the `transforms:` list, e.g. `- cents: { field: amount }`. Lowercase letters, digits, hyphens and underscores. */
  name: string;
  /** One line for the docs. */
  description: string;
  options: S;
  rules?: Rule[];
  /**
   * A shorter way to write the options: `of` parses it, `expand` turns it into the
   * options mapping (`- filter: amount > 0` is `- filter: { expression: amount > 0 }`).
   * A mapping holding one of the step's own options is always the full form.
   */
  shorthand?: { of: Opt<unknown, boolean>; expand(value: unknown): Record<string, unknown> };
  /**
   * Builds the step for validated options (planner at validation, each worker once).
   * No I/O. Throw a `ConfigError` (or any error) for options that cannot work together:
   * validation reports it at this step.
   */
  create(options: OptionsOf<S>): Transform;
}

/** A transform as the runtime sees it (options erased). */
export type AnyTransform = TransformDefinition<Spec> & { readonly [TRANSFORM]: true };

const TRANSFORM = Symbol.for('weir.transform');
const NAME = /^[a-z][a-z0-9_-]*$/;

/**
 * Declares a transform. Checks the definition itself (author errors) at import time.
 *
 * @example
 * export default defineTransform({
 *   name: 'cents',
 *   description: 'Turns a decimal amount into whole cents.',
 *   options: { field: o.string().describe('The amount column.').required() },
 *   create: (opts) => ({
 *     row(row) {
 *       const v = row[opts.field];
 *       if (Decimal.is(v)) row[opts.field] = v.unscaled(2);
 *       return row;
 *     },
 *     schema: (cols) => cols.map((c) => (c.name === opts.field ? { name: c.name, type: 'integer' } : c)),
 *   }),
 * });
 */
export function defineTransform<S extends Spec>(definition: TransformDefinition<S>): TransformDefinition<S> {
  if (!NAME.test(definition.name)) throw new Error(`transform name "${definition.name}" must match ${NAME}`);
  if (typeof definition.create !== 'function') throw new Error(`transform "${definition.name}" must have a create(options) function`);
  if (!definition.description) throw new Error(`transform "${definition.name}" needs a description`);
  Object.defineProperty(definition, TRANSFORM, { value: true, enumerable: false });
  return definition;
}

/** Whether a module export is a transform made with {@link defineTransform} (from any copy of the SDK). */
export function isTransform(v: unknown): v is AnyTransform {
  return typeof v === 'object' && v !== null && (v as { [TRANSFORM]?: unknown })[TRANSFORM] === true;
}

/** Validates a transform's options (its spec and rules), for the pipeline validator and tests. */
export function validateTransformOptions<S extends Spec>(
  transform: TransformDefinition<S>,
  input: unknown,
  path = transform.name,
): ValidationResult<OptionsOf<S>> {
  return validateOptions(transform.options, input, path, transform.rules ?? []);
}
