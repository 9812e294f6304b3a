/**
 * Options of the `postgres` connector. Validated on the planner; the same values
 * reach every worker. One spec drives the TypeScript type, validation, docs,
 * JSON Schema and redaction (`password` is secret).
 */
import { jsonDepthOption, type OptionsOf, o, type Rule, rules } from '../../sdk/options.js';
import { columnNameOption, columnNamesOption } from '../../sdk/sql.js';
import { tlsOptions, tlsRules } from '../../sdk/tls.js';

export const postgresOptions = {
  host: o.host().describe('PostgreSQL server name or IP address.').default('127.0.0.1').example('db.internal'),
  port: o.port().describe('PostgreSQL server TCP port.').default(5432),
  database: o.string({ minLength: 1, maxLength: 63 }).describe('Database to connect to.').required().example('app'),
  user: o.string({ minLength: 1, maxLength: 63 }).describe('Role to connect as.').default('postgres').example('loader'),
  password: o.secret().describe('Password of `user`. Leave out for trust or peer authentication.'),
  schema: o
    .identifier()
    .describe(
      'Schema of `table`; the sink also keeps its exactly-once bookkeeping tables `_weir_checkpoints`, `_weir_runs` and `_weir_created_tables` here (see docs/exactly-once.md).',
    )
    .default('public'),
  table: o
    .identifier()
    .describe('Table to read (source) or write (sink). The sink creates it from the source schema when it is missing.')
    .example('events'),
  query: o
    .string({ minLength: 1 })
    .describe(
      'Source only: a SELECT to read instead of a whole table. With `partition_column` it is wrapped as a subquery and split into ranges.',
    )
    .example('SELECT id, email FROM users WHERE active'),
  mode: o
    .enum(['append', 'upsert', 'replace'] as const)
    .describe(
      'Sink only. `append` adds rows (each partition commits atomically with its checkpoint); `upsert` inserts or updates rows by `key_columns` (INSERT … ON CONFLICT through a temporary table); `replace` loads a staging table and swaps its rows into `table` in the job commit, so a failed run leaves the old rows untouched.',
    )
    .default('append'),
  key_columns: o
    .list(columnNameOption(), { min: 1, max: 32 })
    .describe(
      'Sink, `mode: upsert`: the columns that identify a row. The table needs a primary key or unique index on exactly these columns (weir creates one when it creates the table).',
    )
    .example(['id']),
  create_table: o
    .bool()
    .describe('Sink: create `table` from the source schema when it does not exist. When false, a missing table is an error.')
    .default(true),
  column_names: columnNamesOption(),
  partition_column: columnNameOption()
    .describe(
      'Source: a numeric, date or timestamp column whose min–max range is split into `partitions` ranges read in parallel. Rows where it is NULL go to the first partition. Without it, a table is split into ranges of its physical blocks (`ctid`; PostgreSQL 14 or later).',
    )
    .example('id'),
  partitions: o
    .int({ min: 1, max: 10_000 })
    .describe(
      "Source: how many ranges of `partition_column` (or of the table's blocks) to read in parallel. Above 1, every range reads the same snapshot of the database, exported by the planner and held, with a share lock on the table, until the run ends (as `pg_dump -j` does: meanwhile VACUUM keeps the old versions of rows changed since, and ALTER TABLE, TRUNCATE and VACUUM FULL of the table wait).",
    )
    .default(1)
    .example(8),
  max_depth: jsonDepthOption(),
  fetch_size: o
    .int({ min: 1, max: 1_000_000 })
    .describe('Source: rows per FETCH from the server-side cursor. Larger is faster; memory grows with it.')
    .default(10_000)
    .advanced(),
  batch_size: o
    .int({ min: 1, max: 1_000_000 })
    .describe(
      'Sink: rows per COPY batch. Each batch is one COPY inside a savepoint, so a failed batch leaves nothing behind and can be retried or split to isolate bad rows.',
    )
    .default(20_000),
  connect_timeout: o
    .duration({ min: 100, max: 600_000 })
    .describe('How long to wait for a connection (TCP, TLS and authentication).')
    .default('10s')
    .advanced(),
  statement_timeout: o
    .duration({ min: 0, max: 86_400_000 })
    .describe('Server-side limit for each statement (PostgreSQL `statement_timeout`); 0 means no limit. A timed-out batch is retried.')
    .default('0s')
    .advanced(),
  application_name: o
    .string({ maxLength: 63 })
    .describe("Shown in `pg_stat_activity.application_name` for weir's connections.")
    .default('weir')
    .advanced(),
  ...tlsOptions,
};

export type PostgresOptions = OptionsOf<typeof postgresOptions>;

export const postgresRules: Rule[] = [...tlsRules];

const isSet = (v: unknown) => v !== undefined && v !== null && v !== '';

export const postgresSourceRules: Rule[] = [
  rules.exactlyOne('table', 'query'),
  rules.custom('`partitions` above 1 of a query needs `partition_column`', ['partitions', 'partition_column', 'query'], (x) =>
    (x.partitions as number) > 1 && !isSet(x.partition_column) && isSet(x.query)
      ? `partitions is ${x.partitions} but partition_column is not set; a query is split by a column: name a numeric, date or timestamp column of its result, or set partitions: 1`
      : undefined,
  ),
  rules.custom('sink options are not used by a source', ['mode', 'key_columns', 'column_names'], (x) =>
    isSet(x.key_columns)
      ? 'key_columns is a sink option (mode: upsert); remove it from the source'
      : x.column_names !== 'keep'
        ? 'column_names is a sink option (how the sink names its columns); remove it from the source'
        : undefined,
  ),
];

export const postgresSinkRules: Rule[] = [
  rules.custom('the sink needs `table` and cannot use `query`', ['table', 'query'], (x) =>
    isSet(x.query)
      ? 'query is for reading; a sink writes to table'
      : !isSet(x.table)
        ? 'table is required for a sink (the table to write to; it is created when missing)'
        : undefined,
  ),
  rules.custom('`key_columns` is required when `mode` is upsert, and only then', ['mode', 'key_columns'], (x) => {
    if (x.mode === 'upsert' && !isSet(x.key_columns))
      return 'key_columns is required when mode is upsert; list the columns that identify a row, e.g. key_columns: [id]';
    if (x.mode !== 'upsert' && isSet(x.key_columns))
      return `key_columns is used only with mode: upsert (mode is ${x.mode}); remove it or set mode: upsert`;
    return undefined;
  }),
  rules.custom('`partition_column` is a source option', ['partition_column', 'partitions'], (x) =>
    isSet(x.partition_column) || (x.partitions as number) > 1
      ? 'partition_column and partitions split a source; a sink writes one transaction per source partition — remove them'
      : undefined,
  ),
];

/**
 * What the sink takes, known from the options alone (the connector's lazy sink gives it
 * before the sink's code loads): CSV as it is, but not in upsert mode (it merges rows).
 */
export const sinkAccepts = (opts: PostgresOptions): readonly 'csv'[] => (opts.mode === 'upsert' ? [] : ['csv']);

/** Whether the sink takes an unbounded source: append and upsert commit each epoch where readers see it; replace publishes at the job commit. */
export const sinkStreaming = (opts: PostgresOptions): true | string =>
  opts.mode === 'replace'
    ? 'mode: replace publishes the table only at the end of the run, and a stream never ends; use mode: append or upsert'
    : true;
