import type { PartitionMetrics } from '../observe/events.js';
import { errorMessage, errorType } from '../sdk/errors.js';
import { redactor } from '../secrets/redactor.js';
import type { ChainRun } from '../transforms/index.js';

const MAX_SAMPLES = 5;
const MAX_SAMPLE_LENGTH = 300;

/** Counts one partition attempt: the reference pattern's per-partition metrics. */
export class PartitionStats {
  private readonly started = performance.now();
  rowsRead = 0;
  rowsProcessed = 0;
  rowsFailed = 0;
  bytesSent = 0;
  batchesSent = 0;
  retryCount = 0;
  rateLimitWaitMs = 0;
  /** An upsert's split of the rows written, when the sink counts it (`ctx.count`). */
  private upserted: { rows_inserted: number; rows_updated: number } | undefined;
  /** The attempt's pass through the pipeline's transforms, when it has any: rows filtered and per-step counts. */
  transforms: ChainRun | undefined;
  private readonly errors: PartitionMetrics['errors'] = {};
  /** Errors counted already: a row error that then fails the partition is still one error. */
  private readonly counted = new WeakSet<object>();

  constructor(
    readonly partitionId: string,
    readonly attempt: number,
  ) {}

  /** Adds to the upsert's inserted or updated rows. */
  countUpsert(metric: 'rows_inserted' | 'rows_updated', value: number): void {
    this.upserted ??= { rows_inserted: 0, rows_updated: 0 };
    this.upserted[metric] += value;
  }

  /** Counts an error (a row's, a retry's) in the attempt's errors by type. */
  recordError(error: unknown): void {
    if (typeof error === 'object' && error !== null) this.counted.add(error);
    const type = errorType(error);
    const entry = this.errors[type] ?? { count: 0, samples: [] };
    this.errors[type] = entry;
    entry.count++;
    // scrubbed before it is cut: a cut could leave a part of a secret too short to recognise later
    if (entry.samples.length < MAX_SAMPLES) entry.samples.push(redactor.truncate(errorMessage(error), MAX_SAMPLE_LENGTH));
  }

  /** Counts the error that failed the attempt, unless it is a row's error counted already (a bad row with tolerance none). */
  recordFailure(error: unknown): void {
    if (typeof error === 'object' && error !== null && this.counted.has(error)) return;
    this.recordError(error);
  }

  snapshot(): PartitionMetrics {
    const duration = (performance.now() - this.started) / 1000;
    return {
      partition_id: this.partitionId,
      attempt: this.attempt,
      rows_read: this.rowsRead,
      rows_processed: this.rowsProcessed,
      rows_failed: this.rowsFailed,
      bytes_sent: this.bytesSent,
      batches_sent: this.batchesSent,
      retry_count: this.retryCount,
      rate_limit_wait_seconds: round(this.rateLimitWaitMs / 1000),
      duration_seconds: round(duration),
      throughput: duration > 0 ? Math.round(this.rowsProcessed / duration) : 0,
      errors: structuredClone(this.errors),
      ...this.upserted,
      ...(this.transforms ? { rows_filtered: this.transforms.rowsFiltered, transforms: this.transforms.metrics() } : {}),
    };
  }
}

const round = (n: number) => Math.round(n * 1000) / 1000;
