/**
 * Helpers for SQL connectors. weir never builds SQL by concatenating user values:
 * values are bound parameters, and identifiers are always quoted.
 *
 * Column names come from data (a CSV header, a JSON key, another database), so any
 * name a database can hold is accepted — spaces, punctuation, quotes, non-ASCII
 * letters, reserved words, mixed case — and quoted with {@link quoteIdentifier}.
 * Only what no quoting makes safe is refused ({@link planColumns}): an empty name, a
 * NUL byte, a name beyond the database's length limit, and in MySQL a trailing space.
 */
import { WeirError } from './errors.js';
import { o, suggest } from './options.js';
import type { ColumnType, Schema } from './types.js';
import { Decimal } from './values.js';

/** Quotes an identifier for PostgreSQL/SQLite (`"x"`) or MySQL (`` `x` ``), doubling any quote inside it. */
export function quoteIdentifier(name: string, quote: '"' | '`' = '"'): string {
  return `${quote}${name.split(quote).join(quote + quote)}${quote}`;
}

// ---------------------------------------------------------------------------
// Column names

/** The SQL databases weir writes to, for their rules about names. */
export type SqlDialect = 'postgres' | 'mysql' | 'sqlite';

interface DialectRules {
  label: string;
  /** Longest name in UTF-8 bytes (PostgreSQL's NAMEDATALEN - 1). */
  maxBytes?: number;
  /** Longest name in characters. */
  maxChars?: number;
  /** The database refuses names that end in a space. */
  noTrailingSpace?: boolean;
  /** How the database compares column names: `undefined` when exactly. */
  fold?: (name: string) => string;
}

const DIALECTS: Record<SqlDialect, DialectRules> = {
  // unquoted names fold to lower case, but weir quotes every name: compared exactly
  postgres: { label: 'PostgreSQL', maxBytes: 63 },
  mysql: { label: 'MySQL/MariaDB', maxChars: 64, noTrailingSpace: true, fold: (n) => n.toLowerCase() },
  // SQLite ignores the case of ASCII letters only
  sqlite: { label: 'SQLite', fold: (n) => n.replace(/[A-Z]+/g, (s) => s.toLowerCase()) },
};

/** How a sink names the columns it writes the rows' fields to. */
export type ColumnNaming = 'keep' | 'snake_case';

/**
 * The `column_names` option of the SQL sinks (one definition, reused by each);
 * `keyColumns`: the sink has a `key_columns` option, normalised the same way.
 *
 * @example
 * const sinkOptions = { table: o.identifier().describe('Target table.'), column_names: columnNamesOption() };
 */
export function columnNamesOption(c: { keyColumns?: boolean } = {}) {
  return o
    .enum(['keep', 'snake_case'] as const)
    .describe(
      `Sink: the column each field of the rows is written to. \`keep\`: the field's own name, whatever it holds (spaces, punctuation, capitals, non-ASCII letters; every name is quoted). \`snake_case\`: lower case, every run of characters other than letters and digits turned into \`_\`, leading and trailing \`_\` trimmed, \`_\` put before a leading digit (\`Cost Total $\` → \`cost_total\`, \`2nd Try\` → \`_2nd_try\`) — used for the columns of a table weir creates and to find the columns of an existing table${c.keyColumns === false ? '' : '; `key_columns` are normalised the same way'}. Two fields that end up with the same name are a configuration error.`,
    )
    .default('keep');
}

/**
 * The column-name option of a connector (`key_columns`, `partition_column`): any name
 * a database can hold, quoted wherever it is used.
 */
export function columnNameOption() {
  return o.string({ minLength: 1, maxLength: 256, pattern: /^[^\u0000]+$/, patternHint: 'must not contain a NUL byte' });
}

