/**
 * One run of a pipeline: plan → resume check → execute (one task per partition)
 * → job commit or abort → summary. Every resource opened here is closed here.
 *
 * Resume: the checkpoint store records every committed partition. When the last
 * run of the pipeline did not finish (killed, or stopped by a signal) and the plan
 * is the same, `weir run` resumes it under the SAME run id: committed partitions
 * are skipped, the others redone, then the job commit publishes all of them. An
 * exactly-once sink is asked what it holds (`Sink.recover`) and trusted over the
 * local store. `fresh` abandons the old run instead (its staged data is aborted).
 *
 * Stop: the first signal drains (see shutdown.ts); partitions that committed stay
 * recorded, the job is neither committed nor aborted, and the run is `stopped`,
 * ready to be resumed. A failure (not a stop) aborts the job: nothing is published.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { ValidatedPipeline } from '../config/pipeline.js';
import type { EventBus, PartitionMetrics, RunStatus, RunSummary, RunTotals } from '../observe/events.js';
import { toLog } from '../observe/logger.js';
import type { CommitContext, PlanContext, RecoveredState, Sink, Source, TaskContext } from '../sdk/connector.js';
import { errorMessage, errorType, WeirError } from '../sdk/errors.js';
import type { JsonValue, Partition } from '../sdk/types.js';
import type { Redactor } from '../secrets/redactor.js';
import { CheckpointStore, checkpointFile, ownerAlive, planHash, type StoredPartition, type StoredRun } from './checkpoints.js';
import { type DeadLetterLedger, DeadLetterQueue, memoryLedger } from './dead-letter.js';
import { runLocally } from './partition.js';
import { CircuitGate, createRetrier, partitionRetryPolicy, RateLimiter, SharedPause } from './policies.js';
import { Closers, StopController } from './shutdown.js';
import type { PartitionOutcome, TaskDeps } from './task.js';

export interface RunEnv {
  bus: EventBus;
  logger: Logger;
  redactor: Redactor;
  /** Stops the run (SIGINT/SIGTERM): read nothing new, let in-flight writes finish within `shutdown_timeout`, keep what committed for resume. */
  signal?: AbortSignal;
  /** Run id of a new run (a resumed run keeps its own). */
  runId?: string;
  /** Start over: abandon an interrupted run of this pipeline instead of resuming it. */
  fresh?: boolean;
  /** Directory a relative `checkpoint.path` resolves against; the working directory by default. */
  cwd?: string;
  /** `false`: no checkpoint store (no resume). An open store: use it (the caller closes it). */
  checkpoints?: false | CheckpointStore;
  /** Where open resources are registered, so an immediate exit (second signal) can still close them. */
  closers?: Closers;
}

