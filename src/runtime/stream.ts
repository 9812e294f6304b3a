/**
 * Epochs, as Spark Structured Streaming commits micro-batches: an unbounded source's
 * partition is committed in epochs. An epoch ends after `stream.epoch_rows` rows,
 * `stream.epoch_interval`, or once the source has caught up (`stream.epoch_linger`
 * without new rows, or an empty chunk) — only between two chunks of the source; its writer
 * commits with the epoch's offsets ({@link EpochMark}: an exactly-once sink stores
 * them in the same transaction), the checkpoint store records them, and only then
 * the epoch's acknowledgements run. A crash loses at most the open epoch, whose
 * messages were never acknowledged: the source redelivers them, and skips those at
 * or before `ctx.resumeFrom` (committed, not yet acknowledged).
 *
 * The source reads ahead while the sink writes ({@link ReadAhead}), and the chunks of an
 * epoch are cut into batches of the sink's size ({@link BatchCutter}), not one per fetch.
 *
 * The partition ends when the source ends, after `stream.stop_when_idle` without a
 * message (the open epoch committed, the partition done), or on a stop: a drain
 * commits the open epoch first, an abort discards it.
 */
import type { EpochMark, StreamChunk, Writer } from '../sdk/connector.js';
import { WeirError } from '../sdk/errors.js';
import { checkpointMessage } from '../sdk/exactly-once.js';
import type { JsonValue, Partition, Row } from '../sdk/types.js';
import type { ChainRun } from '../transforms/index.js';
import { BatchCutter } from './batcher.js';
import { ReadAhead } from './read-ahead.js';
import { PartitionStats } from './stats.js';
import {
  abandonAttempt,
  cancelled,
  type PartitionOutcome,
  runTask,
  startTransforms,
  type TaskDeps,
  taskContext,
  transformBatch,
  writerContext,
  writeWithIsolation,
  yieldToEventLoop,
} from './task.js';

export interface StreamSettings {
  epochRows: number;
  epochIntervalMs: number;
  /** End an epoch holding rows once no chunk with rows came for this long; 0: never early. */
  epochLingerMs: number;
  /** End the partition after this long without a message; absent: never. */
  stopWhenIdleMs?: number;
}

/** The pipeline's `stream` section as the task uses it. */
export function streamSettings(s: {
  epoch_rows: number;
  epoch_interval: number;
  epoch_linger: number;
  stop_when_idle?: number | undefined;
}): StreamSettings {
  return {
    epochRows: s.epoch_rows,
    epochIntervalMs: s.epoch_interval,
    epochLingerMs: s.epoch_linger,
    ...(s.stop_when_idle !== undefined ? { stopWhenIdleMs: s.stop_when_idle } : {}),
  };
}

/** Each partition's last committed epoch: where a retried attempt, or a resumed run, continues. */
export interface StreamProgress {
  last(partitionId: string): EpochMark | undefined;
  committed(partitionId: string, mark: EpochMark): void;
}

export interface StreamDeps {
  settings: StreamSettings;
  progress: StreamProgress;
}

/** A progress kept in memory, seeded with what the run's checkpoints say. */
export function memoryProgress(seed: Iterable<[string, EpochMark]> = []): StreamProgress {
  const last = new Map(seed);
  return {
    last: (id) => last.get(id),
    committed: (id, mark) => {
      const known = last.get(id);
      if (!known || known.epoch < mark.epoch) last.set(id, mark);
    },
  };
}

/** The epoch a stored commit message names (untrusted: read back from the checkpoint store or the target). */
export function epochOf(message: JsonValue): EpochMark | undefined {
  if (!message || typeof message !== 'object' || Array.isArray(message)) return undefined;
  const e = message.epoch;
  if (!e || typeof e !== 'object' || Array.isArray(e)) return undefined;
  if (!Number.isSafeInteger(e.epoch) || (e.epoch as number) < 1 || e.offsets === undefined) return undefined;
  return { epoch: e.epoch as number, offsets: e.offsets };
}

/** One attempt of a partition: in epochs for an unbounded source, else as one commit (worker). */
export function runAttempt(partition: Partition, attempt: number, deps: TaskDeps): Promise<PartitionOutcome> {
  return deps.source.unbounded && deps.stream ? runStreamTask(partition, attempt, deps) : runTask(partition, attempt, deps);
}

