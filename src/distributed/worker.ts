/**
 * A distributed worker (`weir worker`): a BullMQ worker that runs the partitions of any
 * run on its queue. Each partition job runs one attempt from its {@link TaskSpec}
 * (runtime/worker.ts: the pipeline rebuilt here, its secret references resolved from
 * THIS process's environment and files), under the run's limits kept in Redis (rate
 * limit, concurrency slots, circuit breaker), and sends its events as job progress and
 * its result as the job's return value, both redacted here.
 *
 * Retries: a retryable failure throws, and BullMQ runs the job again after the
 * pipeline's backoff (`attempts` = `retry.partition_attempts`); any other failure is
 * final (`UnrecoverableError`). A worker that dies mid-partition stops renewing its
 * lock; BullMQ's stalled-job check hands the job to another worker as a new attempt.
 * SIGTERM (see `close`): no new job is taken, the running ones get `graceMs` to
 * finish, then they are stopped and handed back to the queue without costing an attempt.
 */
import { hostname } from 'node:os';
import { DelayedError, type Job, type MinimalJob, UnrecoverableError, Worker } from 'bullmq';
import type { Logger } from 'pino';
import { EventBus, type WeirEvent } from '../observe/events.js';
import { logEvents } from '../observe/logger.js';
import { backoffDelay } from '../runtime/policies.js';
import type { TaskResult } from '../runtime/task-json.js';
import { runTaskJson } from '../runtime/worker.js';
import { errorMessage, WeirError } from '../sdk/errors.js';
import type { JsonValue } from '../sdk/types.js';
import type { Redactor } from '../secrets/redactor.js';
import { finishDetachedJob } from './job-commit.js';
import { checkPartitionJob, PARTITION_JOB, type PartitionProgress, RUN_JOB, type RunJobData } from './jobs.js';
import { RedisRateLimiter, RunSlots, SharedCircuitGate } from './limits.js';
import { connect, KEEP_SECONDS, PREFIX, runKeys } from './redis.js';

export interface WorkerOptions {
  url: URL;
  queue: string;
  /** Partitions this worker runs at once. */
  concurrency: number;
  /** A logger for one task, redacting with that task's redactor. */
  logger(redactor: Redactor): Logger;
  /** Where every task's events go too (metrics). */
  bus: EventBus;
  /** How long a job's lock lasts without renewal: a dead worker's partition runs elsewhere after about this long. */
  lockMs?: number;
  /** On close: how long running partitions get to finish before they are handed back. */
  graceMs?: number;
}

export interface DistributedWorker {
  readonly ready: boolean;
  /** Graceful close: finish or hand back the running partitions, then disconnect. */
  close(): Promise<void>;
}

const EVENT_FLUSH_MS = 250;

