/**
 * Options of the `parquet` connector (validated on the planner; the same values
 * reach every worker).
 */
import { type OptionsOf, o, type Rule, rules } from '../../sdk/options.js';

/** Codecs the sink can write (and the source can read, besides these: nothing else without extra packages). */
export const COMPRESSIONS = ['snappy', 'gzip', 'brotli', 'uncompressed'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export const parquetOptions = {
  path: o
    .path()
    .describe(
      'The Parquet file to read (source) or write (sink). Relative paths resolve against the directory of the pipeline file. The sink always produces ONE file: partitions are written to temporary files beside it and merged into it at the job commit by copying their row groups byte for byte (no re-encoding), then renamed over the target, so the file never appears half-written. Types: integer ↔ INT64 (any INT32/INT64 when reading), number ↔ DOUBLE (FLOAT, DECIMAL), string ↔ STRING, boolean ↔ BOOLEAN, timestamp ↔ TIMESTAMP in microseconds UTC (DATE, INT96 and other units when reading; values are ISO-8601 text), json ↔ JSON; nested columns (struct, list, map) are read as json.',
    )
    .required()
    .example('data/events.parquet'),
  columns: o
    .list(o.string({ minLength: 1 }), { min: 1 })
    .describe(
      "Column names. As a source: read only these columns, in this order (the others are never decoded). As a sink: write only these fields of each row, in this order; without it the sink writes the source schema's columns (or the first batch's fields) and rejects rows with other fields.",
    )
    .example(['id', 'amount', 'created_at']),
  partition_rows: o
    .int({ min: 1 })
    .describe(
      'Source only. Each partition reads whole row groups: consecutive row groups are combined into one partition until it holds at least this many rows. 1 gives one partition per row group. A worker decodes one row group (or `slice_rows` rows of a larger one) at a time, so memory does not grow with the file size.',
    )
    .default(100_000),
  slice_rows: o
    .int({ min: 1 })
    .describe(
      "Source only. Rows decoded at a time: a row group with more rows than this (files from Spark or pyarrow often hold a million rows per group) is read in slices of this many rows, skipping the pages outside each slice, so a worker's memory stays bounded however large the row groups are.",
    )
    .default(100_000)
    .advanced(),
  row_group_size: o
    .int({ min: 1, max: 10_000_000 })
    .describe(
      'Sink only. Rows per row group. A writer buffers at most one row group in memory, so this bounds its memory; larger groups compress better and read faster.',
    )
    .default(50_000),
  compression: o
    .enum(COMPRESSIONS)
    .describe(
      'Sink only. Compression codec of the data pages: snappy (fast, the common default), gzip (smaller, slower), brotli (smallest, slowest) or uncompressed. The source reads these four codecs; files using ZSTD or LZ4 are refused with a clear error.',
    )
    .default('snappy'),
  mode: o
    .enum(['overwrite', 'append'] as const)
    .describe(
      'Sink only. `overwrite` replaces the file; `append` adds the new row groups after the existing ones (the file must have the same columns and types, as written by this sink). Either way the file is replaced atomically when the run commits.',
    )
    .default('overwrite'),
};

export type ParquetOptions = OptionsOf<typeof parquetOptions>;

export const parquetRules: Rule[] = [
  rules.custom('names in `columns` are unique', ['columns'], (opts) => {
    const names = (opts.columns as string[] | undefined) ?? [];
    const twice = names.filter((n, i) => names.indexOf(n) !== i);
    return twice.length
      ? `columns lists ${[...new Set(twice)].map((n) => `"${n}"`).join(', ')} more than once; name each column once`
      : undefined;
  }),
];
