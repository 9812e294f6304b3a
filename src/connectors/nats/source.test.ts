/**
 * The nats source on epochs, against the JetStream server on this machine: exact
 * JSON, bad JSON as a row error, metadata fields, raw payloads, the lag, messages
 * acknowledged only by a chunk's `ack`, messages at or before `ctx.resumeFrom`
 * acknowledged without being yielded, and a consumer placed again after the
 * watermark when a dead run left messages unacknowledged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '../../../test/helpers/services.js';
import type { Source, StreamChunk, TaskContext } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import { connectorOptions, messageOf, planContext, taskContext } from '../../sdk/testing.js';
import { Decimal } from '../../sdk/values.js';
import nats from './index.js';
import { resumePoint } from './source.js';
import { type Admin, admin } from './test-streams.js';

const up = await requireService('nats');
let a: Admin;

const source = (input: Record<string, unknown>): Source =>
  nats.source?.(connectorOptions(nats, { idle_heartbeat: '1s', ...input }, 'source')) ?? expect.unreachable();

/**
 * The chunks of one partition until the first chunk without rows once `want` rows came
 * (the generator is then closed, as the runtime closes it). Acknowledges nothing.
 */
async function chunks(src: Source, want: number, extra: Partial<TaskContext> = {}) {
  await src.partitions?.(planContext({ baseDir: '.' }));
  const ctx = { ...taskContext({ baseDir: '.' }), ...extra };
  const out: StreamChunk[] = [];
  let rows = 0;
  for await (const chunk of (src.stream as NonNullable<Source['stream']>)({ id: '0' }, ctx)) {
    if (chunk.rows.length === 0) {
      // a heartbeat, or messages delivered again (a short ack_wait): done once `want` rows came
      if (rows >= want) break;
      if (!chunk.ack) continue;
    }
    out.push(chunk);
    rows += chunk.rows.length;
  }
  return { out, ctx, rows: out.flatMap((c) => c.rows) };
}

const consumer = (stream: string, durable = 'weir') => a.jsm.consumers.info(stream, durable);

describe('resume points', () => {
  it('are stream sequences; anything else is a config error naming the fix', () => {
    expect(resumePoint({ partitionId: '0', resumeFrom: undefined })).toBeUndefined();
    expect(resumePoint({ partitionId: '0', resumeFrom: 42 })).toBe(42);
    for (const bad of ['42', -1, 1.5, { seq: 1 }]) {
      expect(() => resumePoint({ partitionId: '0', resumeFrom: bad })).toThrow(/not a JetStream stream sequence.*--fresh/);
    }
  });
});

