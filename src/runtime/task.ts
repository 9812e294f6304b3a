/**
 * The task loop: one attempt of one partition, read → batch → rate limit → write
 * (with retries) → commit, or abort on failure; the writer is always closed.
 * Failed attempts are retried by `runPartition` (partition.ts).
 */
import type { Logger } from 'pino';
import type { EventBus, PartitionMetrics } from '../observe/events.js';
import { toLog } from '../observe/logger.js';
import type { Sink, Source, TaskContext, Writer } from '../sdk/connector.js';
import { errorMessage, errorType, locateError, locateRefused, locationsOf, RowError, type RowLocator, WeirError } from '../sdk/errors.js';
import type { EncodedRows, EncodingHints, JsonValue, Partition, Row, Schema } from '../sdk/types.js';
import type { ChainRun, EncodedTransforms, StepMetrics, TransformChain } from '../transforms/index.js';
import { type Batch, type BatchLimits, batches } from './batcher.js';
import type { Retrier, RunRateLimiter } from './policies.js';
import type { Closers } from './shutdown.js';
import { PartitionStats } from './stats.js';
import type { StreamDeps } from './stream.js';

/** Where rejected rows go. `reject` throws when the run's error policy does not tolerate them. */
export interface RowErrorHandler {
  /** Whether a write error may be narrowed down to bad rows (tolerance `all` and a non-retryable row-level error). */
  tolerates(error: unknown): boolean;
  /** Whether any write error may be (tolerance `all`): a batch's rows are then kept until it is written. */
  readonly narrows: boolean;
  /** Hands a bad row to the dead-letter sink; throws when the run must fail instead. */
  reject(record: unknown, error: unknown, info: RejectInfo): Promise<void>;
  /** Makes the attempt's rejected rows durable; called just before the partition commits. */
  commitPartition?(partitionId: string, attempt: number): Promise<void>;
  /** Drops the rows a failed attempt rejected, before the partition runs again (the next attempt rejects them again). */
  discardAttempt?(partitionId: string, attempt: number): Promise<void>;
}

export interface RejectInfo {
  partition_id: string;
  batch_id?: number;
  attempt: number;
  stage: 'read' | 'transform' | 'write';
}

/** Where a task's events go: the run's event bus, or a worker's channel back to the planner. */
export type EventSink = Pick<EventBus, 'emit'>;

/** Records that a partition committed (the checkpoint store), before the partition counts as done. */
export interface CheckpointWriter {
  /** `state`: what the source set with `ctx.setState` (incremental state), if anything. */
  commitPartition(partitionId: string, message: JsonValue, state?: JsonValue): void;
}

/**
 * What one attempt of a partition needs. Every shared policy is an interface (event
 * sink, rate limiter, row-error stager, checkpoint writer): an engine that runs tasks
 * in another process gives them its own implementations.
 */
export interface TaskDeps {
  runId: string;
  pipeline: string;
  baseDir: string;
  source: Source;
  sink: Sink;
  schema: Schema | undefined;
  bus: EventSink;
  logger: Logger;
  limits: BatchLimits;
  retrier: Retrier;
  rateLimiter: RunRateLimiter;
  rowErrors: RowErrorHandler;
  /** Aborted when in-flight work must stop now (another partition failed, or the shutdown timeout passed). Writers see it as `ctx.signal`. */
  signal: AbortSignal;
  /** Aborted when a stop was requested: read no new batch; the batch being written may finish. */
  drain?: AbortSignal;
  /** Called right after the writer committed, before the partition counts as done; none when the engine records it itself. */
  checkpoints?: CheckpointWriter;
  /** Where the writer is registered, so an immediate exit can still close it. */
  closers?: Closers;
  /** Unbounded sources: how epochs are cut, and where each partition's last committed epoch is kept. */
  stream?: StreamDeps;
  /** The pipeline's `transforms:`, applied to every batch between the source and the writer. */
  transforms?: TransformChain;
}

