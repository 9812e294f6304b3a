/**
 * `mysql`: MySQL and MariaDB through mysql2. Source: a table or query, split into
 * key ranges. Sink: batched multi-row INSERT or LOAD DATA LOCAL, append, upsert
 * (ON DUPLICATE KEY UPDATE) or replace (staging table + RENAME TABLE swap);
 * exactly-once: each partition commits its rows and its checkpoint in one transaction.
 */
import { defineConnector } from '../../sdk/connector.js';
import { mysqlCheck } from './check.js';
import { mysqlSink } from './sink.js';
import { mysqlSource } from './source.js';
import { mysqlOptions, mysqlRules, mysqlSinkRules, mysqlSourceRules } from './spec.js';

export default defineConnector({
  name: 'mysql',
  description:
    'MySQL or MariaDB (mysql2): read a table or query in key ranges; write with multi-row INSERT or LOAD DATA, append, upsert or replace, exactly-once.',
  options: mysqlOptions,
  rules: mysqlRules,
  sourceRules: mysqlSourceRules,
  sinkRules: mysqlSinkRules,
  source: mysqlSource,
  sink: mysqlSink,
  exactlyOnce: true,
  // append and upsert commit each partition on its own: a failed run keeps the partitions that committed
  transactional: false,
  check: mysqlCheck,
});
