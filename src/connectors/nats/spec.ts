/**
 * Options of the `nats` connector (NATS JetStream through nats.js). One spec drives
 * validation, docs, JSON Schema and redaction; the operating notes a user needs (the
 * duplicate window, max_deliver, one consumer per pipeline) are in the descriptions.
 */
import { jsonDepthOption, type OptionsOf, o, rules } from '../../sdk/options.js';
import { tlsOptions, tlsRules } from '../../sdk/tls.js';
import { compileTemplate } from '../shared/template.js';

/** `nats://host:port`, `tls://host:port` or `host:port`; never credentials in the URL (they would be printed). */
const SERVER = /^((nats|tls):\/\/)?[A-Za-z0-9._\-[\]:]+$/;
/** A stream or consumer name: no whitespace, dots, wildcards or path separators (JetStream's rule). */
const NAME = /^[^\s.*>/\\]+$/;
/** A subject or a subject filter: tokens separated by dots, no whitespace. */
const SUBJECT = /^[^\s.]+(\.[^\s.]+)*$/;

export const natsOptions = {
  servers: o
    .list(
      o.string({
        minLength: 1,
        pattern: SERVER,
        patternHint:
          'must be nats://host:port, tls://host:port or host:port, without credentials (put them in user/password, token or creds_file)',
      }),
      { min: 1, max: 64 },
    )
    .describe('NATS server URL, or a list of them (of one cluster): `nats://127.0.0.1:4222`. A comma-separated string is a list too.')
    .default(['nats://127.0.0.1:4222'])
    .example('nats://127.0.0.1:4222', ['nats://n1:4222', 'nats://n2:4222']),
  stream: o
    .string({ minLength: 1, maxLength: 255, pattern: NAME, patternHint: 'must be a JetStream stream name (no spaces, dots, * or >)' })
    .describe(
      'The JetStream stream. Source: the stream the durable consumer reads. Sink: the stream that captures the published subjects (checked at the start of the run, created with `create_stream`).',
    )
    .required()
    .example('ORDERS'),
  user: o.string({ minLength: 1 }).describe('User name, with `password`.'),
  password: o.secret().describe('Password of `user`.'),
  token: o.secret().describe('Authentication token (instead of user and password).'),
  creds_file: o
    .path()
    .describe(
      'A `.creds` file (a user JWT and its NKey seed, from `nsc`) for decentralized authentication. Read at connect time; its content is never printed.',
    ),
  // --- source
  durable: o
    .string({ minLength: 1, maxLength: 255, pattern: NAME, patternHint: 'must be a consumer name (no spaces, dots, * or >)' })
    .describe(
      'Source: the durable pull consumer (created when missing, acknowledging with policy `all`: one acknowledgement after an epoch’s commit covers all its messages; an existing consumer may also use `explicit`). It belongs to this pipeline: weir deletes and re-creates it at the last committed stream sequence when it holds messages delivered to a run that died (so redeliveries keep the stream order), so do not share it with other readers.',
    )
    .default('weir'),
  filter_subject: o
    .string({ minLength: 1, pattern: SUBJECT, patternHint: 'must be a subject filter such as orders.> or orders.*.created' })
    .describe('Source: read only the messages of the stream whose subject matches this filter (set on the consumer when weir creates it).')
    .example('orders.>'),
  deliver: o
    .enum(['all', 'new'] as const)
    .describe(
      'Source: where a newly created consumer starts: `all` messages of the stream, or only `new` ones. A run that continues after a crash or a stop starts after its last committed stream sequence, whatever this says.',
    )
    .default('all'),
  ack_wait: o
    .duration({ min: 1000, max: 86_400_000 })
    .describe(
      'Source: how long the server waits for the acknowledgement of a delivered message before it delivers it again (the consumer’s `ack_wait`, set when weir creates it). Messages are acknowledged after the epoch holding them was committed (about `stream.epoch_interval`), so keep it well above that.',
    )
    .default('30s'),
  max_deliver: o
    .int({ min: -1, max: 1_000_000 })
    .describe(
      "Source: how many times the server delivers a message that is not acknowledged (the consumer's `max_deliver`, set when weir creates it; -1: no limit). JetStream then stops delivering it and publishes a `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES` advisory: a message that reached the limit without being committed is not in the target. weir acknowledges only after a commit, so a limit is reached only by messages whose epochs kept failing. When weir re-creates the consumer (see `durable`) the counts start again.",
    )
    .default(-1)
    .advanced(),
  max_ack_pending: o
    .int({ min: 1, max: 10_000_000 })
    .describe(
      "Source: messages the server delivers without their acknowledgement (the consumer's `max_ack_pending`, set when weir creates it). Acknowledgements come after each epoch's commit, so it must stay above `stream.epoch_rows` plus `batch`, or deliveries pause until the epoch interval ends.",
    )
    .default(50_000)
    .advanced(),
  batch: o
    .int({ min: 1, max: 100_000 })
    .describe('Source: messages per pull request (`max_messages`) and at most this many per chunk handed to the run.')
    .default(1000),
  idle_heartbeat: o
    .duration({ min: 1000, max: 60_000 })
    .describe(
      'Source: when no message arrived for this long, the run is told the stream is idle (`stream.stop_when_idle` ends a run that stays idle). Also the pull requests’ expiry.',
    )
    .default('1s')
    .advanced(),
  format: o
    .enum(['json', 'raw'] as const)
    .describe(
      'Source: `json` parses each payload as a JSON object (exactly: decimals and big integers are kept), a payload that is not JSON is a row error naming its subject and stream sequence; a JSON value that is not an object becomes the field `value`. `raw` gives the payload bytes as the field `data_field`.',
    )
    .default('json'),
  data_field: o
    .string({ minLength: 1 })
    .describe('Source, `format: raw`: the field that holds the payload bytes.')
    .default('data')
    .advanced(),
  metadata_fields: o
    .list(o.enum(['subject', 'sequence', 'timestamp', 'redelivered'] as const))
    .describe(
      'Source: message metadata added to each row, as the fields named by `subject_field`, `sequence_field`, `timestamp_field` and `redelivered_field`: the subject, the stream sequence (an integer), the time the stream stored the message (a timestamp), whether the server delivered it before.',
    )
    .default([])
    .example(['subject', 'sequence']),
  subject_field: o.string({ minLength: 1 }).describe('Source: the field of `metadata_fields: [subject]`.').default('_subject').advanced(),
  sequence_field: o.string({ minLength: 1 }).describe('Source: the field of `metadata_fields: [sequence]`.').default('_seq').advanced(),
  timestamp_field: o
    .string({ minLength: 1 })
    .describe('Source: the field of `metadata_fields: [timestamp]`.')
    .default('_timestamp')
    .advanced(),
  redelivered_field: o
    .string({ minLength: 1 })
    .describe('Source: the field of `metadata_fields: [redelivered]`.')
    .default('_redelivered')
    .advanced(),
  max_depth: jsonDepthOption(),
  // --- sink
  subject: o
    .string({ minLength: 1, maxLength: 1024 })
    .describe(
      'Sink: the subject of each message, a template whose `{field}` parts are filled from the row (`{{` and `}}` are literal braces). The payload is the row as exact JSON. Each message carries a `Nats-Msg-Id` made of the run, the partition, the writer, the batch and the row index, so a batch the run retries is stored once (within the stream’s duplicate window, 2 minutes by default); a partition retried as a new attempt, or a run resumed after a crash, publishes its rows again (at-least-once).',
    )
    .example('orders.{region}.created', 'events'),
  create_stream: o
    .bool()
    .describe(
      'Sink: create the stream when it does not exist, capturing `stream_subjects` (file storage, limits retention). Off: a missing stream is a configuration error at the start of the run.',
    )
    .default(false),
  stream_subjects: o
    .list(o.string({ minLength: 1, pattern: SUBJECT, patternHint: 'must be a subject or a filter such as orders.>' }), { min: 1 })
    .describe(
      'Sink, `create_stream`: the subjects the created stream captures. Default: the `subject` template with each token holding a field replaced by `*`.',
    )
    .advanced(),
  duplicate_window: o
    .duration({ min: 1000, max: 86_400_000 })
    .describe('Sink, `create_stream`: the created stream’s duplicate window, within which a repeated `Nats-Msg-Id` is stored once.')
    .default('2m')
    .advanced(),
  max_in_flight: o
    .int({ min: 1, max: 100_000 })
    .describe('Sink: publishes of one partition awaiting their acknowledgement (PubAck) at once.')
    .default(1000)
    .advanced(),
  publish_timeout: o
    .duration({ min: 100, max: 600_000 })
    .describe('Sink: how long one publish waits for its acknowledgement before the batch fails with a retryable error.')
    .default('10s')
    .advanced(),
  connect_timeout: o.duration({ min: 100, max: 600_000 }).describe('How long to wait for the connection and its handshake.').default('10s'),
  request_timeout: o
    .duration({ min: 100, max: 600_000 })
    .describe('How long a JetStream API request (stream and consumer information, creation) may take.')
    .default('10s')
    .advanced(),
  reconnect_attempts: o
    .int({ min: -1, max: 10_000 })
    .describe(
      'How often the client reconnects after a lost connection before the partition fails (-1: forever). Nothing is lost meanwhile: messages not acknowledged are delivered again.',
    )
    .default(30)
    .advanced(),
  reconnect_wait: o.duration({ min: 10, max: 600_000 }).describe('Wait between reconnect attempts (with jitter).').default('1s').advanced(),
  ...tlsOptions,
};