type EpochEnd = 'cut' | 'idle' | 'ended' | 'drain';

/** Runs one attempt of an unbounded source's partition, epoch after epoch (worker). Never throws. */
export async function runStreamTask(partition: Partition, attempt: number, deps: TaskDeps): Promise<PartitionOutcome> {
  const { bus, sink, source } = deps;
  const stream = deps.stream as StreamDeps;
  const { settings } = stream;
  const stats = new PartitionStats(partition.id, attempt);
  const logger = deps.logger.child({ partition_id: partition.id, attempt });
  const resume = stream.progress.last(partition.id);
  const { ctx } = taskContext(partition, attempt, deps, stats, logger, resume?.offsets);
  const chain = startTransforms(deps, ctx, stats);
  bus.emit({ type: 'partition_start', partition_id: partition.id, attempt });
  // the source's signal also fires once the runtime is done reading: a source waiting for messages returns at once
  const done = new AbortController();
  const sourceCtx = { ...ctx, signal: AbortSignal.any([ctx.signal, done.signal]) };
  const read = (source.stream as NonNullable<typeof source.stream>)(partition, sourceCtx)[Symbol.asyncIterator]();
  const chunks = new ReadAhead(read, Math.min(deps.limits.rows, settings.epochRows), () => done.abort()); // fetches while the sink writes
  let pending: Promise<IteratorResult<StreamChunk>> | undefined;
  let epoch = resume?.epoch ?? 0;
  let lastMessageAt = performance.now();
  let message: JsonValue | undefined;
  let writer: Writer | undefined;
  let batchId = 0;
  try {
    for (let end: EpochEnd = 'cut'; end === 'cut'; ) {
      epoch++;
      const w = await sink.writer(partition, writerContext(ctx, chain));
      writer = w;
      const unregister = deps.closers?.register(`writer ${partition.id}`, () => w.close?.());
      const acks: NonNullable<StreamChunk['ack']>[] = [];
      const cutter = new BatchCutter(deps.limits); // the sink gets batches of its size, not one per fetch
      let rows = 0;
      let offsets: JsonValue | undefined;
      let opened = performance.now();
      try {
        for (;;) {
          if (deps.signal.aborted) throw cancelled(deps.signal);
          if (deps.drain?.aborted) {
            end = 'drain';
            break;
          }
          pending ??= chunks.next();
          const wait = Math.max(0, epochDeadline(opened, rows > 0 ? lastMessageAt : undefined, settings) - performance.now());
          const next = await nextWithin(pending, wait, deps);
          if (next === 'timeout' || next === 'stop') {
            if (next === 'timeout' && rows > 0) break;
            if (idleFor(lastMessageAt, settings)) {
              end = 'idle';
              break;
            }
            opened = performance.now(); // nothing to commit: the epoch stays open
            continue;
          }
          pending = undefined;
          if (next.done) {
            end = 'ended';
            break;
          }
          const chunk = next.value;
          offsets = chunk.offsets;
          if (chunk.lag !== undefined && Number.isFinite(chunk.lag))
            bus.emit({ type: 'source_lag', partition_id: partition.id, lag: Math.max(0, chunk.lag) });
          if (chunk.ack) acks.push(chunk.ack);
          if (chunk.rows.length > 0) {
            lastMessageAt = performance.now();
            for (const batch of cutter.add(chunk.rows)) await writeSlice(w, batch.rows, ++batchId, deps, stats, attempt, chain);
            rows += chunk.rows.length;
            await yieldToEventLoop();
          } else if (idleFor(lastMessageAt, settings)) {
            end = 'idle';
            break;
          } else if (rows > 0 && settings.epochLingerMs > 0) break; // the source has caught up: commit what came
          if (rows >= settings.epochRows) break;
        }
        const last = cutter.flush();
        if (last) await writeSlice(w, last.rows, ++batchId, deps, stats, attempt, chain);
        if (offsets !== undefined && (rows > 0 || acks.length > 0)) {
          message = await commitEpoch(w, partition, { epoch, offsets }, rows, acks, deps);
        } else {
          epoch--; // nothing happened in it: the number is used by the next epoch
          await w.abort?.();
        }
      } finally {
        unregister?.();
        writer = undefined;
        await w.close?.();
      }
    }
    await chunks.return();
    if (deps.drain?.aborted && !deps.signal.aborted) throw cancelled(deps.drain);
    await deps.rowErrors.commitPartition?.(partition.id, attempt);
    const metrics = stats.snapshot();
    bus.emit({ type: 'partition_complete', metrics });
    return { partition, ok: true, message: message ?? { partition_id: partition.id, rows: 0 }, metrics };
  } catch (error) {
    stats.recordFailure(error);
    await abandonAttempt(chunks, writer, partition.id, bus);
    return { partition, ok: false, metrics: stats.snapshot(), error };
  }
}

