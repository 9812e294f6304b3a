/**
 * The run's row-error policy: with `errors.tolerance: none` the first bad row
 * fails the partition; with `all` each bad row goes to the dead-letter sink with
 * its error and context, until `max_failed_rows` or `max_error_rate` says stop.
 */
import type { Logger } from 'pino';
import { toLog } from '../observe/logger.js';
import type { Sink, TaskContext, Writer } from '../sdk/connector.js';
import { errorMessage, errorType, isRetryable, WeirError } from '../sdk/errors.js';
import type { JsonValue, Row } from '../sdk/types.js';
import { parseJsonExact, stringifyJson } from '../sdk/values.js';
import type { Redactor } from '../secrets/redactor.js';
import type { RejectInfo, RowErrorHandler } from './task.js';

export interface ErrorPolicyOptions {
  tolerance: 'none' | 'all';
  max_failed_rows?: number;
  max_error_rate?: number;
}

const FLUSH_ROWS = 500;
const MIN_ROWS_FOR_RATE = 1000;

/**
 * Where the dead-letter sink's commit messages wait, by partition, until the run's
 * dead letters are published (the checkpoint store, or memory without one).
 */
export interface DeadLetterLedger {
  /** Records a partition's message (undefined: forgets it); returns the one it replaces. */
  save(partitionId: string, message: JsonValue | undefined): JsonValue | undefined;
  /** Every recorded message, by partition. */
  all(): Map<string, JsonValue>;
  /** Forgets them all (after publishing). */
  clear(): void;
}

/** A ledger in memory, for runs without a checkpoint store. */
export function memoryLedger(): DeadLetterLedger {
  const messages = new Map<string, JsonValue>();
  return {
    save(id, message) {
      const old = messages.get(id);
      if (message === undefined) messages.delete(id);
      else messages.set(id, message);
      return old;
    },
    all: () => new Map(messages),
    clear: () => messages.clear(),
  };
}

/** The dead letters of one partition attempt, on their way to the sink. */
interface Pending {
  attempt: number;
  rows: Row[];
  /** Rows rejected in this attempt (taken back from `failed` if the attempt is discarded). */
  count: number;
  writer?: Writer;
  /** Writes in order, one after the other. */
  chain: Promise<void>;
}

/**
 * The context the dead-letter sink's writers and commits get: the run's, with files
 * readable by their owner only (rejected rows may hold anything).
 */
export function deadLetterContext(o: {
  runId: string;
  pipeline: string;
  baseDir: string;
  logger: Logger;
  signal: AbortSignal;
}): TaskContext {
  return {
    runId: o.runId,
    pipeline: o.pipeline,
    baseDir: o.baseDir,
    log: toLog(o.logger),
    signal: o.signal,
    ownerOnly: true,
    partitionId: 'dead-letter',
    attempt: 1,
    schema: undefined,
    reject: async () => {},
    count: () => {},
    onCommit: () => {},
  };
}

/** What the row-error policy needs to know about the run. */
export interface DeadLetterPolicy {
  options: ErrorPolicyOptions;
  pipeline: string;
  redactor: Redactor;
  /** Rows read so far in the run, for `max_error_rate`. */
  rowsRead: () => number;
  /** Rows the run rejected before this stager started (a task in another process), for the run-wide limits. */
  failedBefore?: number;
}

/**
 * Stages dead letters (worker): per partition attempt, through that attempt's own
 * writer of the dead-letter sink, committed just before the partition itself
 * commits, and handed to `committed` (the {@link DeadLetterPublisher}, or a task's
 * outcome). A later attempt of a partition replaces what an earlier one rejected
 * instead of adding to it.
 */
export class DeadLetterStager implements RowErrorHandler {
  private readonly pending = new Map<string, Pending>();
  /** Rows rejected by the attempts this stager has not discarded. */
  failed = 0;

  constructor(
    private readonly policy: DeadLetterPolicy,
    private readonly sink: Sink | undefined,
    private readonly ctx: TaskContext | undefined,
    /** Receives a partition attempt's committed dead letters (undefined: it rejected none). */
    private readonly committed: (partitionId: string, message: JsonValue | undefined) => Promise<void> | void,
  ) {}

  get narrows(): boolean {
    return this.policy.options.tolerance === 'all';
  }

  tolerates(error: unknown): boolean {
    if (this.policy.options.tolerance !== 'all') return false;
    // only errors about the rows themselves: a broken connection or a lost transaction
    // must fail the partition (and be redone on resume), not dead-letter good rows
    if (error instanceof WeirError) return error.kind === 'data';
    return !isRetryable(error);
  }

