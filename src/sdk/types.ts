import type { RowLocation } from './errors.js';
import { Decimal, stringifyJson } from './values.js';

/** Plain JSON: partitions, commit messages and checkpoints cross processes as this. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** One unit of parallel work. `id` is unique within a run; the rest is the source's own JSON. */
export interface Partition {
  id: string;
  [key: string]: JsonValue;
}

/**
 * The key of a partition's facts that hold for this run's plan alone — such as the
 * id of a database snapshot the planner exported, which dies with its connection:
 * tasks read them, but they are not part of the plan's identity, so a resumed run
 * plans them afresh and still matches the interrupted run on the rest.
 */
export const RUN_ONLY = 'run_only';

/** A partition without its {@link RUN_ONLY} facts: what identifies its work across runs. */
export function planIdentity(partition: Partition): Partition {
  if (!(RUN_ONLY in partition)) return partition;
  const { [RUN_ONLY]: _, ...rest } = partition;
  return rest as Partition;
}

/** A row: column name to value. Values are JSON-like plus Date, bigint, Uint8Array and {@link Decimal} (exact decimals). */
export type Row = Record<string, unknown>;

/**
 * The prototype of rows: an empty object without a prototype of its own, so a row
 * inherits nothing (not Object.prototype's `constructor`, `toString` or `__proto__`
 * accessor). Unlike `Object.create(null)`, whose objects V8 keeps as slow
 * dictionaries (3x the cost of building a row), rows on this prototype stay fast.
 */
const ROW_PROTO: object = Object.freeze(Object.create(null));

/**
 * An empty row that inherits nothing: any column name — `__proto__`, `constructor`,
 * `toString` — is a column like any other (`row[name] = v` on `{}` would set the
 * prototype for `__proto__`). Sources build their rows from this.
 */
export function emptyRow(): Row {
  return Object.create(ROW_PROTO) as Row;
}

/** Makes a parsed JSON object a row (see {@link emptyRow}): its own keys, `__proto__` too, stay its fields. */
export function asRow(value: object): Row {
  return Object.setPrototypeOf(value, ROW_PROTO) as Row;
}

/** A row of these columns with these values, in this order (see {@link emptyRow}). */
export function rowOf(names: readonly string[], values: readonly unknown[]): Row {
  const row = emptyRow();
  for (let i = 0; i < names.length; i++) row[names[i] as string] = values[i];
  return row;
}

/** A row's own value of a column: undefined when the row has no such column, never something it inherits. */
export function rowValue(row: Row, name: string): unknown {
  return Object.hasOwn(row, name) ? row[name] : undefined;
}

/**
 * weir's column types. `decimal` is exact (values are {@link Decimal}s: PostgreSQL
 * `numeric`, MySQL `DECIMAL`, Parquet `DECIMAL`); `number` is a double (values are
 * JavaScript numbers: `double precision`, `REAL`, `DOUBLE`). `integer` values are
 * numbers, or bigints beyond 2^53.
 */
export type ColumnType = 'integer' | 'decimal' | 'number' | 'string' | 'boolean' | 'timestamp' | 'json';
export const COLUMN_TYPES: readonly ColumnType[] = ['integer', 'decimal', 'number', 'string', 'boolean', 'timestamp', 'json'];

export interface Column {
  name: string;
  type: ColumnType;
  nullable?: boolean;
  /** `decimal` only, when known: digits in all (integer digits + scale). */
  precision?: number;
  /** `decimal` only, when known: digits after the point. */
  scale?: number;
}

export type Schema = Column[];

/**
 * A cheap estimate of a row's size in bytes, used to cut batches by bytes and to
 * report `bytes_sent` when the writer does not know the exact size.
 */
export function estimateRowBytes(row: Row): number {
  let size = 2;
  for (const key in row) {
    const v = row[key];
    size += key.length + 4;
    switch (typeof v) {
      case 'string':
        size += v.length;
        break;
      case 'number':
      case 'bigint':
        size += 8;
        break;
      case 'boolean':
        size += 5;
        break;
      case 'undefined':
        break;
      default:
        if (v === null) size += 4;
        else if (Decimal.is(v)) size += v.text.length;
        else if (v instanceof Date) size += 24;
        else if (v instanceof Uint8Array) size += v.byteLength;
        else size += jsonSize(v);
    }
  }
  return size;
}

/** The length of a nested value's exact JSON (bigints and decimals in it too); 0 for what JSON cannot hold (a cycle). */
function jsonSize(v: unknown): number {
  try {
    return stringifyJson(v).length;
  } catch {
    return 0;
  }
}

