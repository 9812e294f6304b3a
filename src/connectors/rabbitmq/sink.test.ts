/**
 * The rabbitmq sink against the real broker: persistent JSON messages confirmed by
 * the broker, routing keys from a template, message ids stable across a retried batch,
 * unroutable messages an error, a missing exchange a clear error; and the checks.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '../../../test/helpers/services.js';
import type { Writer } from '../../sdk/connector.js';
import type { WeirError } from '../../sdk/errors.js';
import { commitContext, connectorOptions, planContext, taskContext } from '../../sdk/testing.js';
import { Decimal } from '../../sdk/values.js';
import rabbitmq from './index.js';
import { type Admin, adminConnection } from './test-queues.js';

const up = await requireService('rabbitmq');
const prefix = `weirtest_amqp_sink_${randomBytes(4).toString('hex')}`;
let admin: Admin;

const sinkOf = (input: Record<string, unknown>) => rabbitmq.sink?.(connectorOptions(rabbitmq, input, 'sink')) ?? expect.unreachable();
async function writerOf(input: Record<string, unknown>): Promise<Writer> {
  return sinkOf(input).writer({ id: '0' }, taskContext({ baseDir: '.', runId: 'run-1' }));
}

describe.skipIf(!up)('rabbitmq sink', () => {
  beforeAll(async () => {
    admin = await adminConnection();
  });
  afterAll(() => admin.close());

  it('publishes each row as a persistent JSON message with exact values, routed by a template of row fields', async () => {
    const exchange = `${prefix}_ex`;
    await admin.exchange(exchange);
    for (const region of ['eu', 'us']) {
      await admin.queue(`${prefix}_${region}`);
      await admin.ch.bindQueue(`${prefix}_${region}`, exchange, `orders.${region}`);
    }
    const sink = sinkOf({ exchange, routing_key: 'orders.{region}' });
    expect(sink.streaming).toBe(true);
    await sink.setup?.(commitContext({ baseDir: '.' }));
    const w = await sink.writer({ id: '3' }, taskContext({ baseDir: '.', runId: 'r-9' }));
    await w.write([
      {
        id: 1,
        region: 'eu',
        amount: Decimal.parse('12.3400') as Decimal,
        big: 12345678901234567890n,
        at: new Date('2024-01-02T03:04:05.678Z'),
        note: null,
      },
      { id: 2, region: 'us', amount: Decimal.parse('0.1') as Decimal, big: 1n, at: new Date(0), note: 'Zoë "q"' },
      { id: 3, region: 'eu', amount: Decimal.parse('-5') as Decimal, big: -1n, at: new Date(1), note: '' },
    ]);
    expect(await w.commit?.()).toEqual({ partition_id: '3', rows: 3 });
    await w.close?.();
    const eu = await admin.drain(`${prefix}_eu`);
    const us = await admin.drain(`${prefix}_us`);
    expect(eu.map((m) => m.content.toString())).toEqual([
      '{"id":1,"region":"eu","amount":12.3400,"big":12345678901234567890,"at":"2024-01-02T03:04:05.678Z","note":null}',
      '{"id":3,"region":"eu","amount":-5,"big":-1,"at":"1970-01-01T00:00:00.001Z","note":""}',
    ]);
    expect(us.map((m) => JSON.parse(m.content.toString()).note)).toEqual(['Zoë "q"']);
    const props = eu[0]?.properties;
    expect(props?.deliveryMode).toBe(2);
    expect(props?.contentType).toBe('application/json');
    expect(eu[0]?.fields.routingKey).toBe('orders.eu');
    // <run>:<partition>:<writer>:<batch>:<row>
    expect(props?.messageId).toMatch(/^r-9:3:[A-Za-z0-9_-]{8}:1:0$/);
    expect(eu[1]?.properties.messageId).toMatch(/^r-9:3:[A-Za-z0-9_-]{8}:1:2$/);
    expect(us[0]?.properties.messageId).toMatch(/:1:1$/);
  });

  it('gives a retried batch the same message ids, the next batch new ones', async () => {
    const queue = `${prefix}_ids`;
    await admin.queue(queue);
    const w = await writerOf({ routing_key: queue });
    // a write whose confirmation was lost is retried with the same batch: here, a routable batch written twice by hand
    const batch = [{ n: 1 }, { n: 2 }];
    await w.write(batch);
    const first = await admin.drain(queue);
    // the batch number only advances once a batch was confirmed: simulate the retry of an unconfirmed batch
    (w as unknown as { batches: number }).batches--;
    await w.write(batch);
    await w.write([{ n: 3 }]);
    await w.close?.();
    const again = await admin.drain(queue);
    expect(again.slice(0, 2).map((m) => m.properties.messageId)).toEqual(first.map((m) => m.properties.messageId));
    expect(again[2]?.properties.messageId).toMatch(/:2:0$/);
  });

  it('fails a batch with an unroutable message, naming the routing key (RabbitMQ would drop it)', async () => {
    const exchange = `${prefix}_unrouted`;
    await admin.exchange(exchange);
    const w = await writerOf({ exchange, routing_key: 'k.{id}' });
    const err = (await Promise.resolve(w.write([{ id: 7 }])).catch((e: unknown) => e)) as WeirError;
    expect(err.message).toMatch(
      /1 message\(s\) of the batch were unroutable: exchange "weirtest_amqp_sink_.*_unrouted" .*no queue bound for routing key "k.7", so RabbitMQ would drop them/,
    );
    expect(err.retryable).toBe(false);
    await w.close?.();
  });

  it('a row whose routing key field is missing fails before anything is published', async () => {
    const queue = `${prefix}_rowerr`;
    await admin.queue(queue);
    const w = await writerOf({ routing_key: `${queue}{suffix}` });
    await expect(Promise.resolve(w.write([{ suffix: '' }, { other: 1 }]))).rejects.toThrow(/row has no value for field suffix/);
    await w.close?.();
    expect((await admin.depth(queue))?.messageCount).toBe(0);
  });

  it('a missing exchange is a clear configuration error at setup', async () => {
    const err = (await Promise.resolve(
      sinkOf({ exchange: `${prefix}_nope`, routing_key: 'x' }).setup?.(commitContext({ baseDir: '.' })),
    ).catch((e: unknown) => e)) as WeirError;
    expect(err.kind).toBe('config');
    expect(err.message).toMatch(
      /exchange "weirtest_amqp_sink_.*_nope" does not exist on guest@127.0.0.1:5672 \(vhost \/\); declare it first, or fix exchange/,
    );
  });

  it('publishes 20,000 rows in batches under backpressure, all confirmed', async () => {
    const queue = `${prefix}_bulk`;
    await admin.queue(queue);
    const w = await writerOf({ routing_key: queue });
    for (let b = 0; b < 10; b++) await w.write(Array.from({ length: 2000 }, (_, i) => ({ n: b * 2000 + i, pad: 'x'.repeat(200) })));
    await w.close?.();
    expect((await admin.depth(queue))?.messageCount).toBe(20_000);
    await admin.ch.purgeQueue(queue);
  });
});

describe.skipIf(!up)('rabbitmq check', () => {
  const check = (input: Record<string, unknown>, role: 'source' | 'sink') =>
    rabbitmq.check?.(connectorOptions(rabbitmq, input, role), { ...planContext({ baseDir: '.' }), role }) ?? expect.unreachable();

  beforeAll(async () => {
    admin = await adminConnection();
  });
  afterAll(() => admin.close());

  it('passes with the connection, the login and the queue named', async () => {
    const queue = `${prefix}_checked`;
    await admin.queue(queue);
    const results = await check({ queue }, 'source');
    expect(results.map((r) => [r.name, r.ok])).toEqual([
      ['connection', true],
      ['authentication', true],
      ['target', true],
    ]);
    expect(results[0]?.message).toMatch(/connected to 127.0.0.1:5672 \(RabbitMQ \d/);
    expect(results[1]?.message).toBe('logged in as guest on vhost /');
    expect(results[2]?.message).toMatch(new RegExp(`queue ${queue} exists: 0 message\\(s\\) ready, 0 consumer\\(s\\)`));
  });

  it('says a missing queue will be declared, or fails it; fails a missing exchange', async () => {
    const queue = `${prefix}_absent`;
    expect((await check({ queue, declare: true }, 'source'))[2]).toMatchObject({
      ok: true,
      message: expect.stringMatching(/will be declared/),
    });
    expect((await check({ queue }, 'source'))[2]).toMatchObject({
      ok: false,
      message: expect.stringMatching(/does not exist .*set declare: true/),
    });
    const dlx = await check({ queue, declare: true, dead_letter_exchange: `${prefix}_nodlx` }, 'source');
    expect(dlx[3]).toMatchObject({ name: 'dead_letter_exchange', ok: false, message: expect.stringMatching(/drops what it dead-letters/) });
    expect((await check({ exchange: `${prefix}_noex`, routing_key: 'x' }, 'sink'))[2]).toMatchObject({ ok: false });
    expect((await check({ routing_key: 'x' }, 'sink'))[2]).toMatchObject({ ok: true, message: expect.stringMatching(/default exchange/) });
  });

  it('a wrong password fails authentication with a clear line, never the password', async () => {
    const canary = `canary-${randomBytes(8).toString('hex')}`;
    for (const input of [{ password: canary }, { url: `amqp://guest:${canary}@127.0.0.1:5672/%2F` }]) {
      const results = await check({ queue: 'q', ...input }, 'source');
      expect(results.map((r) => [r.name, r.ok])).toEqual([
        ['connection', true],
        ['authentication', false],
      ]);
      expect(results[1]?.message).toMatch(/refused the login \(ACCESS_REFUSED\); check user and password/);
      expect(JSON.stringify(results)).not.toContain(canary);
    }
  });

  it('an unreachable broker fails the connection within connect_timeout', async () => {
    const results = await check({ queue: 'q', port: 1, connect_timeout: '2s' }, 'source');
    expect(results).toEqual([
      { name: 'connection', ok: false, message: expect.stringMatching(/cannot connect to RabbitMQ at guest@127.0.0.1:1 .*ECONNREFUSED/) },
    ]);
  });
});
