/**
 * The job phase: once the partitions ran, the job is committed (every partition
 * committed), left for resume (a stop), or aborted (a failure: nothing of the run
 * may stay staged). And, always, the run's resources are closed.
 */
import type { Sink } from '../../sdk/connector.js';
import { errorMessage, errorType, WeirError } from '../../sdk/errors.js';
import type { JsonValue } from '../../sdk/types.js';
import type { RunState } from './state.js';

export function isCancelled(error: unknown): boolean {
  return error instanceof WeirError && error.kind === 'cancelled';
}

/** Commits, stops or aborts the job after the execute phase (planner, once). */
export async function finishJob(r: RunState): Promise<void> {
  if (r.jobDone) return;
  const sink = r.sink as Sink;
  const messages = new Map(r.skipped);
  for (const o of r.outcomes) if (o.ok) messages.set(o.partition.id, o.message as JsonValue);
  const ordered = r.partitions.filter((p) => messages.has(p.id)).map((p) => messages.get(p.id) as JsonValue);
  const commitCtx = { ...r.planCtx, schema: r.config.transforms ? r.config.transforms.schema(r.schema) : r.schema };
  if (r.failure === undefined && messages.size === r.partitions.length) {
    const c0 = performance.now();
    r.env.bus.emit({ type: 'job_committing', partitions: ordered.length });
    await sink.commit?.(ordered, commitCtx);
    r.jobDone = true;
    r.store?.setStatus(r.runId, 'succeeded');
    r.store?.saveSourceState(r.stateId, r.runId);
    r.store?.prune(r.stateId);
    r.env.bus.emit({ type: 'job_commit', partitions: ordered.length, duration_ms: Math.round(performance.now() - c0) });
  } else if (r.failure === undefined && r.stopRequested) {
    r.failure = r.stop.drain.reason;
    r.store?.setStatus(r.runId, 'stopped');
  } else {
    r.failure ??=
      r.stop.abort.reason ??
      r.outcomes.find((o) => !o.ok)?.error ??
      r.stop.drain.reason ??
      new WeirError('run did not complete', { kind: 'internal' });
    r.store?.setStatus(r.runId, 'failed');
    // a stream's committed epochs were acknowledged: taking them back would lose those messages, so they stay, and the next run continues
    if (r.source?.unbounded) return;
    r.env.bus.emit({ type: 'job_abort', partitions: ordered.length, reason: errorMessage(r.failure) });
    await sink.abort?.(ordered, commitCtx);
  }
}

/** A phase threw: a stop keeps the run resumable, any other failure aborts what the run staged. */
export async function failRun(r: RunState, error: unknown): Promise<void> {
  r.failure ??= error;
  if (r.stopRequested && r.recorded && !r.jobDone && isCancelled(error)) {
    r.store?.setStatus(r.runId, 'stopped');
    return;
  }
  if (!r.sink || !r.setupDone || r.jobDone || !(r.recorded || !r.resumed)) return;
  try {
    if (r.recorded) r.store?.setStatus(r.runId, 'failed');
    if (r.source?.unbounded) return; // committed epochs stay (see finishJob)
    await r.sink.abort?.(r.committedMessages(), { ...r.planCtx, schema: undefined });
    // a run that failed in planning staged nothing that is left: its reservation goes
    if (!r.recorded) r.store?.dropReservation(r.runId);
  } catch (abortError) {
    r.env.bus.emit({
      type: 'close_error',
      resource: 'sink.abort',
      error_type: errorType(abortError),
      error_message: errorMessage(abortError),
    });
  }
}

/** Closes what the run opened, each even when another failed; a close error fails a run that had not failed yet. */
export async function closeRun(r: RunState, ownStore: boolean): Promise<void> {
  // a run stopped to be resumed keeps its dead letters staged for the resumed run
  const publish = !(r.failure !== undefined && isCancelled(r.failure) && r.stopRequested);
  if (!publish) for (const o of r.outcomes) if (!o.ok) r.forgetRejected(o.partition.id);
  for (const [name, close] of [
    [
      'dead-letter sink',
      async () => {
        try {
          await r.stager?.finish(publish);
          if (publish) await r.deadLetters?.publish();
        } finally {
          await r.deadLetters?.close();
        }
      },
    ],
    ['source', () => r.source?.close?.()],
    ['sink', () => r.sink?.close?.()],
    ['checkpoint store', () => (ownStore ? r.store?.close() : undefined)],
  ] as const) {
    try {
      await close();
    } catch (closeError) {
      r.failure ??= closeError;
      r.env.bus.emit({ type: 'close_error', resource: name, error_type: errorType(closeError), error_message: errorMessage(closeError) });
    }
  }
}