export interface PartitionOutcome {
  partition: Partition;
  ok: boolean;
  message?: JsonValue;
  /** What the source set with `ctx.setState` (incremental state), when it committed. */
  state?: JsonValue;
  /** The metrics of the last attempt. */
  metrics: PartitionMetrics;
  error?: unknown;
  /** The metrics of the earlier attempts, which failed with a retryable error and were aborted. */
  retried?: PartitionMetrics[];
}

export function cancelled(signal: AbortSignal): WeirError {
  const reason = signal.reason;
  return reason instanceof WeirError ? reason : new WeirError('run stopped', { kind: 'cancelled', code: 'cancelled' });
}

/**
 * The context of one partition attempt: what the source and the writer get. Also
 * returns the work registered for after the commit (`ctx.onCommit`) and whether the
 * writer counts exact bytes (`ctx.count`).
 */
export function taskContext(
  partition: Partition,
  attempt: number,
  deps: TaskDeps,
  stats: PartitionStats,
  logger: Logger,
  resumeFrom?: JsonValue,
): { ctx: TaskContext; afterCommit: (() => Promise<void> | void)[]; exactBytes: () => boolean; state: () => JsonValue | undefined } {
  const { bus } = deps;
  const afterCommit: (() => Promise<void> | void)[] = [];
  let exact = false;
  let state: JsonValue | undefined;
  const ctx: TaskContext = {
    runId: deps.runId,
    pipeline: deps.pipeline,
    baseDir: deps.baseDir,
    partitionId: partition.id,
    attempt,
    schema: deps.schema,
    signal: deps.signal,
    log: toLog(logger),
    ...(resumeFrom !== undefined ? { resumeFrom } : {}),
    reject: async (record, rowError, at) => {
      const error = locateError(rowError, at);
      stats.rowsRead++;
      bus.emit({ type: 'rows_read', partition_id: partition.id, rows: 1 });
      stats.rowsFailed++;
      stats.recordError(error);
      await deps.rowErrors.reject(withheldIfMasked(record, deps), error, { partition_id: partition.id, attempt, stage: 'read' });
      bus.emit({
        type: 'row_dead_lettered',
        partition_id: partition.id,
        stage: 'read',
        error_type: errorType(error),
        error_message: errorMessage(error),
      });
    },
    count: (metric, value) => {
      if (metric === 'bytes_sent') {
        stats.bytesSent += value;
        exact = true;
      } else stats.countUpsert(metric, value);
    },
    onCommit: (callback) => {
      afterCommit.push(callback);
    },
    rateLimit: { observe: (headroom) => deps.rateLimiter.observe(headroom) },
    setState: (value) => {
      state = structuredClone(value);
    },
  };
  return { ctx, afterCommit, exactBytes: () => exact, state: () => state };
}

/**
 * Runs one attempt of one partition (worker). Never throws: the outcome says what
 * happened. A failed attempt is aborted (its writer's abort) before it returns; the
 * caller emits `partition_failed` or retries it.
 */
