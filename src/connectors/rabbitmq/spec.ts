/**
 * Options of the `rabbitmq` connector (AMQP 0-9-1 through amqplib). One spec drives
 * validation, docs, JSON Schema and redaction; role rules say what each role needs.
 */
import { base, jsonDepthOption, Opt, type OptionsOf, o, type Parser, rules } from '../../sdk/options.js';
import { tlsOptions, tlsRules } from '../../sdk/tls.js';
import { compileTemplate } from '../shared/template.js';

/**
 * Messages the broker may hand one partition before any is acknowledged. weir
 * acknowledges a message only after the epoch holding it was committed, so an
 * epoch can only be cut by `stream.epoch_rows` when that many messages are out
 * unacknowledged: below the epoch size, every epoch waits for `stream.epoch_interval`
 * and the stream flows at most `prefetch` messages per interval. Twice the default
 * `stream.epoch_rows` (10,000): while one epoch is written and committed, the source
 * reads the next one ahead (the runtime's read-ahead), so the broker never waits for
 * weir nor weir for the broker. Equal to the epoch, the broker sent nothing while an
 * epoch was written and committed, and the next epoch began with a round trip for its
 * first messages. The price: up to 20,000 messages per partition in memory, as the
 * mqtt source's `receive_maximum`.
 */
export const DEFAULT_PREFETCH = 20_000;

export const METADATA_FIELDS = [
  'routing_key',
  'exchange',
  'delivery_tag',
  'message_id',
  'timestamp',
  'redelivered',
  'delivery_count',
] as const;
export type MetadataField = (typeof METADATA_FIELDS)[number];

type ArgumentValue = string | number | boolean;

/** A queue argument: text, a number or a boolean, kept as given (RabbitMQ refuses `x-max-length: "10"` as text). */
const parseArguments: Parser<Record<string, ArgumentValue>> = (v) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    return { ok: false, message: 'must be a map of argument names to values, e.g. { x-queue-type: quorum, x-max-length: 100000 }' };
  const out: Record<string, ArgumentValue> = {};
  for (const [key, value] of Object.entries(v)) {
    if (typeof value === 'number' && !Number.isFinite(value)) return { ok: false, message: `argument ${key} must be a finite number` };
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean')
      return { ok: false, message: `argument ${key} must be text, a number or a boolean` };
    out[key] = value;
  }
  return { ok: true, value: out };
};

