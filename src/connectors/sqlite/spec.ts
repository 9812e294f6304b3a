import { o, rules } from '../../sdk/options.js';
import { columnNamesOption } from '../../sdk/sql.js';

export const sqliteOptions = {
  path: o
    .path()
    .describe('SQLite database file, relative to the pipeline file. Created when missing (sink).')
    .required()
    .example('out/app.db'),
  table: o
    .identifier()
    .describe('Table to read from or write to. The sink creates it from the source schema when missing.')
    .example('events'),
  query: o.string({ minLength: 1 }).describe('A SELECT to read instead of a whole table (source only; one partition).').advanced(),
  mode: o
    .enum(['append', 'replace'] as const)
    .describe('Sink: `append` adds rows; `replace` empties the table in the same transaction that adds the new rows.')
    .default('append'),
  column_names: columnNamesOption({ keyColumns: false }),
  partitions: o.int({ min: 1, max: 10_000 }).describe('Source: split the table into this many rowid ranges.').default(1),
  batch_size: o
    .int({ min: 1, max: 1_000_000 })
    .describe('Rows per insert transaction (smaller batches keep memory low; SQLite gains little beyond a few thousand).')
    .default(2000),
  synchronous: o
    .enum(['off', 'normal', 'full'] as const)
    .describe('SQLite `synchronous` pragma: durability against power loss versus speed.')
    .default('normal')
    .advanced(),
  busy_timeout: o
    .duration({ min: 0, max: 600_000 })
    .describe('How long to wait for a lock held by another process.')
    .default('10s')
    .advanced(),
};

export const sqliteSourceRules = [
  rules.exactlyOne('table', 'query'),
  rules.custom('`column_names` is a sink option', ['column_names'], (x) =>
    x.column_names !== 'keep' ? 'column_names is a sink option (how the sink names its columns); remove it from the source' : undefined,
  ),
];
export const sqliteSinkRules = [
  rules.custom('the sink needs `table` and cannot use `query`', ['table', 'query'], (x) =>
    x.query !== undefined
      ? 'query is for reading; a sink writes to table'
      : x.table === undefined
        ? 'table is required for a sink'
        : undefined,
  ),
];