export async function startWorker(o: WorkerOptions): Promise<DistributedWorker> {
  const redis = connect(o.url);
  redis.on('error', () => {}); // reconnects by itself; BullMQ's connection reports
  const stopping = new AbortController();
  const lockMs = o.lockMs ?? 15_000;
  const root = o.logger({ scrub: (s: string) => s, scrubValue: (v: unknown) => v } as unknown as Redactor).child({
    worker: `${hostname()}:${process.pid}`,
    queue: o.queue,
  });
  let ready = false;

  const runPartition = async (job: Job, token: string | undefined): Promise<TaskResult> => {
    const data = checkPartitionJob(job.data);
    const runId = data.task.run_id;
    const keys = runKeys(data.queue, runId);
    if (await redis.exists(keys.cancel)) throw new UnrecoverableError(`run ${runId} was cancelled`);
    const holder = String(job.id);
    const slots = new RunSlots(redis, keys.slots, data.concurrency, lockMs * 2);
    if (!(await slots.acquire(holder))) {
      // the run's concurrency is used up by other workers: back to the queue, costing no attempt
      await job.moveToDelayed(Date.now() + 100 + Math.floor(Math.random() * 200), token);
      throw new DelayedError();
    }
    const release = slots.hold(holder);
    const attempt = Math.max(1, job.attemptsStarted);
    const stop = new AbortController();
    const drain = new AbortController();
    let cancelled = false;
    let handedBack = false;
    const watch = setInterval(() => {
      void redis
        .exists(keys.cancel)
        .then((n) => {
          if (n && !stop.signal.aborted) {
            cancelled = true;
            stop.abort(new WeirError(`run ${runId} was cancelled`, { kind: 'cancelled', code: 'cancelled' }));
          }
        })
        .catch(() => {});
    }, 500);
    let graceTimer: NodeJS.Timeout | undefined;
    const onStopping = () => {
      graceTimer = setTimeout(() => {
        handedBack = true;
        stop.abort(new WeirError('worker shutting down', { kind: 'cancelled', code: 'cancelled' }));
      }, o.graceMs ?? 30_000);
    };
    stopping.signal.addEventListener('abort', onStopping, { once: true });
    let redactor: Redactor | undefined;
    // the task's events as log lines of this worker, with the run's correlation ids
    const taskBus = new EventBus();
    let unlog: (() => void) | undefined;
    let pending: WeirEvent[] = [];
    let flushing = Promise.resolve();
    const flush = () => {
      if (!pending.length || !redactor) return flushing;
      const events = redactor.scrubValue(pending) as WeirEvent[];
      pending = [];
      flushing = flushing.then(() => job.updateProgress({ events } satisfies PartitionProgress as object).catch(() => {}));
      return flushing;
    };
    const flusher = setInterval(() => void flush(), EVENT_FLUSH_MS);
    const log = root.child({ run_id: runId, job_id: job.id, partition_id: data.task.partition.id, attempt });
    log.info({ event: 'job_start' }, `partition ${data.task.partition.id} attempt ${attempt}`);
    let result: TaskResult;
    try {
      result = await runTaskJson(
        { ...data.task, attempt },
        {
          emit: (event) => {
            o.bus.emit(event);
            taskBus.emit(event);
            pending.push(event);
          },
          logger: (r) => {
            redactor = r;
            const logger = o.logger(r).child({ job_id: job.id, attempt, worker: `${hostname()}:${process.pid}` });
            unlog = logEvents(taskBus, logger.child({ run_id: runId, pipeline: data.task.state_id }));
            return logger;
          },
          signal: stop.signal,
          drain: drain.signal,
          policies: (config) => ({
            rateLimiter: new RedisRateLimiter(redis, keys, config.rate_limit),
            ...(config.retry.breaker_threshold > 0
              ? {
                  breaker: new SharedCircuitGate(
                    redis,
                    keys.breaker,
                    config.retry.breaker_threshold,
                    config.retry.breaker_half_open_after,
                    {
                      onOpen: (error) =>
                        log.warn(
                          { event: 'breaker_open', error_message: redactor?.scrub(errorMessage(error)) },
                          'circuit breaker opened for every worker of the run',
                        ),
                    },
                  ),
                }
              : {}),
          }),
        },
      );
    } finally {
      clearInterval(watch);
      clearInterval(flusher);
      clearTimeout(graceTimer);
      unlog?.();
      stopping.signal.removeEventListener('abort', onStopping);
      await flush();
      await release().catch(() => {});
    }
    if (result.ok) return result;
    await job.updateProgress({ result } satisfies PartitionProgress as object);
    const error = result.error;
    log.warn({ event: 'job_failed', error_type: error?.code, error_message: error?.message }, 'partition attempt failed');
    if (handedBack && !cancelled) {
      await job.moveToDelayed(Date.now(), token);
      throw new DelayedError();
    }
    if (cancelled || !error?.retryable) throw new UnrecoverableError(error?.message ?? 'the partition failed');
    throw Object.assign(new Error(error.message), { retryAfterMs: error.retry_after_ms });
  };

  const runJob = async (job: Job): Promise<JsonValue> => {
    const data = job.data as RunJobData;
    const keys = runKeys(o.queue, data.run_id);
    if (data.commit_by !== 'worker') return { committed_by: 'submitter' };
    const values = (await job.getChildrenValues()) as Record<string, TaskResult>;
    const byJob = new Map(Object.entries(values).map(([k, v]) => [k.slice(k.lastIndexOf(':') + 1), v]));
    const messages = data.partitions.map(([jobId]) => byJob.get(jobId)?.message ?? null);
    await finishDetachedJob('commit', data, messages, o.logger);
    await redis.hset(keys.record, 'status', 'succeeded');
    await redis.expire(keys.record, KEEP_SECONDS);
    return { committed_by: 'worker', partitions: messages.length };
  };

  const worker = new Worker(
    o.queue,
    async (job, token) => (job.name === RUN_JOB ? runJob(job) : job.name === PARTITION_JOB ? runPartition(job, token) : undefined),
    {
      connection: redis,
      prefix: PREFIX,
      concurrency: o.concurrency,
      lockDuration: lockMs,
      stalledInterval: Math.max(1000, Math.floor(lockMs / 2)),
      maxStalledCount: 5,
      autorun: false,
      settings: {
        backoffStrategy: (attemptsMade: number, _type?: string, error?: Error, job?: MinimalJob) => {
          const b = (job?.data as { backoff?: { initial_delay?: number; max_delay?: number } } | undefined)?.backoff;
          const retryAfter = (error as { retryAfterMs?: number } | undefined)?.retryAfterMs;
          const opts = { max_attempts: 1, initial_delay: b?.initial_delay ?? 100, max_delay: b?.max_delay ?? 30_000 };
          const e = retryAfter !== undefined ? new WeirError('retry after', { retryAfterMs: retryAfter }) : error;
          return backoffDelay(attemptsMade, e, opts);
        },
      },
    },
  );
  worker.on('error', (error) => root.warn({ event: 'worker_error', error_message: errorMessage(error) }, 'BullMQ worker error'));
  worker.on('ready', () => {
    ready = true;
  });
  worker.on('failed', (job, error) => {
    if (!job || job.name !== PARTITION_JOB) return;
    const final = error instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
    if (!final) return;
    // a partition failed for good: the run's other partitions stop (the job abort follows)
    const runId = (job.data as { task?: { run_id?: string } }).task?.run_id;
    if (runId) void redis.set(runKeys(o.queue, runId).cancel, 'failed', 'EX', KEEP_SECONDS).catch(() => {});
  });
  void worker.run();
  await worker.waitUntilReady();
  ready = true;
  root.info({ event: 'worker_ready', concurrency: o.concurrency }, `worker ready on queue ${o.queue}`);
  return {
    get ready() {
      return ready && !stopping.signal.aborted;
    },
    async close() {
      stopping.abort();
      root.info({ event: 'worker_closing' }, 'closing: no new partitions; running ones finish or are handed back');
      await worker.close();
      redis.disconnect();
      ready = false;
    },
  };
}
