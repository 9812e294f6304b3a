/**
 * The execute phase's seam: an {@link Engine} runs a run's partitions and reports
 * each one's outcome. The planner (run.ts) decides what to run and commits or
 * aborts the job; the engine decides where and how each partition runs.
 *
 * - `local` (engines/local.ts): bounded concurrency in this process, the planner's
 *   own source, sink and policies. The default.
 * - `child-process` (engines/child.ts): every attempt in a child process started
 *   with only the task's JSON (task-json.ts), which rebuilds everything itself
 *   (worker.ts) — the proof that a task crosses a process, and the base a
 *   distributed engine builds on.
 */
import type { Logger } from 'pino';
import type { ValidatedPipeline } from '../config/pipeline.js';
import type { EventBus } from '../observe/events.js';
import type { Sink, Source } from '../sdk/connector.js';
import type { Partition, Schema } from '../sdk/types.js';
import type { Redactor } from '../secrets/redactor.js';
import type { BatchLimits } from './batcher.js';
import type { DeadLetterPublisher, DeadLetterStager } from './dead-letter.js';
import type { PartitionRetryPolicy, Retrier, RunRateLimiter } from './policies.js';
import type { Closers, StopController } from './shutdown.js';
import type { StreamDeps } from './stream.js';
import type { CheckpointWriter, PartitionOutcome } from './task.js';

/** What the planner hands an engine: the run, the partitions to run, and the policies every task obeys. */
export interface ExecuteJob {
  runId: string;
  /** The pipeline's id in state. */
  stateId: string;
  pipeline: ValidatedPipeline;
  schema: Schema | undefined;
  partitions: Partition[];
  limits: BatchLimits;
  concurrency: number;
  retry: PartitionRetryPolicy;
  bus: EventBus;
  logger: Logger;
  redactor: Redactor;
  stop: StopController;
  closers: Closers;
  /** Publishes the dead letters of committed partitions (the planner's). */
  deadLetters: DeadLetterPublisher;
  /** Records committed partitions; none without a checkpoint store. */
  checkpoints: CheckpointWriter | undefined;
  /** Unbounded sources: the epoch settings and each partition's last committed epoch. */
  stream: StreamDeps | undefined;
  /** The run's rows read and rejected so far, for the error policy's run-wide limits. */
  progress(): { rowsRead: number; rowsRejected: number };
  /** This process's connectors and policies: an engine that runs tasks here uses them, one that runs them elsewhere builds its own there. */
  local: {
    source: Source;
    sink: Sink;
    rateLimiter: RunRateLimiter;
    retrier: Retrier;
    rowErrors: DeadLetterStager;
  };
}

export interface ExecuteResult {
  /** One per partition that started, in no particular order. */
  outcomes: PartitionOutcome[];
  /** The first partition failure that stopped the run, if any. */
  failure: unknown;
}

export interface Engine {
  readonly name: string;
  /** Runs the partitions (each with its retries) until all are done, one failed for good, or the run stops. Never throws for a partition's failure. */
  execute(job: ExecuteJob): Promise<ExecuteResult>;
}
