/**
 * The run's row-error policy: with `errors.tolerance: none` the first bad row
 * fails the partition; with `all` each bad row goes to the dead-letter sink with
 * its error and context, until `max_failed_rows` or `max_error_rate` says stop.
 */
import type { Sink, TaskContext, Writer } from '../sdk/connector.js';
import { errorMessage, errorType, isRetryable, WeirError } from '../sdk/errors.js';
import type { JsonValue, Row } from '../sdk/types.js';
import type { Redactor } from '../secrets/redactor.js';
import type { RejectInfo, RowErrorHandler } from './task.js';

export interface ErrorPolicyOptions {
  tolerance: 'none' | 'all';
  max_failed_rows?: number;
  max_error_rate?: number;
}

const FLUSH_ROWS = 500;
const MIN_ROWS_FOR_RATE = 1000;

export class DeadLetterQueue implements RowErrorHandler {
  private buffer: Row[] = [];
  private writer: Writer | undefined;
  private flushing: Promise<void> = Promise.resolve();
  failed = 0;

  constructor(
    private readonly options: ErrorPolicyOptions,
    private readonly pipeline: string,
    private readonly redactor: Redactor,
    /** Rows read so far in the run, for `max_error_rate`. */
    private readonly rowsRead: () => number,
    private readonly sink?: Sink,
    private readonly ctx?: TaskContext,
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
    this.buffer.push(entry);
    if (this.buffer.length >= FLUSH_ROWS) await this.flush();
  }

  async flush(): Promise<void> {
    if (!this.sink || !this.ctx || this.buffer.length === 0) return;
    const rows = this.buffer;
    this.buffer = [];
    this.flushing = this.flushing.then(async () => {
      this.writer ??= await (this.sink as Sink).writer({ id: 'dead-letter' }, this.ctx as TaskContext);
      await this.writer.write(rows);
    });
    await this.flushing;
  }

  /** Commits the dead letters, whatever the outcome of the run: they explain it. */
  async finish(): Promise<void> {
    try {
      await this.flush();
      if (this.writer) {
        const message = (await this.writer.commit?.()) ?? null;
        await this.sink?.commit?.([message as JsonValue], { ...(this.ctx as TaskContext), schema: undefined });
      }
    } finally {
      await this.writer?.close?.();
      await this.sink?.close?.();
    }
  }
}

function toJson(record: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(record, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
  } catch {
    return String(record);
  }
}
