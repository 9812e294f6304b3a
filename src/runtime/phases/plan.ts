/**
 * The plan phase: which run this is (new, resumed, or a new one after abandoning an
 * interrupted one), its partitions, and which of them an earlier attempt of the run
 * already committed.
 *
 * Resume: the checkpoint store records every committed partition. When the last run
 * of the pipeline did not finish (killed, or stopped by a signal) and the plan is the
 * same, `weir run` resumes it under the SAME run id: committed partitions are
 * skipped, the others redone. An exactly-once sink is asked what it holds
 * (`Sink.recover`) and trusted over the local store. `fresh` abandons the old run
 * instead (its staged data is aborted).
 */
import type { CommitContext, RecoveredState, Sink } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import type { Partition } from '../../sdk/types.js';
import { ownerAlive, planHash, type StoredPartition, type StoredRun } from '../checkpoints.js';
import { newRunId } from '../run-id.js';
import { epochOf } from '../stream.js';
import { cleanLeftovers } from './leftovers.js';
import type { RunState } from './state.js';

/** Interrupted (killed) or stopped by a signal: the next `weir run` resumes it. */
export const isInterrupted = (run: StoredRun): boolean => run.status === 'running' || run.status === 'stopped';

/** Plans the run (planner, once): sets its id, partitions and skipped partitions, prepares the sink, records the run. */
export async function planRun(r: RunState): Promise<void> {
  const { config, env, stateId } = r;
  const source = r.source as NonNullable<RunState['source']>;
  const sink = r.sink as Sink;
  // an exactly-once sink knows what it holds: even a failed run resumes, since recover() tells what survived the abort
  const recoverable = Boolean(config.sink.connector.exactlyOnce && sink.recover);
  const resumable = (run: StoredRun | undefined): run is StoredRun =>
    run !== undefined && (isInterrupted(run) || (recoverable && run.status === 'failed'));
  const previous = r.store?.lastRun(stateId);
  if (previous && ownerAlive(previous))
    throw new WeirError(
      `pipeline ${config.pipeline} is already running (run ${previous.run_id}, process ${previous.owner}); wait for it or stop it before starting another run`,
      { code: 'already_running' },
    );
  if (resumable(previous) && !env.fresh && !env.runId) r.setRunId(previous.run_id);

  if (source.unbounded) checkStreaming(r);
  const sourceState = r.store?.sourceState(stateId);
  if (sourceState) r.planCtx = { ...r.planCtx, sourceState };
  r.schema = (await source.schema?.(r.planCtx)) ?? undefined;
  r.partitions = (await source.partitions?.(r.planCtx)) ?? [{ id: '0' }];
  checkPartitions(r.partitions, config.source.type);
  const hash = planHash(config.source.type, config.sink.type, r.partitions);
  r.resumed = resumable(previous) && previous.run_id === r.runId && previous.plan_hash === hash;
  const abandon = resumable(previous) && !r.resumed ? previous : undefined;
  if (abandon && r.runId === abandon.run_id) r.setRunId(newRunId());
  const estimated = await source.estimate?.(r.planCtx);
  env.bus.emit({
    type: 'run_start',
    run_id: r.runId,
    pipeline: config.pipeline,
    source: config.source.type,
    sink: config.sink.type,
    partitions: r.partitions.length,
    delivery: config.delivery,
    resumed: r.resumed,
    ...(estimated !== undefined ? { estimated_rows: estimated } : {}),
  });
  // the sink sees the columns as the transforms leave them (a step naming a column the rows lack fails here, before any write)
  const commitCtx: CommitContext = { ...r.planCtx, schema: config.transforms ? config.transforms.schema(r.schema) : r.schema };
  // the sink may stage under the run id from here on: a new run's id is known to the store before (see reserveRun)
  if (!r.resumed) r.store?.reserveRun(r.runId, stateId);
  await sink.setup?.(commitCtx);
  r.setupDone = true;

  if (abandon) await abandonRun(r, abandon, recoverable, commitCtx);
  await cleanLeftovers(r, commitCtx);
  let state: RecoveredState | undefined;
  if (r.resumed) {
    let committed = r.store?.committedPartitions(r.runId) ?? [];
    if (recoverable) {
      state = await (sink.recover as NonNullable<Sink['recover']>)(commitCtx);
      committed = state.partitions;
      r.store?.replacePartitions(r.runId, committed);
    }
    const planned = new Set(r.partitions.map((p) => p.id));
    for (const p of committed.filter((c) => planned.has(c.partition_id))) {
      // a stream partition's checkpoint is where it continues, not a finished partition
      const epoch = epochOf(p.message);
      if (epoch) r.resumePoints.set(p.partition_id, epoch);
      else r.skipped.set(p.partition_id, p.message);
    }
    r.store?.claim(r.runId);
  } else {
    r.store?.startRun({ run_id: r.runId, pipeline: stateId, plan_hash: hash, partitions: r.partitions });
  }
  r.recorded = true;
  // the job commit happened, but the process ended before the store knew: nothing is left to do
  if (state?.jobCommitted) {
    r.skipped = new Map(r.partitions.map((p) => [p.id, r.skipped.get(p.id) ?? null]));
    r.jobDone = true;
    r.store?.setStatus(r.runId, 'succeeded');
  }
  for (const [id, message] of r.skipped) {
    const rows = message && typeof message === 'object' && !Array.isArray(message) ? message.rows : undefined;
    env.bus.emit({
      type: 'partition_skipped',
      partition_id: id,
      reason: `already committed by an earlier attempt of run ${r.runId}`,
      ...(Number.isSafeInteger(rows) && (rows as number) >= 0 ? { rows: rows as number } : {}),
    });
  }
}