export type NatsOptions = OptionsOf<typeof natsOptions>;

/** The subjects a stream created for a subject template captures: a token holding a field becomes `*`. */
export function subjectsOf(template: string): string[] {
  const tokens = template.split('.').map((token) => {
    const bare = token.replace(/\{\{|\}\}/g, '');
    return bare.includes('{') ? '*' : token.replace(/\{\{/g, '{').replace(/\}\}/g, '}');
  });
  return [tokens.join('.')];
}

export const natsRules = [
  ...tlsRules,
  rules.custom(
    'one way of authenticating: `user` with `password`, `token`, or `creds_file`',
    ['user', 'password', 'token', 'creds_file'],
    (x) => {
      if ((x.user === undefined) !== (x.password === undefined)) return 'user and password go together; set both, or neither';
      const ways = [x.user !== undefined && 'user/password', x.token !== undefined && 'token', x.creds_file !== undefined && 'creds_file'];
      const set = ways.filter(Boolean);
      return set.length > 1 ? `${set.join(' and ')} cannot be used together; keep one way of authenticating` : undefined;
    },
  ),
];

const SINK_ONLY = ['subject', 'create_stream', 'stream_subjects'] as const;

export const natsSourceRules = [
  rules.custom('a source reads a stream through `durable`; `subject` and stream creation are for a sink', [...SINK_ONLY], (x) =>
    x.subject !== undefined || x.stream_subjects !== undefined || x.create_stream === true
      ? 'subject, create_stream and stream_subjects are for a sink; a source reads the stream through its durable consumer (filter it with filter_subject)'
      : undefined,
  ),
];

export const natsSinkRules = [
  rules.custom('`subject` is required in a sink and must be a valid template', ['subject', 'filter_subject', 'metadata_fields'], (x) => {
    if (x.subject === undefined)
      return 'subject is required in a sink; give the subject (a template of row fields), e.g. subject: "orders.{region}"';
    if (x.filter_subject !== undefined) return 'filter_subject is for a source; a sink publishes to subject';
    if (Array.isArray(x.metadata_fields) && x.metadata_fields.length > 0)
      return 'metadata_fields is for a source; a sink publishes each row as it is';
    try {
      compileTemplate(String(x.subject), 'subject');
    } catch (error) {
      return (error as Error).message;
    }
    return undefined;
  }),
];
