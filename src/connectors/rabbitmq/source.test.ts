/**
 * The rabbitmq source against the real broker: chunks acknowledged only by their
 * `ack` (after the epoch's commit), unacknowledged messages back in the queue when the
 * consumer goes away, lossless JSON, bad payloads as row errors (and to the DLX), the
 * redelivery limit, metadata fields, lag, and clear errors.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '../../../test/helpers/services.js';
import type { Source, StreamChunk, TaskContext } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import { connectorOptions, messageOf, planContext, taskContext } from '../../sdk/testing.js';
import { Decimal } from '../../sdk/values.js';
import rabbitmq from './index.js';
import { type Admin, adminConnection } from './test-queues.js';

const up = await requireService('rabbitmq');
const prefix = `weirtest_amqp_src_${randomBytes(4).toString('hex')}`;
let admin: Admin;

const source = (input: Record<string, unknown>): Source =>
  rabbitmq.source?.(connectorOptions(rabbitmq, { idle_heartbeat: '150ms', ...input }, 'source')) ?? expect.unreachable();

/** Reads until idle, runs `during` with the chunks while the consumer is still open (acks must run then), then closes it. */
/**
 * Reads chunks until the source's first idle heartbeat after at least `atLeast` rows: a broker
 * that is still redelivering (a consumer just went away) may leave a gap long enough for one
 * heartbeat before the rest arrives.
 */
async function consumeUntilIdle(
  src: Source,
  during: (chunks: StreamChunk[], heartbeat: StreamChunk) => Promise<void> = async () => {},
  ctx: TaskContext = taskContext({ baseDir: '.' }),
  atLeast = 0,
): Promise<StreamChunk[]> {
  const chunks: StreamChunk[] = [];
  let rows = 0;
  const it = (src.stream as NonNullable<Source['stream']>)({ id: ctx.partitionId }, ctx)[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await it.next();
      if (next.done) throw new Error('the stream ended');
      if (next.value.rows.length === 0 && !next.value.ack && rows >= atLeast) {
        await during(chunks, next.value);
        return chunks;
      }
      if (next.value.rows.length === 0 && !next.value.ack) continue;
      chunks.push(next.value);
      rows += next.value.rows.length;
    }
  } finally {
    await it.return?.(undefined);
  }
}

const rowsOf = (chunks: StreamChunk[]) => chunks.flatMap((c) => c.rows);
const ackAll = async (chunks: StreamChunk[]) => {
  for (const c of chunks) await c.ack?.();
};
/** Waits until the broker's view settles (acks are asynchronous: no reply). */
async function depthEventually(queue: string, want: number): Promise<number | undefined> {
  let got: number | undefined;
  for (let i = 0; i < 50; i++) {
    got = (await admin.depth(queue))?.messageCount;
    if (got === want) return got;
    await new Promise((r) => setTimeout(r, 50));
  }
  return got;
}

describe('rabbitmq options', () => {
  const issues = (input: Record<string, unknown>, role: 'source' | 'sink') =>
    (() => {
      try {
        connectorOptions(rabbitmq, input, role);
        return '';
      } catch (error) {
        return (error as Error).message;
      }
    })();

  it('say what a role needs, naming the option and the fix', () => {
    expect(issues({}, 'source')).toMatch(/queue is required/);
    expect(issues({ queue: 'q', max_redeliveries: 3 }, 'source')).toMatch(/max_redeliveries .*set dead_letter_exchange/);
    expect(issues({ queue: 'q', arguments: { 'x-max-length': 10 } }, 'source')).toMatch(/set declare: true/);
    expect(issues({ queue: 'q', routing_key: 'x' }, 'source')).toMatch(/routing_key is for a sink/);
    expect(issues({}, 'sink')).toMatch(/routing_key is required/);
    expect(issues({ routing_key: 'a.{x' }, 'sink')).toMatch(/without its "}"/);
    expect(issues({ routing_key: 'a', queue: 'q' }, 'sink')).toMatch(/queue is for a source/);
    expect(issues({ queue: 'q', url: 'http://x' }, 'source')).toMatch(/amqp, amqps/);
    expect(issues({ queue: 'q', url: 'amqp://u:p@h/v', host: 'other' }, 'source')).toMatch(/url already names the broker; remove host/);
    expect(issues({ queue: 'q', declare: true, arguments: { 'x-max-length': 10, 'x-queue-type': 'quorum', lazy: true } }, 'source')).toBe(
      '',
    );
  });

  it('keep queue arguments typed, and hide the url (it holds the password)', () => {
    const opts = connectorOptions(rabbitmq, { queue: 'q', declare: true, arguments: { 'x-max-length': 10 } }, 'source');
    expect(opts.arguments).toEqual({ 'x-max-length': 10 });
    expect(rabbitmq.options.url.meta.secret).toBe(true);
    expect(rabbitmq.options.password.meta.secret).toBe(true);
    const bad = issues({ queue: 'q', url: 'amqp://u:s3cr3t-canary@h/v', port: 'x' }, 'source');
    expect(bad).not.toContain('s3cr3t-canary');
  });
});