/** Starts over: the interrupted run's committed partitions are aborted and the run is marked abandoned. */
async function abandonRun(r: RunState, old: StoredRun, recoverable: boolean, commitCtx: CommitContext): Promise<void> {
  const sink = r.sink as Sink;
  const reason = r.env.fresh
    ? '--fresh'
    : r.env.runId
      ? `run id ${r.env.runId} was given`
      : 'its plan (source partitions) differs from this one';
  const oldCtx: CommitContext = { ...commitCtx, runId: old.run_id };
  let messages = r.store?.committedPartitions(old.run_id) ?? [];
  if (recoverable) messages = mergePartitions(messages, (await (sink.recover as NonNullable<Sink['recover']>)(oldCtx)).partitions);
  const kept = messages.map((m) => m.message);
  // a sink that publishes each partition as it commits (not transactional, and not staging the run: `mode: replace`,
  // or `streaming` saying it publishes at the job commit) cannot take those rows back: starting over loads them again
  const staged = r.config.sink.options.mode === 'replace' || typeof sink.streaming === 'string';
  const permanent = !r.config.sink.connector.transactional && !staged && !r.source?.unbounded && messages.length > 0;
  if (permanent && r.env.fresh && !r.env.keepCommitted)
    throw new WeirError(
      `--fresh would load ${messages.length} partition(s) again: the interrupted run ${old.run_id} committed them, and their rows are in the ${r.config.sink.type} target, which weir cannot take back. Resume instead (weir run without --fresh: those partitions are skipped), or start over with --fresh --keep-committed knowing those rows stay and are written again`,
      { kind: 'config', code: 'fresh_would_duplicate' },
    );
  // a stream's committed epochs were acknowledged at the source: they are published, never taken back
  if (r.source?.unbounded) await sink.commit?.(kept, oldCtx);
  else await sink.abort?.(kept, oldCtx);
  r.store?.setStatus(old.run_id, 'abandoned');
  r.env.bus.emit({
    type: 'warning',
    message: r.source?.unbounded
      ? `starting over: the interrupted run ${old.run_id} was ended (${reason}); the ${messages.length} epoch checkpoint(s) it committed stay published`
      : permanent
        ? `starting over: the interrupted run ${old.run_id} was abandoned (${reason}); the rows of its ${messages.length} committed partition(s) stay in the ${r.config.sink.type} target (it cannot take them back), and this run writes every partition again`
        : `starting over: the interrupted run ${old.run_id} was abandoned (${reason}); its ${messages.length} committed partition(s) were discarded`,
  });
}

/** An unbounded source needs a sink whose epoch commits make rows visible, and a `stream()` to read. */
function checkStreaming(r: RunState): void {
  const { config } = r;
  const sink = r.sink as Sink;
  if (!r.source?.stream)
    throw new WeirError(`source ${config.source.type} says it is unbounded but has no stream() to read it`, { kind: 'internal' });
  if (sink.streaming !== true)
    throw new WeirError(
      `the ${config.sink.type} sink cannot take an unbounded source (${config.source.type}): ${
        sink.streaming ?? 'it publishes rows only at the end of the run, and a stream never ends'
      }`,
      { kind: 'config', code: 'sink_not_streaming' },
    );
  if (config.delivery === 'exactly-once' && r.source.atLeastOnce)
    throw new WeirError(`delivery: exactly-once cannot hold with the ${config.source.type} source: ${r.source.atLeastOnce}`, {
      kind: 'config',
      code: 'source_not_exactly_once',
    });
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
