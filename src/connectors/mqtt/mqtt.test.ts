/**
 * The mqtt connector against the real Mosquitto (127.0.0.1:1883, and one of the
 * test's own for a password and for limits): options, the source on a persistent
 * session acknowledging only in a chunk's `ack`, the sink, and the checks.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { requireService } from '../../../test/helpers/services.js';
import type { Source, StreamChunk, TaskContext } from '../../sdk/connector.js';
import { validateConnectorOptions } from '../../sdk/connector.js';
import { connectorOptions, messageOf, planContext, taskContext } from '../../sdk/testing.js';
import type { Row } from '../../sdk/types.js';
import { Decimal, stringifyJson } from '../../sdk/values.js';
import { clientIdFrom, sourceClientId } from './client.js';
import mqtt from './index.js';
import {
  dropSession,
  hasMosquitto,
  LOCAL_URL,
  type OwnBroker,
  publishAll,
  sessionHolds,
  startMosquitto,
  testClient,
} from './test-broker.js';

const up = await requireService('mqtt');
const run = randomBytes(4).toString('hex');
const base = `weirtest/mqtt/${run}`;
const sessions: string[] = [];

const sourceOf = (input: Record<string, unknown>): Source => mqtt.source?.(connectorOptions(mqtt, input, 'source')) ?? expect.unreachable();

/** A source of its own client id (dropped after the tests). */
function source(name: string, input: Record<string, unknown> = {}) {
  const clientId = `weirtest-${run}-${name}`;
  sessions.push(clientId);
  return { clientId, src: sourceOf({ topics: [`${base}/${name}/#`], client_id: clientId, ...input }) };
}

type Reader = AsyncIterator<StreamChunk>;
const open = (src: Source, ctx: TaskContext = taskContext({ baseDir: '.' })): Reader =>
  (src.stream as NonNullable<Source['stream']>)({ id: '0' }, ctx)[Symbol.asyncIterator]();

/** Chunks until `n` rows (or rejects) came, at most `ms`. */
async function take(r: Reader, n: number, ctx?: { rejected: unknown[] }, ms = 10_000): Promise<StreamChunk[]> {
  const out: StreamChunk[] = [];
  const until = performance.now() + ms;
  while (out.reduce((s, c) => s + c.rows.length, 0) + (ctx?.rejected.length ?? 0) < n) {
    if (performance.now() > until) throw new Error(`only ${out.reduce((s, c) => s + c.rows.length, 0)} of ${n} rows within ${ms} ms`);
    const c = (await r.next()).value as StreamChunk;
    if (c.rows.length > 0 || c.ack) out.push(c);
  }
  return out;
}
const rowsOf = (chunks: StreamChunk[]) => chunks.flatMap((c) => c.rows);
const ackAll = async (chunks: StreamChunk[]) => {
  for (const c of chunks) await c.ack?.();
};

