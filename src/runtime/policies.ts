/**
 * Resilience policies built from the pipeline's `retry` and `rate_limit` sections.
 * Retries use cockatiel with exponential backoff and full jitter and honour a
 * sink's `retryAfterMs` (from `Retry-After`); the rate limiter is one token bucket
 * shared by every task of the run.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type IBackoff, type IBackoffFactory, type IRetryBackoffContext, handleWhen, retry } from 'cockatiel';
import { WeirError, isRetryable } from '../sdk/errors.js';

export interface RetryOptions {
  max_attempts: number;
  initial_delay: number;
  max_delay: number;
  max_elapsed?: number;
}

export interface RetryEvent {
  attempt: number;
  delayMs: number;
  error: unknown;
}

/** The delay before retry `attempt` (1-based): full jitter, or the server's Retry-After when given. */
export function backoffDelay(attempt: number, error: unknown, o: RetryOptions, random = Math.random): number {
  if (error instanceof WeirError && error.retryAfterMs !== undefined) return Math.max(0, error.retryAfterMs);
  const ceiling = Math.min(o.max_delay, o.initial_delay * 2 ** (attempt - 1));
  return Math.round(random() * ceiling);
}

class JitterBackoff implements IBackoffFactory<IRetryBackoffContext<unknown>> {
  constructor(private readonly o: RetryOptions) {}
  next(context: IRetryBackoffContext<unknown>): IBackoff<IRetryBackoffContext<unknown>> {
    const error = 'error' in context.result ? context.result.error : undefined;
    return { duration: backoffDelay(context.attempt, error, this.o), next: (c) => this.next(c) };
  }
}

export type Retrier = <T>(fn: () => Promise<T> | T, onRetry: (e: RetryEvent) => void, signal?: AbortSignal) => Promise<T>;

/** Builds a retrier: `max_attempts` is the total number of tries, including the first. */
export function createRetrier(o: RetryOptions): Retrier {
  return async (fn, onRetry, signal) => {
    const started = Date.now();
    const policy = retry(
      handleWhen((error) => {
        if (!isRetryable(error)) return false;
        return o.max_elapsed === undefined || Date.now() - started < o.max_elapsed;
      }),
      { maxAttempts: Math.max(0, o.max_attempts - 1), backoff: new JitterBackoff(o) },
    );
    const listener = policy.onRetry((r) => {
      onRetry({ attempt: r.attempt, delayMs: r.delay, error: 'error' in r ? r.error : undefined });
    });
    try {
      return await policy.execute(() => fn(), signal);
    } finally {
      listener.dispose();
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
    if (wait > 0) await sleep(wait, undefined, { signal });
    return wait;
  }
}

/** The run's rate limits: one bucket per dimension, shared by all tasks. */
export class RateLimiter {
  private readonly rows?: TokenBucket;
  private readonly requests?: TokenBucket;

  constructor(o: RateLimitOptions | undefined) {
    if (o?.rows_per_second) this.rows = new TokenBucket(o.rows_per_second, o.burst);
    if (o?.requests_per_second) this.requests = new TokenBucket(o.requests_per_second, o.burst);
  }

  get active(): boolean {
    return Boolean(this.rows || this.requests);
  }

  /** Waits for a batch of `rows` rows (one request); returns the time waited in ms. */
  async acquire(rows: number, signal?: AbortSignal): Promise<number> {
    const w1 = this.rows?.reserve(rows) ?? 0;
    const w2 = this.requests?.reserve(1) ?? 0;
    const wait = Math.max(w1, w2);
    if (wait > 0) await sleep(wait, undefined, { signal });
    return wait;
  }
}