export async function runTask(partition: Partition, attempt: number, deps: TaskDeps): Promise<PartitionOutcome> {
  const { bus, sink, source } = deps;
  const stats = new PartitionStats(partition.id, attempt);
  const logger = deps.logger.child({ partition_id: partition.id, attempt });
  let batchId = 0;

  const { ctx, afterCommit, exactBytes, state } = taskContext(partition, attempt, deps, stats, logger);
  const chain = startTransforms(deps, ctx, stats);

  bus.emit({ type: 'partition_start', partition_id: partition.id, attempt });
  const stopping = deps.drain ? AbortSignal.any([deps.signal, deps.drain]) : deps.signal;
  let writer: Writer | undefined;
  let closeWriter: (() => Promise<void>) | undefined;
  let unregister: (() => void) | undefined;
  let iterator: AsyncIterator<Batch> | undefined;
  try {
    if (stopping.aborted) throw cancelled(stopping);
    writer = await sink.writer(partition, writerContext(ctx, chain));
    const w = writer;
    let closing: Promise<void> | undefined;
    closeWriter = () => (closing ??= Promise.resolve().then(() => w.close?.()));
    unregister = deps.closers?.register(`writer ${partition.id}`, closeWriter);
    // the encoded fast path when the sink's writer takes what the source can hand over as it is,
    // and the transforms, if any, can run on it (their hints are then the source's column names)
    const encodedChain = chain?.encoded(ctx.schema);
    const encoded =
      (!chain || encodedChain) && w.writeEncoded && sink.accepts?.includes('csv') && source.readEncoded
        ? source.readEncoded(partition, ctx, 'csv', await sourceHints(w, encodedChain))
        : undefined;
    const read = batches(encoded ?? source.read(partition, ctx), deps.limits)[Symbol.asyncIterator]();
    const stage = chain && encoded && encodedChain ? new EncodedStage(chain, encodedChain, stats, deps) : undefined;
    iterator = stage ? stage.wrap(read) : read;
    // encoded batches get one batch of read-ahead: the source reads the next chunk while
    // this one is on the wire. Row batches do not: holding twice the rows costs more
    // memory than it gains when the writer does not wait on I/O.
    let ahead: Promise<IteratorResult<Batch>> | undefined;
    for (;;) {
      if (stopping.aborted) throw cancelled(stopping);
      const next = await nextOrStop(iterator, stopping, ahead);
      ahead = undefined;
      if (next.done) break;
      const batch = next.value;
      if (batch.encoded) {
        ahead = iterator.next();
        ahead.catch(() => {});
      }
      const id = ++batchId;
      const count = batch.encoded ? batch.encoded.rows : batch.rows.length;
      if (!batch.encoded) {
        stats.rowsRead += count;
        bus.emit({ type: 'rows_read', partition_id: partition.id, rows: count });
      }
      if (deps.rateLimiter.active) {
        const waited = await deps.rateLimiter.acquireRows(count, stopping);
        if (waited > 0) {
          stats.rateLimitWaitMs += waited;
          bus.emit({ type: 'rate_limit_wait', partition_id: partition.id, wait_ms: Math.round(waited) });
        }
      }
      if (stopping.aborted) throw cancelled(stopping);
      const started = performance.now();
      const rows = chain && !batch.encoded ? await transformBatch(chain, batch.rows, id, deps, stats, attempt) : batch.rows;
      const [written, total] = batch.encoded
        ? await writeEncoded(w, batch.encoded, id, deps, stats, attempt, stage).finally(() => batch.encoded?.release?.())
        : [rows.length ? await writeWithIsolation(w, rows, id, deps, stats, attempt, chain ? undefined : batch.locate) : 0, count];
      const bytes = written === total ? batch.bytes : Math.round((batch.bytes * written) / Math.max(1, total));
      stats.rowsProcessed += written;
      stats.batchesSent++;
      if (!exactBytes()) stats.bytesSent += bytes;
      bus.emit({
        type: 'batch_written',
        partition_id: partition.id,
        batch_id: id,
        rows: written,
        bytes,
        duration_ms: Math.round(performance.now() - started),
      });
      await yieldToEventLoop();
    }
    iterator = undefined;
    // a drain lets a partition that read its last row commit; only an abort stops it here
    if (deps.signal.aborted) throw cancelled(deps.signal);
    await deps.rowErrors.commitPartition?.(partition.id, attempt);
    const message = (await w.commit?.()) ?? { partition_id: partition.id, rows: stats.rowsProcessed };
    const saved = state();
    deps.checkpoints?.commitPartition(partition.id, message, saved);
    for (const callback of afterCommit) await callback();
    const metrics = stats.snapshot();
    bus.emit({ type: 'partition_complete', metrics });
    return { partition, ok: true, message, metrics, ...(saved !== undefined ? { state: saved } : {}) };
  } catch (error) {
    stats.recordFailure(error);
    await abandonAttempt(iterator, writer, partition.id, bus);
    return { partition, ok: false, metrics: stats.snapshot(), error };
  } finally {
    unregister?.();
    if (closeWriter) {
      try {
        await closeWriter();
      } catch (closeError) {
        bus.emit({
          type: 'close_error',
          resource: 'writer',
          partition_id: partition.id,
          error_type: errorType(closeError),
          error_message: errorMessage(closeError),
        });
      }
    }
  }
}

