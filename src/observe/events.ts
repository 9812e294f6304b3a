/**
 * Everything that happens during a run is a typed event. Observers (logger,
 * metrics, progress, alerts, summary) subscribe; nothing in the runtime or in a
 * connector calls pino or prom-client directly.
 */
import type { StepMetrics } from '../transforms/index.js';

/** The per-partition metrics of the reference pattern, reported at partition end. */
export interface PartitionMetrics {
  partition_id: string;
  attempt: number;
  rows_read: number;
  rows_processed: number;
  rows_failed: number;
  bytes_sent: number;
  batches_sent: number;
  retry_count: number;
  rate_limit_wait_seconds: number;
  duration_seconds: number;
  /** rows_processed / duration_seconds */
  throughput: number;
  /** error_type → count and a capped sample of messages */
  errors: Record<string, { count: number; samples: string[] }>;
  /** With `transforms:`: rows the filters left out (read = processed + failed + filtered). */
  rows_filtered?: number;
  /** An upsert sink that says which of its rows were new and which replaced a row (postgres). */
  rows_inserted?: number;
  rows_updated?: number;
  /** With `transforms:`: each step's rows in, out, filtered and failed. */
  transforms?: StepMetrics[];
}

export interface RunTotals {
  partitions: number;
  partitions_committed: number;
  partitions_failed: number;
  partitions_skipped: number;
  rows_read: number;
  rows_written: number;
  rows_dead_lettered: number;
  rows_failed: number;
  /** Rows left out by `filter` steps: read = written + dead-lettered + filtered. */
  rows_filtered: number;
  /** Of the rows written, new and replacing ones, when the sink says so (postgres upsert). */
  rows_inserted?: number;
  rows_updated?: number;
  bytes_sent: number;
  batches_sent: number;
  retries: number;
  /** Partition attempts that failed with a retryable error and were run again. */
  partition_retries: number;
  /** Rows written by those failed attempts and written again by a later one (an at-least-once sink that cannot take them back may hold them twice). */
  rows_replayed: number;
  duration_seconds: number;
  rows_per_second: number;
}

export type RunStatus = 'succeeded' | 'failed' | 'stopped';

export interface RunSummary {
  run_id: string;
  pipeline: string;
  status: RunStatus;
  source: string;
  sink: string;
  delivery: string;
  started_at: string;
  finished_at: string;
  totals: RunTotals;
  /** The last attempt of each partition that ran. */
  partitions: PartitionMetrics[];
  /** With `transforms:`: each step's rows in, out, filtered and failed, over the last attempt of every partition. */
  transforms?: StepMetrics[];
  /** The earlier attempts, which failed with a retryable error and were run again. */
  retried_attempts: PartitionMetrics[];
  /** `kind` tells a configuration problem found at run time (exit 2) from a failed run (exit 1). */
  error?: { error_type: string; error_message: string; kind: 'config' | 'connector' | 'data' | 'cancelled' | 'internal' };
  resumed: boolean;
  /** Whether the sink is transactional (`ConnectorDefinition.transactional`): when not, a failed run may have left rows in the target. */
  sink_transactional: boolean;
  /** Peak resident memory of the process so far (filled in when the summary is written). */
  peak_rss_bytes?: number;
}

interface Base {
  partition_id?: string;
  batch_id?: number;
}

export type WeirEvent =
  | {
      type: 'run_start';
      run_id: string;
      pipeline: string;
      source: string;
      sink: string;
      partitions: number;
      delivery: string;
      resumed: boolean;
      estimated_rows?: number;
    }
  | ({ type: 'partition_start'; partition_id: string; attempt: number } & Base)
  /** `rows`: what the earlier attempt committed, when its commit message says. */
  | { type: 'partition_skipped'; partition_id: string; reason: string; rows?: number }
  | { type: 'batch_written'; partition_id: string; batch_id: number; rows: number; bytes: number; duration_ms: number }
  | {
      type: 'batch_retry';
      partition_id: string;
      batch_id: number;
      attempt: number;
      delay_ms: number;
      error_type: string;
      error_message: string;
    }
  | { type: 'rate_limit_wait'; partition_id: string; wait_ms: number }
  | {
      type: 'row_dead_lettered';
      partition_id: string;
      batch_id?: number;
      stage: 'read' | 'transform' | 'write';
      error_type: string;
      error_message: string;
    }
  | { type: 'rows_read'; partition_id: string; rows: number }
  /** One batch through the transforms: each step's counts for that batch. */
  | { type: 'rows_transformed'; partition_id: string; steps: StepMetrics[] }
  /** An unbounded source's messages still waiting in the broker, after the chunk just read. */
  | { type: 'source_lag'; partition_id: string; lag: number }
  | { type: 'partition_complete'; metrics: PartitionMetrics }
  | { type: 'partition_failed'; metrics: PartitionMetrics; error_type: string; error_message: string }
  /** Attempt `metrics.attempt` failed with a retryable error and was aborted; attempt + 1 starts after `delay_ms`. */
  | { type: 'partition_retry'; metrics: PartitionMetrics; delay_ms: number; error_type: string; error_message: string }
  | { type: 'epoch_commit'; partition_id: string; epoch: number; rows: number; duration_ms: number }
  /** Every partition committed; the job commit starts (it may take a while: a table swap, a file rename). */
  | { type: 'job_committing'; partitions: number }
  | { type: 'job_commit'; partitions: number; duration_ms: number }
  | { type: 'job_abort'; partitions: number; reason: string }
  | { type: 'close_error'; resource: string; partition_id?: string; error_type: string; error_message: string }
  | { type: 'warning'; message: string; partition_id?: string }
  | { type: 'shutdown_requested'; signal: string }
  | { type: 'progress'; rows: number; rows_per_second: number; percent?: number; eta_seconds?: number; lag?: number }
  | { type: 'run_complete'; summary: RunSummary }
  | { type: 'run_failed'; summary: RunSummary; error_type: string; error_message: string };

export type EventType = WeirEvent['type'];
export type Listener = (event: WeirEvent) => void;

/** A synchronous fan-out to observers. An observer that throws never breaks the run. */
export class EventBus {
  private readonly listeners: Listener[] = [];

  subscribe(listener: Listener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  emit(event: WeirEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // observers must not break the data path
      }
    }
  }
}