/**
 * Rows a source hands over still encoded (CSV), with their count. A sink whose
 * writer takes the encoding (`Writer.writeEncoded`, e.g. PostgreSQL COPY) sends the
 * bytes as they are; any other sink — and any batch the fast path refuses — gets
 * the rows from `decode()`, so row counts, bad-row isolation and dead letters work
 * the same on both paths. Sources produce these in `Source.readEncoded`, called only
 * when the sink accepts the format.
 */
/**
 * What a sink's writer tells the source about how it reads encoded rows
 * (`Writer.encodingHints`, passed to `Source.readEncoded`).
 */
export interface EncodingHints {
  /**
   * Columns the writer's target reads as values of their type, not as text: in
   * these, a source may hand on any text the row path accepts for the column's
   * type (`true` for `t`, `1.50` for `1.5`) instead of rewriting it to the row
   * path's text. A writer lists only columns whose target type gives the same value
   * for every such text (PostgreSQL: boolean for booleans, real and double
   * precision for numbers).
   */
  readonly valueColumns?: readonly string[];
  /**
   * Columns whose target keeps a fixed number of digits after the point (e.g.
   * PostgreSQL `numeric(12,2)`, which would round `1.234` without a word): a value
   * with more non-zero fraction digits than this must be rejected as a bad row,
   * not handed on.
   */
  readonly fractionDigits?: Readonly<Record<string, number>>;
  /**
   * The writer writes CSV files in this dialect (the csv sink) and appends only
   * `canonical` batches of it as they are. A source that can hand over records
   * exactly as weir's CSV writer writes them in this dialect should; any other
   * batch the writer declines, and it takes the batch's rows instead.
   */
  readonly dialect?: { readonly delimiter: string; readonly quote: string; readonly nullText: string };
  /**
   * The largest encoded batch, in bytes, the writer wants: a source that cuts its data
   * into batches by size keeps them at most this big (a writer whose driver copies
   * each batch again holds fewer bytes so). Absent: the source's own size.
   */
  readonly batchBytes?: number;
}

export interface EncodedRows {
  readonly kind: 'encoded';
  readonly format: 'csv';
  /** Field order of every record. */
  readonly columns: readonly string[];
  readonly delimiter: string;
  readonly quote: string;
  /** The unquoted text that means NULL. */
  readonly nullText: string;
  /** Whole records, no header, each ending with a newline. */
  readonly data: Buffer;
  /** Records in `data`. */
  readonly rows: number;
  /**
   * Every record of `data` is byte for byte what the csv sink's row path writes
   * for `decode()`'s rows in this dialect (each value's text, quoted only where it
   * must be): a CSV file writer may append `data` as it is.
   */
  readonly canonical?: boolean;
  /**
   * The value the source's row path gives for a field of column `index` (of
   * `columns`) whose text in `data` is `text` (null for NULL), or `undefined` when
   * the source cannot tell from the text alone. Lets the runtime evaluate
   * transforms (`filter`) on `data` itself; absent, a pipeline whose transforms
   * look at values gets these batches decoded.
   */
  readonly fieldValue?: (index: number, text: string | null) => unknown;
  /**
   * {@link fieldValue}'s number for an unquoted field `data[start, end)` of column
   * `index`, read from the bytes without making its text, or `undefined` when the
   * bytes are not the plain form it reads this way (then `fieldValue` of the text
   * decides). Optional: a speed-up for filters on numeric columns.
   */
  readonly numberAt?: (index: number, data: Buffer, start: number, end: number) => number | undefined;
  /**
   * The same records parsed and typed exactly like the source's row path (worker).
   * A record that cannot be converted is passed to `reject` instead of being returned,
   * with where it is in the source when the source knows (as `TaskContext.reject`).
   * Each call returns a new array, the runtime's to keep or empty.
   */
  decode(reject: (record: unknown, error: unknown, at?: RowLocation) => Promise<void>): Promise<Row[]>;
  /**
   * Called by the runtime once the batch was written or given up (worker, once per
   * batch): neither `data` nor `decode` is used after it, so the source may reuse the
   * bytes for a later batch.
   */
  release?(): void;
}

export function isEncodedRows(item: unknown): item is EncodedRows {
  return (
    typeof item === 'object' &&
    item !== null &&
    !Array.isArray(item) &&
    (item as { kind?: unknown }).kind === 'encoded' &&
    Buffer.isBuffer((item as { data?: unknown }).data)
  );
}
