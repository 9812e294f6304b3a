/**
 * The MQTT source: unbounded (`Source.stream`), one partition, one persistent
 * session.
 *
 * The partition connects with `clean: false` under a stable client id
 * (`client_id`, else `weir-<pipeline id>`) and a Session Expiry Interval, so the
 * broker keeps its subscriptions and queues what is published while weir is down,
 * and subscribes to `topics` at QoS 1 (Retain Handling 1: retained messages only
 * when the subscription is new, so a restart does not get them again). Messages
 * arrive into a queue; each chunk is what the queue holds (at most `fetch_size`),
 * and its `ack` sends the PUBACKs of exactly its messages, after the epoch holding
 * it was committed (see `client.ts` for how). The broker sends at most
 * `receive_maximum` messages unacknowledged, which bounds the queue and the open
 * epoch. A message never acknowledged — the process died, the attempt failed, the
 * connection dropped — is sent again by the broker on the next connection of the
 * session: at-least-once. An acknowledgement is only sent on the connection its
 * message came on; after a reconnect the broker sends the message again and that
 * copy is acknowledged in its own epoch (an upsert key in the sink makes the copy
 * harmless: exactly-once into the target).
 *
 * MQTT has no offsets: a chunk's offsets are the session and a count of the
 * messages this attempt received, and `ctx.resumeFrom` is not used: the source declares
 * `atLeastOnce`, so `delivery: exactly-once` is refused with the reason. The broker tells
 * nothing of how many messages wait for the session, so chunks carry no `lag`.
 */
import type { MqttClient } from 'mqtt';
import type { Source, StreamChunk, TaskContext } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import { emptyRow, type Partition, type Row } from '../../sdk/types.js';
import { parseJsonExact } from '../../sdk/values.js';
import { canSendPuback, classify, connect, release, sendPuback, sourceClientId, where } from './client.js';
import { METADATA_FIELDS, type MqttOptions } from './spec.js';

/** How long the source waits for a message before it yields a heartbeat (an idle stream still tells the run it is alive). */
const HEARTBEAT_MS = 500;

/** Marks a message whose PUBACK this source sends itself (see `client.ts`). */
const HELD = Object.assign(new Error('acknowledged after the commit'), { held: true });

interface Received {
  topic: string;
  payload: Buffer;
  messageId: number;
  retain: boolean;
  receivedAt: Date;
  /** The connection it came on: an acknowledgement is sent only on that one. */
  connection: number;
}

/** A message as a row, or a {@link RowError} naming it when its payload is not JSON. */
export function messageRow(m: Received, opts: MqttOptions): Row {
  let row: Row;
  if (opts.format === 'raw') {
    row = emptyRow();
    row[opts.payload_field] = new Uint8Array(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
  } else {
    let value: unknown;
    try {
      value = parseJsonExact(m.payload.toString('utf8'), opts.max_depth);
    } catch (error) {
      throw new RowError(
        `message ${m.messageId} on topic ${m.topic} is not JSON (${(error as Error).message}); fix the publisher, or read payloads as bytes with format: raw`,
        { code: 'invalid_json' },
      );
    }
    row = emptyRow();
    if (value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Uint8Array)) Object.assign(row, value);
    else row[opts.payload_field] = value as Row[string];
  }
  for (const f of opts.metadata_fields) {
    if (f === 'topic') row[METADATA_FIELDS.topic] = m.topic;
    else if (f === 'message_id') row[METADATA_FIELDS.message_id] = m.messageId;
    else if (f === 'retain') row[METADATA_FIELDS.retain] = m.retain;
    else row[METADATA_FIELDS.received_at] = m.receivedAt;
  }
  return row;
}

/** Why `delivery: exactly-once` is refused for this source ({@link Source.atLeastOnce}). */
export const AT_LEAST_ONCE =
  'MQTT has no offsets that tell a message already committed (whose acknowledgement was lost in a crash or a reconnect) from a new one, so the broker sends it again and it is written again. Use delivery: at-least-once with a sink that deduplicates: the postgres sink with mode: upsert and key_columns: [a field of the payload that identifies the message] stores each message once';

export function mqttSource(opts: MqttOptions): Source {
  return {
    unbounded: true,
    atLeastOnce: AT_LEAST_ONCE,
    read() {
      throw new WeirError('the mqtt source is unbounded: it is read through stream(), in epochs', { kind: 'internal' });
    },
    stream(_partition: Partition, ctx: TaskContext) {
      return streamMessages(opts, ctx);
    },
  };
}

/** The session's connection: received messages, the connection count, and a failure that ends the stream. */
class Session {
  readonly queue: Received[] = [];
  /** Counts CONNACKs: 1 once the first connection is up. */
  connection = 0;
  failure: WeirError | undefined;
  private wake: (() => void) | undefined;
  private offlineSince: number | undefined;

