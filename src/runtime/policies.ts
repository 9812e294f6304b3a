/**
 * Resilience policies built from the pipeline's `retry` and `rate_limit` sections.
 *
 * - Retries use cockatiel with exponential backoff and full jitter, honour a sink's
 *   `retryAfterMs` (from `Retry-After`) exactly, and stop at `max_attempts` or
 *   `max_elapsed`.
 * - A `Retry-After` pauses every task of the run, not only the one that got it:
 *   the server throttles the sink, not one partition.
 * - A circuit breaker (cockatiel `ConsecutiveBreaker`) shared by all tasks opens
 *   after `breaker_threshold` consecutive failed writes; while it is open, writes
 *   wait for the half-open probe instead of hammering the sink.
 * - The rate limiter is one token bucket per dimension shared by every task.
 *
 * All of it is created once per run (planner or worker process) and used per batch.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  type IBackoff,
  type IBackoffFactory,
  type IRetryBackoffContext,
  retry,
} from 'cockatiel';
import { isRetryable, WeirError } from '../sdk/errors.js';

export interface RetryOptions {
  max_attempts: number;
  initial_delay: number;
  max_delay: number;
  max_elapsed?: number;
  /** Consecutive failed writes (all tasks together) that open the circuit breaker; 0 or absent: no breaker. */
  breaker_threshold?: number;
  /** How long the breaker stays open before one probe write may go through. */
  breaker_half_open_after?: number;
}

export interface RetryEvent {
  attempt: number;
  delayMs: number;
  error: unknown;
}

/** The server-requested wait carried by an error, if any. */
export function retryAfterOf(error: unknown): number | undefined {
  return error instanceof WeirError && error.retryAfterMs !== undefined ? Math.max(0, error.retryAfterMs) : undefined;
}

/** The delay before retry `attempt` (1-based): the server's Retry-After when given, else full jitter. */
export function backoffDelay(attempt: number, error: unknown, o: RetryOptions, random = Math.random): number {
  const after = retryAfterOf(error);
  if (after !== undefined) return after;
  const ceiling = Math.min(o.max_delay, o.initial_delay * 2 ** (attempt - 1));
  return Math.round(random() * ceiling);
}

/**
 * Whether a failed partition attempt is worth running again from its start (worker,
 * once per failed attempt): its error is retryable, or it is a connector error caused
 * by a retryable one. A connection lost in the middle of a partition's transaction is
 * not retryable batch by batch (the earlier batches went with the transaction), but
 * the whole partition is. Data, configuration, internal and cancellation errors never are.
 *
 * @example
 * isPartitionRetryable(new WeirError('transaction lost', { code: 'connection_lost', cause: econnreset })); // true
 */
