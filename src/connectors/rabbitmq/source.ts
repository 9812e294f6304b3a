/**
 * The RabbitMQ source: a queue, consumed with manual acknowledgements, committed by
 * the runtime in epochs (`Source.stream`). Unbounded.
 *
 * Each partition is one consumer on a connection and channel of its own, with
 * `prefetch` (basic.qos) messages out at most. Delivered messages are buffered and
 * yielded as chunks of up to {@link MAX_CHUNK}; a chunk's `ack`, run by the runtime
 * once the epoch holding it was committed, is one `basic.ack` with `multiple: true`
 * up to the chunk's last delivery tag on that channel (delivery tags grow in delivery
 * order, and chunks are taken in that order) — no list of every tag is held; only the
 * rare messages to nack (to the dead-letter exchange) are listed, and nacked first.
 * Nothing is acknowledged before its commit: a crash, a failed attempt or a lost
 * connection closes the channel, and the broker puts every unacknowledged message
 * back in the queue for the next attempt or run.
 *
 * Delivery: at-least-once. A queue has no offsets that would tell a message committed
 * by an epoch whose acknowledgement was lost from a new one, so such a message is
 * written again; exactly-once comes from the sink deduplicating (the postgres sink in
 * `mode: upsert` with a key of the message), and `delivery: exactly-once` is refused
 * ({@link Source.atLeastOnce}). The offsets are a count of the messages the partition
 * committed, for `weir state show`.
 *
 * Lag: the queue's ready messages (`checkQueue` messageCount), sampled at most once a
 * second on the consuming channel and attached to the chunks that follow.
 */
import { isUtf8 } from 'node:buffer';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import type { PlanContext, Source, StreamChunk, TaskContext } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import type { JsonValue, Partition, Row } from '../../sdk/types.js';
import { emptyRow } from '../../sdk/types.js';
import { parseJsonExact } from '../../sdk/values.js';
import { classify, connect, release, replyCode, where } from './client.js';
import type { MetadataField, RabbitmqOptions } from './spec.js';

/** Messages per chunk at most: the runtime cuts epochs only between chunks, so this bounds how far an epoch passes `stream.epoch_rows`. */
export const MAX_CHUNK = 1000;
const LAG_EVERY_MS = 1000;

export const AT_LEAST_ONCE =
  'a RabbitMQ queue has no offsets that tell a message already committed (whose acknowledgement was lost in a crash) from a new one, so it is redelivered and written again. Use delivery: at-least-once with a sink that deduplicates: the postgres sink with mode: upsert and key: [a field that identifies the message] stores each message once';

/** Runs `fn` on a channel of its own (a failed check closes the channel it ran on). */
async function onChannel<T>(model: ChannelModel, fn: (ch: Channel) => Promise<T>): Promise<T> {
  const ch = await model.createChannel();
  ch.on('error', () => {});
  try {
    return await fn(ch);
  } finally {
    await ch.close().catch(() => undefined);
  }
}

/** The queue arguments weir declares: `arguments` plus the dead-letter exchange. */
export function queueArguments(opts: RabbitmqOptions): Record<string, string | number | boolean> {
  return {
    ...(opts.arguments ?? {}),
    ...(opts.dead_letter_exchange !== undefined ? { 'x-dead-letter-exchange': opts.dead_letter_exchange } : {}),
    ...(opts.dead_letter_routing_key !== undefined ? { 'x-dead-letter-routing-key': opts.dead_letter_routing_key } : {}),
  };
}

/**
 * Makes the queue ready to consume (planner, and each partition attempt): the
 * dead-letter exchange exists, the queue exists or is declared, the bindings are made.
 * Returns the queue's ready messages.
 */