  constructor(
    readonly client: MqttClient,
    private readonly opts: MqttOptions,
    ctx: TaskContext,
    clientId: string,
  ) {
    client.handleMessage = (packet, callback) => (packet.qos > 0 ? callback(HELD) : callback());
    client.on('message', (topic, payload, packet) => {
      if (packet.qos === 0) return; // a QoS 0 message cannot be acknowledged: refused at subscription time
      this.queue.push({
        topic,
        payload,
        messageId: packet.messageId as number,
        retain: packet.retain,
        receivedAt: new Date(),
        connection: this.connection,
      });
      this.notify();
    });
    client.on('connect', (connack) => {
      this.connection++;
      this.offlineSince = undefined;
      if (this.connection === 1) return;
      if (!connack.sessionPresent)
        ctx.log.warn('the broker did not have the session any more: messages published while weir was disconnected may be lost', {
          client_id: clientId,
          broker: where(opts),
        });
      else ctx.log.info('reconnected to the session', { client_id: clientId, broker: where(opts) });
    });
    client.on('offline', () => {
      this.offlineSince ??= performance.now();
      ctx.log.warn('lost the connection to the broker; reconnecting', {
        broker: where(opts),
        reconnect_timeout_ms: opts.reconnect_timeout,
      });
    });
    client.on('disconnect', (packet) => {
      if (packet.reasonCode === 0x8e)
        this.fail(
          new WeirError(
            `another client connected to ${where(opts)} with client_id ${clientId} and took over the session: is this pipeline running twice? Give each pipeline its own client_id`,
            { code: 'session_taken_over', kind: 'config' },
          ),
        );
    });
    client.on('error', (error) => {
      const e = classify(error, `the connection to MQTT broker ${where(opts)}`);
      if (e.kind === 'config') this.fail(e); // refused credentials: reconnecting will not help
    });
  }

  fail(error: WeirError): void {
    this.failure ??= error;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Waits until a message is queued, the stream failed, or `ms` passed. */
  async next(ms: number): Promise<void> {
    if (this.queue.length > 0 || this.failure) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    if (this.offlineSince !== undefined && performance.now() - this.offlineSince > this.opts.reconnect_timeout)
      this.fail(
        new WeirError(
          `lost the connection to MQTT broker ${where(this.opts)} and could not reconnect within reconnect_timeout (${this.opts.reconnect_timeout} ms); unacknowledged messages stay with the session for the next attempt`,
          { code: 'ECONNRESET', kind: 'connector', retryable: true },
        ),
      );
  }

  /** Sends the PUBACKs of the messages that came on the current connection; the others the broker sends again. */
  ack(messages: Received[]): void {
    if (!this.client.connected) return;
    const current = this.connection;
    for (const m of messages) if (m.connection === current) sendPuback(this.client, m.messageId);
  }
}

async function subscribe(client: MqttClient, opts: MqttOptions): Promise<void> {
  for (const filter of opts.topics ?? []) {
    let granted: number | undefined;
    try {
      const reply = await client.subscribeAsync(filter, { qos: 1, rh: 1 });
      granted = reply[0]?.qos;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new WeirError(
        `the broker ${where(opts)} refused the subscription to ${JSON.stringify(filter)}: ${(error as Error).message}${code === 0x87 ? '; the user may not read this topic (check the broker ACL)' : code === 0x8f ? '; the topic filter is not valid for this broker' : ''}`,
        { code: 'subscribe_refused', kind: 'config', cause: error },
      );
    }
    if (granted === 0)
      throw new WeirError(
        `the broker ${where(opts)} granted the subscription to ${JSON.stringify(filter)} at QoS 0 only: its messages could not be acknowledged after the commit (they would be lost on a crash); allow QoS 1 for this topic on the broker`,
        { code: 'subscribe_qos0', kind: 'config' },
      );
  }
}

/** The partition's messages, as chunks (worker, once per partition attempt). */
async function* streamMessages(opts: MqttOptions, ctx: TaskContext): AsyncGenerator<StreamChunk> {
  const clientId = sourceClientId(opts, ctx.pipeline);
  let prepared: Session | undefined;
  // the session's handlers are in place before the CONNACK: the broker may send queued messages right after it
  const client = await connect(opts, { clientId, persistent: true, reconnect: true }, ctx, (c) => {
    prepared = new Session(c, opts, ctx, clientId);
  });
  if (!prepared || !canSendPuback(client)) {
    await release(client);
    throw new WeirError('this version of mqtt.js does not send packets the way the mqtt source acknowledges messages; use mqtt 5', {
      kind: 'internal',
    });
  }
  const session: Session = prepared;
  const onAbort = () => session.fail(new WeirError('stopped', { code: 'aborted', kind: 'internal' }));
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  let received = 0;
  const offsets = () => ({ client_id: clientId, received });
  try {
    await subscribe(client, opts);
    for (;;) {
      await session.next(HEARTBEAT_MS);
      if (ctx.signal.aborted) return;
      if (session.failure) throw session.failure;
      if (session.queue.length === 0) {
        yield { rows: [], offsets: offsets() };
        continue;
      }
      const messages = session.queue.splice(0, opts.fetch_size);
      received += messages.length;
      const rows: Row[] = [];
      for (const m of messages) {
        try {
          rows.push(messageRow(m, opts));
        } catch (error) {
          if (!(error instanceof RowError)) throw error;
          await ctx.reject({ topic: m.topic, message_id: m.messageId, payload: m.payload.toString('utf8') }, error);
        }
      }
      yield { rows, offsets: offsets(), ack: () => session.ack(messages) };
    }
  } catch (error) {
    if (ctx.signal.aborted) return;
    throw classify(error, `reading topics ${JSON.stringify(opts.topics)} as ${clientId} (${where(opts)})`);
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    await release(client);
  }
}
