/**
 * The BullMQ engine (`weir run --engine bullmq --redis URL`): the partitions run on
 * `weir worker` processes, anywhere, that share a queue in Redis.
 *
 * The run is submitted as one BullMQ flow: a parent job `run` and one child job
 * `partition` per partition, whose data is the task as plain JSON (the pipeline with
 * its secret references, never their values). Workers resolve the references
 * themselves, run the partition, and return a {@link TaskResult}: the partition's
 * commit message. Partition retries are job `attempts` with the pipeline's backoff;
 * a dead worker's job comes back through BullMQ's stalled-job recovery as a new attempt.
 *
 * The job-level commit stays in this process, with the existing job phase: this engine
 * follows the children (QueueEvents, and a poll of their state as a backstop) and
 * reports each partition's outcome; the run then commits (every partition committed),
 * or aborts (one failed for good: the run is cancelled in Redis, running partitions
 * stop, and once none runs any more the job is aborted with what did commit). A
 * detached run (`detach`) has no follower: its parent job commits it on a worker.
 */
import { FlowProducer, Job, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  eventsOf,
  PARTITION_JOB,
  type PartitionJobData,
  type PartitionProgress,
  RUN_JOB,
  type RunJobData,
} from '../../distributed/jobs.js';
import { closeWithin, connect, KEEP_SECONDS, PREFIX, partitionJobId, type RunRecord, runKeys } from '../../distributed/redis.js';
import { WeirError } from '../../sdk/errors.js';
import type { JsonValue, Partition } from '../../sdk/types.js';
import type { Engine, ExecuteJob, ExecuteResult } from '../engine.js';
import type { PartitionOutcome } from '../task.js';
import { emptyMetrics, fromTaskError, parseTaskResult, type TaskResult, type TaskSpec } from '../task-json.js';

export interface BullmqEngineOptions {
  url: URL;
  queue: string;
  /** Submit only: the run's parent job commits it on a worker; `onSubmitted` gets the run id and this engine returns at once. */
  detach?: boolean;
  onSubmitted?(runId: string): void;
  /** How often the children's state is read back besides QueueEvents (ms). */
  pollMs?: number;
}

/** The state of the run's jobs is gone from Redis (a restart without persistence, an eviction, a flush). */
const lostState = (runId: string) =>
  new WeirError(
    `the jobs of run ${runId} are gone from Redis (restarted without persistence, evicted, or flushed); run the pipeline again to resume it (see docs/distributed.md)`,
    { kind: 'connector', code: 'redis_state_lost' },
  );

export function bullmqEngine(options: BullmqEngineOptions): Engine {
  return {
    name: 'bullmq',
    async execute(job: ExecuteJob): Promise<ExecuteResult> {
      if (job.stream)
        throw new WeirError('the bullmq engine runs bounded sources; an unbounded source (a stream) runs on the local engine', {
          kind: 'config',
          code: 'engine_stream',
        });
      const redis = connect(options.url);
      redis.on('error', () => {});
      const queue = new Queue(options.queue, { connection: redis, prefix: PREFIX });
      const eventsConnection = connectionOf(options.url);
      const events = new QueueEvents(options.queue, { connection: eventsConnection, prefix: PREFIX });
      events.on('error', () => {});
      const unregister = job.closers.register('Redis connection', () => {
        redis.disconnect();
      });
      try {
        await events.waitUntilReady();
        const submitted = await submit(job, redis, queue, options);
        if (options.detach) {
          // the caller stops following (a stop, not a failure: the job phase neither commits nor aborts)
          options.onSubmitted?.(job.runId);
          return { outcomes: [], failure: undefined };
        }
        options.onSubmitted?.(job.runId);
        return await follow(job, queue, events, redis, submitted, options.pollMs ?? 1000);
      } finally {
        unregister();
        await closeWithin(() => events.close());
        await closeWithin(() => queue.close());
        eventsConnection.disconnect();
        redis.disconnect();
      }
    },
  };
}

function connectionOf(url: URL): Redis {
  const c = connect(url);
  c.on('error', () => {});
  return c;
}