/**
 * After a failure: the source is closed before the writer is aborted (a source stuck in
 * a read gets a second, then is left to ctx.signal); an abort that fails is reported,
 * never thrown over the failure itself.
 */
export async function abandonAttempt(
  iterator: AsyncIterator<unknown> | undefined,
  writer: Writer | undefined,
  partitionId: string,
  bus: EventSink,
): Promise<void> {
  if (iterator?.return) {
    const pending = iterator.return(undefined).catch(() => undefined);
    await Promise.race([pending, new Promise((r) => setTimeout(r, 1000).unref())]);
  }
  if (!writer?.abort) return;
  try {
    await writer.abort();
  } catch (abortError) {
    bus.emit({
      type: 'close_error',
      resource: 'writer.abort',
      partition_id: partitionId,
      error_type: errorType(abortError),
      error_message: errorMessage(abortError),
    });
  }
}

/** The next batch, or a cancellation as soon as `stop` aborts while the source is still reading. */
async function nextOrStop(
  iterator: AsyncIterator<Batch>,
  stop: AbortSignal,
  ahead?: Promise<IteratorResult<Batch>>,
): Promise<IteratorResult<Batch>> {
  let onStop: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    onStop = () => reject(cancelled(stop));
    stop.addEventListener('abort', onStop, { once: true });
  });
  stopped.catch(() => {});
  try {
    return await Promise.race([ahead ?? iterator.next(), stopped]);
  } finally {
    if (onStop) stop.removeEventListener('abort', onStop);
  }
}

/** The writer's encoding hints, keyed by the source's columns when transforms rename them. */
async function sourceHints(writer: Writer, transforms: EncodedTransforms | undefined): Promise<EncodingHints | undefined> {
  const hints = await writer.encodingHints?.('csv');
  return transforms ? transforms.sourceHints(hints) : hints;
}

/**
 * The pipeline's transforms on encoded batches (worker, once per partition
 * attempt), applied as each batch comes from the source: in the read-ahead, so
 * while the previous batch is still on the wire.
 */
class EncodedStage {
  /** Per source batch: the batch for the writer, or null when its rows must take the row path. */
  private readonly done = new WeakMap<EncodedRows, EncodedRows | null>();

  constructor(
    readonly chain: ChainRun,
    private readonly encoded: EncodedTransforms,
    private readonly stats: PartitionStats,
    private readonly deps: TaskDeps,
  ) {}

  wrap(iterator: AsyncIterator<Batch>): AsyncIterator<Batch> {
    return {
      next: () =>
        iterator.next().then((r) => {
          if (!r.done && r.value.encoded) this.transform(r.value.encoded);
          return r;
        }),
      return: (value) => iterator.return?.(value) ?? Promise.resolve({ done: true, value }),
    };
  }

  /** The transformed batch, or null: its rows take the row path. */
  result(batch: EncodedRows): EncodedRows | null {
    if (!this.done.has(batch)) this.transform(batch);
    return this.done.get(batch) ?? null;
  }

  private transform(batch: EncodedRows): void {
    const before = this.chain.metrics();
    const out = this.encoded.apply(batch);
    if (out) emitTransformed(this.chain, before, this.stats, this.deps);
    this.done.set(batch, out ?? null);
  }
}

