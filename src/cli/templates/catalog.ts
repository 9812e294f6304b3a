/**
 * The starter pipelines of `weir init`. Each names its connectors and the options it
 * sets; the comments beside them, the check that every option exists in that
 * connector's spec and takes that role, and the validation of the whole file come from
 * the option specs (see render.ts), so a template cannot drift from the connectors.
 *
 * `commented` options are written as comments (credentials, choices a user makes):
 * the file validates without them, and a test validates it with them uncommented too;
 * they name options the section does not set (uncommented, a key must not repeat).
 */

/** One `source:` or `sink:` section: the connector and the options the template sets. */
export interface TemplateSection {
  type: string;
  options: Record<string, unknown>;
  /** Written commented out, after the options: uncommented, they must validate too. */
  commented?: Record<string, unknown>;
}

export interface Template {
  name: string;
  /** One line: what the pipeline does. */
  description: string;
  source: TemplateSection;
  sink: TemplateSection;
  /** Pipeline-level sections after the sink (`delivery`, `errors`, `rate_limit`). */
  pipeline?: Record<string, unknown>;
  /** Written commented out at the end. */
  pipelineCommented?: Record<string, unknown>;
  /** What to do before the first run, printed by `weir init` and written in the header. */
  before: string;
}

// the services the README and tests use: a local PostgreSQL with trust authentication
const postgres = { host: '127.0.0.1', port: 5432, database: 'app', user: 'postgres' };
const pgPassword = { password: '${env:PGPASSWORD}' };
const deadLetter = { errors: { tolerance: 'all', dead_letter: { type: 'jsonl', path: 'out/rejected.jsonl' } } };

export const TEMPLATES: readonly Template[] = [
  {
    name: 'csv-to-postgres',
    description: 'load a CSV file into a PostgreSQL table (created from the CSV columns when missing)',
    source: { type: 'csv', options: { path: 'data/events.csv', header: true, delimiter: ',' } },
    sink: {
      type: 'postgres',
      options: { ...postgres, table: 'events', mode: 'append', batch_size: 20000 },
      commented: pgPassword,
    },
    pipeline: { delivery: 'exactly-once' },
    pipelineCommented: deadLetter,
    before: 'put the CSV file at data/events.csv (or change source.path) and set sink.database',
  },
  {
    name: 'csv-to-sqlite',
    description: 'load a CSV file into a table of a SQLite database file (no server needed)',
    source: { type: 'csv', options: { path: 'data/events.csv', header: true } },
    sink: { type: 'sqlite', options: { path: 'out/events.db', table: 'events', mode: 'append' } },
    pipelineCommented: deadLetter,
    before: 'put the CSV file at data/events.csv (or change source.path)',
  },
  {
    name: 'postgres-to-parquet',
    description: 'export a PostgreSQL table to a Parquet file, read in parallel ranges of its key',
    source: {
      type: 'postgres',
      options: { ...postgres, table: 'events', partition_column: 'id', partitions: 4 },
      commented: pgPassword,
    },
    sink: { type: 'parquet', options: { path: 'out/events.parquet', compression: 'snappy' } },
    before: 'set source.database and source.table (and partition_column to a numeric or timestamp column of it)',
  },
  {
    name: 'api-to-postgres',
    description: 'page through a JSON HTTP API and upsert its records into a PostgreSQL table',
    source: {
      type: 'http',
      options: {
        url: 'https://api.example.com/v1/events',
        records_path: 'data',
        pagination: 'cursor',
        cursor_path: 'meta.next_cursor',
        cursor_param: 'cursor',
      },
      commented: { auth: { type: 'bearer', token: '${env:API_TOKEN}' }, cursor_field: 'updated_at' },
    },
    sink: {
      type: 'postgres',
      options: { ...postgres, table: 'events', mode: 'upsert', key_columns: ['id'] },
      commented: pgPassword,
    },
    pipeline: { rate_limit: { rows_per_second: 1000 } },
    pipelineCommented: deadLetter,
    before: 'set source.url and source.records_path to your API (and its auth), and sink.key_columns to the id of a record',
  },
  {
    name: 'nats-to-postgres',
    description: 'drain a NATS JetStream stream into a PostgreSQL table, exactly once (runs until stopped)',
    source: {
      type: 'nats',
      options: { servers: 'nats://127.0.0.1:4222', stream: 'ORDERS', durable: 'orders-to-postgres', filter_subject: 'orders.>' },
      commented: { token: '${env:NATS_TOKEN}' },
    },
    sink: { type: 'postgres', options: { ...postgres, table: 'orders', mode: 'append' }, commented: pgPassword },
    pipeline: { delivery: 'exactly-once' },
    before: 'set source.stream and source.filter_subject to your JetStream stream; stop the run with Ctrl-C (it drains and commits)',
  },
];

/** The template named `name`, if there is one. */
export const findTemplate = (name: string): Template | undefined => TEMPLATES.find((t) => t.name === name);
