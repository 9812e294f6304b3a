/** The redis sink's sending: pipelines in flight, checks before anything is sent, command_timeout. */
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '../../../test/helpers/services.js';
import { validateConnectorOptions } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import { connectorOptions, taskContext } from '../../sdk/testing.js';
import type { Row } from '../../sdk/types.js';
import redis from './index.js';
import { stagePrefix } from './sink.js';
import { adminClient, dropKeysAndClose } from './test-keys.js';

const up = await requireService('redis');
const prefix = `weirtest:${randomBytes(4).toString('hex')}`;

/**
 * Writes `batches` as partition 0 of a fresh run (`runId`), then commits the job.
 * On a failure the staged keys are left for the test to see: `abort` takes them back.
 */
async function write(input: Record<string, unknown>, batches: Row[][], runId = `test-${randomBytes(4).toString('hex')}`) {
  const sink = redis.sink?.(connectorOptions(redis, input, 'sink')) ?? expect.unreachable();
  const ctx = taskContext({ baseDir: '.', partitionId: '0', runId });
  const writer = await sink.writer({ id: '0' }, ctx);
  try {
    for (const b of batches) await writer.write(b);
    const message = (await writer.commit?.()) ?? null;
    await sink.commit?.([message], ctx);
    return message;
  } finally {
    await writer.close?.();
  }
}

/** The job abort of run `runId`. */
async function abort(input: Record<string, unknown>, runId: string) {
  const sink = redis.sink?.(connectorOptions(redis, input, 'sink')) ?? expect.unreachable();
  await sink.abort?.([], taskContext({ baseDir: '.', partitionId: '0', runId }));
}

const rows = (n: number): Row[] => Array.from({ length: n }, (_, i) => ({ id: i + 1, name: `u${i + 1}` }));

/**
 * A server that completes ioredis' handshake (HELLO, CLIENT …, INFO for the ready
 * check), then answers each write `writeDelayMs` after the previous answer, or
 * never when it is undefined.
 */
