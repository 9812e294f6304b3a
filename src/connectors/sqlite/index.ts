/** `sqlite`: the embedded default. Source and sink; the sink commits all partitions in one transaction. */
import { defineConnector } from '../../sdk/connector.js';
import { sqliteSink } from './sink.js';
import { sqliteSource } from './source.js';
import { sqliteOptions, sqliteSinkRules, sqliteSourceRules } from './spec.js';

export default defineConnector({
  name: 'sqlite',
  description: 'SQLite database file (better-sqlite3): read a table or query; write a table, all partitions in one transaction.',
  options: sqliteOptions,
  sourceRules: sqliteSourceRules,
  sinkRules: sqliteSinkRules,
  source: sqliteSource,
  sink: sqliteSink,
});
