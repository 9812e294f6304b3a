/**
 * A task as it crosses a process boundary: started from plain JSON (the pipeline as
 * written — its secret references, never their values —, the run, the partition,
 * the attempt) and ended with a plain-JSON result (commit message, metrics, an
 * error as `{code, message, kind, retryable}` already redacted). An engine that
 * runs tasks elsewhere (a child process, a BullMQ worker) sends a {@link TaskSpec}
 * and gets a {@link TaskResult} back; the worker rebuilds its connectors, secrets,
 * logger and metrics from the spec alone (worker.ts).
 */
import type { PipelineDocument } from '../config/pipeline.js';
import type { PartitionMetrics } from '../observe/events.js';
import type { EpochMark } from '../sdk/connector.js';
import { type ErrorKind, errorMessage, errorType, WeirError } from '../sdk/errors.js';
import type { JsonValue, Partition, Schema } from '../sdk/types.js';
import type { Redactor } from '../secrets/redactor.js';
import { isPartitionRetryable, retryAfterOf } from './policies.js';
import { PartitionStats } from './stats.js';

export interface TaskSpec {
  pipeline: PipelineDocument;
  run_id: string;
  /** The pipeline's id in state (see `pipelineStateId`). */
  state_id: string;
  partition: Partition;
  /** 1 for the first attempt. */
  attempt: number;
  schema: Schema | null;
  limits: { rows: number; bytes: number };
  /** The run's rows read and rows rejected when the task started: the error policy's limits hold for the whole run. */
  run_rows_read: number;
  run_rows_rejected: number;
  /** Unbounded sources: the partition's last committed epoch, where this attempt continues. */
  resume_from?: EpochMark;
}

/** An error as plain JSON: its message redacted by the process that raised it. */
export interface TaskError {
  code: string;
  message: string;
  kind: ErrorKind;
  /** Whether running the partition again may succeed ({@link isPartitionRetryable}). */
  retryable: boolean;
  retry_after_ms?: number;
}

export interface TaskResult {
  partition_id: string;
  attempt: number;
  ok: boolean;
  message?: JsonValue;
  /** The source's incremental state (`ctx.setState`), when the attempt committed. */
  state?: JsonValue;
  metrics: PartitionMetrics;
  error?: TaskError;
  /**
   * The dead-letter sink's commit message for the rows this attempt rejected (absent:
   * none). Committed by the worker whether the attempt succeeded or not: the planner
   * publishes it, or drops it when the partition runs again.
   */
  dead_letters?: JsonValue;
}

export function taskError(error: unknown, redactor: Redactor): TaskError {
  const after = retryAfterOf(error);
  return {
    code: errorType(error),
    message: redactor.scrub(errorMessage(error)),
    kind: error instanceof WeirError ? error.kind : 'internal',
    retryable: isPartitionRetryable(error),
    ...(after !== undefined ? { retry_after_ms: after } : {}),
  };
}

/** The error a task result carries, as the planner handles errors (a retryable one is a connector error). */
export function fromTaskError(e: TaskError): WeirError {
  return new WeirError(e.message, {
    code: e.code,
    kind: e.retryable ? 'connector' : e.kind,
    retryable: e.retryable,
    ...(e.retry_after_ms !== undefined ? { retryAfterMs: e.retry_after_ms } : {}),
  });
}

/** Checks what came back from another process: untrusted input, so its shape is checked before use. */
export function parseTaskResult(value: unknown, expect: { partition_id: string; attempt: number }): TaskResult {
  const r = value as Partial<TaskResult> | null;
  const bad = (why: string) =>
    new WeirError(`the worker of partition ${expect.partition_id} returned a malformed result (${why})`, { kind: 'internal' });
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw bad('not an object');
  if (r.partition_id !== expect.partition_id || r.attempt !== expect.attempt) throw bad('another partition or attempt');
  if (typeof r.ok !== 'boolean') throw bad('no ok flag');
  const m = r.metrics as Partial<PartitionMetrics> | undefined;
  if (typeof m !== 'object' || m === null || typeof m.rows_read !== 'number' || typeof m.rows_processed !== 'number')
    throw bad('no metrics');
  if (!r.ok) {
    const e = r.error as Partial<TaskError> | undefined;
    if (typeof e?.message !== 'string' || typeof e.code !== 'string' || typeof e.retryable !== 'boolean') throw bad('no error');
  }
  return r as TaskResult;
}

/** The metrics of an attempt that never ran (its worker could not start it, or died first). */
export function emptyMetrics(partitionId: string, attempt: number): PartitionMetrics {
  return new PartitionStats(partitionId, attempt).snapshot();
}
