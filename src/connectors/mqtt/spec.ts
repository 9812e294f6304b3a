/**
 * Options of the `mqtt` connector (MQTT 5 through mqtt.js). One spec drives
 * validation, docs, JSON Schema and redaction; role rules say which options each
 * role takes.
 */
import { jsonDepthOption, type OptionsOf, o, rules } from '../../sdk/options.js';
import { tlsOptions, tlsRules } from '../../sdk/tls.js';
import { compileTemplate } from '../shared/template.js';

/** The metadata a source row can carry, and the field each lands in. */
export const METADATA_FIELDS = {
  topic: '_topic',
  message_id: '_message_id',
  retain: '_retain',
  received_at: '_received_at',
} as const;

export const mqttOptions = {
  url: o
    .url({ schemes: ['mqtt', 'mqtts', 'ws', 'wss'] })
    .describe(
      'The broker: `mqtt://host:1883`, `mqtts://host:8883` (TLS), `ws://` or `wss://` (MQTT over WebSocket, path included). Credentials go in `username` and `password`, not in the URL.',
    )
    .default('mqtt://127.0.0.1:1883')
    .example('mqtt://broker.internal:1883'),
  username: o.string({ minLength: 1 }).describe('User name sent in CONNECT.'),
  password: o.secret().describe('Password sent in CONNECT (with `username`).'),
  client_id: o
    .string({ minLength: 1, maxLength: 256, pattern: /^[A-Za-z0-9._:-]+$/, patternHint: 'letters, digits and . _ : - only' })
    .describe(
      "Source: the MQTT client id, which names the broker's persistent session (its subscriptions and the messages kept for it). Unset: `weir-<pipeline id>`, so every run of the pipeline resumes the same session and gets what was published while it was down. Two clients with one id take the session from each other: never run a pipeline twice at once, and give a copy of a pipeline its own `client_id`. Sink: a prefix; each writer connects as `<client_id>-<partition>-<random>` with a clean session (default `weir-<pipeline id>-pub`).",
    ),
  topics: o
    .list(o.string({ minLength: 1, maxLength: 65535 }), { min: 1, max: 100 })
    .describe(
      'Source: the topic filters to subscribe to, at QoS 1 — one or a list; wildcards `+` (one level) and `#` (the rest) are allowed, e.g. `sensors/+/temperature`. A string is split at commas.',
    )
    .example(['sensors/+/temperature', 'alerts/#']),
  topic: o
    .string({ minLength: 1, maxLength: 65535 })
    .describe(
      'Sink: the topic of each row, a template whose `{field}` parts are filled from the row (`{{` and `}}` are literal braces), e.g. `devices/{device_id}/events`. No wildcards.',
    )
    .example('devices/{device_id}/events'),
  qos: o
    .int({ min: 1, max: 2 })
    .describe(
      'Sink: the QoS of publishes — 1 (PUBACK) or 2 (PUBCOMP); a batch is written once the broker confirmed every message of it. Source: 1, the only level it takes (a message is acknowledged only after the epoch holding it was committed; QoS 2 has the client confirm receipt before the message is even delivered to it).',
    )
    .default(1),
  retain: o
    .bool()
    .describe('Sink: publish with the retain flag, so the broker keeps the last message of each topic for new subscribers.')
    .default(false),
  format: o
    .enum(['json', 'raw'] as const)
    .describe(
      "`json`: a source parses each payload as JSON (exactly: decimals and big integers keep every digit; an object's fields become the row, any other value lands in `payload_field`; a payload that is not JSON is a row error naming the topic), a sink publishes each row as JSON. `raw`: the payload bytes, in the row field `payload_field`; a sink publishes that field (bytes or text).",
    )
    .default('json'),
  payload_field: o
    .string({ minLength: 1 })
    .describe('The row field holding the payload with `format: raw`, and a JSON payload that is not an object with `format: json`.')
    .default('payload')
    .advanced(),
  metadata_fields: o
    .list(o.enum(Object.keys(METADATA_FIELDS) as (keyof typeof METADATA_FIELDS)[]))
    .describe(
      'Source: message metadata added to each row: `topic` (`_topic`), `message_id` (`_message_id`: the packet identifier, unique only among the messages in flight, so no key), `retain` (`_retain`: true for a retained message the broker sent on subscribing), `received_at` (`_received_at`: when weir received the message, as a timestamp).',
    )
    .default([])
    .example(['topic', 'received_at']),
  session_expiry: o
    .duration({ min: 1000, max: 4_294_967_000 })
    .describe(
      "Source: how long the broker keeps the session (its subscriptions and the messages for it) after weir disconnected (MQTT 5 Session Expiry Interval). Messages published after that are not kept. The broker's own limits also apply: Mosquitto keeps at most `max_queued_messages` (default 1000) messages for an offline client beyond those it had sent and weir had not acknowledged, and DROPS the rest — raise it (or set `max_queued_messages 0`) on a broker whose publishers outpace a stopped weir.",
    )
    .default('7d'),
  receive_maximum: o
    .int({ min: 1, max: 65535 })
    .describe(
      'Source: how many messages the broker may send before weir acknowledged them (MQTT 5 Receive Maximum). Messages are acknowledged only when their epoch commits, so this bounds both the messages (and memory) held per epoch and the throughput: keep it above `stream.epoch_rows`, so the next epoch fills while one commits.',
    )
    .default(20000)
    .advanced(),
  fetch_size: o
    .int({ min: 1, max: 100_000 })
    .describe(
      'Source: most messages per chunk handed to the run (a chunk is what arrived since the last one). A chunk is written as one batch, and a batch costs the sink a round trip or more: larger chunks are cheaper.',
    )
    .default(5000)
    .advanced(),
  batch_size: o
    .int({ min: 1, max: 1_000_000 })
    .describe(
      'Sink: rows per batch; a batch is written when the broker acknowledged every message of it. Measured with bench/stream-mqtt.js: 5000 publishes about 1.5× as fast as 1000, with the same memory.',
    )
    .default(5000),
  max_in_flight: o
    .int({ min: 1, max: 65535 })
    .describe('Sink: publishes of one writer awaiting their acknowledgement at once.')
    .default(1000)
    .advanced(),
  keepalive: o.duration({ min: 1000, max: 65_535_000 }).describe('Keep-alive interval (PINGREQ when idle).').default('30s').advanced(),
  connect_timeout: o.duration({ min: 100, max: 600_000 }).describe('How long to wait for the connection and its CONNACK.').default('10s'),
  reconnect_timeout: o
    .duration({ min: 0, max: 86_400_000 })
    .describe(
      'Source: how long a lost connection is retried (every `reconnect_period`) before the partition fails with a retryable error (then `retry.partition_attempts` applies). Messages not acknowledged when it dropped are sent again by the broker.',
    )
    .default('60s')
    .advanced(),
  reconnect_period: o
    .duration({ min: 100, max: 600_000 })
    .describe('Source: the wait between reconnect attempts.')
    .default('1s')
    .advanced(),
  publish_timeout: o
    .duration({ min: 100, max: 3_600_000 })
    .describe('Sink: how long a batch may wait for its acknowledgements before it fails with a retryable error.')
    .default('60s')
    .advanced(),
  max_depth: jsonDepthOption(),
  ...tlsOptions,
};