export function newRunId(): string {
  const t = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${t}-${randomBytes(4).toString('hex')}`;
}

/** Interrupted (killed) or stopped by a signal: the next `weir run` resumes it. */
const isInterrupted = (run: StoredRun): boolean => run.status === 'running' || run.status === 'stopped';

export async function runPipeline(pipeline: ValidatedPipeline, env: RunEnv): Promise<RunSummary> {
  const { config, baseDir } = pipeline;
  const stateId = pipeline.stateId ?? config.pipeline; // never a resolved reference: state keeps this
  const startedAt = new Date();
  const t0 = performance.now();
  const { bus } = env;
  const closers = env.closers ?? new Closers();
  const stop = new StopController();
  let stopRequested = false;
  const onStop = () => {
    stopRequested = true;
    stop.requestDrain(new WeirError('run stopped by signal', { kind: 'cancelled', code: 'cancelled' }), config.shutdown_timeout);
  };
  env.signal?.addEventListener('abort', onStop, { once: true });
  if (env.signal?.aborted) onStop();

  let runId = env.runId ?? newRunId();
  let logger = env.logger.child({ run_id: runId, pipeline: config.pipeline });
  let planCtx: PlanContext = { runId, pipeline: stateId, log: toLog(logger), signal: stop.abort, baseDir };
  let source: Source | undefined;
  let sink: Sink | undefined;
  let dlq: DeadLetterQueue | undefined;
  let store: CheckpointStore | undefined;
  const ownStore = env.checkpoints === undefined;
  let outcomes: PartitionOutcome[] = [];
  let partitions: Partition[] = [];
  let skipped = new Map<string, JsonValue>();
  let resumed = false;
  let runRecorded = false;
  let jobDone = false;
  let setupDone = false;
  let failure: unknown;
  let rowsRead = 0;
  const unregister: (() => void)[] = [];
  const unsubscribe = bus.subscribe((e) => {
    if (e.type === 'rows_read') rowsRead += e.rows;
    else if (e.type === 'partition_retry') rowsRead -= e.metrics.rows_read; // the next attempt reads them again
  });

  try {
    if (env.checkpoints instanceof CheckpointStore) store = env.checkpoints;
    else if (env.checkpoints === undefined) {
      const s = CheckpointStore.open(checkpointFile(config.checkpoint.path, env.cwd));
      store = s;
      unregister.push(closers.register('checkpoint store', () => s.close()));
    }
    source = (config.source.connector.source as NonNullable<typeof config.source.connector.source>)(config.source.options);
    sink = (config.sink.connector.sink as NonNullable<typeof config.sink.connector.sink>)(config.sink.options);
    const src = source;
    const snk = sink;
    unregister.push(
      closers.register('source', () => src.close?.()),
      closers.register('sink', () => snk.close?.()),
    );
    // an exactly-once sink knows what it holds: even a failed run resumes, since recover() tells what survived the abort
    const recoverable = Boolean(config.sink.connector.exactlyOnce && sink.recover);
    const resumable = (run: StoredRun | undefined): run is StoredRun =>
      run !== undefined && (isInterrupted(run) || (recoverable && run.status === 'failed'));
    const previous = store?.lastRun(stateId);
    if (previous && ownerAlive(previous))
      throw new WeirError(
        `pipeline ${config.pipeline} is already running (run ${previous.run_id}, process ${previous.owner}); wait for it or stop it before starting another run`,
        { code: 'already_running' },
      );
    if (resumable(previous) && !env.fresh && !env.runId) {
      runId = previous.run_id;
      logger = env.logger.child({ run_id: runId, pipeline: config.pipeline });
      planCtx = { ...planCtx, runId, log: toLog(logger) };
    }

    const schema = (await source.schema?.(planCtx)) ?? undefined;
    partitions = (await source.partitions?.(planCtx)) ?? [{ id: '0' }];
    checkPartitions(partitions, config.source.type);
    const hash = planHash(config.source.type, config.sink.type, partitions);
    resumed = resumable(previous) && previous.run_id === runId && previous.plan_hash === hash;
    let abandon: { run: StoredRun; reason: string } | undefined;
    if (resumable(previous) && !resumed) {
      const reason = env.fresh
        ? '--fresh'
        : env.runId
          ? `run id ${env.runId} was given`
          : 'its plan (source partitions) differs from this one';
      abandon = { run: previous, reason };
      if (runId === previous.run_id) {
        runId = newRunId();
        logger = env.logger.child({ run_id: runId, pipeline: config.pipeline });
        planCtx = { ...planCtx, runId, log: toLog(logger) };
      }
    }
    const estimated = await source.estimate?.(planCtx);
    bus.emit({
      type: 'run_start',
      run_id: runId,
      pipeline: config.pipeline,
      source: config.source.type,
      sink: config.sink.type,
      partitions: partitions.length,
      delivery: config.delivery,
      resumed,
      ...(estimated !== undefined ? { estimated_rows: estimated } : {}),
    });
    const commitCtx: CommitContext = { ...planCtx, schema };
    await sink.setup?.(commitCtx);
    setupDone = true;

    if (abandon && store) {
      const old = abandon.run;
      const oldCtx: CommitContext = { ...commitCtx, runId: old.run_id };
      let messages = store.committedPartitions(old.run_id);
      if (recoverable) messages = mergePartitions(messages, (await (sink.recover as NonNullable<Sink['recover']>)(oldCtx)).partitions);
      await sink.abort?.(
        messages.map((m) => m.message),
        oldCtx,
      );
      store.setStatus(old.run_id, 'abandoned');
      bus.emit({
        type: 'warning',
        message: `starting over: the interrupted run ${old.run_id} was abandoned (${abandon.reason}); its ${messages.length} committed partition(s) were discarded`,
      });
    }

    let state: RecoveredState | undefined;
    if (resumed) {
      let committed = store?.committedPartitions(runId) ?? [];
      if (recoverable) {
        state = await (sink.recover as NonNullable<Sink['recover']>)(commitCtx);
        committed = state.partitions;
        store?.replacePartitions(runId, committed);
      }
      const planned = new Set(partitions.map((p) => p.id));
      skipped = new Map(committed.filter((p) => planned.has(p.partition_id)).map((p) => [p.partition_id, p.message]));
      store?.claim(runId);
    } else if (store) {
      store.startRun({ run_id: runId, pipeline: stateId, plan_hash: hash, partitions });
    }
    runRecorded = true;
    // the job commit happened, but the process ended before the store knew: nothing is left to do
    if (state?.jobCommitted) skipped = new Map(partitions.map((p) => [p.id, skipped.get(p.id) ?? null]));
    for (const id of skipped.keys())
      bus.emit({ type: 'partition_skipped', partition_id: id, reason: `already committed by an earlier attempt of run ${runId}` });

    if (state?.jobCommitted) {
      jobDone = true;
      store?.setStatus(runId, 'succeeded');
    } else {
      const dlSection = config.errors.dead_letter;
      const dlCtx: TaskContext = {
        ...planCtx,
        ownerOnly: true, // rejected rows may hold anything: files of the dead-letter sink are 0600
        partitionId: 'dead-letter',
        attempt: 1,
        schema: undefined,
        reject: async () => {},
        count: () => {},
        onCommit: () => {},
      };
      dlq = new DeadLetterQueue(
        config.errors,
        config.pipeline,
        env.redactor,
        () => rowsRead,
        dlSection ? dlSection.connector.sink?.(dlSection.options) : undefined,
        dlCtx,
        deadLetterLedger(store, runId),
      );

      const sinkBatch = config.sink.options.batch_size;
      const rateLimiter = new RateLimiter(config.rate_limit);
      let batchRows = typeof sinkBatch === 'number' ? sinkBatch : config.batch.rows;
      const cap = rateLimiter.batchCap();
      if (cap !== undefined && batchRows > cap) batchRows = cap;
      const breakerThreshold = config.retry.breaker_threshold;
      const breaker =
        breakerThreshold > 0
          ? new CircuitGate(breakerThreshold, config.retry.breaker_half_open_after, {
              onOpen: (error) =>
                bus.emit({
                  type: 'warning',
                  message: `circuit breaker opened after ${breakerThreshold} consecutive failed writes (last: ${errorMessage(error)}); writes wait ${config.retry.breaker_half_open_after} ms, then one probe write`,
                }),
              onClose: () => bus.emit({ type: 'warning', message: 'circuit breaker closed: the sink accepts writes again' }),
            })
          : undefined;
      const checkpointStore = store;
      const deps: TaskDeps = {
        runId,
        pipeline: stateId,
        baseDir,
        source,
        sink,
        schema,
        bus,
        logger,
        limits: { rows: batchRows, bytes: config.batch.bytes },
        retrier: createRetrier(config.retry, { pause: new SharedPause(), ...(breaker ? { breaker } : {}) }),
        rateLimiter,
        rowErrors: dlq,
        signal: stop.abort,
        drain: stop.drain,
        onCommitted: checkpointStore ? (id, message) => checkpointStore.commitPartition(runId, id, message) : undefined,
        closers,
      };
      const todo = partitions.filter((p) => !skipped.has(p.id));
      const executed = await runLocally(todo, deps, { concurrency: config.concurrency, retry: partitionRetryPolicy(config.retry), stop });
      outcomes = executed.outcomes;
      failure ??= executed.failure;
    }

    const messages = new Map(skipped);
    for (const o of outcomes) if (o.ok) messages.set(o.partition.id, o.message as JsonValue);
    const ordered = partitions.filter((p) => messages.has(p.id)).map((p) => messages.get(p.id) as JsonValue);
    if (jobDone) {
      // nothing left to do
    } else if (failure === undefined && messages.size === partitions.length) {
      const c0 = performance.now();
      await sink.commit?.(ordered, commitCtx);
      jobDone = true;
      store?.setStatus(runId, 'succeeded');
      store?.prune(stateId);
      bus.emit({ type: 'job_commit', partitions: ordered.length, duration_ms: Math.round(performance.now() - c0) });
    } else if (failure === undefined && stopRequested) {
      failure = stop.drain.reason;
      store?.setStatus(runId, 'stopped');
    } else {
      failure ??= stop.abort.reason ?? outcomes.find((o) => !o.ok)?.error ?? new WeirError('run did not complete', { kind: 'internal' });
      bus.emit({ type: 'job_abort', partitions: ordered.length, reason: errorMessage(failure) });
      store?.setStatus(runId, 'failed');
      await sink.abort?.(ordered, commitCtx);
    }
  } catch (error) {
    failure ??= error;
    if (stopRequested && runRecorded && !jobDone && isCancelled(error)) {
      store?.setStatus(runId, 'stopped');
    } else if (sink && setupDone && !jobDone && (runRecorded || !resumed)) {
      // a failure of this run: nothing of it may stay staged
      const messages = [...skipped.values(), ...outcomes.filter((o) => o.ok).map((o) => o.message as JsonValue)];
      try {
        if (runRecorded) store?.setStatus(runId, 'failed');
        await sink.abort?.(messages, { ...planCtx, schema: undefined });
      } catch (abortError) {
        bus.emit({
          type: 'close_error',
          resource: 'sink.abort',
          error_type: errorType(abortError),
          error_message: errorMessage(abortError),
        });
      }
    }
  } finally {
    stop.dispose();
    env.signal?.removeEventListener('abort', onStop);
    unsubscribe();
    for (const u of unregister) u();
    for (const [name, close] of [
      // a run stopped to be resumed keeps its dead letters staged for the resumed run
      ['dead-letter sink', () => dlq?.finish(!(failure !== undefined && isCancelled(failure) && stopRequested))],
      ['source', () => source?.close?.()],
      ['sink', () => sink?.close?.()],
      ['checkpoint store', () => (ownStore ? store?.close() : undefined)],
    ] as const) {
      try {
        await close();
      } catch (closeError) {
        failure ??= closeError;
        bus.emit({ type: 'close_error', resource: name, error_type: errorType(closeError), error_message: errorMessage(closeError) });
      }
    }
  }

  const status: RunStatus = failure === undefined ? 'succeeded' : isCancelled(failure) && stopRequested ? 'stopped' : 'failed';
  const summary: RunSummary = {
    run_id: runId,
    pipeline: config.pipeline,
    status,
    source: config.source.type,
    sink: config.sink.type,
    delivery: config.delivery,
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    totals: totals(outcomes, partitions.length, (performance.now() - t0) / 1000, dlq?.failed ?? 0, skipped.size),
    partitions: outcomes.map((o) => o.metrics),
    retried_attempts: outcomes.flatMap((o) => o.retried ?? []),
    resumed,
    sink_transactional: config.sink.connector.transactional === true,
  };
  if (failure !== undefined) {
    summary.error = {
      error_type: errorType(failure),
      error_message: errorMessage(failure),
      kind: failure instanceof WeirError ? failure.kind : 'internal',
    };
    bus.emit({ type: 'run_failed', summary, error_type: errorType(failure), error_message: errorMessage(failure) });
  } else {
    bus.emit({ type: 'run_complete', summary });
  }
  return summary;
}

function isCancelled(error: unknown): boolean {
  return error instanceof WeirError && error.kind === 'cancelled';
}

/** Local and recovered partitions, the recovered ones winning. */
function mergePartitions(local: StoredPartition[], recovered: StoredPartition[]): StoredPartition[] {
  const byId = new Map(local.map((p) => [p.partition_id, p]));
  for (const p of recovered) byId.set(p.partition_id, p);
  return [...byId.values()];
}

function checkPartitions(partitions: Partition[], type: string): void {
  const seen = new Set<string>();
  for (const p of partitions) {
    if (typeof p.id !== 'string' || p.id === '')
      throw new WeirError(`source ${type} returned a partition without a string id`, { kind: 'internal' });
    if (seen.has(p.id)) throw new WeirError(`source ${type} returned two partitions with id ${p.id}`, { kind: 'internal' });
    seen.add(p.id);
  }
  // partitions cross processes: they must survive a JSON round trip unchanged
  if (JSON.stringify(JSON.parse(JSON.stringify(partitions))) !== JSON.stringify(partitions))
    throw new WeirError(`source ${type} returned partitions that are not plain JSON`, { kind: 'internal' });
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
    bytes_sent: sum(metrics, 'bytes_sent'),
    batches_sent: sum(metrics, 'batches_sent'),
    retries: sum([...metrics, ...retried], 'retry_count'),
    partition_retries: retried.length,
    rows_replayed: sum(retried, 'rows_processed'),
    duration_seconds: Math.round(duration * 1000) / 1000,
    rows_per_second: duration > 0 ? Math.round(written / duration) : 0,
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
