/**
 * A partition's attempts, as Spark retries tasks (`spark.task.maxFailures`): an
 * attempt that fails with a retryable error ({@link isPartitionRetryable}) has been
 * aborted by the task (its writer's abort: nothing of it stays) and the partition
 * runs again from its start as the next attempt, after a backoff, up to
 * `retry.partition_attempts` tries. Attempts of one partition run one after the
 * other, so an attempt never aborts or overwrites what another one committed; a
 * sink whose commit outcome was lost with the connection finds the earlier
 * attempt's commit and keeps it (see the SQL sinks' `commit`).
 *
 * {@link runAll} runs a run's partitions with bounded concurrency, the first
 * failure stopping the others: the loop every engine that runs partitions from the
 * planner process shares (engine.ts).
 */
import pLimit from 'p-limit';
import type { PartitionMetrics } from '../observe/events.js';
import { errorMessage, errorType, WeirError } from '../sdk/errors.js';
import type { Partition } from '../sdk/types.js';
import { abortableSleep, isPartitionRetryable, type PartitionRetryPolicy } from './policies.js';
import type { StopController } from './shutdown.js';
import type { EventSink, PartitionOutcome } from './task.js';

/** What a partition's attempts share: where events go, the run's stop signals, and how a failed attempt's dead letters are dropped. */
export interface PartitionRun {
  bus: EventSink;
  /** Aborted when in-flight work must stop now. */
  signal: AbortSignal;
  /** Aborted when a stop was requested (drain). */
  drain?: AbortSignal;
  /** Drops what a failed attempt dead-lettered, before the partition runs again. */
  discardAttempt?(outcome: PartitionOutcome): Promise<void>;
}

/**
 * Runs a partition until an attempt commits, fails with an error that is not
 * retryable, the attempts are used up, or the run stops (worker, once per
 * partition). Never throws. Emits `partition_retry` for each retried attempt and
 * `partition_failed` once, for the last one, when the partition fails.
 *
 * @example
 * const outcome = await runPartition((attempt) => runTask(partition, attempt, deps), policy, deps);
 */
export async function runPartition(
  attemptOnce: (attempt: number) => Promise<PartitionOutcome>,
  policy: PartitionRetryPolicy,
  deps: PartitionRun,
): Promise<PartitionOutcome> {
  const retried: PartitionMetrics[] = [];
  const stopping = deps.drain ? AbortSignal.any([deps.signal, deps.drain]) : deps.signal;
  for (let attempt = 1; ; attempt++) {
    const outcome = await attemptOnce(attempt);
    if (retried.length) outcome.retried = [...retried];
    if (outcome.ok) return outcome;
    if (stopping.aborted || !isPartitionRetryable(outcome.error)) return failed(outcome, deps);
    if (attempt >= policy.attempts) return failed(attempt > 1 ? { ...outcome, error: exhausted(outcome, attempt) } : outcome, deps);
    const delay = policy.delay(attempt, outcome.error);
    await deps.discardAttempt?.(outcome);
    deps.bus.emit({
      type: 'partition_retry',
      metrics: outcome.metrics,
      delay_ms: delay,
      error_type: errorType(outcome.error),
      error_message: errorMessage(outcome.error),
    });
    retried.push(outcome.metrics);
    try {
      await abortableSleep(delay, stopping);
    } catch (stop) {
      return failed({ ...outcome, error: stop }, deps); // interrupted: resumable, like a partition a stop cut short
    }
  }
}

/** The last error of a partition that used up its attempts, saying so and naming the option. */
function exhausted(outcome: PartitionOutcome, attempts: number): WeirError {
  const e = outcome.error;
  return new WeirError(
    `partition ${outcome.partition.id} failed ${attempts} times (retry.partition_attempts: ${attempts}; raise it to try more often); last error: ${errorMessage(e)}`,
    { code: errorType(e), kind: e instanceof WeirError ? e.kind : 'connector', cause: e },
  );
}

function failed(outcome: PartitionOutcome, deps: PartitionRun): PartitionOutcome {
  deps.bus.emit({
    type: 'partition_failed',
    metrics: outcome.metrics,
    error_type: errorType(outcome.error),
    error_message: errorMessage(outcome.error),
  });
  return outcome;
}

export interface RunAllOptions {
  concurrency: number;
  stop: StopController;
}

/**
 * Runs the partitions, at most `concurrency` at a time (planner process, once per
 * run), each until it is done (`runOne`: its attempts). The first partition that
 * fails (after its retries) stops the others at once; after a stop (drain), no new
 * partition starts.
 */
export async function runAll(
  partitions: Partition[],
  runOne: (partition: Partition) => Promise<PartitionOutcome>,
  o: RunAllOptions,
): Promise<{ outcomes: PartitionOutcome[]; failure: unknown }> {
  const limit = pLimit(o.concurrency);
  let failure: unknown;
  const results = await Promise.all(
    partitions.map((p) =>
      limit(async () => {
        if (o.stop.drain.aborted) return undefined;
        const outcome = await runOne(p);
        if (!outcome.ok && !o.stop.drain.aborted) {
          failure ??= outcome.error ?? new WeirError(`partition ${p.id} failed`, { kind: 'internal' });
          o.stop.abortNow(outcome.error);
        }
        return outcome;
      }),
    ),
  );
  return { outcomes: results.filter((r): r is PartitionOutcome => r !== undefined), failure };
}
