/**
 * Options of the `mysql` connector (MySQL and MariaDB, through mysql2).
 * One spec drives validation, docs, JSON Schema and redaction.
 */
import { jsonDepthOption, o, rules } from '../../sdk/options.js';
import { columnNameOption, columnNamesOption } from '../../sdk/sql.js';
import { tlsOptions, tlsRules } from '../../sdk/tls.js';

export const mysqlOptions = {
  host: o.host().describe('Server name or IP address.').default('127.0.0.1'),
  port: o.port().describe('TCP port of the server.').default(3306),
  database: o.identifier().describe('Database (schema) that holds the table.').required().example('app'),
  user: o.string({ minLength: 1, maxLength: 80 }).describe('User name to log in with.').default('root').example('loader'),
  password: o.secret().describe('Password of `user`; leave unset for none.'),
  table: o
    .identifier()
    .describe('Table to read from or write to. The sink creates it from the source schema when missing.')
    .example('events'),
  query: o
    .string({ minLength: 1 })
    .describe(
      'Source only: a SELECT to read instead of a whole table. Read as one partition unless `partition_column` is set, which then must be a column of its result.',
    )
    .example('SELECT id, email FROM users WHERE active')
    .advanced(),
  mode: o
    .enum(['append', 'upsert', 'replace'] as const)
    .describe(
      'Sink: `append` inserts rows; `upsert` inserts or updates through ON DUPLICATE KEY UPDATE (the table needs a PRIMARY KEY or UNIQUE key on `key_columns`); `replace` loads a staging copy and swaps it in with RENAME TABLE at the job commit, so the target is never seen empty or half-loaded.',
    )
    .default('append'),
  key_columns: o
    .list(columnNameOption(), { min: 1 })
    .describe(
      "Sink, `upsert`: the columns of the PRIMARY KEY or UNIQUE key that identifies a row. Checked against the table's keys before writing; used as the PRIMARY KEY when the sink creates the table. E.g. `[id]`.",
    ),
  method: o
    .enum(['insert', 'load_data'] as const)
    .describe(
      "Sink: `insert` sends multi-row INSERT statements; `load_data` streams each batch with LOAD DATA LOCAL INFILE (needs `local_infile=ON` on the server; `append` and `replace` only), and from a csv source with declared columns takes the CSV records without building rows (rewritten byte by byte into LOAD DATA's format). Both run inside the partition's transaction.",
    )
    .default('insert')
    .advanced(),
  column_names: columnNamesOption(),
  partition_column: columnNameOption()
    .describe(
      "Source: an integer column (ideally indexed) whose [min, max] range is split into `partitions` key ranges read in parallel. Default: the table's single-column integer primary key, when there is one.",
    )
    .example('id'),
  partitions: o.int({ min: 1, max: 10_000 }).describe('Source: number of key ranges to read in parallel.').default(1),
  batch_size: o
    .int({ min: 1, max: 1_000_000 })
    .describe("Sink: rows per batch (one multi-row INSERT or LOAD DATA, split further if it would exceed the server's max_allowed_packet).")
    .default(5000),
  max_depth: jsonDepthOption(),
  fetch_size: o
    .int({ min: 1, max: 1_000_000 })
    .describe('Source: rows handed to the pipeline per chunk while streaming the result.')
    .default(1000)
    .advanced(),
  connect_timeout: o.duration({ min: 100, max: 600_000 }).describe('How long to wait for a connection to be established.').default('10s'),
  lock_wait_timeout: o
    .duration({ min: 1000, max: 3_600_000 })
    .describe(
      "Sink: innodb_lock_wait_timeout of the writers' sessions (rounded to seconds). A batch that waits longer fails with a retryable error.",
    )
    .default('50s')
    .advanced(),
  ...tlsOptions,
};

export const mysqlRules = [...tlsRules];

export const mysqlSourceRules = [
  rules.exactlyOne('table', 'query'),
  rules.custom('sink-only options are refused on a source', ['key_columns', 'column_names'], (x) =>
    x.key_columns !== undefined
      ? 'key_columns is for a sink in upsert mode; remove it from the source'
      : x.column_names !== 'keep'
        ? 'column_names is a sink option (how the sink names its columns); remove it from the source'
        : undefined,
  ),
];

export const mysqlSinkRules = [
  rules.custom('the sink needs `table` and cannot use `query`', ['table', 'query'], (x) =>
    x.query !== undefined
      ? 'query is for reading; a sink writes to table'
      : x.table === undefined
        ? 'table is required for a sink'
        : undefined,
  ),
  rules.custom('`key_columns` is required with mode upsert, and only used by it', ['mode', 'key_columns'], (x) => {
    if (x.mode === 'upsert' && x.key_columns === undefined)
      return 'key_columns is required when mode is upsert; list the PRIMARY KEY or UNIQUE key columns, e.g. [id]';
    if (x.mode !== 'upsert' && x.key_columns !== undefined)
      return `key_columns is only used with mode upsert; remove it or set mode: upsert`;
    return undefined;
  }),
  rules.custom('`method: load_data` works with append and replace', ['mode', 'method'], (x) =>
    x.method === 'load_data' && x.mode === 'upsert' ? 'method load_data cannot upsert; use method insert with mode upsert' : undefined,
  ),
];
