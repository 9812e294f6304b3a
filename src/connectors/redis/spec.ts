/**
 * Options of the `redis` connector. One spec drives validation, docs, JSON Schema
 * and redaction; role-specific rules say which options each mode needs.
 */
import { jsonDepthOption, type OptionsOf, o, rules } from '../../sdk/options.js';
import { tlsOptions, tlsRules } from '../../sdk/tls.js';
import { compileTemplate } from '../shared/template.js';

/**
 * Sink defaults, measured with bench/redis.js (1M generator rows as hashes, 4
 * partitions, batch 2000): weir's peak RSS grows with the commands in flight per
 * partition (≈200 MB at 2 × 100, ≈230 MB at 400–500, ≈268 MB with whole batches
 * in flight) while rows/s stayed within noise from 100 to 2000 in flight.
 */
const PIPELINE_DEPTH = 100;
const PIPELINES_IN_FLIGHT = 2;

export const redisOptions = {
  host: o.host().describe('Server name or IP address.').default('127.0.0.1'),
  port: o.port().describe('TCP port of the server.').default(6379),
  db: o.int({ min: 0, max: 15 }).describe('Database number (SELECT).').default(0),
  username: o.string({ minLength: 1 }).describe('ACL user name (Redis 6+). Leave unset for the default user.'),
  password: o.secret().describe('Password (AUTH), of `username` or of the default user.'),
  mode: o
    .enum(['hash', 'json', 'stream'] as const)
    .describe(
      'Sink: `hash` writes each row as a hash (HSET), `json` as a JSON string (SET), `stream` appends it to a stream (XADD). Source: `stream` reads a stream through a consumer group; `hash` and `json` read the keys matching `match` (SCAN).',
    )
    .default('hash'),
  key: o
    .string({ minLength: 1, maxLength: 1024 })
    .describe(
      'Sink, `hash` and `json` modes: the key of each row, a template whose `{field}` parts are filled from the row (`{{` and `}}` are literal braces). Must use at least one field, so rows do not overwrite each other.',
    )
    .example('user:{id}', 'order:{region}:{order_id}'),
  stream: o
    .string({ minLength: 1, maxLength: 1024 })
    .describe('`stream` mode: the stream key, e.g. `events`. In a sink it may be a template like `key` (`events:{category}`).'),
  maxlen: o.int({ min: 1 }).describe('Sink, `stream` mode: trim the stream to about this many entries (XADD MAXLEN ~), e.g. 1000000.'),
  ttl: o
    .duration({ min: 1 })
    .describe(
      'Sink: expire written keys after this long (SET PX for `json`, PEXPIRE for `hash` and for the stream). Unset: keys do not expire.',
    )
    .example('7d'),
  batch_size: o
    .int({ min: 1, max: 1_000_000 })
    .describe(
      'Sink: rows per batch. A batch is checked whole (a bad row fails it before anything is sent), sent as pipelines of `pipeline_depth` commands, and fully acknowledged before the next batch.',
    )
    .default(2000),
  pipeline_depth: o
    .int({ min: 1, max: 100_000 })
    .describe('Sink: commands per pipeline (one row is one command, two or three with null fields or `ttl` in `hash` mode).')
    .default(PIPELINE_DEPTH)
    .advanced(),
  pipelines_in_flight: o
    .int({ min: 1, max: 1000 })
    .describe(
      'Sink: pipelines of one partition awaiting their replies at once, so the client encodes the next while the server executes. A pipeline is built only when the oldest is answered, so each partition holds about `pipelines_in_flight × pipeline_depth` commands in memory, whatever `batch_size` (with `atomic`, the whole batch: it is one MULTI/EXEC). Raise it for a distant server (a round trip of several milliseconds).',
    )
    .default(PIPELINES_IN_FLIGHT)
    .advanced(),
  atomic: o
    .bool()
    .describe(
      'Sink: wrap each batch in MULTI/EXEC. Other clients never see half a batch, and a batch cut off by a lost connection is not applied at all, so its retry adds no duplicate stream entries. Slower (one pipeline per batch).',
    )
    .default(false)
    .advanced(),
  group: o
    .string({ minLength: 1 })
    .describe('Source, `stream` mode: consumer group (created at the start of the stream when missing).')
    .default('weir'),
  consumer: o
    .string({ minLength: 1 })
    .describe(
      'Source, `stream` mode: consumer name; partition N of several reads as `<consumer>-N`. Entries a consumer read but did not acknowledge are read again first.',
    )
    .default('weir'),
  start: o
    .string({
      pattern: /^(\$|0|\d+(-\d+)?)$/,
      patternHint: 'must be 0 (the whole stream), $ (only new entries) or an entry id such as 1700000000000-0',
    })
    .describe(
      'Source, `stream` mode: where a newly created group starts: `0` for the whole stream, `$` for new entries only, or an entry id.',
    )
    .default('0')
    .advanced(),
  block: o
    .duration({ min: 1, max: 3_600_000 })
    .describe(
      'Source, `stream` mode: how long one read waits for new entries before it tells the run the stream is idle (`stream.stop_when_idle` in the pipeline ends a run that stays idle). A stop (SIGINT/SIGTERM) may wait this long for the read in flight.',
    )
    .default('2s'),
  claim_idle: o
    .duration({ min: 1, max: 86_400_000 })
    .describe(
      "Source, `stream` mode: entries another consumer of the group has held this long without acknowledging them (a consumer that died) are claimed and read by this one; checked every half of it. Entries of this pipeline's own partitions are never claimed: they read them again themselves. Claimed entries are at-least-once.",
    )
    .default('60s')
    .advanced(),
  match: o
    .string({ minLength: 1 })
    .describe('Source, `hash` and `json` modes: SCAN pattern of the keys to read.')
    .default('*')
    .example('user:*'),
  partitions: o
    .int({ min: 1, max: 1024 })
    .describe('Source, `stream` mode: consumers reading the group in parallel (one partition each).')
    .default(1),
  fetch_size: o.int({ min: 1, max: 100_000 }).describe('Source: entries per XREADGROUP, or the SCAN COUNT hint.').default(1000).advanced(),
  id_field: o
    .string({ minLength: 1 })
    .describe('Source, `stream` mode: the field of each row that holds the entry id.')
    .default('_id')
    .advanced(),
  key_field: o
    .string({ minLength: 1 })
    .describe('Source, `hash` and `json` modes: the field of each row that holds its key.')
    .default('_key')
    .advanced(),
  max_depth: jsonDepthOption(),
  connect_timeout: o
    .duration({ min: 100, max: 600_000 })
    .describe('How long to wait for the connection, handshake included (AUTH, SELECT and the ready check).')
    .default('10s'),
  command_timeout: o
    .duration({ min: 100, max: 3_600_000 })
    .describe('How long one pipeline may wait for its replies before it fails with a retryable error.')
    .default('60s')
    .advanced(),
  ...tlsOptions,
};

