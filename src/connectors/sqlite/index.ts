/**
 * `sqlite`: the embedded default. Source and sink; the sink is exactly-once: each
 * partition's staged rows and checkpoint are committed together, and all partitions
 * are published in one transaction that also marks the run committed.
 */
import { defineConnector } from '../../sdk/connector.js';
import { sqliteCheck } from './check.js';
import { sqliteSink } from './sink.js';
import { sqliteSource } from './source.js';
import { sqliteOptions, sqliteSinkRules, sqliteSourceRules } from './spec.js';

export default defineConnector({
  name: 'sqlite',
  description:
    'SQLite database file (better-sqlite3): read a table or query; write a table, all partitions in one transaction (exactly-once).',
  options: sqliteOptions,
  sourceRules: sqliteSourceRules,
  sinkRules: sqliteSinkRules,
  source: sqliteSource,
  sink: sqliteSink,
  exactlyOnce: true,
  transactional: true,
  check: sqliteCheck,
});