describe('mqtt options', () => {
  const check = (input: Record<string, unknown>, role: 'source' | 'sink') =>
    validateConnectorOptions(mqtt, input, role)
      .issues.map((i) => i.message)
      .join('\n');

  it('a source needs topics at QoS 1; a sink a topic template without wildcards', () => {
    expect(check({ topics: ['a/#', 'b/+/c'] }, 'source')).toBe('');
    expect(check({ topics: 'a/#, b/c' }, 'source')).toBe('');
    expect(check({}, 'source')).toMatch(/topics is required for a source/);
    expect(check({ topics: ['a/#'], qos: 2 }, 'source')).toMatch(/qos 2 is not supported by the source.*set qos: 1/);
    expect(check({ topics: ['a/#/b'] }, 'source')).toMatch(/# must be a whole last level/);
    expect(check({ topics: ['a/b+'] }, 'source')).toMatch(/\+ must be a whole level/);
    expect(check({ topic: 'devices/{id}', qos: 2, retain: true }, 'sink')).toBe('');
    expect(check({ topics: ['a'] }, 'sink')).toMatch(/topics is the source option/);
    expect(check({ topic: 'devices/+/{id}' }, 'sink')).toMatch(/holds a wildcard/);
    expect(check({ topic: 'devices/{id' }, 'sink')).toMatch(/has a "\{" without its "\}"/);
  });

  it('refuses credentials in the url (without showing them), a password without a user, TLS on mqtt://', () => {
    const canary = `canary-${run}`;
    const message = check({ topics: ['a'], url: `mqtt://u:${canary}@host:1883` }, 'source');
    expect(message).toMatch(/url holds credentials; remove them from the url and set username and password/);
    expect(message).not.toContain(canary);
    expect(check({ topics: ['a'], password: 'x' }, 'source')).toMatch(/password is set without username/);
    expect(check({ topics: ['a'], url: 'mqtt://h:1883', ssl_enabled: true, ssl_ca_cert: 'ca.pem' }, 'source')).toMatch(/not mqtts:\/\//);
    expect(check({ topics: ['a'], url: 'http://h' }, 'source')).toMatch(/schemes mqtt, mqtts, ws, wss/);
  });

  it('the examples of docs/mqtt.md validate, one per role', () => {
    const page = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'mqtt.md'), 'utf8');
    const examples = [...page.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => parse(m[1] as string) as Record<string, { type: string }>);
    const roles = examples.flatMap((e) =>
      (['source', 'sink'] as const).filter((role) => e[role]?.type === 'mqtt').map((role) => ({ role, options: e[role] })),
    );
    expect(roles.map((r) => r.role)).toEqual(['source', 'sink']);
    for (const { role, options } of roles) expect(validateConnectorOptions(mqtt, options, role, role, ['type']).issues).toEqual([]);
  });

  it('derives a stable client id from the pipeline id', () => {
    const opts = connectorOptions(mqtt, { topics: ['a'] }, 'source');
    expect(sourceClientId(opts, 'orders')).toBe('weir-orders');
    expect(sourceClientId(opts, 'orders')).toBe(sourceClientId(opts, 'orders'));
    expect(clientIdFrom('weir-a b/c')).toMatch(/^weir-a_b_c-[0-9a-f]{12}$/);
    expect(sourceClientId(connectorOptions(mqtt, { topics: ['a'], client_id: 'mine' }, 'source'), 'orders')).toBe('mine');
  });
});

