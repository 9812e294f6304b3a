/**
 * What a distributed run puts into BullMQ: one flow per run — a parent job `run` and
 * one child job `partition` per partition. Job data is plain JSON with the pipeline's
 * secret REFERENCES only ({@link TaskSpec}); return values and progress are results
 * and events the worker already redacted. Everything read back is untrusted input:
 * checked here before use.
 */
import type { WeirEvent } from '../observe/events.js';
import type { TaskResult, TaskSpec } from '../runtime/task-json.js';
import { WeirError } from '../sdk/errors.js';

export const RUN_JOB = 'run';
export const PARTITION_JOB = 'partition';

/** A partition job's data: the task (its `attempt` is set by the worker from BullMQ's attempt count) and the run-wide limits. */
export interface PartitionJobData {
  task: TaskSpec;
  /** The pipeline's batch retry backoff, which partition retries use too (`retry.initial_delay`, `retry.max_delay`). */
  backoff: { initial_delay: number; max_delay: number };
  /** `concurrency` of the pipeline: partitions of this run running at once across all workers. */
  concurrency: number;
  /** The run-wide `rate_limit` batch cap is in `task.limits`; the queue the run's keys live under. */
  queue: string;
}

/** The parent job's data. */
export interface RunJobData {
  run_id: string;
  /** `submitter`: the process that submitted follows the run and commits the job; `worker`: the run was detached and this job commits it. */
  commit_by: 'submitter' | 'worker';
  /** `[job id, partition id]` in plan order (the job commit takes the messages in this order). */
  partitions: [string, string][];
  /** What the job commit needs besides the pipeline (detached runs). */
  pipeline?: TaskSpec['pipeline'];
  state_id?: string;
  schema?: TaskSpec['schema'];
}

/** What a worker reports as a job's progress: the events of the running attempt, or the result of a failed one. */
export interface PartitionProgress {
  events?: WeirEvent[];
  result?: TaskResult;
}

export function checkPartitionJob(data: unknown): PartitionJobData {
  const d = data as Partial<PartitionJobData> | null;
  const t = d?.task as Partial<TaskSpec> | undefined;
  if (
    typeof d !== 'object' ||
    d === null ||
    typeof t !== 'object' ||
    t === null ||
    typeof t.run_id !== 'string' ||
    typeof t.pipeline?.text !== 'string' ||
    typeof t.partition?.id !== 'string' ||
    typeof d.concurrency !== 'number' ||
    typeof d.queue !== 'string'
  )
    throw new WeirError('a partition job in Redis is malformed (not a weir task)', { kind: 'internal', code: 'malformed_job' });
  return d as PartitionJobData;
}

/** Events read back from a job's progress: only objects with a string `type` pass. */
export function eventsOf(progress: unknown): WeirEvent[] {
  const p = progress as PartitionProgress | null;
  if (typeof p !== 'object' || p === null || !Array.isArray(p.events)) return [];
  return p.events.filter((e): e is WeirEvent => typeof e === 'object' && e !== null && typeof (e as { type?: unknown }).type === 'string');
}