export const rabbitmqOptions = {
  url: o
    .url({ schemes: ['amqp', 'amqps'] })
    .secret()
    .describe(
      'The broker as one URL, `amqp://user:password@host:port/vhost` (`amqps://` for TLS), instead of host/port/user/password/vhost. Secret as a whole, since it holds the password: write it as a reference such as `${env:AMQP_URL}`. A vhost with a `/` in it is written `%2F`.',
    ),
  host: o.host().describe('Broker name or IP address (unless `url` is given).').default('127.0.0.1'),
  port: o.port().describe('AMQP port of the broker (5671 is the usual TLS port).').default(5672),
  user: o.string({ minLength: 1 }).describe('User name (PLAIN authentication).').default('guest'),
  password: o
    .secret()
    .describe('Password of `user`. Unset for the user `guest`: `guest` (the broker accepts guest/guest only from localhost).'),
  vhost: o.string({ minLength: 1 }).describe('Virtual host.').default('/'),
  queue: o
    .string({ minLength: 1, maxLength: 255 })
    .describe(
      'Source: the queue to consume. It must exist, unless `declare` is true. A message is acknowledged only after the epoch holding it was committed by the sink; delivery is at-least-once (a message whose epoch committed just before a crash is delivered again), so for each message once use the postgres sink with `mode: upsert` and `key_columns` naming a field that identifies the message. `delivery: exactly-once` is refused.',
    )
    .example('orders'),
  declare: o
    .bool()
    .describe(
      'Source: declare the queue (durable, with `arguments` and `dead_letter_exchange`) at the start of each partition, so a missing one is created. RabbitMQ refuses a declaration whose arguments differ from those of the existing queue (PRECONDITION_FAILED): then fix the arguments or declare the queue yourself and leave this false.',
    )
    .default(false),
  arguments: new Opt<Record<string, ArgumentValue>>(base('map'), parseArguments)
    .describe(
      'Source, with `declare`: queue arguments, e.g. `x-queue-type: quorum` (a quorum queue counts deliveries, which `max_redeliveries` reads), `x-max-length: 1000000`. Values keep their YAML type (a number stays a number).',
    )
    .example({ 'x-queue-type': 'quorum' }),
  bind: o
    .object({
      exchange: o.string({ minLength: 1, maxLength: 255 }).describe('The exchange to bind the queue to (it must exist).').required(),
      routing_keys: o
        .list(o.string({ maxLength: 255 }), { min: 1 })
        .describe('Routing keys (binding keys) of the binding; `#` and `*` are wildcards on a topic exchange.')
        .default(['#']),
    })
    .describe('Source: bind the queue to an exchange with these routing keys at the start of each partition (binding is idempotent).')
    .example({ exchange: 'events', routing_keys: ['order.*'] }),
  dead_letter_exchange: o
    .string({ maxLength: 255 })
    .describe(
      "Source: the queue's dead-letter exchange (DLX). With `declare` it is set as the queue's `x-dead-letter-exchange`; without, the queue must already have it (an argument or a policy). weir checks that the exchange exists, since RabbitMQ drops what it dead-letters to a missing exchange. weir nacks a message to it (requeue false) in two cases only: a payload that is not a row (not JSON) once the pipeline's error policy tolerated it (`errors.tolerance: all`; weir's own dead-letter sink records the error as well), and a message delivered more than `max_redeliveries` times (never turned into a row). Both at the acknowledgement of the epoch holding them, after its commit. Without it, tolerated bad payloads are acknowledged with their epoch and kept only in weir's dead-letter sink; rows the sink refuses always go to weir's dead-letter sink.",
    )
    .example('weir.dlx'),
  dead_letter_routing_key: o
    .string({ maxLength: 255 })
    .describe(
      "Source, with `declare` and `dead_letter_exchange`: the queue's `x-dead-letter-routing-key` (unset: a dead-lettered message keeps its routing key).",
    )
    .advanced(),
  max_redeliveries: o
    .int({ min: 0, max: 1_000_000 })
    .describe(
      "Source, with `dead_letter_exchange`: a message redelivered more than this many times goes to the DLX instead of becoming a row (a message that keeps failing the run). Counted by the broker: a quorum queue's `x-delivery-count` header; a classic queue only says whether a message was delivered before (`redelivered`), which counts as 1, so only 0 has an effect there (every redelivered message, those a crash returned included, goes to the DLX). Unset: never.",
    )
    .advanced(),
  prefetch: o
    .int({ min: 1, max: 65_535 })
    .describe(
      'Source: messages the broker hands a partition before weir acknowledges any (basic.qos). weir acknowledges after the epoch commit, so keep it at least `stream.epoch_rows` (twice it lets the next epoch arrive while one commits): below it, each epoch ends only at `stream.epoch_interval` and the stream flows at most `prefetch` messages per interval. Memory holds up to this many messages per partition.',
    )
    .default(DEFAULT_PREFETCH),
  partitions: o
    .int({ min: 1, max: 256 })
    .describe(
      'Source: consumers of the queue in parallel, each on a channel of its own (one partition each). The broker hands each message to one of them; order across them is not kept.',
    )
    .default(1),
  format: o
    .enum(['json', 'raw'] as const)
    .describe(
      'Source: `json` parses each payload as a JSON object whose fields become the row (exactly: decimals and big integers keep every digit; another JSON value becomes the field `value`); a payload that is not JSON is a row error. `raw` gives the payload bytes as the field `payload_field`.',
    )
    .default('json'),
  payload_field: o
    .string({ minLength: 1 })
    .describe('Source, `format: raw`: the field holding the payload bytes.')
    .default('payload')
    .advanced(),
  metadata_fields: o
    .list(o.enum(METADATA_FIELDS))
    .describe(
      'Source: message properties added to each row as `<metadata_prefix><name>`: `routing_key`, `exchange`, `delivery_tag` (per channel: tells nothing across restarts), `message_id` (null when unset), `timestamp` (a date, null when unset), `redelivered`, `delivery_count` (`x-delivery-count` of quorum queues, null elsewhere).',
    )
    .default([])
    .example(['routing_key', 'message_id']),
  metadata_prefix: o.string().describe('Source: prefix of the `metadata_fields` field names.').default('_').advanced(),
  idle_heartbeat: o
    .duration({ min: 10, max: 60_000 })
    .describe(
      'Source: after this long without a message, tell the run the queue is idle (an empty chunk, with the queue depth), so `stream.stop_when_idle` can end it.',
    )
    .default('500ms')
    .advanced(),
  exchange: o
    .string({ maxLength: 255 })
    .describe(
      "Sink: the exchange to publish to (it must exist). `''`, the default exchange, routes a message to the queue named by its routing key.",
    )
    .default(''),
  routing_key: o
    .string({ maxLength: 1024 })
    .describe(
      'Sink: the routing key of each row, a template whose `{field}` parts are filled from the row (`{{` and `}}` are literal braces), e.g. `orders.{region}`; with the default exchange, the queue name.',
    )
    .example('orders.{region}', 'orders'),
  batch_size: o
    .int({ min: 1, max: 100_000 })
    .describe(
      'Sink: rows per batch. A batch is checked whole first (routing keys, JSON), published as persistent messages on a confirm channel, and written only once the broker confirmed every one of them. Each message carries the `message_id` `<run>:<partition>:<writer>:<batch>:<row>`, the same when a batch is published again after a lost confirmation, so a consumer can drop duplicates.',
    )
    .default(1000),
  max_depth: jsonDepthOption(),
  heartbeat: o
    .duration({ min: 0, max: 3_600_000 })
    .describe(
      'AMQP heartbeat: a connection silent for about twice this long is dead (rounded to seconds; 0 turns heartbeats off). A lost connection fails the attempt with a retryable error; unacknowledged messages return to the queue.',
    )
    .default('10s')
    .advanced(),
  connect_timeout: o
    .duration({ min: 100, max: 600_000 })
    .describe('How long to wait for the connection, the AMQP handshake and authentication included.')
    .default('10s'),
  confirm_timeout: o
    .duration({ min: 100, max: 3_600_000 })
    .describe(
      'Sink: how long a batch may wait for the broker to confirm it before it fails with a retryable error (a broker under a memory or disk alarm blocks publishers).',
    )
    .default('60s')
    .advanced(),
  ...tlsOptions,
};

