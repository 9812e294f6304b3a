/**
 * One run's state, as the phases hand it on (run.ts): what the plan decided, what
 * the execute phase produced, and what the job phase and the report read. Each
 * phase is a function of this object; none keeps state of its own.
 */
import type { Logger } from 'pino';
import type { ValidatedPipeline } from '../../config/pipeline.js';
import type { EventBus, WeirEvent } from '../../observe/events.js';
import { toLog } from '../../observe/logger.js';
import type { EpochMark, PlanContext, Sink, Source } from '../../sdk/connector.js';
import type { JsonValue, Partition, Schema } from '../../sdk/types.js';
import type { Redactor } from '../../secrets/redactor.js';
import type { CheckpointStore } from '../checkpoints.js';
import type { DeadLetterPublisher, DeadLetterStager } from '../dead-letter.js';
import type { Engine } from '../engine.js';
import type { Closers, StopController } from '../shutdown.js';
import type { PartitionOutcome } from '../task.js';

export class RunState {
  readonly config: ValidatedPipeline['config'];
  /** The pipeline's id in state: never a resolved reference. */
  readonly stateId: string;
  readonly startedAt = new Date();
  readonly t0 = performance.now();
  runId: string;
  logger: Logger;
  planCtx: PlanContext;
  source: Source | undefined;
  sink: Sink | undefined;
  store: CheckpointStore | undefined;
  schema: Schema | undefined;
  partitions: Partition[] = [];
  /** Partitions an earlier attempt of this run committed, with their commit messages. */
  skipped = new Map<string, JsonValue>();
  /** Unbounded sources: each partition's last committed epoch, from the run's checkpoints. */
  resumePoints = new Map<string, EpochMark>();
  resumed = false;
  /** The run is in the checkpoint store (from here on, its status is kept there). */
  recorded = false;
  /** `sink.setup` ran: from here on a failure must abort what the run staged. */
  setupDone = false;
  /** The job commit happened (now, or before a crash). */
  jobDone = false;
  stopRequested = false;
  outcomes: PartitionOutcome[] = [];
  failure: unknown;
  stager: DeadLetterStager | undefined;
  deadLetters: DeadLetterPublisher | undefined;
  /** Rows read and rejected so far in the run (the last attempt of each partition). */
  rowsRead = 0;
  rowsRejected = 0;
  /** Rows the current attempt of each partition rejected (taken back when the attempt is retried or dropped). */
  readonly rejectedBy = new Map<string, number>();

  constructor(
    readonly pipeline: ValidatedPipeline,
    readonly env: {
      bus: EventBus;
      logger: Logger;
      redactor: Redactor;
      engine: Engine;
      closers: Closers;
      fresh: boolean;
      keepCommitted: boolean;
      runId: string | undefined;
      cwd: string | undefined;
    },
    readonly stop: StopController,
    runId: string,
  ) {
    this.config = pipeline.config;
    this.stateId = pipeline.stateId ?? pipeline.config.pipeline;
    this.runId = runId;
    this.logger = this.loggerFor(runId);
    this.planCtx = { runId, pipeline: this.stateId, log: toLog(this.logger), signal: stop.abort, baseDir: pipeline.baseDir };
  }

  /** Makes `runId` the run's id (a resumed run keeps its old one, an abandoned one gets a new one). */
  setRunId(runId: string): void {
    this.runId = runId;
    this.logger = this.loggerFor(runId);
    this.planCtx = { ...this.planCtx, runId, log: toLog(this.logger) };
  }

  /** The commit messages of the partitions committed so far (skipped ones first). */
  committedMessages(): JsonValue[] {
    return [...this.skipped.values(), ...this.outcomes.filter((o) => o.ok).map((o) => o.message as JsonValue)];
  }

  /** Keeps the run's counters from the tasks' events (whichever process ran them). */
  count(e: WeirEvent): void {
    if (e.type === 'rows_read') this.rowsRead += e.rows;
    else if (e.type === 'partition_start') this.rejectedBy.set(e.partition_id, 0);
    else if (e.type === 'row_dead_lettered') {
      this.rowsRejected++;
      this.rejectedBy.set(e.partition_id, (this.rejectedBy.get(e.partition_id) ?? 0) + 1);
    } else if (e.type === 'partition_retry') {
      // the next attempt reads (and rejects) them again
      this.rowsRead -= e.metrics.rows_read;
      this.forgetRejected(e.metrics.partition_id);
    }
  }

  /** A partition attempt's dead letters were dropped: they no longer count. */
  forgetRejected(partitionId: string): void {
    this.rowsRejected -= this.rejectedBy.get(partitionId) ?? 0;
    this.rejectedBy.set(partitionId, 0);
  }

  private loggerFor(runId: string): Logger {
    return this.env.logger.child({ run_id: runId, pipeline: this.config.pipeline });
  }
}
