/**
 * `postgres`: PostgreSQL source and sink (node-postgres, pg-copy-streams).
 * Source: a table or query, split into ranges of a numeric, date or timestamp
 * column and streamed through server-side cursors. Sink: COPY per batch in
 * savepoints, append/upsert/replace, exactly-once per partition (rows and
 * checkpoint commit in one transaction).
 */
import { defineConnector } from '../../sdk/connector.js';
import { lazySink, lazySource } from '../../sdk/lazy.js';
import { postgresOptions, postgresRules, postgresSinkRules, postgresSourceRules, sinkAccepts, sinkStreaming } from './spec.js';

export default defineConnector({
  name: 'postgres',
  description:
    'PostgreSQL: read a table or query in parallel key or block ranges on one snapshot; write with COPY (append, upsert or replace), exactly-once per partition.',
  options: postgresOptions,
  rules: postgresRules,
  sourceRules: postgresSourceRules,
  sinkRules: postgresSinkRules,
  // node-postgres loads only when a pipeline uses postgres (it took ~20 ms of every start-up)
  source: lazySource(async () => (await import('./source.js')).postgresSource, true),
  sink: lazySink(async () => (await import('./sink.js')).postgresSink, {
    accepts: sinkAccepts,
    streaming: sinkStreaming,
    describesTarget: true,
    leftovers: true,
  }),
  exactlyOnce: true,
  // append and upsert commit each partition on its own: a failed run keeps the partitions that committed
  transactional: false,
  check: async (opts, ctx) => (await import('./check.js')).postgresCheck(opts, ctx),
});
