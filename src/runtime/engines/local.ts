/**
 * The local engine: the partitions run in this process, at most `concurrency` at a
 * time, on the planner's own source, sink and policies (the run's rate limiter,
 * retrier and circuit breaker are shared by every task).
 */
import type { Engine, ExecuteJob, ExecuteResult } from '../engine.js';
import { runAll, runPartition } from '../partition.js';
import { runAttempt } from '../stream.js';
import type { TaskDeps } from '../task.js';

export const localEngine: Engine = {
  name: 'local',
  execute(job: ExecuteJob): Promise<ExecuteResult> {
    const { local, stop } = job;
    const deps: TaskDeps = {
      runId: job.runId,
      pipeline: job.stateId,
      baseDir: job.pipeline.baseDir,
      source: local.source,
      sink: local.sink,
      schema: job.schema,
      bus: job.bus,
      logger: job.logger,
      limits: job.limits,
      retrier: local.retrier,
      rateLimiter: local.rateLimiter,
      rowErrors: local.rowErrors,
      signal: stop.abort,
      drain: stop.drain,
      checkpoints: job.checkpoints,
      closers: job.closers,
      ...(job.stream ? { stream: job.stream } : {}),
      ...(job.pipeline.config.transforms ? { transforms: job.pipeline.config.transforms } : {}),
    };
    const run = {
      bus: job.bus,
      signal: stop.abort,
      drain: stop.drain,
      discardAttempt: (o: { partition: { id: string }; metrics: { attempt: number } }) =>
        local.rowErrors.discardAttempt(o.partition.id, o.metrics.attempt),
    };
    return runAll(job.partitions, (p) => runPartition((attempt) => runAttempt(p, attempt, deps), job.retry, run), job);
  },
};
