/** The run-wide limits against a fresh redis-server: slots cap the run, the breaker's open state is seen by every gate, the bucket holds the rate. */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasRedisServer, type RedisServer, startRedis } from '../../test/distributed/harness.js';
import { WeirError } from '../sdk/errors.js';
import { RedisRateLimiter, RunSlots, SharedCircuitGate } from './limits.js';

describe.skipIf(!hasRedisServer)('distributed limits', () => {
  let server: RedisServer;
  let a: Redis;
  let b: Redis;
  beforeAll(async () => {
    server = await startRedis();
    a = new Redis(server.url);
    b = new Redis(server.url);
  });
  afterAll(async () => {
    a?.disconnect();
    b?.disconnect();
    await server?.stop();
  });

  it('concurrency: at most `limit` holders across clients; a freed or expired slot is taken again', async () => {
    const s1 = new RunSlots(a, 'slots:1', 2, 300);
    const s2 = new RunSlots(b, 'slots:1', 2, 300);
    expect(await s1.acquire('j1')).toBe(true);
    expect(await s2.acquire('j2')).toBe(true);
    expect(await s2.acquire('j3')).toBe(false);
    expect(await s1.acquire('j1')).toBe(true); // a renewal, not a new slot
    const release = s1.hold('j1');
    await release();
    expect(await s2.acquire('j3')).toBe(true);
    // j2 and j3 are never renewed: their leases run out (a dead worker's slot frees itself)
    await new Promise((r) => setTimeout(r, 400));
    expect(await s1.acquire('j4')).toBe(true);
    expect(await s1.acquire('j5')).toBe(true);
    expect(await s1.acquire('j6')).toBe(false);
  });

  it('the circuit breaker: opened in one worker, the other waits out the open period before writing', async () => {
    const retryable = () => new WeirError('down', { retryable: true, kind: 'connector' });
    const g1 = new SharedCircuitGate(a, 'breaker:1', 2, 600);
    const g2 = new SharedCircuitGate(b, 'breaker:1', 2, 600);
    for (let i = 0; i < 2; i++)
      await g1
        .execute(() => {
          throw retryable();
        })
        .catch(() => {});
    await new Promise((r) => setTimeout(r, 50)); // the open state is written asynchronously
    const t0 = performance.now();
    await g2.execute(() => 'ok');
    expect(performance.now() - t0).toBeGreaterThan(400);
  });

  it('rate_limit: two limiters on one key share the rate (about 1,000 rows/s, not 2,000)', async () => {
    const keys = { rows: 'rate:rows', requests: 'rate:requests' };
    const l1 = new RedisRateLimiter(a, keys, { rows_per_second: 1000 });
    const l2 = new RedisRateLimiter(b, keys, { rows_per_second: 1000 });
    const t0 = performance.now();
    await Promise.all([
      (async () => {
        for (let i = 0; i < 10; i++) await l1.acquireRows(50);
      })(),
      (async () => {
        for (let i = 0; i < 10; i++) await l2.acquireRows(50);
      })(),
    ]);
    // 1,000 rows at 1,000 rows/s, less what a fresh bucket lets through at once (two bursts of
    // 100 rows, as the local TokenBucket): 0.8 s; two separate buckets would take 0.4 s
    expect(performance.now() - t0).toBeGreaterThan(750);
  });
});