/** `Cost Total $` → `cost_total`; `2nd Try` → `_2nd_try`; `Größe` → `größe`. Empty when the name has no letter or digit. */
export function snakeCase(name: string): string {
  const s = name
    .normalize('NFC')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, '_')
    .replace(/^_+|_+$/g, '');
  return /^\p{N}/u.test(s) ? `_${s}` : s;
}

/** A column name as shown in messages: JSON-quoted (control characters escaped), a long one cut short. */
export function shownName(name: string): string {
  const text = JSON.stringify(name);
  return text.length > 90 ? `${text.slice(0, 80)}…" (${name.length} characters)` : text;
}

/** Which column each field of the rows goes to: `columns[i]` holds `fields[i]`. */
export interface ColumnPlan {
  /** The rows' field names, as the source produces them. */
  readonly fields: readonly string[];
  /** The column of each field in the table (quoted in every statement). */
  readonly columns: readonly string[];
}

export interface ColumnRules {
  dialect: SqlDialect;
  naming: ColumnNaming;
  /** Names the target in messages, e.g. `sink table public.events`. */
  where: string;
}

/**
 * The columns a sink writes the schema's fields to (planner or worker; pure): the
 * field's name, or its {@link snakeCase}. Throws a config error naming the column
 * when a name cannot be used in the database (empty, NUL byte, too long, a trailing
 * space in MySQL) and naming both fields when two get the same column.
 */
export function planColumns(schema: Schema, rules: ColumnRules): ColumnPlan {
  const fields = schema.map((c) => c.name);
  const columns = fields.map((f) => (rules.naming === 'snake_case' ? snakeCase(f) : f));
  const dialect = DIALECTS[rules.dialect];
  const problems: string[] = [];
  const seen = new Map<string, number>();
  columns.forEach((column, i) => {
    const field = fields[i] as string;
    const problem = nameProblem(field, column, rules);
    if (problem) {
      problems.push(problem);
      return;
    }
    const key = dialect.fold ? dialect.fold(column) : column;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else problems.push(collision(fields[first] as string, field, columns[first] as string, column, rules));
  });
  if (problems.length) throw new WeirError(`${rules.where}: ${problems.join('; ')}`, { kind: 'config', code: 'invalid_column_name' });
  return { fields, columns };
}

function nameProblem(field: string, column: string, rules: ColumnRules): string | undefined {
  const d = DIALECTS[rules.dialect];
  const snake = rules.naming === 'snake_case';
  const what =
    snake && column !== field ? `column ${shownName(column)} (field ${shownName(field)} in snake_case)` : `column ${shownName(column)}`;
  const fix = 'rename it in the source (for CSV, the header; or a rename transform)';
  if (field.includes('\0')) return `field ${shownName(field)} contains a NUL byte, which no database allows in a name; ${fix}`;
  if (column === '')
    return snake && field !== ''
      ? `field ${shownName(field)} has no letter or digit, so snake_case leaves nothing of it; ${fix}, or use column_names: keep`
      : `a field has an empty name (e.g. an empty CSV header cell), and a column needs one; ${fix}`;
  const bytes = Buffer.byteLength(column, 'utf8');
  const chars = [...column].length;
  const shorter = !snake && snakeCase(column) !== '' && fits(snakeCase(column), d) ? ', or set column_names: snake_case' : '';
  if (d.maxBytes !== undefined && bytes > d.maxBytes)
    return `${what} is ${bytes} bytes long in UTF-8; ${d.label} names are at most ${d.maxBytes} bytes and it would silently cut the name short, so weir refuses it: ${fix}${shorter}`;
  if (d.maxChars !== undefined && chars > d.maxChars)
    return `${what} is ${chars} characters long; ${d.label} names are at most ${d.maxChars} characters: ${fix}${shorter}`;
  if (d.noTrailingSpace && /\s$/u.test(column))
    return `${what} ends with a space, which ${d.label} refuses in a column name: ${fix}${snake ? '' : ', or set column_names: snake_case (which trims it)'}`;
  return undefined;
}