export async function prepareQueue(model: ChannelModel, opts: RabbitmqOptions): Promise<number> {
  const queue = opts.queue as string;
  const vhost = where(opts);
  const dlx = opts.dead_letter_exchange;
  if (dlx)
    await onChannel(model, (ch) => ch.checkExchange(dlx)).catch((error) => {
      throw replyCode(error) === 404
        ? new WeirError(
            `dead_letter_exchange ${JSON.stringify(dlx)} does not exist on ${vhost}: RabbitMQ drops what it dead-letters to a missing exchange; declare the exchange (and bind a queue to it) first`,
            { code: 'dlx_not_found', kind: 'config', cause: error },
          )
        : classify(error, `checking dead_letter_exchange ${dlx} on ${vhost}`);
    });
  let ready: number;
  if (opts.declare) {
    ready = await onChannel(model, (ch) => ch.assertQueue(queue, { durable: true, arguments: queueArguments(opts) }))
      .then((q) => q.messageCount)
      .catch((error) => {
        throw replyCode(error) === 406
          ? new WeirError(
              `queue ${queue} exists on ${vhost} with other settings than declare asks for (durable, arguments ${JSON.stringify(queueArguments(opts))}): ${(error as Error).message}; make arguments and dead_letter_exchange match the queue, or set declare: false`,
              { code: 'queue_mismatch', kind: 'config', cause: error },
            )
          : classify(error, `declaring queue ${queue} on ${vhost}`);
      });
  } else
    ready = await onChannel(model, (ch) => ch.checkQueue(queue))
      .then((q) => q.messageCount)
      .catch((error) => {
        throw replyCode(error) === 404
          ? new WeirError(`queue ${queue} does not exist on ${vhost}; create it, or set declare: true to let weir declare it (durable)`, {
              code: 'queue_not_found',
              kind: 'config',
              cause: error,
            })
          : classify(error, `checking queue ${queue} on ${vhost}`);
      });
  const bind = opts.bind;
  if (bind)
    await onChannel(model, async (ch) => {
      await ch.checkExchange(bind.exchange);
      for (const key of bind.routing_keys) await ch.bindQueue(queue, bind.exchange, key);
    }).catch((error) => {
      throw replyCode(error) === 404
        ? new WeirError(
            `bind.exchange ${JSON.stringify(bind.exchange)} does not exist on ${vhost}; declare it first, or fix bind.exchange`,
            {
              code: 'exchange_not_found',
              kind: 'config',
              cause: error,
            },
          )
        : classify(error, `binding queue ${queue} to exchange ${bind.exchange} on ${vhost}`);
    });
  return ready;
}

/** Closes a channel within 2 s; never throws. */
async function closeChannel(ch: Channel): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([ch.close(), new Promise((resolve) => (timer = setTimeout(resolve, 2000)))]).catch(() => undefined);
  clearTimeout(timer);
}

/** The broker's count of deliveries before this one: `x-delivery-count` (quorum queues), else 1 when `redelivered`. */
export function redeliveries(msg: ConsumeMessage): number {
  const count = msg.properties.headers?.['x-delivery-count'];
  if (typeof count === 'number' && Number.isSafeInteger(count) && count >= 0) return count;
  return msg.fields.redelivered ? 1 : 0;
}

function metadataValue(msg: ConsumeMessage, name: MetadataField): unknown {
  switch (name) {
    case 'routing_key':
      return msg.fields.routingKey;
    case 'exchange':
      return msg.fields.exchange;
    case 'delivery_tag':
      return msg.fields.deliveryTag;
    case 'message_id':
      return typeof msg.properties.messageId === 'string' ? msg.properties.messageId : null;
    case 'timestamp': {
      const t = msg.properties.timestamp;
      return typeof t === 'number' && Number.isFinite(t) ? new Date(t * 1000) : null;
    }
    case 'redelivered':
      return msg.fields.redelivered;
    case 'delivery_count': {
      const c = msg.properties.headers?.['x-delivery-count'];
      return typeof c === 'number' ? c : null;
    }
  }
}

/** What a dead letter records of a message that is not a row. */
function describeMessage(queue: string, msg: ConsumeMessage): Record<string, unknown> {
  return {
    queue,
    delivery_tag: msg.fields.deliveryTag,
    exchange: msg.fields.exchange,
    routing_key: msg.fields.routingKey,
    message_id: msg.properties.messageId ?? null,
    payload: msg.content.toString('utf8'),
  };
}

