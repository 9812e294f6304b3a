/** The report phase: the run's summary and its totals. */
import type { PartitionMetrics, RunStatus, RunSummary, RunTotals } from '../../observe/events.js';
import { errorMessage, errorType, WeirError } from '../../sdk/errors.js';
import { sumStepMetrics } from '../../transforms/index.js';
import type { PartitionOutcome } from '../task.js';
import { isCancelled } from './job.js';
import type { RunState } from './state.js';

/** The run's summary (emitted as `run_complete` or `run_failed`, then returned). */
export function reportRun(r: RunState): RunSummary {
  const { config, failure } = r;
  const status: RunStatus = failure === undefined ? 'succeeded' : isCancelled(failure) && r.stopRequested ? 'stopped' : 'failed';
  const summary: RunSummary = {
    run_id: r.runId,
    pipeline: config.pipeline,
    status,
    source: config.source.type,
    sink: config.sink.type,
    delivery: config.delivery,
    started_at: r.startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    totals: totals(r.outcomes, r.partitions.length, (performance.now() - r.t0) / 1000, r.rowsRejected, r.skipped.size),
    partitions: r.outcomes.map((o) => o.metrics),
    retried_attempts: r.outcomes.flatMap((o) => o.retried ?? []),
    ...(r.config.transforms && !r.config.transforms.empty
      ? { transforms: sumStepMetrics(r.outcomes.map((o) => o.metrics.transforms)) }
      : {}),
    resumed: r.resumed,
    sink_transactional: config.sink.connector.transactional === true,
  };
  if (failure !== undefined) {
    summary.error = {
      error_type: errorType(failure),
      error_message: errorMessage(failure),
      kind: failure instanceof WeirError ? failure.kind : 'internal',
    };
    r.env.bus.emit({ type: 'run_failed', summary, error_type: errorType(failure), error_message: errorMessage(failure) });
  } else {
    r.env.bus.emit({ type: 'run_complete', summary });
  }
  return summary;
}

/**
 * The run's totals. Rows count what the last attempt of each partition read and
 * wrote; the earlier (retried) attempts count in `partition_retries` and
 * `rows_replayed`. Partitions skipped because an earlier run attempt committed them
 * count as committed.
 */
export function totals(outcomes: PartitionOutcome[], partitions: number, duration: number, deadLettered: number, skipped = 0): RunTotals {
  const metrics = outcomes.map((o) => o.metrics);
  const sum = (list: PartitionMetrics[], k: keyof PartitionMetrics) => list.reduce((a, m) => a + (m[k] as number), 0);
  const committed = outcomes.filter((o) => o.ok).map((o) => o.metrics);
  const written = sum(committed, 'rows_processed');
  const retried = outcomes.flatMap((o) => o.retried ?? []);
  const upserts = committed.filter((m) => m.rows_inserted !== undefined);
  return {
    partitions,
    partitions_committed: committed.length + skipped,
    // partitions a stop interrupted are pending (resumable), not failed
    partitions_failed: outcomes.filter((o) => !o.ok && !isCancelled(o.error)).length,
    partitions_skipped: skipped,
    rows_read: sum(metrics, 'rows_read'),
    rows_written: written,
    rows_dead_lettered: deadLettered,
    rows_failed: sum(metrics, 'rows_failed'),
    rows_filtered: metrics.reduce((a, m) => a + (m.rows_filtered ?? 0), 0),
    ...(upserts.length
      ? {
          rows_inserted: upserts.reduce((a, m) => a + (m.rows_inserted ?? 0), 0),
          rows_updated: upserts.reduce((a, m) => a + (m.rows_updated ?? 0), 0),
        }
      : {}),
    bytes_sent: sum(metrics, 'bytes_sent'),
    batches_sent: sum(metrics, 'batches_sent'),
    retries: sum([...metrics, ...retried], 'retry_count'),
    partition_retries: retried.length,
    rows_replayed: sum(retried, 'rows_processed'),
    duration_seconds: Math.round(duration * 1000) / 1000,
    rows_per_second: duration > 0 ? Math.round(written / duration) : 0,
  };
}