/** Adds the run's flow and its record (planner, once). */
async function submit(job: ExecuteJob, redis: Redis, queue: Queue, o: BullmqEngineOptions): Promise<Map<string, Partition>> {
  const { config } = job.pipeline;
  const keys = runKeys(o.queue, job.runId);
  const progress = job.progress();
  const byJob = new Map<string, Partition>();
  const indexOf = new Map(job.partitions.map((p, i) => [p.id, i]));
  const children = job.partitions.map((partition) => {
    const id = partitionJobId(job.runId, indexOf.get(partition.id) ?? 0);
    byJob.set(id, partition);
    const task: TaskSpec = {
      pipeline: job.pipeline.document,
      run_id: job.runId,
      state_id: job.stateId,
      partition,
      attempt: 1,
      schema: job.schema ?? null,
      limits: job.limits,
      run_rows_read: progress.rowsRead,
      run_rows_rejected: progress.rowsRejected,
    };
    const data: PartitionJobData = {
      task,
      backoff: { initial_delay: config.retry.initial_delay, max_delay: config.retry.max_delay },
      concurrency: job.concurrency,
      queue: o.queue,
    };
    return {
      name: PARTITION_JOB,
      queueName: o.queue,
      data,
      opts: {
        jobId: id,
        attempts: Math.max(1, job.retry.attempts),
        backoff: { type: 'weir' },
        failParentOnFailure: true,
        removeOnComplete: { age: KEEP_SECONDS },
        removeOnFail: { age: KEEP_SECONDS },
      },
    };
  });
  const partitions: [string, string][] = [...byJob].map(([id, p]) => [id, p.id]);
  const record: RunRecord = {
    run_id: job.runId,
    pipeline: config.pipeline,
    queue: o.queue,
    status: 'running',
    created_at: new Date().toISOString(),
    partitions,
    concurrency: job.concurrency,
    commit_by: o.detach ? 'worker' : 'submitter',
  };
  // a resumed run submits again under the same run id: what its earlier flow left is replaced
  await redis.del(keys.cancel, keys.slots, keys.breaker);
  for (const id of [job.runId, ...byJob.keys()]) await queue.remove(id, { removeChildren: true }).catch(() => {});
  await redis.hset(keys.record, 'json', JSON.stringify(record), 'status', 'running');
  await redis.expire(keys.record, KEEP_SECONDS);
  const parent: RunJobData = {
    run_id: job.runId,
    commit_by: record.commit_by,
    partitions,
    ...(o.detach ? { pipeline: job.pipeline.document, state_id: job.stateId, schema: job.schema ?? null } : {}),
  };
  const flow = new FlowProducer({ connection: redis, prefix: PREFIX });
  try {
    await flow.add({
      name: RUN_JOB,
      queueName: o.queue,
      data: parent,
      opts: { jobId: job.runId, removeOnComplete: { age: KEEP_SECONDS }, removeOnFail: { age: KEEP_SECONDS } },
      children,
    });
  } finally {
    await flow.close();
  }
  job.logger.info({ event: 'flow_submitted', queue: o.queue, partitions: children.length }, `run submitted to queue ${o.queue}`);
  return byJob;
}

