/**
 * The run's row-error policy: with `errors.tolerance: none` the first bad row
 * fails the partition; with `all` each bad row goes to the dead-letter sink with
 * its error and context, until `max_failed_rows` or `max_error_rate` says stop.
 */
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
 * Dead letters are staged per partition attempt: written through their own writer
 * of the dead-letter sink, committed just before the partition itself commits (the
 * message kept in the ledger). A partition committed before a crash keeps its dead
 * letters when the run resumes, and one redone (after a stop, or a later attempt)
 * replaces those of its earlier attempt instead of adding to them. The sink's job
 * commit publishes them all once the run ends: succeeded, or failed — then with
 * those of the partitions that failed, which explain it — but not when the run
 * stops to be resumed.
 */
export class DeadLetterQueue implements RowErrorHandler {
  private readonly pending = new Map<string, Pending>();
  failed = 0;

  constructor(
    private readonly options: ErrorPolicyOptions,
    private readonly pipeline: string,
    private readonly redactor: Redactor,
    /** Rows read so far in the run, for `max_error_rate`. */
    private readonly rowsRead: () => number,
    private readonly sink?: Sink,
    private readonly ctx?: TaskContext,
    private readonly ledger: DeadLetterLedger = memoryLedger(),
  ) {}

  tolerates(error: unknown): boolean {
    if (this.options.tolerance !== 'all') return false;
    // only errors about the rows themselves: a broken connection or a lost transaction
    // must fail the partition (and be redone on resume), not dead-letter good rows
    if (error instanceof WeirError) return error.kind === 'data';
    return !isRetryable(error);
  }

  async reject(record: unknown, error: unknown, info: RejectInfo): Promise<void> {
    if (this.options.tolerance !== 'all') throw error;
    this.failed++;
    const { max_failed_rows: maxRows, max_error_rate: maxRate } = this.options;
    if (maxRows !== undefined && this.failed > maxRows)
      throw new WeirError(`more than ${maxRows} rows were rejected (errors.max_failed_rows); last error: ${errorMessage(error)}`, {
        code: 'too_many_failed_rows',
        cause: error,
      });
    const read = this.rowsRead();
    if (maxRate !== undefined && read >= MIN_ROWS_FOR_RATE && this.failed / read > maxRate)
      throw new WeirError(
        `${this.failed} of ${read} rows were rejected, above errors.max_error_rate ${maxRate}; last error: ${errorMessage(error)}`,
        { code: 'error_rate_exceeded', cause: error },
      );
    const entry = this.redactor.scrubValue({
      pipeline: this.pipeline,
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
      await this.discardPartition(info.partition_id, pending.attempt);
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

  /**
   * Makes a partition attempt's dead letters durable before the partition commits
   * (worker): its writer commits, the ledger keeps the message, and a message an
   * earlier attempt left (a crash between the two commits) is discarded.
   */
  async commitPartition(partitionId: string, attempt: number): Promise<void> {
    const pending = this.pending.get(partitionId);
    if (pending && pending.attempt !== attempt) return;
    this.pending.delete(partitionId);
    const { sink, ctx } = this;
    if (!sink || !ctx) return;
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
    const replaced = this.ledger.save(partitionId, message);
    if (replaced !== undefined) await sink.abort?.([replaced], { ...ctx, schema: undefined });
  }

  /** A failed attempt is retried: what it dead-lettered goes (worker). */
  discardAttempt(partitionId: string, attempt: number): Promise<void> {
    return this.discardPartition(partitionId, attempt);
  }

  /** Drops what a partition attempt dead-lettered: a later attempt, or the resumed run, rejects those rows again. */
  private async discardPartition(partitionId: string, attempt: number): Promise<void> {
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
   * Ends the run's dead letters (planner). `publish`: the run is over (succeeded or
   * failed): partitions that never committed keep theirs too — they explain the
   * failure — and the sink's job commit publishes every partition's. Otherwise (the
   * run stopped and will resume) uncommitted attempts are dropped and the ledger
   * waits for the resumed run.
   */
  async finish(publish = true): Promise<void> {
    try {
      for (const [id, pending] of [...this.pending]) {
        if (publish) await this.commitPartition(id, pending.attempt);
        else await this.discardPartition(id, pending.attempt);
      }
      const messages = this.ledger.all();
      if (publish && this.sink && this.ctx && messages.size > 0) {
        await this.sink.commit?.([...messages.values()], { ...this.ctx, schema: undefined });
        this.ledger.clear();
      }
    } finally {
      await this.sink?.close?.();
    }
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
