import { describe, expect, it } from 'vitest';
import { WeirError } from '../sdk/errors.js';
import { backoffDelay, CircuitGate, createRetrier, RateLimiter, SharedPause, TokenBucket } from './policies.js';

const flaky = (failures: number, error: () => unknown) => {
  const calls: number[] = [];
  const ends: number[] = [];
  return {
    calls,
    ends,
    fn: async () => {
      calls.push(performance.now());
      try {
        if (calls.length <= failures) throw error();
        return 'ok';
      } finally {
        ends.push(performance.now());
      }
    },
  };
};
const http503 = (retryAfterMs?: number) => () =>
  new WeirError('HTTP 503', { code: 'http_503', retryable: true, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });

describe('backoffDelay', () => {
  const o = { max_attempts: 10, initial_delay: 100, max_delay: 1000 };
  it('is full jitter under an exponential ceiling capped by max_delay', () => {
    expect(backoffDelay(1, new Error('x'), o, () => 0.999)).toBe(100);
    expect(backoffDelay(3, new Error('x'), o, () => 0.5)).toBe(200);
    expect(backoffDelay(8, new Error('x'), o, () => 0.999)).toBe(999);
    expect(backoffDelay(2, new Error('x'), o, () => 0)).toBe(0);
  });
  it('uses Retry-After as is', () => {
    expect(backoffDelay(1, new WeirError('429', { retryable: true, retryAfterMs: 2500 }), o, () => 0)).toBe(2500);
  });
});

describe('createRetrier', () => {
  it('retries retryable errors with jittered delays no larger than the ceiling, and reports each', async () => {
    const events: { attempt: number; delayMs: number }[] = [];
    const f = flaky(3, http503());
    const retrier = createRetrier({ max_attempts: 5, initial_delay: 20, max_delay: 40 });
    await expect(retrier(f.fn, (e) => events.push(e))).resolves.toBe('ok');
    expect(f.calls).toHaveLength(4);
    expect(events.map((e) => e.attempt)).toEqual([1, 2, 3]);
    const ceilings = [20, 40, 40];
    events.forEach((e, i) => {
      expect(e.delayMs).toBeGreaterThanOrEqual(0);
      expect(e.delayMs).toBeLessThanOrEqual(ceilings[i] as number);
      // the measured gap is at least the reported delay (timer granularity: 1 ms)
      expect((f.calls[i + 1] as number) - (f.ends[i] as number)).toBeGreaterThanOrEqual(e.delayMs - 1);
    });
  });

  it('honours Retry-After exactly: the measured wait is never shorter', async () => {
    const f = flaky(2, http503(150));
    const events: { delayMs: number }[] = [];
    await createRetrier({ max_attempts: 5, initial_delay: 1, max_delay: 5 })(f.fn, (e) => events.push(e));
    expect(f.calls).toHaveLength(3);
    for (let i = 0; i < 2; i++) {
      const waited = (f.calls[i + 1] as number) - (f.ends[i] as number);
      expect(waited).toBeGreaterThanOrEqual(150);
      expect(waited).toBeLessThan(400);
      expect(events[i]?.delayMs).toBeGreaterThanOrEqual(150);
    }
  });

  it('does not retry non-retryable errors, and gives up after max_attempts', async () => {
    const bad = flaky(5, () => new WeirError('bad row', { kind: 'data' }));
    await expect(createRetrier({ max_attempts: 5, initial_delay: 1, max_delay: 1 })(bad.fn, () => {})).rejects.toThrow('bad row');
    expect(bad.calls).toHaveLength(1);
    const down = flaky(100, http503());
    await expect(createRetrier({ max_attempts: 3, initial_delay: 1, max_delay: 1 })(down.fn, () => {})).rejects.toThrow('HTTP 503');
    expect(down.calls).toHaveLength(3);
  });

  it('stops at max_elapsed, and refuses a Retry-After that would pass it', async () => {
    const down = flaky(1000, http503());
    const t0 = performance.now();
    await expect(
      createRetrier({ max_attempts: 100, initial_delay: 20, max_delay: 20, max_elapsed: 150 })(down.fn, () => {}),
    ).rejects.toThrow();
    expect(performance.now() - t0).toBeLessThan(400);
    const slow = flaky(1, http503(5000));
    const t1 = performance.now();
    await expect(createRetrier({ max_attempts: 5, initial_delay: 1, max_delay: 1, max_elapsed: 1000 })(slow.fn, () => {})).rejects.toThrow(
      'HTTP 503',
    );
    expect(performance.now() - t1).toBeLessThan(200);
  });

  it('a stop signal ends a backoff wait at once', async () => {
    const down = flaky(100, http503(10_000));
    const controller = new AbortController();
    const t0 = performance.now();
    setTimeout(() => controller.abort(new WeirError('stopped', { kind: 'cancelled', code: 'cancelled' })), 50);
    await expect(createRetrier({ max_attempts: 5, initial_delay: 1, max_delay: 1 })(down.fn, () => {}, controller.signal)).rejects.toThrow(
      'stopped',
    );
    expect(performance.now() - t0).toBeLessThan(500);
    await new Promise((r) => setTimeout(r, 20));
    expect(down.calls).toHaveLength(1);
  });

  it('a Retry-After makes every task sharing the pause wait', async () => {
    const pause = new SharedPause();
    const retrier = createRetrier({ max_attempts: 3, initial_delay: 1, max_delay: 1 }, { pause });
    const a = flaky(1, http503(200));
    const other: number[] = [];
    const t0 = performance.now();
    const first = retrier(a.fn, () => {});
    await new Promise((r) => setTimeout(r, 20));
    await retrier(
      async () => other.push(performance.now()),
      () => {},
    );
    await first;
    expect((other[0] as number) - t0).toBeGreaterThanOrEqual(195);
  });
});

describe('CircuitGate', () => {
  it('opens after N consecutive failures; while open, writes wait for the half-open probe instead of hammering', async () => {
    const opened: unknown[] = [];
    let closed = 0;
    const breaker = new CircuitGate(3, 200, { onOpen: (e) => opened.push(e), onClose: () => closed++ });
    const retrier = createRetrier({ max_attempts: 20, initial_delay: 1, max_delay: 2 }, { breaker });
    const f = flaky(5, http503());
    await expect(retrier(f.fn, () => {})).resolves.toBe('ok');
    // failures 1-3 open it; probes 4 and 5 fail and open it again; probe 6 succeeds and closes it
    expect(opened).toHaveLength(3);
    expect(closed).toBe(1);
    expect(f.calls).toHaveLength(6);
    // while open, no call reaches the sink for the half-open period
    for (const i of [3, 4, 5]) expect((f.calls[i] as number) - (f.ends[i - 1] as number)).toBeGreaterThanOrEqual(190);
  });
});

describe('TokenBucket and RateLimiter', () => {
  it('holds the long-run rate for any request size', () => {
    const bucket = new TokenBucket(1000, 100);
    let waited = 0;
    for (let i = 0; i < 50; i++) waited = bucket.reserve(100);
    // 5000 tokens at 1000/s, 100 of them free (burst): the last request is due ~4.9 s out
    expect(waited).toBeGreaterThan(4800);
    expect(waited).toBeLessThan(5000);
  });

  it('caps batches to a tenth of a second of the rows rate', () => {
    expect(new RateLimiter({ rows_per_second: 2000 }).batchCap()).toBe(200);
    expect(new RateLimiter({ rows_per_second: 5 }).batchCap()).toBe(1);
    expect(new RateLimiter({ requests_per_second: 5 }).batchCap()).toBeUndefined();
    expect(new RateLimiter(undefined).active).toBe(false);
  });
});