/** Commits one epoch: the writer's commit with its mark, the checkpoint, then its acknowledgements. */
async function commitEpoch(
  w: Writer,
  partition: Partition,
  mark: EpochMark,
  rows: number,
  acks: NonNullable<StreamChunk['ack']>[],
  deps: TaskDeps,
): Promise<JsonValue> {
  const stream = deps.stream as StreamDeps;
  const c0 = performance.now();
  const message = checkpointMessage((await w.commit?.(mark)) ?? { partition_id: partition.id, rows }, partition.id, mark);
  const stored = epochOf(message);
  if (stored && JSON.stringify(stored.offsets) !== JSON.stringify(mark.offsets)) {
    // an earlier attempt committed this epoch with other messages: continue from what it committed
    stream.progress.committed(partition.id, stored);
    throw new WeirError(
      `epoch ${mark.epoch} of partition ${partition.id} was already committed by an earlier attempt; the partition continues from its offsets`,
      { code: 'epoch_committed_elsewhere', retryable: true },
    );
  }
  deps.checkpoints?.commitPartition(partition.id, message);
  stream.progress.committed(partition.id, mark);
  for (const ack of acks) await ack();
  deps.bus.emit({
    type: 'epoch_commit',
    partition_id: partition.id,
    epoch: mark.epoch,
    rows,
    duration_ms: Math.round(performance.now() - c0),
  });
  return message;
}

async function writeSlice(
  w: Writer,
  slice: Row[],
  batchId: number,
  deps: TaskDeps,
  stats: PartitionStats,
  attempt: number,
  chain: ChainRun | undefined,
): Promise<void> {
  stats.rowsRead += slice.length;
  deps.bus.emit({ type: 'rows_read', partition_id: stats.partitionId, rows: slice.length });
  const started = performance.now();
  const rows = chain ? await transformBatch(chain, slice, batchId, deps, stats, attempt) : slice;
  const written = rows.length ? await writeWithIsolation(w, rows, batchId, deps, stats, attempt) : 0;
  stats.rowsProcessed += written;
  stats.batchesSent++;
  deps.bus.emit({
    type: 'batch_written',
    partition_id: stats.partitionId,
    batch_id: batchId,
    rows: written,
    bytes: 0,
    duration_ms: Math.round(performance.now() - started),
  });
}

/** When the open epoch ends without another chunk: at `epoch_interval`, or `epoch_linger` after the last rows (`rowsAt`: it holds some). */
function epochDeadline(opened: number, rowsAt: number | undefined, s: StreamSettings): number {
  const interval = opened + s.epochIntervalMs;
  return rowsAt !== undefined && s.epochLingerMs > 0 ? Math.min(interval, rowsAt + s.epochLingerMs) : interval;
}

const idleFor = (lastMessageAt: number, s: StreamSettings): boolean =>
  s.stopWhenIdleMs !== undefined && performance.now() - lastMessageAt >= s.stopWhenIdleMs;

/** The next chunk, `timeout` when none came within `ms`, or `stop` on a stop request (the read stays pending for later). */
async function nextWithin(
  pending: Promise<IteratorResult<StreamChunk>>,
  ms: number,
  deps: TaskDeps,
): Promise<IteratorResult<StreamChunk> | 'timeout' | 'stop'> {
  const stop = deps.drain ? AbortSignal.any([deps.signal, deps.drain]) : deps.signal;
  let timer: NodeJS.Timeout | undefined;
  let onStop: (() => void) | undefined;
  try {
    return await Promise.race([
      pending,
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), ms);
      }),
      new Promise<'stop'>((resolve) => {
        onStop = () => resolve('stop');
        stop.addEventListener('abort', onStop, { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onStop) stop.removeEventListener('abort', onStop);
  }
}
