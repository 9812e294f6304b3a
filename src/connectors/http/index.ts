/**
 * `http`: sends rows to an HTTP API (undici, keep-alive pool) with bearer, basic,
 * API-key or OAuth2 client-credentials auth, an Idempotency-Key per batch,
 * Retry-After and rate-limit headers honoured, and refused batches dead-lettered.
 * Not exactly-once and not transactional: what the API accepted stays.
 */
import { defineConnector } from '../../sdk/connector.js';
import { httpCheck } from './check.js';
import { httpSink } from './sink.js';
import { httpSource } from './source.js';
import { httpOptions, httpSinkRules, httpSourceRules } from './spec.js';

export default defineConnector({
  name: 'http',
  description:
    'HTTP APIs (undici): read pages of a JSON API (page, offset, cursor, next URL or Link pagination); send rows as JSON or NDJSON batches with auth (bearer, basic, API key, OAuth2 client credentials), Idempotency-Key, Retry-After and rate-limit headroom.',
  options: httpOptions,
  sourceRules: httpSourceRules,
  sinkRules: httpSinkRules,
  source: httpSource,
  sink: httpSink,
  exactlyOnce: false,
  transactional: false,
  check: httpCheck,
});
