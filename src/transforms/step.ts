/**
 * What the built-in steps share: the error a step's `create` throws for an option
 * (with the place inside an expression, when it is one), and schema helpers.
 */
import type { Column, ColumnType, Schema } from '../sdk/types.js';

/**
 * A problem with one option of a step, found when the step is built (validation):
 * `option` is its path within the step (`expression`, `fields.total`); `at` the
 * line and column inside the option's text (an expression).
 */
export class StepOptionError extends Error {
  constructor(
    readonly option: string,
    message: string,
    readonly at?: { line: number; col: number; text: string },
  ) {
    super(message);
    this.name = 'StepOptionError';
  }
}

/** The columns of a schema by name. */
export function columnsByName(schema: Schema): Map<string, Column> {
  return new Map(schema.map((c) => [c.name, c]));
}

/** A column of a type (no precision: the value decides). */
export const column = (name: string, type: ColumnType): Column => ({ name, type, nullable: true });

/** Refuses names that are not in a known schema (planner): a typo is found before the run. */
export function requireColumns(step: string, option: string, names: Iterable<string>, schema: Schema): void {
  const known = new Set(schema.map((c) => c.name));
  const missing = [...names].filter((n) => !known.has(n));
  if (missing.length)
    throw new StepOptionError(
      option,
      `${step}: ${missing.map((n) => JSON.stringify(n)).join(', ')} ${missing.length > 1 ? 'are not columns' : 'is not a column'} of the rows at this step; columns: ${schema
        .map((c) => c.name)
        .join(', ')}`,
    );
}