/** Builds rows from messages: the payload (json or raw) and the metadata fields. */
function rowBuilder(opts: RabbitmqOptions): (msg: ConsumeMessage) => Row {
  const queue = opts.queue as string;
  const meta = opts.metadata_fields.map((name) => [`${opts.metadata_prefix}${name}`, name] as const);
  const name = (msg: ConsumeMessage) =>
    `message ${msg.fields.deliveryTag} of queue ${queue} (routing key ${JSON.stringify(msg.fields.routingKey)}${msg.properties.messageId ? `, message id ${JSON.stringify(msg.properties.messageId)}` : ''})`;
  const payload = (msg: ConsumeMessage): Row => {
    if (opts.format === 'raw') {
      const row = emptyRow();
      row[opts.payload_field] = new Uint8Array(msg.content.buffer, msg.content.byteOffset, msg.content.byteLength);
      return row;
    }
    if (!isUtf8(msg.content))
      throw new RowError(`${name(msg)} is not UTF-8 text, so not JSON; use format: raw to read its bytes`, { code: 'invalid_json' });
    let parsed: unknown;
    try {
      parsed = parseJsonExact(msg.content.toString('utf8'), opts.max_depth);
    } catch (error) {
      throw new RowError(`${name(msg)} is not JSON: ${(error as Error).message}`, { code: 'invalid_json', cause: error });
    }
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
      ? Object.assign(emptyRow(), parsed)
      : Object.assign(emptyRow(), { value: parsed });
  };
  if (meta.length === 0) return payload;
  return (msg) => {
    const row = payload(msg);
    for (const [field, m] of meta) row[field] = metadataValue(msg, m);
    return row;
  };
}

/** The count of committed messages a checkpoint holds (untrusted: anything else counts from 0). */
function committedCount(resumeFrom: JsonValue | undefined): number {
  if (resumeFrom && typeof resumeFrom === 'object' && !Array.isArray(resumeFrom)) {
    const n = resumeFrom.messages;
    if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) return n;
  }
  return 0;
}

export function rabbitmqSource(opts: RabbitmqOptions): Source {
  const queue = opts.queue as string;
  return {
    unbounded: true,
    atLeastOnce: AT_LEAST_ONCE,

    async partitions(ctx: PlanContext): Promise<Partition[]> {
      const model = await connect(opts, ctx, `weir:${ctx.pipeline}:plan`);
      try {
        await prepareQueue(model, opts);
      } finally {
        await release(model);
      }
      return Array.from({ length: opts.partitions }, (_, i) => ({ id: String(i) }));
    },

    async estimate(ctx: PlanContext) {
      const model = await connect(opts, ctx, `weir:${ctx.pipeline}:estimate`).catch(() => undefined);
      if (!model) return undefined;
      try {
        return await onChannel(model, async (ch) => (await ch.checkQueue(queue)).messageCount);
      } catch {
        return undefined;
      } finally {
        await release(model);
      }
    },

    read() {
      throw new WeirError('the rabbitmq source is unbounded: it is read through stream(), in epochs', { kind: 'internal' });
    },

    stream(partition: Partition, ctx: TaskContext) {
      return consume(opts, partition, ctx);
    },
  };
}

