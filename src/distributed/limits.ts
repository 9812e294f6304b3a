/**
 * Limits that hold across every worker of a distributed run (worker, once per task),
 * kept in Redis under the run's keys:
 *
 * - {@link RedisRateLimiter}: `rate_limit` as one GCRA token bucket per dimension in
 *   Redis (the same virtual-scheduling math as the local `TokenBucket`, run atomically
 *   by a Lua script on the server's clock). rate-limiter-flexible's `RateLimiterRedis`
 *   counts whole-second fixed windows (`EX` seconds), whose boundaries let two
 *   windows' worth through within one second; a bucket keeps the rate smooth at any
 *   window and any number of workers.
 * - {@link RunSlots}: `concurrency` as a cap for the whole run: a lease per running
 *   partition in a sorted set (a dead worker's lease expires).
 * - {@link SharedCircuitGate}: the run's circuit breaker; a worker whose breaker opens
 *   says so in Redis, and every worker waits out the open period before its next write.
 */
import type { Redis } from 'ioredis';
import { abortableSleep, CircuitGate, RateLimiter, type RateLimitOptions, type RunRateLimiter } from '../runtime/policies.js';

const GCRA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(tat, now - window)
local next = start + n * interval
redis.call('SET', KEYS[1], string.format('%.3f', next), 'PX', math.ceil(next - now + window) + 60000)
return string.format('%.3f', math.max(0, next - window - now))
`;

/** One dimension's bucket in Redis: a reservation of `n` tokens returns how long to wait (ms). */
class RedisBucket {
  private readonly interval: number;
  private readonly window: number;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    perSecond: number,
    burst?: number,
  ) {
    this.interval = 1000 / perSecond;
    this.window = (burst ?? Math.max(1, perSecond / 10)) * this.interval;
  }

  async reserve(n: number): Promise<number> {
    const wait = await this.redis.eval(GCRA, 1, this.key, String(this.interval), String(n), String(this.window));
    return Number(wait);
  }
}

/**
 * The run's rate limits across all workers. A target's own rate-limit headers
 * (`observe`) slow this worker only: they describe what the target told this worker.
 */
export class RedisRateLimiter implements RunRateLimiter {
  private readonly rows?: RedisBucket;
  private readonly requests?: RedisBucket;
  /** The target's headroom, per worker. */
  private readonly local = new RateLimiter(undefined);

  constructor(redis: Redis, keys: { rows: string; requests: string }, o: RateLimitOptions | undefined) {
    if (o?.rows_per_second) this.rows = new RedisBucket(redis, keys.rows, o.rows_per_second, o.burst);
    if (o?.requests_per_second) this.requests = new RedisBucket(redis, keys.requests, o.requests_per_second, o.burst);
  }

  get active(): boolean {
    return Boolean(this.rows || this.requests || this.local.active);
  }

  observe(h: { limit: number; remaining: number; resetMs?: number }): void {
    this.local.observe(h);
  }

  async acquireRows(rows: number, signal?: AbortSignal): Promise<number> {
    const wait = (await this.rows?.reserve(rows)) ?? 0;
    if (wait > 0) await abortableSleep(Math.ceil(wait), signal);
    return wait;
  }

  async acquireRequest(signal?: AbortSignal): Promise<number> {
    const wait = Math.max((await this.requests?.reserve(1)) ?? 0, 0);
    if (wait > 0) await abortableSleep(Math.ceil(wait), signal);
    return wait + (await this.local.acquireRequest(signal));
  }
}

const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
  return 1
end
return 0
`;

/**
 * The run's `concurrency` across all workers: a partition runs only while it holds a
 * slot. A slot is a lease (`leaseMs`) renewed while the partition runs, so a worker
 * that dies frees its slot when the lease runs out.
 */
export class RunSlots {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly limit: number,
    private readonly leaseMs = 30_000,
  ) {}

  /** Takes (or renews) the slot of `holder`; false when the run's slots are all taken. */
  async acquire(holder: string): Promise<boolean> {
    return (await this.redis.eval(ACQUIRE, 1, this.key, holder, String(this.limit), String(this.leaseMs))) === 1;
  }

  /** Renews the lease every third of it until the returned function is called, which frees the slot. */
  hold(holder: string): () => Promise<void> {
    const timer = setInterval(() => void this.acquire(holder).catch(() => {}), Math.max(100, this.leaseMs / 3));
    timer.unref();
    return async () => {
      clearInterval(timer);
      await this.redis.zrem(this.key, holder);
    };
  }
}

/**
 * The run's circuit breaker shared through Redis, kept simple: each worker keeps its
 * own consecutive-failure count (cockatiel's breaker, as in a local run); when one
 * opens, it sets the run's breaker key for `halfOpenAfter` ms, and every worker waits
 * until that key expires before its next write. The first write after the wait is the
 * probe; a failing probe opens a breaker again.
 */
export class SharedCircuitGate extends CircuitGate {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    threshold: number,
    halfOpenAfter: number,
    hooks: { onOpen?: (error: unknown) => void; onClose?: () => void } = {},
  ) {
    super(threshold, halfOpenAfter, {
      ...hooks,
      onOpen: (error) => {
        void redis.set(key, String(Date.now() + halfOpenAfter), 'PX', Math.max(1, halfOpenAfter), 'NX').catch(() => {});
        hooks.onOpen?.(error);
      },
    });
  }

  override async execute<T>(fn: () => Promise<T> | T, signal?: AbortSignal): Promise<T> {
    for (;;) {
      const left = await this.redis.pttl(this.key);
      if (left <= 0) break;
      await abortableSleep(left + 1, signal);
    }
    return super.execute(fn, signal);
  }
}