export function isPartitionRetryable(error: unknown): boolean {
  let e = error;
  for (let depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (e instanceof WeirError && e.kind !== 'connector') return false;
    if (isRetryable(e)) return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

/** How a failed partition is retried: built from the pipeline's `retry` section. */
export interface PartitionRetryPolicy {
  /** Total tries of a partition, the first included. */
  attempts: number;
  /** The wait (ms) before attempt `failed + 1`, after attempt `failed` failed with `error`. */
  delay(failed: number, error: unknown): number;
}

/**
 * The partition retry policy: `partition_attempts` tries, each retry after the batch
 * retries' backoff (exponential with full jitter, a `Retry-After` honoured).
 *
 * @example
 * const policy = partitionRetryPolicy({ max_attempts: 5, initial_delay: 100, max_delay: 30_000, partition_attempts: 4 });
 * policy.delay(1, error); // 0–100 ms
 */
export function partitionRetryPolicy(o: RetryOptions & { partition_attempts: number }, random = Math.random): PartitionRetryPolicy {
  return { attempts: o.partition_attempts, delay: (failed, error) => backoffDelay(failed, error, o, random) };
}

function cancelledBy(signal: AbortSignal | undefined): unknown {
  return signal?.reason ?? new WeirError('run stopped', { kind: 'cancelled', code: 'cancelled' });
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export async function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw cancelledBy(signal);
  if (ms <= 0) return;
  try {
    await sleep(ms, undefined, signal ? { signal } : undefined);
  } catch (error) {
    if (signal?.aborted) throw cancelledBy(signal);
    throw error;
  }
}

/**
 * A pause every task honours before its next write: set from a `Retry-After`.
 * Uses `performance.now()` so the measured wait is never shorter than asked.
 */
export class SharedPause {
  private until = 0;

  hold(ms: number): void {
    this.until = Math.max(this.until, performance.now() + ms);
  }

  /** Waits until the pause is over; returns the time waited (ms). */
  async wait(signal?: AbortSignal): Promise<number> {
    const t0 = performance.now();
    for (let left = this.until - t0; left > 0; left = this.until - performance.now()) await abortableSleep(Math.ceil(left), signal);
    return performance.now() - t0;
  }
}

/**
 * A circuit breaker shared by all tasks of a run. When it is open, `execute`
 * waits until the half-open probe may go (or the probe's outcome) instead of
 * failing, so a sink that keeps failing is not hammered, and waiting costs no
 * retry attempt.
 */
export class CircuitGate {
  readonly policy: CircuitBreakerPolicy;
  private openedAt = 0;

  constructor(
    readonly threshold: number,
    readonly halfOpenAfter: number,
    hooks: { onOpen?: (error: unknown) => void; onClose?: () => void } = {},
  ) {
    this.policy = circuitBreaker(handleWhen(isRetryable), { halfOpenAfter, breaker: new ConsecutiveBreaker(threshold) });
    this.policy.onBreak((reason) => {
      this.openedAt = Date.now();
      hooks.onOpen?.('error' in reason ? reason.error : undefined);
    });
    this.policy.onReset(() => hooks.onClose?.());
  }

  async execute<T>(fn: () => Promise<T> | T, signal?: AbortSignal): Promise<T> {
    for (;;) {
      try {
        return await this.policy.execute(() => fn(), signal);
      } catch (error) {
        if (!(error instanceof BrokenCircuitError)) throw error;
        await abortableSleep(Math.max(5, this.openedAt + this.halfOpenAfter - Date.now() + 1), signal);
      }
    }
  }
}

/** What every retrier of a run shares. */
export interface SharedPolicies {
  pause?: SharedPause;
  breaker?: CircuitGate;
}

class PlannedBackoff implements IBackoffFactory<IRetryBackoffContext<unknown>> {
  constructor(private readonly delay: () => number) {}
  next(): IBackoff<IRetryBackoffContext<unknown>> {
    return { duration: this.delay(), next: () => this.next() };
  }
}

export type Retrier = <T>(fn: () => Promise<T> | T, onRetry: (e: RetryEvent) => void, signal?: AbortSignal) => Promise<T>;

/**
 * Builds a retrier: `max_attempts` is the total number of tries, including the
 * first. Only retryable errors ({@link isRetryable}) are retried. A `Retry-After`
 * is waited in full (and makes every task of the run wait); when it would pass
 * `max_elapsed`, the batch gives up instead. A stop signal ends the wait at once.
 *
 * @example
 * const retrier = createRetrier({ max_attempts: 5, initial_delay: 100, max_delay: 30_000 });
 * await retrier(() => writer.write(rows), (r) => log(r.attempt, r.delayMs), signal);
 */
export function createRetrier(o: RetryOptions, shared: SharedPolicies = {}): Retrier {
  return async (fn, onRetry, signal) => {
    const started = performance.now();
    let failures = 0;
    let planned = 0;
    const policy = retry(
      handleWhen((error) => {
        if (signal?.aborted || !isRetryable(error)) return false;
        failures++;
        const after = retryAfterOf(error);
        if (after !== undefined) shared.pause?.hold(after);
        let delay = backoffDelay(failures, error, o);
        if (o.max_elapsed !== undefined) {
          const left = o.max_elapsed - (performance.now() - started);
          if (left <= 0 || (after !== undefined && after > left)) return false;
          delay = Math.min(delay, Math.floor(left));
        }
        // a timer may fire a fraction of a millisecond early: never wait less than the server asked
        planned = after !== undefined ? delay + 1 : delay;
        return true;
      }),
      { maxAttempts: Math.max(0, o.max_attempts - 1), backoff: new PlannedBackoff(() => planned) },
    ).dangerouslyUnref();
    const listener = policy.onRetry((r) => {
      onRetry({ attempt: r.attempt, delayMs: r.delay, error: 'error' in r ? r.error : undefined });
    });
    let writing = false;
    const attempt = async () => {
      if (signal?.aborted) throw cancelledBy(signal);
      await shared.pause?.wait(signal);
      const write = async () => {
        writing = true;
        try {
          return await fn();
        } finally {
          writing = false;
        }
      };
      return shared.breaker ? shared.breaker.execute(write, signal) : write();
    };
    // cockatiel's backoff timer cannot be cancelled: a stop during a backoff wait ends it here (the
    // loop then stops at `attempt`); a stop during a write lets the write finish (writers watch ctx.signal)
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        if (!writing) reject(cancelledBy(signal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => {});
    try {
      return await Promise.race([policy.execute(attempt, signal), aborted]);
    } finally {
      listener.dispose();
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  };
}

export interface RateLimitOptions {
  rows_per_second?: number;
  requests_per_second?: number;
  burst?: number;
}

/**
 * A token bucket (virtual scheduling): a request for `n` tokens waits until the
 * bucket has paid for them. Requests larger than the burst are allowed and paid
 * for by waiting, so the long-run rate holds for any batch size.
 */
export class TokenBucket {
  private tat = performance.now();
  private readonly interval: number;
  private readonly burstWindow: number;

  constructor(
    readonly perSecond: number,
    burst?: number,
  ) {
    this.interval = 1000 / perSecond;
    this.burstWindow = (burst ?? Math.max(1, perSecond / 10)) * this.interval;
  }

  /** Reserves `n` tokens; returns how long the caller must wait (ms). */
  reserve(n: number): number {
    const now = performance.now();
    const start = Math.max(this.tat, now - this.burstWindow);
    this.tat = start + n * this.interval;
    return Math.max(0, this.tat - this.burstWindow - now);
  }

  async acquire(n: number, signal?: AbortSignal): Promise<number> {
    const wait = this.reserve(n);
    if (wait > 0) await abortableSleep(wait, signal);
    return wait;
  }
}

/**
 * The rate limits a task obeys (worker, per batch): the local {@link RateLimiter} in
 * one process, a Redis-backed one across the processes of a distributed run.
 */
export interface RunRateLimiter {
  readonly active: boolean;
  /** Waits for `rows` rows' worth of tokens; returns the time waited in ms. */
  acquireRows(rows: number, signal?: AbortSignal): Promise<number>;
  /** Waits for one request token; returns the time waited in ms. */
  acquireRequest(signal?: AbortSignal): Promise<number>;
  /** What the target says is left of its own rate limit (HTTP `RateLimit-*` headers): slows the run down before it refuses. */
  observe(headroom: { limit: number; remaining: number; resetMs?: number }): void;
}

/**
 * The run's rate limits in this process: one bucket per dimension, shared by all
 * tasks. Rows are paid once per batch; requests once per write attempt (retries are
 * requests too).
 */
export class RateLimiter implements RunRateLimiter {
  private readonly rows?: TokenBucket;
  private readonly requests?: TokenBucket;

  constructor(o: RateLimitOptions | undefined) {
    if (o?.rows_per_second) this.rows = new TokenBucket(o.rows_per_second, o.burst);
    if (o?.requests_per_second) this.requests = new TokenBucket(o.requests_per_second, o.burst);
  }

  /** From a target's own rate-limit headers ({@link observe}): no request before this (performance.now() ms). */
  private targetNext = 0;
  /** …and at least this long between requests until `targetUntil`. */
  private targetInterval = 0;
  private targetUntil = 0;

  get active(): boolean {
    return Boolean(this.rows || this.requests || this.targetUntil > performance.now());
  }

  /**
   * What the target says is left of its own rate limit (worker, after a response
   * that reports it). Below 20% left, the run's requests are spread over the rest of
   * the window (`resetMs`, 1 s when unknown); nothing left, they wait for the reset.
   * Above that it changes nothing.
   */
  observe(h: { limit: number; remaining: number; resetMs?: number }): void {
    if (!(h.limit > 0) || h.remaining >= h.limit * 0.2) return;
    const now = performance.now();
    const window = Math.min(h.resetMs ?? 1000, 3_600_000);
    this.targetUntil = Math.max(this.targetUntil, now + window);
    if (h.remaining <= 0) {
      this.targetNext = Math.max(this.targetNext, now + window);
      this.targetInterval = 0;
    } else this.targetInterval = Math.max(this.targetInterval * 0.5, window / h.remaining);
  }

  /**
   * The largest batch that keeps the rows limit smooth: about a tenth of a second
   * of the rate (or the burst, when larger). Big batches against a small rate make
   * the achieved rate lumpy and a stop slow.
   */
  batchCap(): number | undefined {
    if (!this.rows) return undefined;
    return Math.max(1, Math.ceil(this.rows.perSecond / 10));
  }

  /** Waits for `rows` rows' worth of tokens; returns the time waited in ms. */
  async acquireRows(rows: number, signal?: AbortSignal): Promise<number> {
    const wait = this.rows?.reserve(rows) ?? 0;
    if (wait > 0) await abortableSleep(wait, signal);
    return wait;
  }

  private reserveTarget(): number {
    const now = performance.now();
    if (this.targetUntil <= now) return 0;
    const at = Math.max(now, this.targetNext);
    this.targetNext = at + this.targetInterval;
    return at - now;
  }

  /** Waits for one request token; returns the time waited in ms. */
  async acquireRequest(signal?: AbortSignal): Promise<number> {
    const wait = Math.max(this.requests?.reserve(1) ?? 0, this.reserveTarget());
    if (wait > 0) await abortableSleep(wait, signal);
    return wait;
  }

  /** Waits for a batch of `rows` rows sent as one request; returns the time waited in ms. */
  async acquire(rows: number, signal?: AbortSignal): Promise<number> {
    const w1 = this.rows?.reserve(rows) ?? 0;
    const w2 = this.requests?.reserve(1) ?? 0;
    const wait = Math.max(w1, w2);
    if (wait > 0) await abortableSleep(wait, signal);
    return wait;
  }
}
