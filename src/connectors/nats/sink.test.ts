/**
 * The nats sink against the JetStream server on this machine: rows as exact JSON on
 * templated subjects, a batch retried by the runtime stored once (Nats-Msg-Id), bad
 * rows refused before anything is sent, the stream checked or created by the setup.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '../../../test/helpers/services.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import { commitContext, connectorOptions, taskContext } from '../../sdk/testing.js';
import type { Row } from '../../sdk/types.js';
import { Decimal, parseJsonExact } from '../../sdk/values.js';
import nats from './index.js';
import { subjectsOf } from './spec.js';
import { type Admin, admin } from './test-streams.js';

const up = await requireService('nats');
let a: Admin;

const sink = (input: Record<string, unknown>) => nats.sink?.(connectorOptions(nats, input, 'sink')) ?? expect.unreachable();

/** Every message of a stream: subject, headers and parsed payload. */
async function messages(stream: string) {
  const c = await a.jsm.consumers.add(stream, { ack_policy: 'none' as never, inactive_threshold: 60_000_000_000 });
  const consumer = await a.js.consumers.get(stream, c.name);
  const total = (await a.jsm.streams.info(stream)).state.messages;
  const out: { subject: string; id: string | undefined; body: unknown }[] = [];
  if (total === 0) return out;
  const it = await consumer.fetch({ max_messages: total, expires: 5000 });
  for await (const m of it) {
    out.push({ subject: m.subject, id: m.headers?.get('Nats-Msg-Id'), body: parseJsonExact(m.string()) });
    if (out.length === total) break;
  }
  return out;
}

describe('subjects a created stream captures', () => {
  it('replace each token holding a field by *', () => {
    expect(subjectsOf('orders.{region}.created')).toEqual(['orders.*.created']);
    expect(subjectsOf('events')).toEqual(['events']);
    expect(subjectsOf('a.x{id}y.{{lit}}')).toEqual(['a.*.{lit}']);
  });
});

describe.skipIf(!up)('nats sink', () => {
  beforeAll(async () => {
    a = await admin();
  });
  afterAll(() => a?.close());

  it('streams, and publishes rows as exact JSON to the subjects their fields render', async () => {
    const stream = await a.stream('sink');
    const s = sink({ stream, subject: `${stream}.{region}.created` });
    expect(s.streaming).toBe(true);
    await s.setup?.(commitContext({ baseDir: '.' }));
    const ctx = taskContext({ baseDir: '.' });
    const w = await s.writer({ id: '0' }, ctx);
    const rows: Row[] = [
      { id: 1, region: 'eu', amount: Decimal.parse('12345678901234567890.123456789'), big: 123456789012345678901234567890n, note: null },
      { id: 2, region: 'us', at: new Date('2024-01-02T03:04:05.678Z'), bytes: new Uint8Array([1, 2]) },
    ];
    await w.write(rows);
    expect(await w.commit?.()).toEqual({ partition_id: '0', rows: 2, duplicates: 0 });
    await w.close?.();
    expect(ctx.bytes).toBeGreaterThan(50);
    const got = await messages(stream);
    expect(got.map((m) => m.subject)).toEqual([`${stream}.eu.created`, `${stream}.us.created`]);
    const first = (got[0]?.body ?? {}) as Record<string, unknown>;
    expect((first.amount as Decimal).text).toBe('12345678901234567890.123456789');
    expect(first.big).toBe(123456789012345678901234567890n);
    expect(first.note).toBeNull();
    expect((got[1]?.body as Record<string, unknown> | undefined)?.at).toBe('2024-01-02T03:04:05.678Z');
    expect(got[0]?.id).toMatch(/^weir\.test-run\.0\.[0-9a-f]{12}\.1\.0$/);
    expect(got[1]?.id).toMatch(/\.1\.1$/);
  });

  it('stores a batch written again (a retry) once: the stream deduplicates its message ids', async () => {
    const stream = await a.stream('dedup');
    const s = sink({ stream, subject: `${stream}.x` });
    const w = await s.writer({ id: '3' }, taskContext({ baseDir: '.' }));
    const batch: Row[] = Array.from({ length: 100 }, (_, i) => ({ i }));
    await w.write(batch);
    await w.write(batch); // the runtime retries a batch with the same rows
    await w.write(batch.slice(0, 10)); // another batch: other ids
    expect(await w.commit?.()).toEqual({ partition_id: '3', rows: 210, duplicates: 100 });
    await w.close?.();
    expect((await a.jsm.streams.info(stream)).state.messages).toBe(110);
  });

  it('fails a batch with a row error before sending anything when a row cannot render its subject', async () => {
    const stream = await a.stream('badrow');
    const s = sink({ stream, subject: `${stream}.{kind}` });
    const w = await s.writer({ id: '0' }, taskContext({ baseDir: '.' }));
    try {
      for (const bad of [{ kind: 'a b' }, { kind: '*' }, { kind: '' }, { other: 1 }]) {
        const error = await Promise.resolve(w.write([{ kind: 'ok' }, bad as Row])).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(RowError);
        expect((error as Error).message).toMatch(/subject|kind/);
      }
    } finally {
      await w.close?.();
    }
    expect((await a.jsm.streams.info(stream)).state.messages).toBe(0);
  });

  it('refuses a missing stream at setup with a config error naming it, or creates it with create_stream', async () => {
    const name = `weirtest_nats_created_${Date.now().toString(36)}`;
    const missing = await Promise.resolve(sink({ stream: name, subject: `${name}.{k}` }).setup?.(commitContext({ baseDir: '.' }))).catch(
      (e: unknown) => e,
    );
    expect(missing).toBeInstanceOf(WeirError);
    expect((missing as WeirError).kind).toBe('config');
    expect((missing as Error).message).toMatch(new RegExp(`stream ${name} does not exist .*create_stream: true`));
    a.streams.add(name);
    await sink({ stream: name, subject: `${name}.{k}.v1`, create_stream: true, duplicate_window: '5m' }).setup?.(
      commitContext({ baseDir: '.' }),
    );
    const info = await a.jsm.streams.info(name);
    expect(info.config.subjects).toEqual([`${name}.*.v1`]);
    expect(info.config.duplicate_window).toBe(300_000_000_000);
  });

  it('names the stream and the fix when no stream captures the subject', async () => {
    const stream = await a.stream('nocapture');
    const w = await sink({ stream, subject: 'weirtest_nats_nowhere.{k}', publish_timeout: '2s' }).writer(
      { id: '0' },
      taskContext({ baseDir: '.' }),
    );
    try {
      const error = await Promise.resolve(w.write([{ k: 'a' }])).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WeirError);
      expect((error as Error).message).toMatch(new RegExp(`stream ${stream}.*weirtest_nats_nowhere\\.a`));
    } finally {
      await w.close?.();
    }
  });
});