async function slowServer(writeDelayMs?: number): Promise<{ port: number; server: Server }> {
  let answered = Promise.resolve();
  const answer = (socket: Socket, name: string) => {
    if (name === 'hello') socket.write('%1\r\n+proto\r\n:3\r\n');
    else if (name === 'info') socket.write('$9\r\nloading:0\r\n');
    else if (name === 'client' || name === 'select') socket.write('+OK\r\n');
    else if (name === 'scan')
      socket.write('*2\r\n$1\r\n0\r\n*0\r\n'); // the job commit: nothing staged
    else if (writeDelayMs !== undefined) {
      const reply = name === 'type' ? '+none\r\n' : ':1\r\n';
      answered = answered.then(() => new Promise((resolve) => setTimeout(() => resolve(void socket.write(reply)), writeDelayMs)));
    }
  };
  const server = createServer((socket) => {
    let buffer = '';
    socket.on('data', (data) => {
      buffer += data.toString('latin1');
      for (;;) {
        const command = takeCommand(buffer);
        if (!command) break;
        buffer = buffer.slice(command.length);
        answer(socket, command.name);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

/** The first complete RESP command of `buffer`: its name and its length in characters. */
function takeCommand(buffer: string): { name: string; length: number } | undefined {
  let at = buffer.indexOf('\r\n');
  if (buffer[0] !== '*' || at < 0) return undefined;
  const count = Number(buffer.slice(1, at));
  at += 2;
  let name = '';
  for (let i = 0; i < count; i++) {
    const end = buffer.indexOf('\r\n', at);
    if (end < 0) return undefined;
    const size = Number(buffer.slice(at + 1, end));
    if (buffer.length < end + 2 + size + 2) return undefined;
    if (i === 0) name = buffer.slice(end + 2, end + 2 + size).toLowerCase();
    at = end + 2 + size + 2;
  }
  return { name, length: at };
}

describe('redis sink options', () => {
  it('pipelines_in_flight must be a positive integer', () => {
    const message = validateConnectorOptions(redis, { mode: 'hash', key: 'u:{id}', pipelines_in_flight: 0 }, 'sink')
      .issues.map((i) => `${i.path}: ${i.message}`)
      .join('\n');
    expect(message).toMatch(/pipelines_in_flight: must be a whole number between 1 and 1000; got 0/);
  });

  it('command_timeout: a server that stops answering fails the batch with a retryable error', async () => {
    const { port, server } = await slowServer();
    try {
      const started = Date.now();
      const error = await write({ mode: 'hash', key: 'u:{id}', port, command_timeout: '200ms' }, [rows(10)]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WeirError);
      expect((error as WeirError).retryable).toBe(true);
      expect((error as WeirError).message).toMatch(/no reply within 200 ms \(command_timeout\)/);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      server.close();
    }
  });

  it('command_timeout bounds the wait for each reply, not the whole batch', async () => {
    const { port, server } = await slowServer(30);
    try {
      const started = Date.now();
      const input = { mode: 'hash', key: 'u:{id}', port, command_timeout: '150ms', pipeline_depth: 1, pipelines_in_flight: 1 };
      expect(await write(input, [rows(10)])).toEqual({ partition_id: '0', rows: 10 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    } finally {
      server.close();
    }
  });
});

describe.skipIf(!up)('redis sink sending', () => {
  let admin: Redis;
  beforeAll(async () => {
    admin = await adminClient();
  });
  afterAll(() => dropKeysAndClose(admin, prefix));

  it('sends pipelines_in_flight pipelines at most: a failed pipeline stops the batch before the next is built', async () => {
    for (const inFlight of [1, 3]) {
      const input = { mode: 'hash', key: `${prefix}:f${inFlight}:{id}`, pipeline_depth: 5, pipelines_in_flight: inFlight };
      const runId = `test-${randomBytes(4).toString('hex')}`;
      const staged = `${stagePrefix('test', runId)}${prefix}:f${inFlight}:`;
      await admin.set(`${staged}2`, 'a string'); // row 2's staged key, in the first pipeline: WRONGTYPE
      const error = await write(input, [rows(30)], runId).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RowError);
      expect((error as RowError).code).toBe('WRONGTYPE');
      const written = [];
      for (let id = 1; id <= 30; id++) if ((await admin.type(`${staged}${id}`)) === 'hash') written.push(id);
      // the pipelines already in flight ran (a pipeline is not a transaction); none was sent after the failure
      const sent = Array.from({ length: 5 * inFlight }, (_, i) => i + 1).filter((id) => id !== 2);
      expect(written).toEqual(sent);
      await abort(input, runId);
      expect(await admin.keys(`${staged}*`)).toEqual([]);
    }
  });

  it('writes a batch larger than what is in flight, hash and stream, with ttl', async () => {
    const key = `${prefix}:big:{id}`;
    expect(await write({ mode: 'hash', key, ttl: '1h', pipeline_depth: 7, pipelines_in_flight: 2 }, [rows(100), rows(3)])).toEqual({
      partition_id: '0',
      rows: 103,
    });
    expect(await admin.hgetall(`${prefix}:big:100`)).toEqual({ id: '100', name: 'u100' });
    expect(await admin.pttl(`${prefix}:big:100`)).toBeGreaterThan(3_500_000);
    const stream = `${prefix}:s:{name}`;
    await write({ mode: 'stream', stream, ttl: '1h', pipeline_depth: 4, pipelines_in_flight: 1 }, [
      [...rows(10), ...rows(10).map((r) => ({ ...r, name: 'all' }))],
    ]);
    expect(await admin.xlen(`${prefix}:s:all`)).toBe(10);
    expect(await admin.xlen(`${prefix}:s:u7`)).toBe(1);
    expect(await admin.pttl(`${prefix}:s:all`)).toBeGreaterThan(3_500_000);
  });

  it('a bad value anywhere in the batch fails it before anything is sent', async () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const cases: [Record<string, unknown>, Row, RegExp][] = [
      [{ mode: 'hash', key: `${prefix}:d:{id}` }, { id: 99, at: new Date(Number.NaN) }, /field at holds an invalid date/],
      [{ mode: 'stream', stream: `${prefix}:d:events` }, { id: 99, tags: cyclic }, /field tags cannot be written as JSON/],
      [{ mode: 'stream', stream: `${prefix}:d:events` }, { id: null }, /no non-null field/],
      [{ mode: 'json', key: `${prefix}:d:{id}` }, { id: 99, tags: cyclic }, /row cannot be written as JSON/],
    ];
    for (const [input, bad, message] of cases) {
      const error = await write({ ...input, pipeline_depth: 2, pipelines_in_flight: 1 }, [[...rows(20), bad]]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RowError);
      expect((error as RowError).message).toMatch(message);
    }
    expect(await admin.exists(`${prefix}:d:1`, `${prefix}:d:events`)).toBe(0);
  });

  it('lists and objects are written as exact JSON: bigints inside them as number literals', async () => {
    await write({ mode: 'hash', key: `${prefix}:o:{id}` }, [[{ id: 1, big: 2n ** 70n, nested: { n: 2n ** 70n, list: [1, 'a'] } }]]);
    expect(await admin.hgetall(`${prefix}:o:1`)).toEqual({
      id: '1',
      big: '1180591620717411303424',
      nested: '{"n":1180591620717411303424,"list":[1,"a"]}',
    });
  });

  it('stages rows until the job commit; the job abort deletes them and leaves the target keys as they were', async () => {
    const input = { mode: 'hash', key: `${prefix}:st:{id}`, ttl: '1h' };
    await admin.hset(`${prefix}:st:1`, { id: '1', name: 'before', extra: 'kept until the commit' });
    const sink = redis.sink?.(connectorOptions(redis, input, 'sink')) ?? expect.unreachable();
    const runId = `test-${randomBytes(4).toString('hex')}`;
    const ctx = taskContext({ baseDir: '.', partitionId: '0', runId });
    const writer = await sink.writer({ id: '0' }, ctx);
    await writer.write(rows(50));
    const message = (await writer.commit?.()) ?? null;
    await writer.close?.();
    // committed by its partition, not yet by the job: nothing of it is visible
    expect(await admin.hgetall(`${prefix}:st:1`)).toEqual({ id: '1', name: 'before', extra: 'kept until the commit' });
    expect(await admin.exists(`${prefix}:st:2`)).toBe(0);
    expect(await admin.keys(`${stagePrefix('test', runId)}*`)).toHaveLength(50);
    await sink.abort?.([message], ctx);
    await sink.abort?.([message], ctx);
    expect(await admin.keys(`${stagePrefix('test', runId)}*`)).toEqual([]);
    expect(await admin.hgetall(`${prefix}:st:1`)).toEqual({ id: '1', name: 'before', extra: 'kept until the commit' });
    expect(await admin.exists(`${prefix}:st:2`)).toBe(0);
    // a run that commits: its last row of a key replaces the hash, with the ttl from the commit
    await write(input, [rows(50)]);
    expect(await admin.hgetall(`${prefix}:st:1`)).toEqual({ id: '1', name: 'u1' });
    expect(await admin.pttl(`${prefix}:st:50`)).toBeGreaterThan(3_500_000);
  });

  it('stream mode: the job commit appends the staged entries to an existing stream once, however often it runs', async () => {
    const stream = `${prefix}:app`;
    await admin.xadd(stream, '*', 'id', '0', 'name', 'before');
    const input = { mode: 'stream', stream, pipeline_depth: 7, maxlen: 1000 };
    const sink = redis.sink?.(connectorOptions(redis, input, 'sink')) ?? expect.unreachable();
    const ctx = taskContext({ baseDir: '.', partitionId: '0', runId: `test-${randomBytes(4).toString('hex')}` });
    const writer = await sink.writer({ id: '0' }, ctx);
    await writer.write(rows(20));
    const message = (await writer.commit?.()) ?? null;
    await writer.close?.();
    expect(await admin.xlen(stream)).toBe(1);
    await sink.commit?.([message], ctx);
    await sink.commit?.([message], ctx);
    const entries = await admin.xrange(stream, '-', '+');
    expect(entries.map(([, f]) => f[1])).toEqual(['0', ...rows(20).map((r) => String(r.id))]);
    expect(await admin.keys(`${stagePrefix('test', ctx.runId)}*`)).toEqual([]);
  });

  it('a target key of another type fails the batch before anything is staged (WRONGTYPE, a row error)', async () => {
    await admin.set(`${prefix}:wt:events`, 'a string');
    const runId = `test-${randomBytes(4).toString('hex')}`;
    const error = await write({ mode: 'stream', stream: `${prefix}:wt:events` }, [rows(5)], runId).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RowError);
    expect((error as RowError).message).toMatch(/WRONGTYPE key .*wt:events holds a string, not a stream/);
    expect(await admin.keys(`${stagePrefix('test', runId)}*`)).toEqual([]);
  });
});