describe.skipIf(!up)('nats source', () => {
  beforeAll(async () => {
    a = await admin();
  });
  afterAll(() => a?.close());

  it('is unbounded and has no batch read', () => {
    const src = source({ stream: 'x' });
    expect(src.unbounded).toBe(true);
    expect(() => src.read({ id: '0' }, taskContext({ baseDir: '.' }))).toThrow(/unbounded/);
  });

  it('reads JSON exactly, with metadata fields under the names given', async () => {
    const stream = await a.stream('json');
    await a.publish(`${stream}.orders.eu`, [
      '{"id": 1, "amount": 12345678901234567890.123456789, "big": 123456789012345678901234567890, "s": "é", "n": null}',
      '{"id": 2, "__proto__": "kept", "list": [1, 2.50]}',
      '"just text"',
    ]);
    const src = source({ stream, metadata_fields: ['subject', 'sequence', 'timestamp', 'redelivered'], sequence_field: 'seq_no' });
    const { rows } = await chunks(src, 3);
    expect(rows).toHaveLength(3);
    const [r1 = {}, r2 = {}, r3 = {}] = rows as Record<string, unknown>[];
    expect(Decimal.is(r1?.amount) && (r1.amount as Decimal).text).toBe('12345678901234567890.123456789');
    expect(r1?.big).toBe(123456789012345678901234567890n);
    expect(r1?.s).toBe('é');
    expect(r1?.n).toBeNull();
    expect(r1?._subject).toBe(`${stream}.orders.eu`);
    expect(r1?.seq_no).toBe(1);
    expect(r1?._timestamp).toBeInstanceOf(Date);
    expect(Math.abs(Date.now() - (r1._timestamp as Date).getTime())).toBeLessThan(60_000);
    expect(r1?._redelivered).toBe(false);
    expect(Object.keys(r2)).toContain('__proto__');
    expect(Object.getOwnPropertyDescriptor(r2, '__proto__')?.value).toBe('kept');
    expect(r3?.value).toBe('just text');
  });

  it('hands a payload that is not JSON to the error policy, naming its subject and sequence, and acknowledges it with its chunk', async () => {
    const stream = await a.stream('bad');
    await a.publish(`${stream}.x`, [{ id: 1 }, '{"id": 2', new Uint8Array([0xff, 0xfe]), { id: 4 }]);
    const { out, rows, ctx } = await chunks(source({ stream }), 2);
    expect(rows.map((r) => r.id)).toEqual([1, 4]);
    const rejected = (ctx as ReturnType<typeof taskContext>).rejected;
    expect(rejected).toHaveLength(2);
    expect(messageOf(rejected[0])).toMatch(new RegExp(`message 2 on subject ${stream}.x of stream ${stream} is not valid JSON`));
    expect(messageOf(rejected[1])).toMatch(/message 3 .* is not valid JSON/);
    for (const c of out) await c.ack?.();
    const info = await consumer(stream);
    expect(info.num_ack_pending).toBe(0);
    expect(info.ack_floor.stream_seq).toBe(4);
  });

  it('gives the payload bytes with format: raw', async () => {
    const stream = await a.stream('raw');
    await a.publish(`${stream}.x`, [new Uint8Array([0, 1, 255]), 'not json']);
    const { rows } = await chunks(source({ stream, format: 'raw', data_field: 'payload' }), 2);
    expect(rows.map((r) => Buffer.from(r.payload as Uint8Array).toString('hex'))).toEqual([
      '0001ff',
      Buffer.from('not json').toString('hex'),
    ]);
  });

  it('acknowledges only in a chunk’s ack, and sets the lag from num_pending', async () => {
    const stream = await a.stream('ack');
    await a.publish(
      `${stream}.x`,
      Array.from({ length: 50 }, (_, i) => ({ i })),
    );
    const { out, rows } = await chunks(source({ stream, batch: 10 }), 50);
    expect(rows).toHaveLength(50);
    expect(out[0]?.lag).toBeGreaterThan(0);
    expect(out[out.length - 1]?.lag).toBe(0);
    expect(out.every((c) => typeof c.offsets === 'number')).toBe(true);
    expect(out[out.length - 1]?.offsets).toBe(50);
    let info = await consumer(stream);
    expect(info.num_ack_pending).toBe(50);
    expect(info.ack_floor.stream_seq).toBe(0);
    await out[0]?.ack?.();
    info = await consumer(stream);
    expect(info.ack_floor.stream_seq).toBe(out[0]?.offsets);
    for (const c of out.slice(1)) await c.ack?.();
    info = await consumer(stream);
    expect(info.num_ack_pending).toBe(0);
    expect(info.ack_floor.stream_seq).toBe(50);
  });

  it('after a run that died unacknowledged, places the consumer after ctx.resumeFrom and skips nothing else', async () => {
    const stream = await a.stream('resume');
    await a.publish(
      `${stream}.x`,
      Array.from({ length: 20 }, (_, i) => ({ i: i + 1 })),
    );
    // a first attempt read all 20 and committed up to 8, then died without acknowledging
    const first = await chunks(source({ stream, batch: 5, metadata_fields: ['sequence'] }), 20);
    expect(first.rows).toHaveLength(20);
    expect((await consumer(stream)).num_ack_pending).toBe(20);
    const second = await chunks(source({ stream, batch: 5, metadata_fields: ['sequence'] }), 12, { resumeFrom: 8 });
    expect(second.rows.map((r) => r._seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 9));
    for (const c of second.out) await c.ack?.();
    const info = await consumer(stream);
    expect(info.num_ack_pending).toBe(0);
    expect(info.ack_floor.stream_seq).toBe(20);
    expect(info.config.ack_policy).toBe('all');
  });

  it('acknowledges every message of a consumer made elsewhere with policy explicit', async () => {
    const stream = await a.stream('explicit');
    await a.publish(
      `${stream}.x`,
      Array.from({ length: 12 }, (_, i) => ({ i: i + 1 })),
    );
    await a.jsm.consumers.add(stream, { durable_name: 'weir', ack_policy: 'explicit' as never });
    const { rows, out } = await chunks(source({ stream, batch: 5 }), 12);
    expect(rows.map((r) => r.i)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    for (const c of out) await c.ack?.();
    const info = await consumer(stream);
    expect(info.config.ack_policy).toBe('explicit');
    expect(info.num_ack_pending).toBe(0);
    expect(info.ack_floor.stream_seq).toBe(12);
  });

  it('places a new consumer after ctx.resumeFrom', async () => {
    const stream = await a.stream('start');
    await a.publish(
      `${stream}.x`,
      Array.from({ length: 10 }, (_, i) => ({ i: i + 1 })),
    );
    const { rows, out } = await chunks(source({ stream, metadata_fields: ['sequence'] }), 4, { resumeFrom: 6 });
    expect(rows.map((r) => r._seq)).toEqual([7, 8, 9, 10]);
    for (const c of out) await c.ack?.();
    expect((await consumer(stream)).ack_floor.stream_seq).toBe(10);
  });

  it('acknowledges a message redelivered at or before ctx.resumeFrom without yielding it', async () => {
    const stream = await a.stream('skip');
    await a.publish(
      `${stream}.x`,
      Array.from({ length: 6 }, (_, i) => ({ i: i + 1 })),
    );
    const opts = { stream, ack_wait: '1s', metadata_fields: ['sequence'] };
    // a first attempt read 1..6 and committed them; its acknowledgements were lost
    expect((await chunks(source(opts), 6)).rows).toHaveLength(6);
    await a.publish(
      `${stream}.x`,
      Array.from({ length: 4 }, (_, i) => ({ i: i + 7 })),
    );
    const src = source(opts);
    const ctx = { ...taskContext({ baseDir: '.' }), resumeFrom: 6 };
    const rows: unknown[] = [];
    const t0 = performance.now();
    for await (const chunk of (src.stream as NonNullable<Source['stream']>)({ id: '0' }, ctx)) {
      rows.push(...chunk.rows.map((r) => r._seq));
      await chunk.ack?.();
      if ((await consumer(stream)).num_ack_pending === 0 && performance.now() - t0 > 1500) break;
      if (performance.now() - t0 > 20_000) break;
    }
    expect(rows).toEqual([7, 8, 9, 10]);
    const info = await consumer(stream);
    expect(info.config.deliver_policy, 'not placed again: 1..6 were delivered again and acknowledged').toBe('all');
    expect(info.ack_floor.stream_seq).toBe(10);
  });

  it('creates the durable with the options given, and filters by subject', async () => {
    const stream = await a.stream('filter');
    await a.publish(`${stream}.a`, [{ k: 'a1' }, { k: 'a2' }]);
    await a.publish(`${stream}.b`, [{ k: 'b1' }]);
    const { rows } = await chunks(source({ stream, durable: 'only_b', filter_subject: `${stream}.b`, ack_wait: '45s' }), 1);
    expect(rows.map((r) => r.k)).toEqual(['b1']);
    const info = await consumer(stream, 'only_b');
    expect(info.config.filter_subject).toBe(`${stream}.b`);
    expect(info.config.ack_wait).toBe(45_000_000_000);
    expect(info.config.ack_policy).toBe('all');
  });

  it('fails with a config error naming a stream that does not exist', async () => {
    const src = source({ stream: 'weirtest_nats_missing_stream' });
    const error = await Promise.resolve(src.partitions?.(planContext({ baseDir: '.' }))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WeirError);
    expect((error as WeirError).kind).toBe('config');
    expect((error as Error).message).toMatch(/stream weirtest_nats_missing_stream does not exist on nats:\/\/127\.0\.0\.1:4222; create it/);
  });
});