describe.skipIf(!up)('mqtt source on a persistent session', () => {
  let pub: MqttClient;
  beforeAll(async () => {
    pub = await testClient();
  });
  afterAll(async () => {
    await pub?.endAsync();
    for (const id of sessions) await dropSession(id).catch(() => {});
  });

  it('is unbounded, has no batch read, sets no lag, and says why exactly-once cannot hold', () => {
    const { src } = source('shape');
    expect(src.unbounded).toBe(true);
    expect(src.atLeastOnce).toMatch(/MQTT has no offsets.*delivery: at-least-once.*mode: upsert and key_columns/);
    expect(() => src.read({ id: '0' }, taskContext({ baseDir: '.' }))).toThrow(/unbounded: it is read through stream\(\)/);
  });

  it('parses JSON payloads exactly; a non-object lands in payload; bad JSON is a row error naming topic and message', async () => {
    const { src } = source('json', { metadata_fields: ['topic', 'retain', 'message_id', 'received_at'] });
    const ctx = taskContext({ baseDir: '.' });
    const r = open(src, ctx);
    try {
      await r.next(); // connected and subscribed: the first heartbeat
      const before = Date.now();
      await publishAll(pub, `${base}/json/a`, [
        '{"id":1,"amount":12345678901234567890.000000000000000001,"big":123456789012345678901234567890,"text":"é\\u0000x","n":null}',
        '[1,2]',
        'not json {',
      ]);
      const chunks = await take(r, 3, ctx);
      const rows = rowsOf(chunks);
      expect(rows).toHaveLength(2);
      const first = rows[0] as Row;
      expect(Decimal.is(first.amount)).toBe(true);
      expect(stringifyJson({ amount: first.amount, big: first.big })).toBe(
        '{"amount":12345678901234567890.000000000000000001,"big":123456789012345678901234567890}',
      );
      expect(first).toMatchObject({ id: 1, text: 'é\u0000x', n: null, _topic: `${base}/json/a`, _retain: false });
      expect(typeof first._message_id).toBe('number');
      expect((first._received_at as Date).getTime()).toBeGreaterThanOrEqual(before - 5);
      expect(rows[1]?.payload).toEqual([1, 2]);
      expect(ctx.rejected).toHaveLength(1);
      expect(messageOf(ctx.rejected[0])).toMatch(new RegExp(`message \\d+ on topic ${base}/json/a is not JSON.*format: raw`));
      expect(chunks.every((c) => c.lag === undefined)).toBe(true);
      await ackAll(chunks);
    } finally {
      await r.return?.(undefined);
    }
  });

  it('format raw gives the payload bytes', async () => {
    const { src } = source('raw', { format: 'raw', payload_field: 'body' });
    const r = open(src);
    try {
      await r.next();
      await publishAll(pub, `${base}/raw/x`, [Buffer.from([0, 255, 1, 2])]);
      const chunks = await take(r, 1);
      expect(rowsOf(chunks)[0]?.body).toEqual(new Uint8Array([0, 255, 1, 2]));
      await ackAll(chunks);
    } finally {
      await r.return?.(undefined);
    }
  });

  it('acknowledges only in a chunk’s ack: unacknowledged messages come again on the next connection, acknowledged ones do not', async () => {
    const { src } = source('ack', { fetch_size: 10 });
    let r = open(src);
    await r.next();
    await publishAll(
      pub,
      `${base}/ack/t`,
      Array.from({ length: 30 }, (_, i) => JSON.stringify({ n: i + 1 })),
    );
    let chunks = await take(r, 30);
    expect(chunks.every((c) => c.rows.length <= 10)).toBe(true);
    // the first 10 committed and acknowledged, the rest never (the attempt failed)
    const acked = chunks.slice(0, 1);
    await ackAll(acked);
    const ackedN = rowsOf(acked).map((x) => Number(x.n));
    await new Promise((res) => setTimeout(res, 200)); // the PUBACKs reach the broker before the socket closes
    await r.return?.(undefined);
    r = open(src);
    try {
      chunks = await take(r, 30 - ackedN.length);
      const again = rowsOf(chunks).map((x) => Number(x.n));
      expect(again.sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1).filter((n) => !ackedN.includes(n)));
      await ackAll(chunks);
      await new Promise((res) => setTimeout(res, 200));
    } finally {
      await r.return?.(undefined);
    }
    expect(await sessionHolds(`weirtest-${run}-ack`, LOCAL_URL, 500)).toEqual([]);
  });

  it('messages published while weir was down arrive when it returns (the session kept them)', async () => {
    const { src, clientId } = source('offline');
    let r = open(src);
    await r.next(); // the subscription exists
    await r.return?.(undefined);
    await publishAll(pub, `${base}/offline/t`, ['{"n":1}', '{"n":2}', '{"n":3}']);
    r = open(src);
    try {
      const chunks = await take(r, 3);
      expect(rowsOf(chunks).map((x) => x.n)).toEqual([1, 2, 3]);
      await ackAll(chunks);
      await new Promise((res) => setTimeout(res, 200));
    } finally {
      await r.return?.(undefined);
    }
    expect(await sessionHolds(clientId, LOCAL_URL, 500)).toEqual([]);
  });

  it('a retained message comes once, when the subscription is new, not again on each restart', async () => {
    await publishAll(pub, `${base}/retained/t`, ['{"state":"on"}'], true);
    const { src } = source('retained', { metadata_fields: ['retain'] });
    let r = open(src);
    let chunks = await take(r, 1);
    expect(rowsOf(chunks)).toEqual([{ state: 'on', _retain: true }]);
    await ackAll(chunks);
    await new Promise((res) => setTimeout(res, 200));
    await r.return?.(undefined);
    r = open(src);
    try {
      for (let i = 0; i < 3; i++) expect(((await r.next()).value as StreamChunk).rows).toEqual([]);
      await publishAll(pub, `${base}/retained/t`, ['{"state":"off"}']);
      chunks = await take(r, 1);
      expect(rowsOf(chunks)).toEqual([{ state: 'off', _retain: false }]);
      await ackAll(chunks);
    } finally {
      await r.return?.(undefined);
      await pub.publishAsync(`${base}/retained/t`, '', { qos: 1, retain: true }); // clears it
    }
  });
});

