import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '../../../test/helpers/services.js';
import { validateConnectorOptions } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import { collect, connectorOptions, planContext, taskContext } from '../../sdk/testing.js';
import type { Row } from '../../sdk/types.js';
import { compileTemplate } from '../shared/template.js';
import { connect } from './client.js';
import redis from './index.js';
import { stagePrefix } from './sink.js';
import { adminClient, dropKeysAndClose } from './test-keys.js';

const up = await requireService('redis');
const prefix = `weirtest:${randomBytes(4).toString('hex')}`;

function options(input: Record<string, unknown>, role: 'source' | 'sink') {
  return connectorOptions(redis, input, role);
}
const issues = (input: Record<string, unknown>, role: 'source' | 'sink') =>
  validateConnectorOptions(redis, input, role)
    .issues.map((i) => i.message)
    .join('\n');

async function write(input: Record<string, unknown>, batches: Row[][], partitionId = '0') {
  const sink = redis.sink?.(options(input, 'sink')) ?? expect.unreachable();
  const ctx = taskContext({ baseDir: '.', partitionId, runId: `test-${randomBytes(4).toString('hex')}` });
  const writer = await sink.writer({ id: partitionId }, ctx);
  try {
    for (const b of batches) await writer.write(b);
    const message = (await writer.commit?.()) ?? null;
    await sink.commit?.([message], ctx);
    return message;
  } catch (error) {
    await writer.abort?.();
    await sink.abort?.([], ctx);
    throw error;
  } finally {
    await writer.close?.();
  }
}

/** Reads keys (hash / json modes: one partition, no stream). */
async function read(input: Record<string, unknown>) {
  const source = redis.source?.(options(input, 'source')) ?? expect.unreachable();
  const ctx = taskContext({ baseDir: '.' });
  const rows = await collect(source.read({ id: '0' }, ctx));
  return { rows, rejected: ctx.rejected };
}

const users = (n: number, from = 1): Row[] =>
  Array.from({ length: n }, (_, i) => ({
    id: from + i,
    name: `u${from + i}`,
    score: (from + i) / 2,
    active: i % 2 === 0,
    tags: ['a'],
    at: new Date(Date.UTC(2024, 0, 1, 0, 0, i)),
  }));

let admin: Redis;

describe('redis key templates', () => {
  it('renders fields and literal braces, and names a missing field', () => {
    const t = compileTemplate('user:{id}:{ region }:{{x}}');
    expect(t.fields).toEqual(['id', 'region']);
    expect(t.render({ id: 7, region: 'eu' })).toBe('user:7:eu:{x}');
    expect(() => t.render({ id: 7 })).toThrow(RowError);
    expect(() => t.render({ id: 7 })).toThrow(/no value for field region/);
    expect(() => t.render({ id: { a: 1 }, region: 'x' })).toThrow(/key fields must be text/);
    expect(() => compileTemplate('user:{id')).toThrow(/without its "}"/);
    expect(() => compileTemplate('user:{}')).toThrow(/empty/);
    expect(() => compileTemplate('user}')).toThrow(/without its "{"/);
  });

  it('validates options at config time', () => {
    expect(issues({ mode: 'hash' }, 'sink')).toMatch(/key is required when mode is hash/);
    expect(issues({ mode: 'hash', key: 'users' }, 'sink')).toMatch(/uses no field, so every row would overwrite the same key/);
    expect(issues({ mode: 'json', key: 'user:{id' }, 'sink')).toMatch(/without its "}"/);
    expect(issues({ mode: 'stream' }, 'sink')).toMatch(/stream is required when mode is stream/);
    expect(issues({ mode: 'stream', stream: 'e', key: 'x:{id}' }, 'sink')).toMatch(/key is for the hash and json modes/);
    expect(issues({ mode: 'hash', key: 'u:{id}', db: 16 }, 'sink')).toMatch(/between 0 and 15/);
    expect(issues({ mode: 'stream' }, 'source')).toMatch(/stream is required/);
    expect(issues({ mode: 'hash', key: 'u:{id}' }, 'source')).toMatch(/key, ttl and maxlen are for a sink/);
    expect(issues({ mode: 'stream', stream: 'e', start: 'latest' }, 'source')).toMatch(/must be 0 \(the whole stream\)/);
    expect(issues({ mode: 'hash', key: 'u:{id}', password: 's3cret-value', ssl_enabled: true }, 'sink')).not.toContain('s3cret-value');
    expect(issues({ mode: 'hash', key: 'u:{id}' }, 'sink')).toBe('');
  });
});