  async reject(record: unknown, error: unknown, info: RejectInfo): Promise<void> {
    const { options, redactor, pipeline } = this.policy;
    if (options.tolerance !== 'all') throw error;
    this.failed++;
    const failed = this.failed + (this.policy.failedBefore ?? 0);
    const { max_failed_rows: maxRows, max_error_rate: maxRate } = options;
    if (maxRows !== undefined && failed > maxRows)
      throw new WeirError(`more than ${maxRows} rows were rejected (errors.max_failed_rows); last error: ${errorMessage(error)}`, {
        code: 'too_many_failed_rows',
        cause: error,
      });
    const read = this.policy.rowsRead();
    if (maxRate !== undefined && read >= MIN_ROWS_FOR_RATE && failed / read > maxRate)
      throw new WeirError(
        `${failed} of ${read} rows were rejected, above errors.max_error_rate ${maxRate}; last error: ${errorMessage(error)}`,
        { code: 'error_rate_exceeded', cause: error },
      );
    const entry = redactor.scrubValue({
      pipeline,
      run_id: this.ctx?.runId ?? null,
      partition_id: info.partition_id,
      batch_id: info.batch_id ?? null,
      attempt: info.attempt,
      stage: info.stage,
      error_type: errorType(error),
      error_message: errorMessage(error),
      time: new Date().toISOString(),
      record: toJson(record),
    }) as Row;
    let pending = this.pending.get(info.partition_id);
    if (pending && pending.attempt !== info.attempt) {
      await this.discardAttempt(info.partition_id, pending.attempt);
      pending = undefined;
    }
    if (!pending) {
      pending = { attempt: info.attempt, rows: [], count: 0, chain: Promise.resolve() };
      this.pending.set(info.partition_id, pending);
    }
    pending.rows.push(entry);
    pending.count++;
    if (pending.rows.length >= FLUSH_ROWS) await this.flush(info.partition_id, pending);
  }

  private async flush(partitionId: string, pending: Pending): Promise<void> {
    const { sink, ctx } = this;
    if (!sink || !ctx || pending.rows.length === 0) return;
    const rows = pending.rows;
    pending.rows = [];
    pending.chain = pending.chain.then(async () => {
      pending.writer ??= await sink.writer({ id: `dead-letter-${partitionId}` }, { ...ctx, partitionId: `dead-letter-${partitionId}` });
      await pending.writer.write(rows);
    });
    await pending.chain;
  }

  /** Makes a partition attempt's dead letters durable (worker, before the partition commits) and hands them on. */
  async commitPartition(partitionId: string, attempt: number): Promise<void> {
    const pending = this.pending.get(partitionId);
    if (pending && pending.attempt !== attempt) return;
    this.pending.delete(partitionId);
    if (!this.sink || !this.ctx) return;
    let message: JsonValue | undefined;
    if (pending) {
      await this.flush(partitionId, pending);
      await pending.chain;
      try {
        message = pending.writer ? ((await pending.writer.commit?.()) ?? null) : undefined;
      } finally {
        await pending.writer?.close?.();
      }
    }
    await this.committed(partitionId, message);
  }

  /** Drops what a partition attempt dead-lettered: a later attempt, or the resumed run, rejects those rows again. */
  async discardAttempt(partitionId: string, attempt: number): Promise<void> {
    const pending = this.pending.get(partitionId);
    if (!pending || pending.attempt !== attempt) return;
    this.pending.delete(partitionId);
    this.failed -= pending.count;
    try {
      await pending.chain.catch(() => {});
      await pending.writer?.abort?.();
    } finally {
      await pending.writer?.close?.();
    }
  }

  /**
   * Ends the stager: `publish` (the run is over) commits what partitions that never
   * committed rejected — they explain the failure —; otherwise (a stop, to resume)
   * their attempts are dropped.
   */
  async finish(publish: boolean): Promise<void> {
    for (const [id, pending] of [...this.pending]) {
      if (publish) await this.commitPartition(id, pending.attempt);
      else await this.discardAttempt(id, pending.attempt);
    }
  }
}

/**
 * Publishes a run's dead letters (planner): each partition's committed dead letters
 * wait in the ledger (the checkpoint store: they survive a crash), a partition redone
 * replacing those of its earlier attempt (see {@link record}), and the sink's job commit publishes them
 * all once the run ends: succeeded, or failed — then with those of the partitions that
 * failed, which explain it — but not when the run stops to be resumed.
 */
export class DeadLetterPublisher {
  constructor(
    private readonly sink: Sink | undefined,
    private readonly ctx: TaskContext | undefined,
    private readonly ledger: DeadLetterLedger = memoryLedger(),
  ) {}

  /**
   * Keeps a partition's committed dead letters (undefined: it has none now), in place
   * of those of its earlier attempt. The earlier attempt's output is not aborted here:
   * a sink's abort is a job abort (a file sink deletes every staged file of the run, a
   * SQL sink drops the table the run created), which would take the other partitions'
   * dead letters with it. What is no longer in the ledger is never published; a staging
   * sink deletes it with the run's other leftovers at the job commit or abort.
   */
  record(partitionId: string, message: JsonValue | undefined): void {
    this.ledger.save(partitionId, message);
  }

  /** The job commit of the dead-letter sink, with every partition's message. */
  async publish(): Promise<void> {
    const messages = this.ledger.all();
    if (this.sink && this.ctx && messages.size > 0) {
      await this.sink.commit?.([...messages.values()], { ...this.ctx, schema: undefined });
      this.ledger.clear();
    }
  }

  close(): Promise<void> | void {
    return this.sink?.close?.();
  }
}

/** The record as plain JSON with its numbers exact (decimals and bigints stay what they are). */
function toJson(record: unknown): unknown {
  try {
    return parseJsonExact(stringifyJson(record), Number.POSITIVE_INFINITY);
  } catch (error) {
    // String(record) would throw for a row without a prototype, and say nothing for any other object
    return `(a row that cannot be written as JSON: ${(error as Error).message})`;
  }
}
