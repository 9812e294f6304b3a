/**
 * The execute phase: the run's shared policies (rate limiter, retrier with its
 * circuit breaker, dead letters, the checkpoint writer) are built once, and the
 * partitions left to run are handed to the run's engine.
 */
import type { Sink } from '../../sdk/connector.js';
import { errorMessage } from '../../sdk/errors.js';
import type { CheckpointStore } from '../checkpoints.js';
import { type DeadLetterLedger, DeadLetterPublisher, DeadLetterStager, deadLetterContext, memoryLedger } from '../dead-letter.js';
import type { ExecuteJob } from '../engine.js';
import { CircuitGate, createRetrier, partitionRetryPolicy, RateLimiter, SharedPause } from '../policies.js';
import { memoryProgress, streamSettings } from '../stream.js';
import type { CheckpointWriter } from '../task.js';
import type { RunState } from './state.js';

/** Runs the partitions that are not skipped (planner, once); leaves their outcomes and the first failure in `r`. */
export async function executeRun(r: RunState): Promise<void> {
  const { config, env, stop } = r;
  const source = r.source as NonNullable<RunState['source']>;
  const sink = r.sink as Sink;
  const dl = config.errors.dead_letter;
  const dlSink = dl ? dl.connector.sink?.(dl.options) : undefined;
  const dlCtx = deadLetterContext({
    runId: r.runId,
    pipeline: r.stateId,
    baseDir: r.pipeline.baseDir,
    logger: r.logger,
    signal: stop.abort,
  });
  r.deadLetters = new DeadLetterPublisher(dlSink, dlCtx, deadLetterLedger(r.store, r.runId));
  const publisher = r.deadLetters;
  r.stager = new DeadLetterStager(
    { options: config.errors, pipeline: config.pipeline, redactor: env.redactor, rowsRead: () => r.rowsRead },
    dlSink,
    dlCtx,
    (id, message) => publisher.record(id, message),
  );

  const rateLimiter = new RateLimiter(config.rate_limit);
  const sinkBatch = config.sink.options.batch_size;
  let batchRows = typeof sinkBatch === 'number' ? sinkBatch : config.batch.rows;
  const cap = rateLimiter.batchCap();
  if (cap !== undefined && batchRows > cap) batchRows = cap;
  const store = r.store;
  const runId = r.runId;
  const checkpoints: CheckpointWriter | undefined = store
    ? { commitPartition: (id, message, state) => store.commitPartition(runId, id, message, state) }
    : undefined;
  const job: ExecuteJob = {
    runId,
    stateId: r.stateId,
    pipeline: r.pipeline,
    schema: r.schema,
    partitions: r.partitions.filter((p) => !r.skipped.has(p.id)),
    limits: { rows: batchRows, bytes: config.batch.bytes },
    concurrency: config.concurrency,
    retry: partitionRetryPolicy(config.retry),
    bus: env.bus,
    logger: r.logger,
    redactor: env.redactor,
    stop,
    closers: env.closers,
    deadLetters: publisher,
    checkpoints,
    stream: r.source?.unbounded ? { settings: streamSettings(config.stream), progress: memoryProgress(r.resumePoints) } : undefined,
    progress: () => ({ rowsRead: r.rowsRead, rowsRejected: r.rowsRejected }),
    local: {
      source,
      sink,
      rateLimiter,
      retrier: createRetrier(config.retry, { pause: new SharedPause(), ...breakerOf(r) }),
      rowErrors: r.stager,
    },
  };
  const executed = await env.engine.execute(job);
  r.outcomes = executed.outcomes;
  r.failure ??= executed.failure;
}

/** The run's circuit breaker, shared by every task in this process (none with `breaker_threshold: 0`). */
function breakerOf(r: RunState): { breaker?: CircuitGate } {
  const { retry } = r.config;
  if (retry.breaker_threshold <= 0) return {};
  const bus = r.env.bus;
  return {
    breaker: new CircuitGate(retry.breaker_threshold, retry.breaker_half_open_after, {
      onOpen: (error) =>
        bus.emit({
          type: 'warning',
          message: `circuit breaker opened after ${retry.breaker_threshold} consecutive failed writes (last: ${errorMessage(error)}); writes wait ${retry.breaker_half_open_after} ms, then one probe write`,
        }),
      onClose: () => bus.emit({ type: 'warning', message: 'circuit breaker closed: the sink accepts writes again' }),
    }),
  };
}

/** The dead-letter messages of a run: in the checkpoint store (they survive a crash), else in memory. */
function deadLetterLedger(store: CheckpointStore | undefined, runId: string): DeadLetterLedger {
  if (!store) return memoryLedger();
  return {
    save: (partitionId, message) => store.saveDeadLetters(runId, partitionId, message),
    all: () => store.deadLetters(runId),
    clear: () => store.clearDeadLetters(runId),
  };
}