describe('redis connection', () => {
  it('a peer that accepts the connection and never answers fails within connect_timeout (no hang)', async () => {
    const sockets: Socket[] = [];
    const server = createServer((socket) => sockets.push(socket)); // reads, never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const opts = connectorOptions(redis, { port, mode: 'hash', key: 'k:{id}', connect_timeout: '300ms' }, 'sink');
      const t0 = performance.now();
      const error = await connect(opts, { baseDir: '.' }).catch((e: unknown) => e);
      expect(performance.now() - t0).toBeLessThan(3000);
      expect(error).toBeInstanceOf(WeirError);
      expect((error as WeirError).retryable).toBe(true);
      expect((error as WeirError).message).toMatch(/handshake within connect_timeout \(300 ms\)/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe.skipIf(!up)('redis sink and source', () => {
  beforeAll(async () => {
    admin = await adminClient();
  });
  afterAll(() => dropKeysAndClose(admin, prefix));

  it('hash mode: one hash per row, values as text, null fields removed, ttl applied; re-writing is idempotent', async () => {
    const key = `${prefix}:h:user:{id}`;
    expect(await write({ mode: 'hash', key, ttl: '1h', pipeline_depth: 7 }, [users(20), users(5, 21)])).toEqual({
      partition_id: '0',
      rows: 25,
    });
    expect(await admin.hgetall(`${prefix}:h:user:2`)).toEqual({
      id: '2',
      name: 'u2',
      score: '1',
      active: 'false',
      tags: '["a"]',
      at: '2024-01-01T00:00:01.000Z',
    });
    const ttl = await admin.pttl(`${prefix}:h:user:2`);
    expect(ttl).toBeGreaterThan(3_500_000);
    await write({ mode: 'hash', key }, [[{ id: 2, name: null, score: 9 }]]);
    expect(await admin.hgetall(`${prefix}:h:user:2`)).toMatchObject({ id: '2', score: '9' });
    expect(await admin.hexists(`${prefix}:h:user:2`, 'name')).toBe(0);
    await write({ mode: 'hash', key }, [users(25)]);
    expect((await admin.keys(`${prefix}:h:user:*`)).length).toBe(25);
  });

  it('json mode: one JSON string per row under a multi-field key', async () => {
    const key = `${prefix}:j:{name}:{id}`;
    await write({ mode: 'json', key, atomic: true }, [users(3)]);
    expect(JSON.parse((await admin.get(`${prefix}:j:u1:1`)) as string)).toEqual({
      id: 1,
      name: 'u1',
      score: 0.5,
      active: true,
      tags: ['a'],
      at: '2024-01-01T00:00:00.000Z',
    });
    expect(await admin.pttl(`${prefix}:j:u1:1`)).toBe(-1);
  });

  it('a row missing a key field fails its batch before anything of it is written', async () => {
    const key = `${prefix}:m:{id}`;
    const error = await write({ mode: 'json', key }, [[{ id: 1 }, { name: 'no id' }, { id: 3 }]]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RowError);
    expect((error as RowError).message).toMatch(/no value for field id/);
    expect(await admin.exists(`${prefix}:m:1`)).toBe(0);
  });

  it('a key that holds another type is a bad row (WRONGTYPE)', async () => {
    await admin.set(`${prefix}:w:2`, 'a string');
    const error = await write({ mode: 'hash', key: `${prefix}:w:{id}` }, [users(3)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RowError);
    expect((error as RowError).code).toBe('WRONGTYPE');
  });

  it('stream mode: XADD with MAXLEN, one entry per row with its fields as text', async () => {
    const stream = `${prefix}:events`;
    await write({ mode: 'stream', stream, maxlen: 100_000 }, [users(30), users(20, 31)]);
    expect(await admin.xlen(stream)).toBe(50);
    const entries = await admin.xrange(stream, '-', '+');
    expect(entries.map(([, f]) => Number(f[f.indexOf('id') + 1]))).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(entries[1]?.[1]).toEqual([
      'id',
      '2',
      'name',
      'u2',
      'score',
      '1',
      'active',
      'false',
      'tags',
      '["a"]',
      'at',
      '2024-01-01T00:00:01.000Z',
    ]);
  });

  it('stream mode with ttl expires the stream', async () => {
    const stream = `${prefix}:shared`;
    await write({ mode: 'stream', stream, ttl: '1h' }, [users(300)]);
    expect(await admin.xlen(stream)).toBe(300);
    expect(await admin.pttl(stream)).toBeGreaterThan(3_500_000);
  });

  it('scan source: hashes or JSON strings of the keys matching a pattern; bad JSON is rejected', async () => {
    await write({ mode: 'hash', key: `${prefix}:sh:{id}` }, [users(2500)]);
    const { rows } = await read({ mode: 'hash', match: `${prefix}:sh:*`, fetch_size: 500 });
    expect(new Set(rows.map((r) => r._key)).size).toBe(2500);
    expect(rows.find((r) => r._key === `${prefix}:sh:7`)).toMatchObject({ id: '7', name: 'u7' });

    await write({ mode: 'json', key: `${prefix}:sj:{id}` }, [users(3)]);
    await admin.set(`${prefix}:sj:bad`, '{not json');
    await admin.set(`${prefix}:sj:num`, '42');
    await admin.hset(`${prefix}:sj:hash`, 'a', '1'); // another type: not read in json mode
    const json = await read({ mode: 'json', match: `${prefix}:sj:*` });
    expect(json.rows).toHaveLength(4);
    expect(json.rows).toContainEqual({ _key: `${prefix}:sj:num`, value: 42 });
    expect(json.rows).toContainEqual(expect.objectContaining({ _key: `${prefix}:sj:2`, id: 2, tags: ['a'] }));
    expect(json.rejected).toHaveLength(1);
  });

  it('check: connection, authentication, target and memory; a wrong password fails authentication without printing it', async () => {
    const ok = await redis.check?.(options({ mode: 'stream', stream: `${prefix}:events` }, 'sink'), {
      ...planContext({ baseDir: '.' }),
      role: 'sink',
    });
    expect(ok?.map((r) => [r.name, r.ok])).toEqual([
      ['connection', true],
      ['authentication', true],
      ['target', true],
      ['memory', true],
    ]);
    const bad = await redis.check?.(
      options({ mode: 'hash', key: 'x:{id}', username: 'no-such-user', password: 'wrong-pass-91c2' }, 'sink'),
      { ...planContext({ baseDir: '.' }), role: 'sink' },
    );
    expect(bad?.find((r) => r.name === 'authentication')).toMatchObject({ ok: false, message: expect.stringMatching(/WRONGPASS/) });
    expect(JSON.stringify(bad)).not.toContain('wrong-pass-91c2');
    const down = await redis.check?.(options({ mode: 'hash', key: 'x:{id}', port: 1 }, 'sink'), {
      ...planContext({ baseDir: '.' }),
      role: 'sink',
    });
    expect(down).toEqual([{ name: 'connection', ok: false, message: expect.stringMatching(/ECONNREFUSED/) }]);
  });

  it('a lost connection fails the batch with a retryable error and the next write reconnects', async () => {
    const sink = redis.sink?.(options({ mode: 'hash', key: `${prefix}:r:{id}` }, 'sink')) ?? expect.unreachable();
    const writer = await sink.writer({ id: '0' }, taskContext({ baseDir: '.' }));
    await writer.write(users(2));
    const clients = String(await admin.client('LIST'))
      .split('\n')
      .filter((l) => l.includes('name=weir:test:0'));
    expect(clients.length).toBe(1);
    const id = /id=(\d+)/.exec(clients[0] as string)?.[1] as string;
    await admin.client('KILL', 'ID', id);
    const error = await Promise.resolve(writer.write(users(2, 3))).catch((e: unknown) => e);
    if (error) {
      expect(error).toBeInstanceOf(WeirError);
      expect((error as WeirError).retryable).toBe(true);
    }
    await writer.write(users(2, 3));
    await writer.close?.();
    const staged = `${stagePrefix('test', 'test-run')}${prefix}:r:`;
    expect(await admin.exists(`${staged}4`)).toBe(1);
    await sink.abort?.([], taskContext({ baseDir: '.' }));
    expect(await admin.exists(`${staged}4`)).toBe(0);
  });
});
