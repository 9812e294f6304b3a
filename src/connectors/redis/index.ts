/**
 * `redis`: Redis through ioredis. Sink: rows as hashes, JSON strings or stream
 * entries under a key template, pipelined. Source: a stream through a consumer
 * group, or the keys matching a pattern (SCAN). Transactional: rows are staged under
 * a run-scoped key prefix, published at the job commit and deleted by the job abort.
 * Not exactly-once (hash and json writes are idempotent, stream mode is at-least-once).
 */
import { defineConnector } from '../../sdk/connector.js';
import { redisCheck } from './check.js';
import { redisSink } from './sink.js';
import { redisSource } from './source.js';
import { redisOptions, redisRules, redisSinkRules, redisSourceRules } from './spec.js';

export default defineConnector({
  name: 'redis',
  description:
    'Redis (ioredis): write rows as hashes, JSON strings or stream entries under a key template, pipelined; read a stream through a consumer group, or keys by pattern.',
  options: redisOptions,
  rules: redisRules,
  sourceRules: redisSourceRules,
  sinkRules: redisSinkRules,
  source: redisSource,
  sink: redisSink,
  exactlyOnce: false,
  transactional: true,
  check: redisCheck,
});
