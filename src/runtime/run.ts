/**
 * One run of a pipeline, in phases (phases/*.ts), each a function of the run's
 * state (phases/state.ts):
 *
 * 1. plan      — which run this is (new, resumed, or new after abandoning an
 *                interrupted one), its partitions, what an earlier attempt committed;
 * 2. execute   — the run's policies built once, the partitions handed to an
 *                {@link Engine} (the local one by default);
 * 3. job       — commit (every partition committed), stop (kept for resume), or
 *                abort (a failure: nothing is published); resources always closed;
 * 4. report    — the summary.
 *
 * Stop: the first signal drains (see shutdown.ts); partitions that committed stay
 * recorded, the job is neither committed nor aborted, and the run is `stopped`,
 * ready to be resumed. A failure (not a stop) aborts the job: nothing is published.
 */
import type { Logger } from 'pino';
import type { ValidatedPipeline } from '../config/pipeline.js';
import type { EventBus, RunSummary } from '../observe/events.js';
import { WeirError } from '../sdk/errors.js';
import type { Redactor } from '../secrets/redactor.js';
import { CheckpointStore, checkpointFile } from './checkpoints.js';
import type { Engine } from './engine.js';
import { localEngine } from './engines/local.js';
import { executeRun } from './phases/execute.js';
import { closeRun, failRun, finishJob } from './phases/job.js';
import { planRun } from './phases/plan.js';
import { reportRun } from './phases/report.js';
import { RunState } from './phases/state.js';
import { newRunId } from './run-id.js';
import { Closers, StopController } from './shutdown.js';

export { totals } from './phases/report.js';
export { newRunId } from './run-id.js';

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
  /** With `fresh`: start over even when the interrupted run's committed partitions cannot be taken back (their rows stay). */
  keepCommitted?: boolean;
  /** Directory a relative `checkpoint.path` resolves against; the pipeline file's directory by default, as every other path. */
  cwd?: string;
  /** `false`: no checkpoint store (no resume). An open store: use it (the caller closes it). */
  checkpoints?: false | CheckpointStore;
  /** Where open resources are registered, so an immediate exit (second signal) can still close them. */
  closers?: Closers;
  /** Where the partitions run: this process by default. */
  engine?: Engine;
}

export async function runPipeline(pipeline: ValidatedPipeline, env: RunEnv): Promise<RunSummary> {
  const { config } = pipeline;
  const closers = env.closers ?? new Closers();
  const stop = new StopController();
  const r = new RunState(
    pipeline,
    {
      bus: env.bus,
      logger: env.logger,
      redactor: env.redactor,
      engine: env.engine ?? localEngine,
      closers,
      fresh: Boolean(env.fresh),
      keepCommitted: Boolean(env.keepCommitted),
      runId: env.runId,
      cwd: env.cwd,
    },
    stop,
    env.runId ?? newRunId(),
  );
  // a stop (a signal) drains and keeps the run resumable; a run abandoned (`RunEnv.signal`
  // aborted with a WeirError of code `abandoned`, e.g. its output's reader went away) drains and is aborted
  const onStop = () => {
    const reason = env.signal?.reason;
    const abandoned = reason instanceof WeirError && reason.code === 'abandoned';
    r.stopRequested = !abandoned;
    const why = abandoned
      ? reason
      : new WeirError(typeof reason === 'string' ? reason : 'run stopped by signal', { kind: 'cancelled', code: 'cancelled' });
    stop.requestDrain(why, config.shutdown_timeout);
  };
  env.signal?.addEventListener('abort', onStop, { once: true });
  if (env.signal?.aborted) onStop();
  const unsubscribe = env.bus.subscribe((e) => r.count(e));
  const unregister: (() => void)[] = [];
  const ownStore = env.checkpoints === undefined;
  try {
    if (env.checkpoints instanceof CheckpointStore) r.store = env.checkpoints;
    else if (ownStore) {
      const s = CheckpointStore.open(checkpointFile(config.checkpoint.path, env.cwd ?? pipeline.baseDir));
      r.store = s;
      unregister.push(closers.register('checkpoint store', () => s.close()));
    }
    const source = (config.source.connector.source as NonNullable<typeof config.source.connector.source>)(config.source.options);
    const sink = (config.sink.connector.sink as NonNullable<typeof config.sink.connector.sink>)(config.sink.options);
    r.source = source;
    r.sink = sink;
    unregister.push(
      closers.register('source', () => source.close?.()),
      closers.register('sink', () => sink.close?.()),
    );
    await planRun(r);
    if (!r.jobDone) await executeRun(r);
    await finishJob(r);
  } catch (error) {
    await failRun(r, error);
  } finally {
    stop.dispose();
    env.signal?.removeEventListener('abort', onStop);
    unsubscribe();
    for (const u of unregister) u();
    await closeRun(r, ownStore);
  }
  return reportRun(r);
}
