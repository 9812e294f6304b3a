/**
 * Read-ahead for an unbounded source (worker): while the stream task writes a batch
 * or commits an epoch, the source goes on fetching, up to a bound of rows held.
 * Without it the broker sits idle during every write and the sink during every
 * fetch; with it an epoch costs about the longer of the two, not their sum.
 *
 * Chunks come out in the order the source gave them, each exactly once; an error of
 * the source comes out in its place. Nothing read ahead is acknowledged: a chunk's
 * `ack` runs only after the epoch that consumed it was committed, so what is still
 * held when the partition ends is redelivered by the broker, as an unread message is.
 */
import type { StreamChunk } from '../sdk/connector.js';

export class ReadAhead implements AsyncIterator<StreamChunk> {
  /** Reads asked of the source and not yet taken, in order (the last may be in flight). */
  private readonly queue: Promise<IteratorResult<StreamChunk>>[] = [];
  /** Rows of the settled reads in the queue. */
  private held = 0;
  private pulling = false;
  private ended = false;

  /**
   * `maxRows`: stop reading ahead once this many rows are held (one chunk is always read).
   * `stop`: tells the source to stop waiting (its signal), called before it is returned: a
   * generator's `return()` waits for a read in flight, which may be waiting for messages.
   */
  constructor(
    private readonly source: AsyncIterator<StreamChunk>,
    private readonly maxRows: number,
    private readonly stop: () => void = () => {},
  ) {}

  next(): Promise<IteratorResult<StreamChunk>> {
    if (this.queue.length === 0) this.pull();
    const head = this.queue.shift();
    if (!head) return Promise.resolve({ done: true, value: undefined });
    return head.then((result) => {
      if (!result.done) this.held -= result.value.rows.length;
      this.pull();
      return result;
    });
  }

  /** Ends the source (what is held is dropped, unacknowledged). */
  async return(): Promise<IteratorResult<StreamChunk>> {
    this.ended = true;
    this.queue.length = 0;
    this.stop();
    await this.source.return?.(undefined);
    return { done: true, value: undefined };
  }

  /** Starts the next read when none is in flight, the source has not ended and the bound allows. */
  private pull(): void {
    if (this.pulling || this.ended || (this.held >= this.maxRows && this.queue.length > 0)) return;
    this.pulling = true;
    const read = this.source.next();
    this.queue.push(read);
    read.then(
      (result) => {
        this.pulling = false;
        if (result.done) this.ended = true;
        else this.held += result.value.rows.length;
        this.pull();
      },
      () => {
        this.pulling = false;
        this.ended = true; // the error is the consumer's to see, in its place
      },
    );
  }
}
