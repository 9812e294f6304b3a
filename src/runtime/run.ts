/**
 * One run of a pipeline: plan → execute (one task per partition) → job commit or
 * abort → summary. Every resource opened here is closed here.
 */
import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { CommitContext, PlanContext, Sink, Source, TaskContext } from '../sdk/connector.js';
import { WeirError, errorMessage, errorType } from '../sdk/errors.js';
import type { JsonValue, Partition } from '../sdk/types.js';
import type { ValidatedPipeline } from '../config/pipeline.js';
import type { EventBus, PartitionMetrics, RunStatus, RunSummary, RunTotals } from '../observe/events.js';
import { toLog } from '../observe/logger.js';
import type { Redactor } from '../secrets/redactor.js';
import { DeadLetterQueue } from './dead-letter.js';
import { RateLimiter, createRetrier } from './policies.js';
import { type PartitionOutcome, type TaskDeps, runPartition } from './task.js';

export interface RunEnv {
  bus: EventBus;
  logger: Logger;
  redactor: Redactor;
  /** Stops the run (SIGINT/SIGTERM): no new batches, in-flight work aborted, job abort. */
  signal?: AbortSignal;
  runId?: string;
}

export function newRunId(): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${t}-${randomBytes(4).toString('hex')}`;
}

export async function runPipeline(pipeline: ValidatedPipeline, env: RunEnv): Promise<RunSummary> {
  const { config, baseDir } = pipeline;
  const runId = env.runId ?? newRunId();
  const startedAt = new Date();
  const t0 = performance.now();
  const logger = env.logger.child({ run_id: runId, pipeline: config.pipeline });
  const { bus } = env;
  const controller = new AbortController();
  const onStop = () => controller.abort(new WeirError('run stopped by signal', { kind: 'cancelled', code: 'cancelled' }));
  env.signal?.addEventListener('abort', onStop, { once: true });
  if (env.signal?.aborted) onStop();

  const planCtx: PlanContext = { runId, pipeline: config.pipeline, log: toLog(logger), signal: controller.signal, baseDir };
  let source: Source | undefined;
  let sink: Sink | undefined;
  let dlq: DeadLetterQueue | undefined;
  let outcomes: PartitionOutcome[] = [];
  let partitions: Partition[] = [];
  let failure: unknown;
  let rowsRead = 0;
  const unsubscribe = bus.subscribe((e) => {
    if (e.type === 'rows_read') rowsRead += e.rows;
  });

  try {
    source = (config.source.connector.source as NonNullable<typeof config.source.connector.source>)(config.source.options);
    sink = (config.sink.connector.sink as NonNullable<typeof config.sink.connector.sink>)(config.sink.options);
    const schema = (await source.schema?.(planCtx)) ?? undefined;
    partitions = (await source.partitions?.(planCtx)) ?? [{ id: '0' }];
    checkPartitions(partitions, config.source.type);
    const estimated = await source.estimate?.(planCtx);
    bus.emit({
      type: 'run_start',
      run_id: runId,
      pipeline: config.pipeline,
      source: config.source.type,
      sink: config.sink.type,
      partitions: partitions.length,
      delivery: config.delivery,
      resumed: false,
      ...(estimated !== undefined ? { estimated_rows: estimated } : {}),
    });
    const commitCtx: CommitContext = { ...planCtx, schema };
    await sink.setup?.(commitCtx);

    const dlSection = config.errors.dead_letter;
    const dlCtx: TaskContext = {
      ...planCtx,
      partitionId: 'dead-letter',
      attempt: 1,
      schema: undefined,
      reject: async () => {},
      count: () => {},
    };
    dlq = new DeadLetterQueue(
      config.errors,
      config.pipeline,
      env.redactor,
      () => rowsRead,
      dlSection ? dlSection.connector.sink?.(dlSection.options) : undefined,
      dlCtx,
    );

    const sinkBatch = config.sink.options.batch_size;
    const deps: TaskDeps = {
      runId,
      pipeline: config.pipeline,
      baseDir,
      source,
      sink,
      schema,
      bus,
      logger,
      limits: { rows: typeof sinkBatch === 'number' ? sinkBatch : config.batch.rows, bytes: config.batch.bytes },
      retrier: createRetrier(config.retry),
      rateLimiter: new RateLimiter(config.rate_limit),
      rowErrors: dlq,
      signal: controller.signal,
    };
    const limit = pLimit(config.concurrency);
    const results = await Promise.all(
      partitions.map((p) =>
        limit(async () => {
          if (controller.signal.aborted) return undefined;
          const outcome = await runPartition(p, 1, deps);
          if (!outcome.ok && !controller.signal.aborted) controller.abort(outcome.error);
          return outcome;
        }),
      ),
    );
    outcomes = results.filter((o): o is PartitionOutcome => o !== undefined);

    const committed = outcomes.filter((o) => o.ok);
    const messages = committed.map((o) => o.message as JsonValue);
    if (!controller.signal.aborted && committed.length === partitions.length) {
      const c0 = performance.now();
      await sink.commit?.(messages, commitCtx);
      bus.emit({ type: 'job_commit', partitions: messages.length, duration_ms: Math.round(performance.now() - c0) });
    } else {
      failure = controller.signal.reason ?? outcomes.find((o) => !o.ok)?.error;
      bus.emit({ type: 'job_abort', partitions: messages.length, reason: errorMessage(failure) });
      await sink.abort?.(messages, commitCtx);
    }
  } catch (error) {
    failure ??= error;
    if (sink && outcomes.length === 0) {
      try {
        await sink.abort?.([], { ...planCtx, schema: undefined });
      } catch (abortError) {
        bus.emit({ type: 'close_error', resource: 'sink.abort', error_type: errorType(abortError), error_message: errorMessage(abortError) });
      }
    }
  } finally {
    env.signal?.removeEventListener('abort', onStop);
    unsubscribe();
    for (const [name, close] of [
      ['dead-letter sink', () => dlq?.finish()],
      ['source', () => source?.close?.()],
      ['sink', () => sink?.close?.()],
    ] as const) {
      try {
        await close();
      } catch (closeError) {
        failure ??= closeError;
        bus.emit({ type: 'close_error', resource: name, error_type: errorType(closeError), error_message: errorMessage(closeError) });
      }
    }
  }

  const status: RunStatus =
    failure === undefined ? 'succeeded' : failure instanceof WeirError && failure.kind === 'cancelled' ? 'stopped' : 'failed';
  const summary: RunSummary = {
    run_id: runId,
    pipeline: config.pipeline,
    status,
    source: config.source.type,
    sink: config.sink.type,
    delivery: config.delivery,
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    totals: totals(outcomes, partitions.length, (performance.now() - t0) / 1000, dlq?.failed ?? 0),
    partitions: outcomes.map((o) => o.metrics),
    resumed: false,
  };
  if (failure !== undefined) {
    summary.error = { error_type: errorType(failure), error_message: errorMessage(failure) };
    bus.emit({ type: 'run_failed', summary, error_type: errorType(failure), error_message: errorMessage(failure) });
  } else {
    bus.emit({ type: 'run_complete', summary });
  }
  return summary;
}

function checkPartitions(partitions: Partition[], type: string): void {
  const seen = new Set<string>();
  for (const p of partitions) {
    if (typeof p.id !== 'string' || p.id === '') throw new WeirError(`source ${type} returned a partition without a string id`, { kind: 'internal' });
    if (seen.has(p.id)) throw new WeirError(`source ${type} returned two partitions with id ${p.id}`, { kind: 'internal' });
    seen.add(p.id);
  }
  // partitions cross processes: they must survive a JSON round trip unchanged
  if (JSON.stringify(JSON.parse(JSON.stringify(partitions))) !== JSON.stringify(partitions))
    throw new WeirError(`source ${type} returned partitions that are not plain JSON`, { kind: 'internal' });
}

export function totals(outcomes: PartitionOutcome[], partitions: number, duration: number, deadLettered: number): RunTotals {
  const metrics = outcomes.map((o) => o.metrics);
  const sum = (list: PartitionMetrics[], k: keyof PartitionMetrics) => list.reduce((a, m) => a + (m[k] as number), 0);
  const committed = outcomes.filter((o) => o.ok).map((o) => o.metrics);
  const written = sum(committed, 'rows_processed');
  return {
    partitions,
    partitions_committed: committed.length,
    partitions_failed: outcomes.length - committed.length,
    partitions_skipped: 0,
    rows_read: sum(metrics, 'rows_read'),
    rows_written: written,
    rows_dead_lettered: deadLettered,
    rows_failed: sum(metrics, 'rows_failed'),
    bytes_sent: sum(metrics, 'bytes_sent'),
    batches_sent: sum(metrics, 'batches_sent'),
    retries: sum(metrics, 'retry_count'),
    duration_seconds: Math.round(duration * 1000) / 1000,
    rows_per_second: duration > 0 ? Math.round(written / duration) : 0,
  };
}