/** One consumer of the queue, as chunks (worker, once per partition attempt). */
async function* consume(opts: RabbitmqOptions, partition: Partition, ctx: TaskContext): AsyncGenerator<StreamChunk> {
  const queue = opts.queue as string;
  const context = `consuming queue ${queue} on ${where(opts)} (partition ${partition.id})`;
  const toRow = rowBuilder(opts);
  const dlx = opts.dead_letter_exchange !== undefined;
  const maxRedeliveries = opts.max_redeliveries;
  let committed = committedCount(ctx.resumeFrom);
  let buffer: ConsumeMessage[] = [];
  let failure: WeirError | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const fail = (error: WeirError) => {
    failure ??= error;
    notify();
  };
  const onAbort = () => notify();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  let model: ChannelModel | undefined;
  let channel: Channel | undefined;
  let closing = false;
  try {
    model = await connect(opts, ctx, `weir:${ctx.pipeline}:${partition.id}`);
    model.on('close', (error?: Error) => {
      if (closing) return;
      const e = classify(
        error ?? new Error('Connection closed'),
        `${context}: the connection was lost; unacknowledged messages return to the queue`,
      );
      fail(e.retryable ? e : new WeirError(e.message, { code: 'connection_lost', retryable: true, cause: error }));
    });
    await prepareQueue(model, opts);
    const ch = await model.createChannel();
    channel = ch;
    ch.on('error', () => {});
    ch.on('close', () => {
      if (!closing)
        fail(
          new WeirError(`${context}: the channel was closed by the broker; unacknowledged messages return to the queue`, {
            code: 'channel_closed',
            retryable: true,
          }),
        );
    });
    await ch.prefetch(opts.prefetch);
    await ch.consume(
      queue,
      (msg) => {
        if (msg === null) {
          // basic.cancel from the broker: the queue was deleted, or its node went down
          fail(
            new WeirError(`${context}: the broker cancelled the consumer (the queue was deleted or is unavailable)`, {
              code: 'consumer_cancelled',
              retryable: true,
            }),
          );
          return;
        }
        buffer.push(msg);
        if (buffer.length === 1) notify();
      },
      { noAck: false, consumerTag: `weir.${ctx.pipeline}.${partition.id}.${ctx.attempt}.${process.pid}` },
    );

    let lag: number | undefined;
    let lagAt = 0;
    let lagInFlight = false;
    const sampleLag = () => {
      const now = performance.now();
      if (lagInFlight || now - lagAt < LAG_EVERY_MS) return;
      lagInFlight = true;
      lagAt = now;
      ch.checkQueue(queue).then(
        (q) => {
          lag = q.messageCount;
          lagInFlight = false;
        },
        () => {
          lagInFlight = false; // the channel is gone: the consumer fails on its own
        },
      );
    };
    const offsets = (): JsonValue => ({ messages: committed });

    for (;;) {
      if (ctx.signal.aborted) return;
      if (failure) throw failure;
      if (buffer.length === 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, opts.idle_heartbeat);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
        if (ctx.signal.aborted) return;
        if (failure) throw failure;
        if (buffer.length === 0) {
          sampleLag();
          yield { rows: [], offsets: offsets(), ...(lag !== undefined ? { lag } : {}) };
          continue;
        }
      }
      let taken: ConsumeMessage[];
      if (buffer.length <= MAX_CHUNK) {
        taken = buffer;
        buffer = [];
      } else taken = buffer.splice(0, MAX_CHUNK);
      const rows: Row[] = [];
      let ackTo = 0;
      const nacks: number[] = [];
      for (const msg of taken) {
        const tag = msg.fields.deliveryTag;
        if (maxRedeliveries !== undefined && redeliveries(msg) > maxRedeliveries) {
          nacks.push(tag);
          ctx.log.warn('message redelivered more than max_redeliveries: sent to the dead-letter exchange', {
            queue,
            delivery_tag: tag,
            redeliveries: redeliveries(msg),
            max_redeliveries: maxRedeliveries,
            dead_letter_exchange: opts.dead_letter_exchange,
          });
          continue;
        }
        let row: Row;
        try {
          row = toRow(msg);
        } catch (error) {
          if (!(error instanceof RowError)) throw error;
          await ctx.reject(describeMessage(queue, msg), error); // throws when the error policy does not tolerate it
          if (dlx) nacks.push(tag);
          else ackTo = tag;
          continue;
        }
        rows.push(row);
        ackTo = tag;
      }
      committed += rows.length;
      const through = ackTo;
      const toNack = nacks.length > 0 ? nacks : undefined;
      sampleLag();
      yield {
        rows,
        offsets: offsets(),
        ...(lag !== undefined ? { lag } : {}),
        ack: () => {
          try {
            if (toNack) for (const tag of toNack) ch.nack({ fields: { deliveryTag: tag } } as ConsumeMessage, false, false);
            if (through > 0) ch.ack({ fields: { deliveryTag: through } } as ConsumeMessage, true);
          } catch (error) {
            throw classify(error, `${context}: acknowledging messages up to delivery tag ${through}`);
          }
        },
      };
    }
  } catch (error) {
    if (ctx.signal.aborted && !(error instanceof WeirError && !error.retryable)) return;
    throw classify(error, context);
  } finally {
    closing = true;
    ctx.signal.removeEventListener('abort', onAbort);
    // the channel first: its close-ok comes after the broker handled every acknowledgement sent
    // before it (closing the connection at once can drop the last ones)
    if (channel && !failure) await closeChannel(channel);
    await release(model);
  }
}