describe.skipIf(!up)('mqtt sink', () => {
  let sub: MqttClient;
  const got: { topic: string; payload: string; retain: boolean; qos: number }[] = [];
  beforeAll(async () => {
    sub = await testClient();
    sub.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain, qos: packet.qos }));
    await sub.subscribeAsync(`${base}/sink/#`, { qos: 2 });
  });
  afterAll(() => sub?.endAsync());

  const sinkOf = (input: Record<string, unknown>) => mqtt.sink?.(connectorOptions(mqtt, input, 'sink')) ?? expect.unreachable();

  it('publishes each row as exact JSON to its templated topic, at QoS 1 and 2, and checks a batch before sending any of it', async () => {
    const rows: Row[] = [
      {
        device: 'a',
        amount: Decimal.fromUnscaled(1000000000000000000001n, 22),
        big: 12345678901234567890n,
        at: new Date('2024-01-02T03:04:05.678Z'),
      },
      { device: 'b', n: null, bytes: new Uint8Array([1, 2]) },
    ];
    const sink = sinkOf({ topic: `${base}/sink/{device}/events`, qos: 2 });
    expect(sink.streaming).toBe(true);
    const ctx = taskContext({ baseDir: '.' });
    const w = await sink.writer({ id: '0' }, ctx);
    try {
      await w.write(rows);
      await expect(w.write([{ device: 'c' }, { other: 1 }])).rejects.toThrow(/row has no value for field device of the key template/);
      expect(await w.commit?.()).toEqual({ partition_id: '0', rows: 2 });
    } finally {
      await w.close?.();
    }
    await expect.poll(() => got.length).toBe(2);
    expect(got.map((m) => m.topic)).toEqual([`${base}/sink/a/events`, `${base}/sink/b/events`]);
    expect(got[0]?.payload).toBe(stringifyJson(rows[0]));
    expect(got[0]?.payload).toContain('"amount":0.1000000000000000000001');
    expect(got[0]?.qos).toBe(2);
    expect(ctx.bytes).toBeGreaterThan(0);
    expect(got.some((m) => m.topic.includes('/c/'))).toBe(false); // the bad batch sent nothing
  });

  it('retain, and format raw publishes a field’s bytes', async () => {
    got.length = 0;
    const w = await sinkOf({ topic: `${base}/sink/raw/{k}`, format: 'raw', payload_field: 'body', retain: true }).writer(
      { id: '0' },
      taskContext({ baseDir: '.' }),
    );
    try {
      await w.write([{ k: 'x', body: new Uint8Array([104, 105]) }]);
      await expect(w.write([{ k: 'y', body: 5 }])).rejects.toThrow(/field body holds number; it must hold bytes or text/);
    } finally {
      await w.close?.();
    }
    await expect.poll(() => got.length).toBe(1);
    const late = await testClient();
    try {
      const retained = new Promise<string>((resolve) => late.on('message', (_t, p) => resolve(p.toString())));
      await late.subscribeAsync(`${base}/sink/raw/x`, { qos: 1 });
      expect(await retained).toBe('hi');
      await late.publishAsync(`${base}/sink/raw/x`, '', { qos: 1, retain: true });
    } finally {
      await late.endAsync();
    }
  });
});