export type RedisOptions = OptionsOf<typeof redisOptions>;

function templateProblem(template: unknown, option: string, needField: boolean): string | undefined {
  if (typeof template !== 'string') return undefined;
  try {
    const t = compileTemplate(template, option);
    if (needField && t.fields.length === 0)
      return `${option} template ${JSON.stringify(template)} uses no field, so every row would overwrite the same key; add one, e.g. ${JSON.stringify(`${template}:{id}`)}`;
  } catch (error) {
    return (error as Error).message;
  }
  return undefined;
}

export const redisRules = [...tlsRules];

export const redisSinkRules = [
  rules.custom(
    '`key` is required in `hash` and `json` modes and must use a field; `stream` is required in `stream` mode',
    ['mode', 'key', 'stream'],
    (x) => {
      if (x.mode === 'stream') {
        if (x.stream === undefined) return 'stream is required when mode is stream; name the stream key, e.g. stream: events';
        if (x.key !== undefined) return 'key is for the hash and json modes; in stream mode entries go to stream';
        return templateProblem(x.stream, 'stream', false);
      }
      if (x.key === undefined) return `key is required when mode is ${String(x.mode)}; give a template such as key: "user:{id}"`;
      if (x.stream !== undefined || x.maxlen !== undefined) return `stream and maxlen are for mode stream; remove them or set mode: stream`;
      return templateProblem(x.key, 'key', true);
    },
  ),
];

export const redisSourceRules = [
  rules.custom(
    'a source reads a stream (`mode: stream` with `stream`) or keys (`mode: hash|json` with `match`)',
    ['mode', 'key', 'stream', 'ttl', 'maxlen'],
    (x) => {
      if (x.key !== undefined || x.ttl !== undefined || x.maxlen !== undefined)
        return 'key, ttl and maxlen are for a sink; a source reads a stream (mode: stream) or the keys matching match';
      if (x.mode === 'stream' && x.stream === undefined) return 'stream is required when mode is stream; name the stream key';
      if (x.mode === 'stream' && /[{}]/.test(String(x.stream))) return 'a source reads one stream: stream cannot be a template';
      if (x.mode !== 'stream' && x.stream !== undefined)
        return `stream is for mode stream; to read keys use mode ${String(x.mode)} with match`;
      return undefined;
    },
  ),
];