describe.skipIf(!up)('rabbitmq source', () => {
  beforeAll(async () => {
    admin = await adminConnection();
  });
  afterAll(() => admin.close());

  it('is unbounded and at-least-once, and has no batch read', () => {
    const src = source({ queue: 'x' });
    expect(src.unbounded).toBe(true);
    expect(src.atLeastOnce).toMatch(/mode: upsert and key/);
    expect(() => src.read({ id: '0' }, taskContext({ baseDir: '.' }))).toThrow(/unbounded/);
  });

  it('acknowledges nothing by reading: a consumer that goes away returns every message to the queue; acks remove exactly the acked chunks', async () => {
    const queue = `${prefix}_acks`;
    await admin.queue(queue);
    await admin.publish(
      queue,
      Array.from({ length: 2500 }, (_, i) => ({ n: i + 1 })),
    );
    const src = source({ queue, prefetch: 3000 });
    // first consumer: reads all, acknowledges nothing, goes away
    const first = await consumeUntilIdle(
      src,
      async () => {
        expect((await admin.depth(queue))?.messageCount).toBe(0); // all delivered, held unacknowledged
      },
      undefined,
      2500,
    );
    expect(rowsOf(first).map((r) => r.n)).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
    expect(Math.max(...first.map((c) => c.rows.length))).toBeLessThanOrEqual(1000); // chunks of at most MAX_CHUNK
    expect(await depthEventually(queue, 2500)).toBe(2500);
    let acked = 0;
    // second consumer: the same messages again, marked redelivered; acknowledges the first two chunks only
    const second = await consumeUntilIdle(
      source({ queue, prefetch: 3000, metadata_fields: ['redelivered'] }),
      async (chunks) => {
        // acknowledge the chunks holding the first 2000 messages
        let n = 0;
        for (const c of chunks) {
          if (n + c.rows.length > 2000) break;
          n += c.rows.length;
          await c.ack?.();
        }
        expect(n).toBeGreaterThan(0);
        acked = n;
      },
      undefined,
      2500,
    );
    expect(rowsOf(second)).toHaveLength(2500);
    expect(second[0]?.rows[0]).toMatchObject({ n: 1, _redelivered: true });
    expect(await depthEventually(queue, 2500 - acked)).toBe(2500 - acked);
    const rest = await admin.drain(queue);
    expect(rest.map((m) => JSON.parse(m.content.toString()).n)).toEqual(Array.from({ length: 2500 - acked }, (_, i) => acked + 1 + i));
  });

  it('holds at most prefetch messages unacknowledged', async () => {
    const queue = `${prefix}_prefetch`;
    await admin.queue(queue);
    await admin.publish(
      queue,
      Array.from({ length: 300 }, (_, i) => ({ n: i })),
    );
    const chunks = await consumeUntilIdle(source({ queue, prefetch: 120 }), async (c) => {
      expect(rowsOf(c)).toHaveLength(120); // the broker hands no more until some are acknowledged
      expect((await admin.depth(queue))?.messageCount).toBe(180);
    });
    expect(rowsOf(chunks)).toHaveLength(120);
  });

  it('parses JSON exactly (big integers, decimals, unicode, nested) and maps a non-object to value', async () => {
    const queue = `${prefix}_json`;
    await admin.queue(queue);
    await admin.publish(queue, [
      '{"id":12345678901234567890,"amount":0.1000000000000000055511151231257827,"name":"Zoë 🚀","tags":["a",null],"n":null,"o":{"k":1.50}}',
      '"just text"',
      '[1,2]',
    ]);
    const chunks = await consumeUntilIdle(source({ queue }), ackAll);
    const [row, text, list] = rowsOf(chunks);
    expect(row?.id).toBe(12345678901234567890n);
    expect(String(row?.amount)).toBe('0.1000000000000000055511151231257827');
    expect(Decimal.is(row?.amount)).toBe(true);
    expect(row?.name).toBe('Zoë 🚀');
    expect(row?.n).toBeNull();
    expect(row?.tags).toEqual(['a', null]);
    expect(text).toEqual({ value: 'just text' });
    expect(list).toEqual({ value: [1, 2] });
  });

  it('a payload that is not JSON is a row error naming the queue, delivery tag and message id; acknowledged with its epoch without a DLX', async () => {
    const queue = `${prefix}_bad`;
    await admin.queue(queue);
    await admin.publish(queue, [{ ok: 1 }]);
    await admin.publish(queue, ['{not json'], { messageId: 'm-42' });
    await admin.publish(queue, [Buffer.from([0xff, 0xfe, 0x7b])]);
    await admin.publish(queue, [{ ok: 2 }]);
    const ctx = taskContext({ baseDir: '.' });
    const chunks = await consumeUntilIdle(source({ queue }), ackAll, ctx);
    expect(rowsOf(chunks)).toEqual([{ ok: 1 }, { ok: 2 }]);
    expect(ctx.rejected).toHaveLength(2);
    expect(messageOf(ctx.rejected[0])).toMatch(
      new RegExp(`message 2 of queue ${queue} \\(routing key "${queue}", message id "m-42"\\) is not JSON`),
    );
    expect(ctx.rejected[0]?.record).toMatchObject({ queue, delivery_tag: 2, message_id: 'm-42', payload: '{not json' });
    expect(messageOf(ctx.rejected[1])).toMatch(/is not UTF-8 text, so not JSON; use format: raw/);
    expect(await depthEventually(queue, 0)).toBe(0);
    expect((await admin.depth(queue))?.messageCount).toBe(0);
  });

  it('a bad payload the policy does not tolerate fails the stream and stays in the queue', async () => {
    const queue = `${prefix}_strict`;
    await admin.queue(queue);
    await admin.publish(queue, ['nope']);
    const ctx = {
      ...taskContext({ baseDir: '.' }),
      reject: async (_r: unknown, e: unknown) => {
        throw e;
      },
    };
    await expect(consumeUntilIdle(source({ queue }), ackAll, ctx)).rejects.toThrow(/is not JSON/);
    expect(await depthEventually(queue, 1)).toBe(1);
  });

  it('with dead_letter_exchange: declares the queue with it, and nacks tolerated bad payloads to it at the ack, not before', async () => {
    const dlx = `${prefix}_dlx`;
    const dlq = `${prefix}_dlq`;
    const queue = `${prefix}_withdlx`;
    await admin.exchange(dlx, 'fanout');
    await admin.queue(dlq);
    await admin.ch.bindQueue(dlq, dlx, '');
    admin.queues.add(queue);
    const src = source({ queue, declare: true, dead_letter_exchange: dlx });
    await src.partitions?.(planContext({ baseDir: '.' }));
    await admin.publish(queue, [{ a: 1 }, 'bad{', { a: 2 }]);
    const ctx = taskContext({ baseDir: '.' });
    await consumeUntilIdle(
      src,
      async (chunks) => {
        expect(ctx.rejected).toHaveLength(1);
        expect((await admin.depth(dlq))?.messageCount).toBe(0); // nothing settled before the ack
        await ackAll(chunks);
      },
      ctx,
    );
    expect(await depthEventually(dlq, 1)).toBe(1);
    const dead = await admin.drain(dlq);
    expect(dead[0]?.content.toString()).toBe('bad{');
    expect((await admin.depth(queue))?.messageCount).toBe(0);
    // a declaration with other arguments than the existing queue's is refused clearly
    const other = source({ queue, declare: true, arguments: { 'x-max-length': 5 }, dead_letter_exchange: dlx });
    await expect(other.partitions?.(planContext({ baseDir: '.' }))).rejects.toThrow(
      /exists on .* with other settings .*make arguments and dead_letter_exchange match/,
    );
  });

  it('a dead_letter_exchange that does not exist is refused (RabbitMQ would drop what goes there)', async () => {
    const queue = `${prefix}_nodlx`;
    await admin.queue(queue);
    await expect(source({ queue, dead_letter_exchange: `${prefix}_missing` }).partitions?.(planContext({ baseDir: '.' }))).rejects.toThrow(
      /dead_letter_exchange "weirtest_amqp_src_.*_missing" does not exist .*drops what it dead-letters/,
    );
  });

  it('max_redeliveries: a quorum queue message delivered too often goes to the DLX at the ack, never as a row', async () => {
    const dlx = `${prefix}_qdlx`;
    const dlq = `${prefix}_qdlq`;
    const queue = `${prefix}_quorum`;
    await admin.exchange(dlx, 'fanout');
    await admin.queue(dlq);
    await admin.ch.bindQueue(dlq, dlx, '');
    admin.queues.add(queue);
    const opts = {
      queue,
      declare: true,
      arguments: { 'x-queue-type': 'quorum' },
      dead_letter_exchange: dlx,
      metadata_fields: ['delivery_count'],
    };
    await source(opts).partitions?.(planContext({ baseDir: '.' }));
    await admin.publish(queue, [{ n: 1 }]);
    const counts: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const chunks = await consumeUntilIdle(source({ ...opts, max_redeliveries: 1 })); // never acknowledged: returned
      counts.push(...rowsOf(chunks).map((r) => r._delivery_count));
      if (i < 2) expect(await depthEventually(queue, 1)).toBe(1);
    }
    // the first delivery has no count, the second counts 1, the third (2 > 1) is held for the DLX and nacked at the ack
    expect(counts).toEqual([null, 1]);
    const last = await consumeUntilIdle(source({ ...opts, max_redeliveries: 1 }), async (chunks) => {
      expect(rowsOf(chunks)).toEqual([]);
      await ackAll(chunks);
    });
    expect(last.length).toBeGreaterThanOrEqual(0);
    expect(await depthEventually(dlq, 1)).toBe(1);
    expect(JSON.parse((await admin.drain(dlq))[0]?.content.toString() ?? '{}')).toEqual({ n: 1 });
  });

  it('format raw gives the payload bytes; metadata fields carry the message properties', async () => {
    const queue = `${prefix}_raw`;
    const exchange = `${prefix}_ex`;
    await admin.exchange(exchange);
    const src = source({
      queue,
      declare: true,
      bind: { exchange, routing_keys: ['raw.*'] },
      format: 'raw',
      metadata_fields: ['routing_key', 'exchange', 'delivery_tag', 'message_id', 'timestamp', 'redelivered', 'delivery_count'],
    });
    admin.queues.add(queue);
    await src.partitions?.(planContext({ baseDir: '.' }));
    admin.ch.publish(exchange, 'raw.a', Buffer.from([0, 1, 255]), { messageId: 'id-1', timestamp: 1_700_000_000 });
    admin.ch.publish(exchange, 'other', Buffer.from('not bound'));
    await (admin.ch as import('amqplib').ConfirmChannel).waitForConfirms();
    const rows = rowsOf(await consumeUntilIdle(src, ackAll));
    expect(rows).toHaveLength(1);
    expect(Array.from(rows[0]?.payload as Uint8Array)).toEqual([0, 1, 255]);
    expect(rows[0]).toMatchObject({
      _routing_key: 'raw.a',
      _exchange: exchange,
      _delivery_tag: 1,
      _message_id: 'id-1',
      _timestamp: new Date(1_700_000_000_000),
      _redelivered: false,
      _delivery_count: null,
    });
  });

  it('sets lag from the queue depth, and heartbeats while idle', async () => {
    const queue = `${prefix}_lag`;
    await admin.queue(queue);
    await admin.publish(
      queue,
      Array.from({ length: 400 }, (_, i) => ({ i })),
    );
    const lags: (number | undefined)[] = [];
    await consumeUntilIdle(source({ queue, prefetch: 100 }), async (chunks, heartbeat) => {
      lags.push(...chunks.map((c) => c.lag), heartbeat.lag);
      expect(heartbeat.offsets).toEqual({ messages: 100 });
    });
    expect(lags.at(-1)).toBe(300); // 100 out unacknowledged, 300 ready
  });

  it('counts committed messages in its offsets from resumeFrom, ignoring offsets it did not write', async () => {
    const queue = `${prefix}_offsets`;
    await admin.queue(queue);
    await admin.publish(queue, [{ a: 1 }, { a: 2 }]);
    const chunks = await consumeUntilIdle(source({ queue }), ackAll, { ...taskContext({ baseDir: '.' }), resumeFrom: { messages: 40 } });
    expect(chunks.at(-1)?.offsets).toEqual({ messages: 42 });
    await admin.publish(queue, [{ a: 3 }]);
    const again = await consumeUntilIdle(source({ queue }), ackAll, { ...taskContext({ baseDir: '.' }), resumeFrom: 'garbage' });
    expect(again.at(-1)?.offsets).toEqual({ messages: 1 });
  });

  it('a missing queue is a clear configuration error; declare creates it durable', async () => {
    const queue = `${prefix}_missing`;
    const err = await Promise.resolve(source({ queue }).partitions?.(planContext({ baseDir: '.' }))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeirError);
    expect((err as WeirError).kind).toBe('config');
    expect((err as Error).message).toMatch(
      new RegExp(`queue ${queue} does not exist on guest@127.0.0.1:5672 \\(vhost /\\); create it, or set declare: true`),
    );
    admin.queues.add(queue);
    await source({ queue, declare: true }).partitions?.(planContext({ baseDir: '.' }));
    expect(await admin.depth(queue)).toEqual({ messageCount: 0, consumerCount: 0 });
  });

  it('several partitions consume one queue: each message read once', async () => {
    const queue = `${prefix}_parts`;
    await admin.queue(queue);
    const src = source({ queue, partitions: 3, prefetch: 50 });
    expect(await src.partitions?.(planContext({ baseDir: '.' }))).toEqual([{ id: '0' }, { id: '1' }, { id: '2' }]);
    const got: number[] = [];
    const readers = ['0', '1', '2'].map((id) =>
      consumeUntilIdle(
        src,
        async (chunks) => {
          got.push(...rowsOf(chunks).map((r) => r.n as number));
          await ackAll(chunks);
        },
        taskContext({ baseDir: '.', partitionId: id }),
      ),
    );
    await new Promise((r) => setTimeout(r, 100)); // all three consume before the messages arrive
    await admin.publish(
      queue,
      Array.from({ length: 120 }, (_, i) => ({ n: i })),
    );
    await Promise.all(readers);
    expect(got.sort((a, b) => a - b)).toEqual(Array.from({ length: 120 }, (_, i) => i));
  });

  it('a refused login names the fix and never shows the password', async () => {
    const canary = `canary-${randomBytes(8).toString('hex')}`;
    const logs: string[] = [];
    const ctx = {
      ...planContext({ baseDir: '.' }),
      log: {
        debug: (m: string) => logs.push(m),
        info: (m: string) => logs.push(m),
        warn: (m: string) => logs.push(m),
        error: (m: string) => logs.push(m),
      },
    };
    for (const input of [
      { queue: 'q', password: canary },
      { queue: 'q', url: `amqp://guest:${canary}@127.0.0.1:5672/` },
    ]) {
      const err = (await Promise.resolve(source(input).partitions?.(ctx)).catch((e: unknown) => e)) as WeirError;
      expect(err.kind).toBe('config');
      expect(err.message).toMatch(/refused the login \(ACCESS_REFUSED\); check user and password/);
      const all = `${err.message} ${err.stack} ${String((err.cause as Error)?.message)} ${(err.cause as Error)?.stack} ${logs.join(' ')}`;
      expect(all).not.toContain(canary);
    }
  });
});
