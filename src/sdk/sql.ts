/**
 * Helpers for SQL connectors. weir never builds SQL by concatenating user values:
 * values are bound parameters, and identifiers are validated and then quoted.
 */
import { WeirError } from './errors.js';
import { IDENTIFIER } from './options.js';
import type { ColumnType, Schema } from './types.js';

/** Quotes an identifier for PostgreSQL/SQLite (`"x"`) or MySQL (`` `x` ``), doubling any quote inside it. */
export function quoteIdentifier(name: string, quote: '"' | '`' = '"'): string {
  return `${quote}${name.split(quote).join(quote + quote)}${quote}`;
}

/** Refuses a schema whose column names are not plain identifiers (they come from data, e.g. a CSV header). */
export function assertSchemaIdentifiers(schema: Schema, where: string): void {
  const bad = schema.filter((c) => !IDENTIFIER.test(c.name)).map((c) => JSON.stringify(c.name));
  if (bad.length)
    throw new WeirError(
      `${where}: column name(s) ${bad.join(', ')} are not plain SQL identifiers (letters, digits and underscores, starting with a letter or underscore); rename them in the source (for CSV, fix the header)`,
      { kind: 'config', code: 'invalid_column_name' },
    );
}

/** The schema implied by a row's keys when the source declared none (values decide the types). */
export function schemaFromRow(row: Record<string, unknown>): Schema {
  return Object.entries(row).map(([name, v]) => ({ name, type: typeOfValue(v) }));
}

export function typeOfValue(v: unknown): ColumnType {
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  if (typeof v === 'bigint') return 'integer';
  if (typeof v === 'boolean') return 'boolean';
  if (v instanceof Date) return 'timestamp';
  if (v !== null && typeof v === 'object') return 'json';
  return 'string';
}