export type MqttOptions = OptionsOf<typeof mqttOptions>;

function wildcardProblem(filter: string): string | undefined {
  const levels = filter.split('/');
  for (const [i, level] of levels.entries()) {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1))
      return `topic filter ${JSON.stringify(filter)}: # must be a whole last level, e.g. sensors/#`;
    if (level.includes('+') && level !== '+')
      return `topic filter ${JSON.stringify(filter)}: + must be a whole level, e.g. sensors/+/temperature`;
  }
  if (filter.includes('\0')) return `topic filter ${JSON.stringify(filter)} holds a NUL character`;
  return undefined;
}

export const mqttRules = [
  ...tlsRules,
  rules.custom('credentials go in username and password, not in the url', ['url'], (x) =>
    typeof x.url === 'string' && /^[a-z]+:\/\/[^/]*@/i.test(x.url)
      ? 'url holds credentials; remove them from the url and set username and password (password: ${env:MQTT_PASSWORD})'
      : undefined,
  ),
  rules.custom('password needs username', ['username', 'password'], (x) =>
    x.password !== undefined && x.username === undefined ? 'password is set without username; set username too' : undefined,
  ),
  rules.custom('ssl options need mqtts:// or wss://', ['url', 'ssl_enabled'], (x) =>
    x.ssl_enabled === true && typeof x.url === 'string' && !/^(mqtts|wss):/.test(x.url)
      ? `ssl_enabled is true but url ${JSON.stringify(x.url)} is not mqtts:// or wss://; use mqtts://HOST:8883`
      : undefined,
  ),
];

export const mqttSourceRules = [
  rules.custom('a source subscribes to `topics`, at QoS 1', ['topics', 'topic', 'qos', 'retain'], (x) => {
    if (x.topic !== undefined) return 'topic is the sink option (a template); a source subscribes to topics: [filter, …]';
    if (x.topics === undefined) return 'topics is required for a source; list the topic filters, e.g. topics: [sensors/#]';
    if (x.qos !== 1)
      return `qos ${String(x.qos)} is not supported by the source: it subscribes at QoS 1 and acknowledges after commit; set qos: 1`;
    if (x.retain === true) return 'retain is a sink option; remove it from the source';
    for (const f of x.topics as string[]) {
      const p = wildcardProblem(f);
      if (p) return p;
    }
    return undefined;
  }),
];

export const mqttSinkRules = [
  rules.custom('a sink publishes to `topic`, a template of row fields without wildcards', ['topic', 'topics', 'metadata_fields'], (x) => {
    if (x.topics !== undefined) return 'topics is the source option; a sink publishes to topic: a template such as devices/{id}';
    if (x.topic === undefined) return 'topic is required for a sink; give a topic or a template, e.g. topic: devices/{device_id}';
    if (Array.isArray(x.metadata_fields) && x.metadata_fields.length > 0)
      return 'metadata_fields is a source option; remove it from the sink';
    try {
      compileTemplate(String(x.topic), 'topic');
    } catch (error) {
      return (error as Error).message;
    }
    if (/[+#]/.test(String(x.topic)))
      return `topic ${JSON.stringify(x.topic)} holds a wildcard (+ or #); a message is published to one topic`;
    return undefined;
  }),
];