/** Follows the children until all are done or one failed for good; a failure cancels the rest first (planner, once). */
async function follow(
  job: ExecuteJob,
  queue: Queue,
  events: QueueEvents,
  redis: Redis,
  byJob: Map<string, Partition>,
  pollMs: number,
): Promise<ExecuteResult> {
  const keys = runKeys(queue.name, job.runId);
  const outcomes = new Map<string, PartitionOutcome>();
  const retried = new Map<string, TaskResult['metrics'][]>();
  const lastFailedAttempt = new Map<string, number>();
  let failure: unknown;
  let wake: (() => void) | undefined;
  const nudge = () => wake?.();
  const ours = (jobId: string) => byJob.has(jobId);
  events.on('progress', ({ jobId, data }) => {
    if (!ours(jobId)) return;
    const partition = byJob.get(jobId) as Partition;
    for (const e of eventsOf(data)) job.bus.emit(e);
    const result = (data as PartitionProgress | null)?.result;
    if (result && result.ok === false && typeof result.attempt === 'number' && lastFailedAttempt.get(jobId) !== result.attempt) {
      lastFailedAttempt.set(jobId, result.attempt);
      // a failed attempt: retried unless it was the last (then the job fails and `follow` sees it)
      if (result.error?.retryable && typeof result.metrics === 'object') {
        retried.set(partition.id, [...(retried.get(partition.id) ?? []), result.metrics]);
      }
    }
  });
  events.on('completed', ({ jobId }) => ours(jobId) && nudge());
  events.on('failed', ({ jobId }) => ours(jobId) && nudge());

  const onAbort = () => {
    failure ??= job.stop.abort.reason;
    nudge();
  };
  job.stop.abort.addEventListener('abort', onAbort, { once: true });
  job.stop.drain.addEventListener('abort', onAbort, { once: true });
  let cancelling = false;
  try {
    for (;;) {
      let active = 0;
      for (const [jobId, partition] of byJob) {
        if (outcomes.has(jobId)) continue;
        // the state first: a job read before it completed would have no return value yet
        const state = await queue.getJobState(jobId);
        const bj = state === 'unknown' ? undefined : await Job.fromId(queue, jobId);
        if (!bj) throw lostState(job.runId);
        if (state === 'completed') {
          outcomes.set(jobId, completed(job, partition, await withReturnValue(queue, bj), retried.get(partition.id)));
        } else if (state === 'failed') {
          const outcome = failedOutcome(partition, bj, retried.get(partition.id));
          outcomes.set(jobId, outcome);
          if (!cancelling) {
            failure ??= outcome.error;
            job.bus.emit({
              type: 'partition_failed',
              metrics: outcome.metrics,
              error_type: errorCode(outcome.error),
              error_message: (outcome.error as Error).message,
            });
          }
        } else if (state === 'active') active++;
      }
      if (outcomes.size === byJob.size) break;
      if (failure !== undefined && !cancelling) {
        cancelling = true;
        await redis.set(keys.cancel, 'failed', 'EX', KEEP_SECONDS);
        job.logger.warn(
          { event: 'run_cancelling' },
          'a partition failed for good: the run is cancelled on every worker; waiting for running partitions to stop',
        );
      }
      // once cancelled, the partitions not yet started fail at once on a worker; running ones stop within a second
      if (cancelling && active === 0 && (await allSettledOrWaiting(queue, byJob, outcomes))) break;
      if (await redis.exists(keys.cancel)) {
        if (!cancelling) {
          failure ??= new WeirError(`run ${job.runId} was cancelled (weir cancel)`, { kind: 'cancelled', code: 'cancelled' });
          cancelling = true;
        }
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    job.stop.abort.removeEventListener('abort', onAbort);
    job.stop.drain.removeEventListener('abort', onAbort);
    await redis
      .hset(keys.record, 'status', failure === undefined ? 'committing' : 'failed')
      .then(() => redis.expire(keys.record, KEEP_SECONDS))
      .catch(() => {});
  }
  return { outcomes: [...outcomes.values()], failure };
}

/** Every partition not finished is still waiting (never started): nothing can commit any more once the run is cancelled. */
async function allSettledOrWaiting(queue: Queue, byJob: Map<string, Partition>, outcomes: Map<string, PartitionOutcome>): Promise<boolean> {
  for (const jobId of byJob.keys()) {
    if (outcomes.has(jobId)) continue;
    const bj = await Job.fromId(queue, jobId);
    if (bj && (await bj.getState()) === 'active') return false;
  }
  return true;
}

/** A completed job read at the moment it completed may not show its return value yet: read it again, briefly. */
async function withReturnValue(queue: Queue, bj: Job): Promise<Job> {
  let current = bj;
  for (let i = 0; i < 20 && (typeof current.returnvalue !== 'object' || current.returnvalue === null); i++) {
    await new Promise((r) => setTimeout(r, 25));
    current = (await Job.fromId(queue, bj.id as string)) ?? current;
  }
  return current;
}

function completed(job: ExecuteJob, partition: Partition, bj: Job, retried: TaskResult['metrics'][] | undefined): PartitionOutcome {
  const result = parseTaskResult(bj.returnvalue, {
    partition_id: partition.id,
    attempt: (bj.returnvalue as TaskResult | null)?.attempt ?? 0,
  });
  if (result.dead_letters !== undefined) job.deadLetters.record(partition.id, result.dead_letters);
  job.checkpoints?.commitPartition(partition.id, result.message ?? null);
  if (!result.ok)
    return { partition, ok: false, metrics: result.metrics, error: fromTaskError(result.error as NonNullable<TaskResult['error']>) };
  return {
    partition,
    ok: true,
    message: (result.message ?? null) as JsonValue,
    metrics: result.metrics,
    ...(retried?.length ? { retried } : {}),
  };
}

function failedOutcome(partition: Partition, bj: Job, retried: TaskResult['metrics'][] | undefined): PartitionOutcome {
  const progress = bj.progress as PartitionProgress | null;
  const r = progress && typeof progress === 'object' ? progress.result : undefined;
  const attempt = typeof r?.attempt === 'number' ? r.attempt : Math.max(1, bj.attemptsStarted);
  let result: TaskResult | undefined;
  try {
    result = r ? parseTaskResult(r, { partition_id: partition.id, attempt }) : undefined;
  } catch {
    result = undefined;
  }
  const error =
    result?.error !== undefined
      ? fromTaskError({ ...result.error, retryable: false })
      : new WeirError(`partition ${partition.id} failed on a worker: ${bj.failedReason || 'no reason given'}`, {
          kind: 'connector',
          code: 'worker_failed',
        });
  const exhausted = (bj.opts.attempts ?? 1) > 1 && bj.attemptsMade >= (bj.opts.attempts ?? 1);
  const final = exhausted
    ? new WeirError(
        `partition ${partition.id} failed ${bj.attemptsMade} times (retry.partition_attempts: ${bj.opts.attempts}; raise it to try more often); last error: ${error.message}`,
        { code: error.code, kind: error.kind, cause: error },
      )
    : error;
  const retriedList = (retried ?? []).slice(0, -1);
  return {
    partition,
    ok: false,
    metrics: result?.metrics ?? emptyMetrics(partition.id, attempt),
    error: final,
    ...(retriedList.length ? { retried: retriedList } : {}),
  };
}

function errorCode(error: unknown): string {
  return error instanceof WeirError ? error.code : 'error';
}