function fits(name: string, d: DialectRules): boolean {
  return (
    (d.maxBytes === undefined || Buffer.byteLength(name, 'utf8') <= d.maxBytes) &&
    (d.maxChars === undefined || [...name].length <= d.maxChars)
  );
}

function collision(a: string, b: string, columnA: string, columnB: string, rules: ColumnRules): string {
  const same =
    columnA === columnB
      ? `column ${shownName(columnA)}`
      : `columns ${shownName(columnA)} and ${shownName(columnB)}, which ${DIALECTS[rules.dialect].label} takes for one name`;
  return `fields ${shownName(a)} and ${shownName(b)} would both be written to ${same}${rules.naming === 'snake_case' ? ' (column_names: snake_case)' : ''}; rename one of them in the source, or select only one`;
}

/**
 * Maps planned columns onto an existing table's columns (planner or worker; pure):
 * each column by its exact name — or, in MySQL/MariaDB and SQLite, whose column names
 * are not case-sensitive, by the same name in another case. The result names the
 * table's own spelling. A column the table lacks is a config error that names the
 * field, the column, and the nearest column the table has.
 */
export function matchColumns(plan: ColumnPlan, existing: readonly string[], rules: ColumnRules): ColumnPlan {
  const fold = DIALECTS[rules.dialect].fold;
  const exact = new Set(existing);
  const folded = new Map<string, string | null>();
  if (fold) for (const name of existing) folded.set(fold(name), folded.has(fold(name)) ? null : name);
  const columns: string[] = [];
  const missing: string[] = [];
  plan.columns.forEach((column, i) => {
    const found = exact.has(column) ? column : fold ? folded.get(fold(column)) : undefined;
    if (found) {
      columns.push(found);
      return;
    }
    const field = plan.fields[i] as string;
    const near = suggestColumn(column, existing);
    missing.push(
      `${shownName(column)}${field !== column ? ` (field ${shownName(field)} in ${rules.naming})` : ''}${near !== undefined ? ` (did you mean ${shownName(near)}?)` : ''}`,
    );
  });
  if (missing.length)
    throw new WeirError(
      `${rules.where} has no column ${missing.join(', ')}, which the source produces; its columns are ${existing.map(shownName).join(', ')}. Columns are matched by exact name: rename the field in the source, add the column to the table (ALTER TABLE … ADD COLUMN), or write to a new table`,
      { kind: 'config', code: 'schema_mismatch' },
    );
  return { fields: plan.fields, columns };
}

/** The existing column nearest to `name` (case-insensitively), for did-you-mean hints. */
function suggestColumn(name: string, existing: readonly string[]): string | undefined {
  const lower = existing.map((c) => c.toLowerCase());
  const near = suggest(name, lower);
  return near === undefined ? undefined : existing[lower.indexOf(near)];
}

/** The schema with each field renamed to its column. */
export function renamedSchema(schema: Schema, plan: ColumnPlan): Schema {
  return schema.map((c, i) => ({ ...c, name: plan.columns[i] ?? c.name }));
}

/** The column of a key or other column option named in the sink's naming (`Order ID` → `order_id` with snake_case). */
export function columnOf(name: string, naming: ColumnNaming): string {
  return naming === 'snake_case' ? snakeCase(name) : name;
}

// ---------------------------------------------------------------------------
// Schemas from values

/** The schema implied by a row's keys when the source declared none (values decide the types). */
export function schemaFromRow(row: Record<string, unknown>): Schema {
  return Object.entries(row).map(([name, v]) => ({ name, type: typeOfValue(v) }));
}

export function typeOfValue(v: unknown): ColumnType {
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  if (typeof v === 'bigint') return 'integer';
  if (typeof v === 'boolean') return 'boolean';
  if (v instanceof Date) return 'timestamp';
  if (Decimal.is(v)) return 'decimal';
  if (v !== null && typeof v === 'object') return 'json';
  return 'string';
}