/**
 * Writes an encoded batch through the writer's fast path, with retries. With
 * transforms (`stage`), the writer gets the batch they made, still encoded where
 * they can, else the batch is decoded and its rows go through them. When the writer
 * declines it, or it fails with a row-level (data) error, the batch is decoded —
 * unconvertible records go to the error policy as on the row path — and written
 * as rows with bad-row isolation. Counts the batch's rows as read once their real
 * number is known. Returns [rows written, rows in the batch].
 */
async function writeEncoded(
  writer: Writer,
  source: EncodedRows,
  batchId: number,
  deps: TaskDeps,
  stats: PartitionStats,
  attempt: number,
  stage?: EncodedStage,
): Promise<[number, number]> {
  const read = (rows: number) => {
    stats.rowsRead += rows;
    deps.bus.emit({ type: 'rows_read', partition_id: stats.partitionId, rows });
  };
  // the batch as the writer gets it; null: the transforms need its rows
  const batch = stage ? stage.result(source) : source;
  // records the transforms left out, read all the same
  const filtered = batch ? source.rows - batch.rows : 0;
  try {
    const taken = batch && (await retried(deps, stats, batchId, () => (writer.writeEncoded as NonNullable<Writer['writeEncoded']>)(batch)));
    if (taken) {
      read(source.rows);
      return [batch.rows, source.rows];
    }
  } catch (error) {
    if (deps.signal.aborted || !(error instanceof WeirError && error.kind === 'data')) throw error;
  }
  let rejected = 0;
  const decoded = await (batch ?? source).decode(async (record, rowError, at) => {
    const error = locateError(rowError, at);
    rejected++;
    stats.rowsFailed++;
    stats.recordError(error);
    await deps.rowErrors.reject(record, error, { partition_id: stats.partitionId, batch_id: batchId, attempt, stage: 'read' });
    deps.bus.emit({
      type: 'row_dead_lettered',
      partition_id: stats.partitionId,
      batch_id: batchId,
      stage: 'read',
      error_type: errorType(error),
      error_message: errorMessage(error),
    });
  });
  const total = decoded.length + rejected + filtered;
  read(total);
  const rows = stage && !batch ? await transformBatch(stage.chain, decoded, batchId, deps, stats, attempt) : decoded;
  const locate = rows === decoded ? locationsOf(decoded) : undefined;
  return [rows.length ? await writeWithIsolation(writer, rows, batchId, deps, stats, attempt, locate) : 0, total];
}

/**
 * What a pathological row makes JavaScript throw while a sink handles it (a value
 * nested deep enough to exhaust the stack, a string beyond V8's limit: RangeError)
 * is that row's error, so it is dead-lettered like any bad row instead of failing
 * the run. Only for a batch narrowed down to one row: a batch's RangeError is split
 * first, and a sink that throws it for every row still dead-letters them one by one.
 */
function asRowError(error: unknown): unknown {
  if (!(error instanceof RangeError)) return error;
  return new RowError(`row cannot be processed: ${error.message} (a value nested too deeply or too large)`, {
    code: 'row_too_complex',
    cause: error,
  });
}

let lastYield = performance.now();

/**
 * A source and sink that never wait on I/O (a generator into SQLite) would run the
 * whole partition in microtasks and starve the event loop: no signal handling,
 * no /metrics, no progress, and V8 would postpone the GC work it schedules as tasks.
 * Every ~100 ms the task lets the event loop turn (more often costs memory: V8 then
 * finds more of each batch alive when it collects).
 */
export async function yieldToEventLoop(): Promise<void> {
  if (performance.now() - lastYield < 100) return;
  await new Promise<void>((resolve) => setImmediate(resolve));
  lastYield = performance.now();
}

/** Each write attempt is one request for `rate_limit.requests_per_second`. */
async function acquireRequest(deps: TaskDeps, stats: PartitionStats): Promise<void> {
  if (!deps.rateLimiter.active) return;
  const waited = await deps.rateLimiter.acquireRequest(deps.signal);
  if (waited > 0) {
    stats.rateLimitWaitMs += waited;
    deps.bus.emit({ type: 'rate_limit_wait', partition_id: stats.partitionId, wait_ms: Math.round(waited) });
  }
}