describe.skipIf(!up || !hasMosquitto())('mqtt checks and authentication', () => {
  let broker: OwnBroker;
  const canary = `canary-pw-${run}`;
  beforeAll(async () => {
    broker = await startMosquitto([], { weir: 'right-password' });
  });
  afterAll(() => broker?.stop());

  const checkOf = async (input: Record<string, unknown>, role: 'source' | 'sink') =>
    (await mqtt.check?.(connectorOptions(mqtt, input, role), { ...planContext({ baseDir: '.' }), role })) ?? [];

  it('passes with good credentials, naming the session and the subscriptions', async () => {
    const results = await checkOf({ url: broker.url, username: 'weir', password: 'right-password', topics: [`${base}/check/#`] }, 'source');
    expect(results.map((r) => [r.name, r.ok])).toEqual([
      ['connection', true],
      ['authentication', true],
      ['target', true],
      ['session', true],
    ]);
    expect(results[2]?.message).toMatch(new RegExp(`may subscribe to ${base}/check/# \\(granted QoS 1\\)`));
    expect(results[3]?.message).toMatch(/client id weir-test/);
    const sink = await checkOf({ url: broker.url, username: 'weir', password: 'right-password', topic: `${base}/{id}` }, 'sink');
    expect(sink.every((r) => r.ok)).toBe(true);
  });

  it('a bad password fails authentication with a clear line, never the password — in checks, and in a stream', async () => {
    const input = { url: broker.url, username: 'weir', password: canary, topics: [`${base}/check/#`] };
    const results = await checkOf(input, 'source');
    expect(results.map((r) => [r.name, r.ok])).toEqual([
      ['connection', true],
      ['authentication', false],
    ]);
    expect(results[1]?.message).toMatch(/Bad User Name or Password|Not authorized/);
    expect(results[1]?.message).toMatch(/check username and password/);
    const lines: string[] = [];
    const record = (m: string, f?: unknown) => void lines.push(m, JSON.stringify(f));
    const log = { debug: record, info: record, warn: record, error: record };
    const error = await open(sourceOf({ ...input, client_id: `weirtest-${run}-auth` }), { ...taskContext({ baseDir: '.' }), log })
      .next()
      .catch((e: unknown) => e);
    expect((error as { kind?: string }).kind).toBe('config');
    const all = [JSON.stringify(results), String(error), (error as Error).stack ?? '', JSON.stringify(error), ...lines].join('\n');
    expect(all).not.toContain(canary);
  });

  it('a lost broker is retried for reconnect_timeout, then the stream fails with a retryable error saying so', async () => {
    const own = await startMosquitto();
    const src = sourceOf({
      url: own.url,
      topics: [`${base}/gone/#`],
      client_id: `weirtest-${run}-gone`,
      reconnect_timeout: '1s',
      reconnect_period: '200ms',
    });
    const r = open(src);
    try {
      await r.next();
      await own.stop();
      const t0 = performance.now();
      const error = await (async () => {
        for (;;) await r.next();
      })().catch((e: unknown) => e);
      expect((error as Error).message).toMatch(
        /could not reconnect within reconnect_timeout \(1000 ms\); unacknowledged messages stay with the session/,
      );
      expect((error as { retryable?: boolean }).retryable).toBe(true);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(900);
    } finally {
      await r.return?.(undefined);
    }
  });

  it('Mosquitto drops what a stopped weir misses beyond max_queued_messages (the documented limit)', async () => {
    const own = await startMosquitto(['max_queued_messages 5']);
    try {
      const { src } = { src: sourceOf({ url: own.url, topics: [`${base}/limit/#`], client_id: `weirtest-${run}-limit` }) };
      let r = open(src);
      await r.next(); // subscribed
      await r.return?.(undefined);
      const p = await testClient(own.url);
      await publishAll(
        p,
        `${base}/limit/t`,
        Array.from({ length: 12 }, (_, i) => JSON.stringify({ n: i + 1 })),
      );
      await p.endAsync();
      r = open(src);
      try {
        const chunks = await take(r, 5);
        for (let i = 0; i < 3; i++) chunks.push((await r.next()).value as StreamChunk);
        expect(rowsOf(chunks).map((x) => x.n)).toEqual([1, 2, 3, 4, 5]);
      } finally {
        await r.return?.(undefined);
      }
    } finally {
      await own.stop();
    }
  });

  it('an unreachable broker fails the connection check, naming the broker', async () => {
    await broker.stop();
    const results = await checkOf({ url: broker.url, topics: ['a'], connect_timeout: '2s' }, 'source');
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ name: 'connection', ok: false });
    expect(results[0]?.message).toContain(`cannot connect to MQTT broker 127.0.0.1:${broker.port}`);
    broker = await startMosquitto([], { weir: 'right-password' });
  });
});
