/**
 * Orphaned staging: what runs of this pipeline that are over left staged — partitions'
 * `*.tmp` files beside a file target, `_weir_stage_*` tables — when they were killed,
 * or their abort failed, and no later run resumed them. The next run of the pipeline
 * deletes it at the start (plan phase, after the run it resumes or abandons is known),
 * through `Sink.leftovers`: only the staging these run ids name, only when no run of
 * the pipeline is alive. `weir state show` lists the same without deleting.
 */
import type { CommitContext, Sink } from '../../sdk/connector.js';
import { errorMessage } from '../../sdk/errors.js';
import { type CheckpointStore, ownerAlive, type StoredRun } from '../checkpoints.js';
import type { RunState } from './state.js';

/** The runs whose staging is left over, unless a run of the pipeline is alive (then none may be touched). */
export function leftoverRuns(
  store: CheckpointStore,
  stateId: string,
  except: string | undefined,
): { runs: StoredRun[]; alive: StoredRun | undefined } {
  const runs = store.leftoverRuns(stateId, except);
  return { runs, alive: runs.find(ownerAlive) };
}

const MAX_NAMED = 5;

/** Deletes the staging of this pipeline's runs that are over (planner, once, before any writer). Best effort: a failure is a warning. */
export async function cleanLeftovers(r: RunState, ctx: CommitContext): Promise<void> {
  const sink = r.sink as Sink;
  if (!sink.leftovers || !r.store) return;
  const { runs, alive } = leftoverRuns(r.store, r.stateId, r.runId);
  if (!runs.length) return;
  const ids = runs.map((run) => run.run_id);
  const warn = (message: string) => r.env.bus.emit({ type: 'warning', message });
  if (alive)
    return warn(
      `left the staging of ${ids.length} earlier run(s) alone: run ${alive.run_id} of the pipeline is alive (process ${alive.owner})`,
    );
  try {
    const deleted = await sink.leftovers(ids, ctx, true);
    r.store.markCleaned(ids);
    if (deleted.length) {
      const named = deleted.slice(0, MAX_NAMED).join(', ');
      const more = deleted.length > MAX_NAMED ? ` and ${deleted.length - MAX_NAMED} more` : '';
      warn(
        `deleted ${deleted.length} staging file(s) or table(s) left by earlier run(s) ${ids.join(', ')} that ended without cleaning up: ${named}${more}`,
      );
    }
  } catch (error) {
    warn(`could not delete the staging left by earlier run(s) ${ids.join(', ')} (the next run tries again): ${errorMessage(error)}`);
  }
}