function onRetry(deps: TaskDeps, stats: PartitionStats, batchId: number) {
  return (r: { attempt: number; delayMs: number; error: unknown }) => {
    stats.retryCount++;
    stats.recordError(r.error);
    deps.bus.emit({
      type: 'batch_retry',
      partition_id: stats.partitionId,
      batch_id: batchId,
      attempt: r.attempt,
      delay_ms: r.delayMs,
      error_type: errorType(r.error),
      error_message: errorMessage(r.error),
    });
  };
}

/** An error that says all the rows of the batch are bad together (`wholeBatch: true`, e.g. the SDK's `BatchRefused`). */
function isWholeBatch(error: unknown): boolean {
  return error instanceof WeirError && (error as { wholeBatch?: unknown }).wholeBatch === true;
}

async function deadLetterRow(
  row: Row,
  error: unknown,
  batchId: number,
  deps: TaskDeps,
  stats: PartitionStats,
  attempt: number,
  stage: 'transform' | 'write' = 'write',
) {
  stats.rowsFailed++;
  stats.recordError(error);
  await deps.rowErrors.reject(row, error, { partition_id: stats.partitionId, batch_id: batchId, attempt, stage });
  deps.bus.emit({
    type: 'row_dead_lettered',
    partition_id: stats.partitionId,
    batch_id: batchId,
    stage,
    error_type: errorType(error),
    error_message: errorMessage(error),
  });
}

/** One write of a batch to the target, retried by the run's policy; each try waits for the run's request rate. */
function retried<T>(deps: TaskDeps, stats: PartitionStats, batchId: number, write: () => Promise<T> | T): Promise<T> {
  return deps.retrier(
    async () => {
      await acquireRequest(deps, stats);
      return write();
    },
    onRetry(deps, stats, batchId),
    deps.signal,
  );
}

/**
 * Writes a batch with retries. When the batch still fails and the error policy
 * tolerates bad rows, the batch is split in halves until the bad rows are
 * isolated; those go to the dead-letter sink and the good rows are written.
 * With `locate` (where the rows are in the source), a refused row's error names
 * its source location. Returns the number of rows written.
 */
export async function writeWithIsolation(
  writer: Writer,
  rows: Row[],
  batchId: number,
  deps: TaskDeps,
  stats: PartitionStats,
  attempt: number,
  locate?: RowLocator,
): Promise<number> {
  if (writer.prepareBatch && writer.sendPrepared && !deps.rowErrors.narrows)
    return writePrepared(writer, rows, batchId, deps, stats, locate);
  try {
    await retried(deps, stats, batchId, () => writer.write(rows));
    return rows.length;
  } catch (thrown) {
    const error = rows.length === 1 ? asRowError(thrown) : thrown;
    if (deps.signal.aborted || !deps.rowErrors.tolerates(error)) throw locateRefused(error, rows.length, locate);
    // one row left, or a batch the target refused as a whole (an HTTP 4xx): dead-lettered, never resent
    if (rows.length === 1 || isWholeBatch(error)) {
      for (let i = 0; i < rows.length; i++)
        await deadLetterRow(rows[i] as Row, locateRefused(error, 1, locate && (() => locate(i))), batchId, deps, stats, attempt);
      return 0;
    }
    const mid = Math.ceil(rows.length / 2);
    const left = await writeWithIsolation(writer, rows.slice(0, mid), batchId, deps, stats, attempt, locate);
    const right = await writeWithIsolation(writer, rows.slice(mid), batchId, deps, stats, attempt, locate && ((i) => locate(i + mid)));
    return left + right;
  }
}

