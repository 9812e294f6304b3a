/**
 * Options of the `parquet` connector (validated on the planner; the same values
 * reach every worker).
 */
import { type OptionsOf, o, type Rule, rules } from '../../sdk/options.js';

/** Codecs the sink can write (the source reads these and hadoop-framed LZ4 too). */
export const COMPRESSIONS = ['snappy', 'zstd', 'lz4', 'lz4_raw', 'gzip', 'brotli', 'uncompressed'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export const parquetOptions = {
  path: o
    .path()
    .describe(
      'The Parquet file to read (source) or write (sink). Relative paths resolve against the directory of the pipeline file. The sink always produces ONE file: partitions are written to temporary files beside it and merged into it at the job commit by copying their row groups byte for byte (no re-encoding), then renamed over the target, so the file never appears half-written. Types: integer ↔ INT64 (any INT32/INT64 when reading; beyond 2^53 values are exact bigints), decimal ↔ DECIMAL(precision, scale) (exact; from INT32, INT64 or fixed/variable bytes when reading; written as INT32, INT64 or FIXED_LEN_BYTE_ARRAY with the precision and scale the schema declares, else precision 38 and the largest scale of the first batch; decimals wider than 38 digits, which Parquet readers cannot hold, are written as their exact text; a value with more fraction digits than the scale or more digits than the precision is a bad row, never rounded), number ↔ DOUBLE (FLOAT when reading), string ↔ STRING, boolean ↔ BOOLEAN, timestamp ↔ TIMESTAMP in microseconds UTC, nanoseconds when the first batch has sub-microsecond digits (millis, micros, nanos and INT96 when reading; values are ISO-8601 text with every digit), DATE → timestamp `YYYY-MM-DD`, json ↔ JSON (exact); nested columns (struct, list, map) are read as json, decimals and big integers inside them exact. A file to read is untrusted: its footer (at most 64 MiB) and every page are checked against each other and the size of the file before their rows are handed on, and a file that lies (row counts that do not add up, chunks outside the file or sharing bytes, pages holding more or fewer values than claimed) fails the run with `<file> is a corrupt Parquet file: <what is wrong>`.',
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
      'Source only. Each partition reads whole row groups: consecutive row groups are combined into one partition until it holds at least this many rows. 1 gives one partition per row group. A worker decodes a page of each column at a time, so memory grows neither with the file size nor with the row-group size.',
    )
    .default(100_000),
  slice_rows: o
    .int({ min: 1 })
    .describe(
      'Source only. Rows handed on at a time, at most (the source hands on arrays of at most 2,000 rows either way). Flat columns are streamed a page at a time and their values decoded only as rows are built, so memory stays bounded however large the row groups are (files from Spark, pyarrow and DuckDB often hold a million rows per group, DuckDB in one page per column: a zstd page of 1 MB or more is decompressed as it is read, so not even one page is held whole); nested columns (lists, structs, maps) too, their records assembled a slice at a time (VARIANT columns alone are decoded a row group at a time).',
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
      "Sink only. Compression codec of the pages: snappy (fast, the common default), zstd, lz4 (written as the LZ4_RAW codec, as DuckDB and pyarrow write it; `lz4_raw` is the same), gzip, brotli or uncompressed. On Node 20, which has no zstd of its own, weir's encoder writes it: standard frames without entropy-coded literals, somewhat smaller than snappy but larger than gzip (a 200k-row table: snappy 3.8 MB, zstd 3.3 MB, gzip 1.9 MB, brotli 1.2 MB); on Node 22.15+ node:zlib's zstd is used. The source reads every codec the usual writers produce (pyarrow, DuckDB, Polars, Spark): uncompressed, snappy, gzip, brotli, zstd, lz4 (hadoop framing) and lz4_raw; only the long-deprecated LZO is refused.",
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
