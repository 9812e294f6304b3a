/**
 * `weir state list|show|reset`: the checkpoint store, visible and safe to clear.
 *
 * - `list [DIR]`: the pipelines recorded in DIR's `.weir/checkpoints.db` (the store of
 *   the pipeline files in DIR), with their last run.
 * - `show PIPELINE.yaml`: the pipeline's recent runs, what its next `weir run` will do
 *   (resume which run, with which partitions already committed), where the store is.
 * - `reset PIPELINE.yaml`: forgets the pipeline's state. It refuses while a run is in
 *   progress, and when the last run was interrupted (its committed partitions or staged
 *   rows would be forgotten but not taken back) unless `--force`; `weir run --fresh`
 *   abandons such a run properly (its staged data is aborted).
 *
 * A store that does not exist is reported, never created.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { loadPipelineFile } from '../config/load.js';
import { createRegistry, openPipeline } from '../config/open.js';
import { parseOverride } from '../config/overrides.js';
import type { ValidatedPipeline } from '../config/pipeline.js';
import { createLogger, toLog } from '../observe/logger.js';
import { CheckpointStore, checkpointFile, DEFAULT_CHECKPOINT_PATH, ownerAlive, type StoredRun } from '../runtime/checkpoints.js';
import { leftoverRuns } from '../runtime/phases/leftovers.js';
import { isInterrupted } from '../runtime/phases/plan.js';
import type { Sink } from '../sdk/connector.js';
import { errorMessage } from '../sdk/errors.js';
import { redactor } from '../secrets/redactor.js';
import { EXIT } from './exit.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

function describeRun(run: StoredRun, committed: number): string {
  const ended = run.finished_at ? `, ended ${run.finished_at}` : '';
  return `${run.run_id}  ${run.status.padEnd(9)} ${committed}/${run.partitions.length} partitions committed  (started ${run.started_at}${ended})`;
}

function withStore<T>(file: string, use: (store: CheckpointStore) => T): T | undefined {
  if (!existsSync(file)) {
    out(`no checkpoint store at ${file}: nothing was run from here yet (or checkpoint.path points elsewhere)`);
    return undefined;
  }
  const store = CheckpointStore.open(file);
  try {
    return use(store);
  } finally {
    store.close();
  }
}

export function stateListCommand(dir = '.'): number {
  const file = resolve(dir, DEFAULT_CHECKPOINT_PATH);
  withStore(file, (store) => {
    const all = store.pipelines();
    if (all.length === 0) out(`${file}: no runs recorded`);
    for (const p of all)
      out(`${p.pipeline}  ${p.runs} run(s); last ${describeRun(p.last, store.committedPartitions(p.last.run_id).length)}`);
  });
  return EXIT.ok;
}

async function openState(path: string, sets: readonly string[]) {
  const pipeline = await openPipeline(
    loadPipelineFile(path, sets.map(parseOverride)),
    dirname(resolve(path)),
    await createRegistry(),
    redactor,
  );
  return { pipeline, file: checkpointFile(pipeline.config.checkpoint.path, pipeline.baseDir) };
}

export async function stateShowCommand(path: string, flags: { set?: string[] } = {}): Promise<number> {
  const { pipeline, file } = await openState(path, flags.set ?? []);
  withStore(file, (store) => {
    const runs = store.runs(pipeline.stateId);
    out(`${pipeline.config.pipeline}: ${runs.length ? `${runs.length} recent run(s)` : 'no runs recorded'} in ${file}`);
    for (const run of runs) out(`  ${describeRun(run, store.committedPartitions(run.run_id).length)}`);
    const last = runs[0];
    if (last && ownerAlive(last)) out(`running now: run ${last.run_id} by process ${last.owner}`);
    else if (last && isInterrupted(last))
      out(
        `next weir run resumes run ${last.run_id}: its ${store.committedPartitions(last.run_id).length} committed partition(s) are skipped; --fresh abandons it instead (its staged data is aborted)`,
      );
    else out('next weir run starts a new run');
  });
  if (existsSync(file)) await showLeftovers(pipeline, file);
  return EXIT.ok;
}

/**
 * The staging that runs which are over left (`Sink.leftovers`, asked without deleting):
 * what the next `weir run` deletes; the staging of the run it resumes is not listed.
 */
async function showLeftovers(pipeline: ValidatedPipeline, file: string): Promise<void> {
  const { config } = pipeline;
  const sink = (config.sink.connector.sink as NonNullable<typeof config.sink.connector.sink>)(config.sink.options) as Sink;
  if (!sink.leftovers) return;
  const store = CheckpointStore.open(file);
  let found: { runs: StoredRun[]; alive: StoredRun | undefined };
  try {
    const last = store.lastRun(pipeline.stateId);
    found = leftoverRuns(store, pipeline.stateId, last && isInterrupted(last) ? last.run_id : undefined);
  } finally {
    store.close();
  }
  if (!found.runs.length) return;
  const log = toLog(createLogger({ format: 'json', level: 'warn', redactor, destination: process.stderr }));
  const ctx = {
    runId: 'state-show',
    pipeline: pipeline.stateId,
    log,
    signal: new AbortController().signal,
    baseDir: pipeline.baseDir,
    schema: undefined,
  };
  try {
    const names = await sink.leftovers(
      found.runs.map((r) => r.run_id),
      ctx,
      false,
    );
    if (!names.length) return;
    const when = found.alive ? `kept while run ${found.alive.run_id} is alive` : 'the next weir run deletes them';
    out(`staging left by ${found.runs.length} earlier run(s) that ended without cleaning up (${when}):`);
    for (const name of names) out(`  ${name}`);
  } catch (error) {
    out(`could not list the staging left by earlier runs: ${errorMessage(error)}`);
  } finally {
    await sink.close?.();
  }
}

export async function stateResetCommand(path: string, flags: { set?: string[]; force?: boolean } = {}): Promise<number> {
  const { pipeline, file } = await openState(path, flags.set ?? []);
  const code = withStore(file, (store) => {
    const last = store.lastRun(pipeline.stateId);
    if (last && ownerAlive(last)) {
      process.stderr.write(
        `error: run ${last.run_id} of ${pipeline.config.pipeline} is in progress (process ${last.owner}); stop it first\n`,
      );
      return EXIT.usage;
    }
    if (last && isInterrupted(last) && !flags.force) {
      process.stderr.write(
        `error: the last run ${last.run_id} of ${pipeline.config.pipeline} was interrupted with ${store.committedPartitions(last.run_id).length} committed partition(s); forgetting it would leave what it staged in the target. Run \`weir run ${path} --fresh\` to abandon it (its staged data is aborted), or reset with --force\n`,
      );
      return EXIT.usage;
    }
    const n = store.forget(pipeline.stateId);
    out(`forgot ${n} run(s) of ${pipeline.config.pipeline} in ${file}; the next weir run starts a new run`);
    return EXIT.ok;
  });
  return code ?? EXIT.ok;
}