export type RabbitmqOptions = OptionsOf<typeof rabbitmqOptions>;

const NOT_WITH_URL = ['host', 'port', 'user', 'password', 'vhost'] as const;

export const rabbitmqRules = [
  ...tlsRules,
  rules.custom('`url` or host/port/user/password/vhost, not both', ['url', ...NOT_WITH_URL], (x) => {
    if (x.url === undefined) return undefined;
    // defaults are filled in: only what differs from them was written
    const written = NOT_WITH_URL.filter((k) => {
      const d = (rabbitmqOptions[k] as Opt<unknown, boolean>).meta.default;
      return x[k] !== undefined && x[k] !== d;
    });
    return written.length ? `url already names the broker; remove ${written.join(', ')} (or drop url)` : undefined;
  }),
];

const SOURCE_ONLY = ['queue', 'declare', 'bind', 'dead_letter_exchange', 'max_redeliveries'] as const;

export const rabbitmqSourceRules = [
  rules.custom('a source consumes `queue`', ['queue', 'routing_key'], (x) => {
    if (x.queue === undefined) return 'queue is required: name the queue to consume, e.g. queue: orders';
    if (x.routing_key !== undefined) return 'routing_key is for a sink; a source consumes queue (use bind to bind it to an exchange)';
    return undefined;
  }),
  rules.custom('`max_redeliveries` needs `dead_letter_exchange`', ['max_redeliveries', 'dead_letter_exchange'], (x) =>
    x.max_redeliveries !== undefined && !x.dead_letter_exchange
      ? 'max_redeliveries sends messages to the dead-letter exchange: set dead_letter_exchange too (without one the broker would drop them)'
      : undefined,
  ),
  rules.custom(
    '`arguments` and `dead_letter_routing_key` are set when weir declares the queue',
    ['arguments', 'dead_letter_routing_key', 'declare'],
    (x) => {
      if (x.declare) return undefined;
      if (x.arguments !== undefined) return 'arguments are applied when weir declares the queue: set declare: true, or drop arguments';
      if (x.dead_letter_routing_key !== undefined) return 'dead_letter_routing_key is set when weir declares the queue: set declare: true';
      return undefined;
    },
  ),
  rules.custom('the queue arguments name the dead-letter exchange once', ['arguments', 'dead_letter_exchange'], (x) => {
    const args = (x.arguments ?? {}) as Record<string, unknown>;
    if ('x-dead-letter-exchange' in args) return 'set the dead-letter exchange with dead_letter_exchange, not in arguments';
    return undefined;
  }),
];

export const rabbitmqSinkRules = [
  rules.custom('a sink publishes with a `routing_key` template', ['routing_key', ...SOURCE_ONLY], (x) => {
    const stray = SOURCE_ONLY.filter((k) => x[k] !== undefined && x[k] !== false);
    if (stray.length)
      return `${stray.join(', ')} ${stray.length > 1 ? 'are' : 'is'} for a source; a sink publishes to exchange with routing_key`;
    if (x.routing_key === undefined)
      return 'routing_key is required: a template such as routing_key: "orders.{region}" (with exchange: \'\' it names the queue)';
    try {
      compileTemplate(String(x.routing_key), 'routing_key');
    } catch (error) {
      return (error as Error).message;
    }
    return undefined;
  }),
];