/**
 * Writes a batch no row of which can be dead-lettered through the writer's
 * `prepareBatch` and `sendPrepared`, with retries of the send. The batch's array
 * is the runtime's own (the batcher's, a transform's, a `decode()`'s — never one a
 * source yielded): once prepared it is emptied, so its rows are garbage while the
 * target answers instead of living — and being promoted — through the request.
 * Returns the rows written.
 */
async function writePrepared(
  writer: Writer,
  rows: Row[],
  batchId: number,
  deps: TaskDeps,
  stats: PartitionStats,
  locate: RowLocator | undefined,
): Promise<number> {
  const count = rows.length;
  const { prepareBatch, sendPrepared } = writer as Required<Pick<Writer, 'prepareBatch' | 'sendPrepared'>>;
  try {
    const prepared = await prepareBatch.call(writer, rows);
    rows.length = 0;
    await retried(deps, stats, batchId, () => sendPrepared.call(writer, prepared));
    return count;
  } catch (thrown) {
    throw locateRefused(count === 1 ? asRowError(thrown) : thrown, count, locate);
  }
}

/**
 * The partition attempt's pass through the pipeline's transforms (none without
 * `transforms:`): its per-step counts go into the partition's metrics.
 */
export function startTransforms(deps: TaskDeps, ctx: TaskContext, stats: PartitionStats): ChainRun | undefined {
  if (!deps.transforms || deps.transforms.empty) return undefined;
  const run = deps.transforms.start({
    runId: ctx.runId,
    pipeline: ctx.pipeline,
    partitionId: ctx.partitionId,
    attempt: ctx.attempt,
    loadTime: new Date(),
  });
  stats.transforms = run;
  return run;
}

/** The writer's context: with transforms, the schema the rows have after them (the sink creates its table from it). */
export function writerContext(ctx: TaskContext, chain: ChainRun | undefined): TaskContext {
  return chain ? { ...ctx, schema: chain.chain.schema(ctx.schema) } : ctx;
}

/**
 * One batch through the transforms (worker): the rows for the writer. Rows a step
 * fails on go to the error policy (stage `transform`); the batch's per-step counts
 * go out as a `rows_transformed` event.
 */
export async function transformBatch(
  chain: ChainRun,
  rows: Row[],
  batchId: number,
  deps: TaskDeps,
  stats: PartitionStats,
  attempt: number,
): Promise<Row[]> {
  const before = chain.metrics();
  const out = await chain.apply(rows, (record, error) => deadLetterRow(record, error, batchId, deps, stats, attempt, 'transform'));
  emitTransformed(chain, before, stats, deps);
  return out;
}

/** The `rows_transformed` event of one batch: the per-step counts since `before`. */
function emitTransformed(chain: ChainRun, before: readonly StepMetrics[], stats: PartitionStats, deps: TaskDeps): void {
  const after = chain.metrics();
  deps.bus.emit({
    type: 'rows_transformed',
    partition_id: stats.partitionId,
    steps: after.map((m, i) => {
      const b = before[i] as (typeof before)[number];
      return {
        step: m.step,
        name: m.name,
        rows_in: m.rows_in - b.rows_in,
        rows_out: m.rows_out - b.rows_out,
        rows_filtered: m.rows_filtered - b.rows_filtered,
        rows_failed: m.rows_failed - b.rows_failed,
      };
    }),
  });
}

/**
 * A record the source could not read, as the dead letters get it: when the pipeline
 * masks fields, the raw record (which may hold them, before any step ran) is withheld;
 * only its line number, when the source gave one, is kept.
 */
function withheldIfMasked(record: unknown, deps: TaskDeps): unknown {
  if (!deps.transforms || deps.transforms.masked.size === 0) return record;
  const line = typeof record === 'object' && record !== null ? (record as { line?: unknown }).line : undefined;
  return {
    withheld: 'the pipeline masks fields (transforms: mask), so a record the source could not read is not written',
    ...(typeof line === 'number' ? { line } : {}),
  };
}
