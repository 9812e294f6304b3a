/**
 * The Redis sink: each row becomes a hash (HSET), a JSON string (SET) or a stream
 * entry (XADD), under a key rendered from the row.
 *
 * One batch = every row checked first (its key fields, its values encodable, a
 * stream entry not empty: a bad row fails the batch before anything is sent), then
 * sent as pipelines of `pipeline_depth` commands with at most `pipelines_in_flight`
 * of them awaiting replies; the next pipeline's commands are built only when the
 * oldest is answered, and the batch is fully acknowledged before `write()` returns.
 * An ioredis command costs about 1.2 KB of heap until its reply arrives, and V8
 * lets the heap grow to about 4× what is live, so a writer holds
 * `pipelines_in_flight × pipeline_depth` commands, never a whole batch: with every
 * command of a 2000-row batch in flight (4 partitions), weir's peak RSS on 1M
 * hashes was ≈270 MB; with 2 × 100 it is ≈200 MB, and no slower (bench/redis.js).
 * With `atomic`, the batch is one MULTI/EXEC instead: all or nothing, but measured
 * 1.4–2.5× slower on 300k hashes (every command also gets a QUEUED reply, and the
 * server only starts once the whole batch arrived), and every command of the batch
 * is in memory at once, so plain pipelines are the default.
 *
 * Delivery: Redis has no transaction across batches, so rows are visible as soon
 * as their batch is written and `abort()` cannot take them back. `hash` and `json`
 * writes are idempotent (a retried or re-run batch writes the same values to the
 * same keys), so re-running gives the same result; `stream` mode is at-least-once
 * (a retried batch can append entries twice; with `atomic` only when the connection
 * drops after EXEC ran but before its reply arrived).
 */
import type { ChainableCommander, Redis } from 'ioredis';
import type { Sink, TaskContext, Writer } from '../../sdk/connector.js';
import { RowError, type WeirError } from '../../sdk/errors.js';
import type { JsonValue, Partition, Row } from '../../sdk/types.js';
import { Decimal, stringifyJson } from '../../sdk/values.js';
import { classify, connect, release, where } from './client.js';
import type { RedisOptions } from './spec.js';
import { compileTemplate, dateText, type KeyTemplate } from './template.js';

export interface RedisCommitMessage {
  partition_id: string;
  rows: number;
  [key: string]: JsonValue;
}

/** A row's value as Redis text; undefined for null (not stored). Lists and objects become JSON. */
export function redisValue(v: unknown, field = 'value'): string | Buffer | undefined {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(v);
    case 'undefined':
      return undefined;
    default:
      if (v === null) return undefined;
      if (v instanceof Date) return dateText(v, field);
      if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      if (Decimal.is(v)) return v.text;
      return jsonText(v, `field ${field}`);
  }
}

/** Exact JSON text of a row or a value (decimals and bigints as number literals); a {@link RowError} when JSON cannot encode it (a cycle). */
function jsonText(v: unknown, what: string): string {
  try {
    return stringifyJson(v);
  } catch (error) {
    throw new RowError(`${what} cannot be written as JSON: ${(error as Error).message}`, { code: 'invalid_json', cause: error });
  }
}

/**
 * `…head, field, value, field, value…` of a row (one flat array: ioredis flattens
 * only one level, and HSET with exactly two arguments would take an array as an
 * object), and the fields that are null.
 */
function fieldArgs(
  row: Row,
  head: (string | number)[],
): { args: (string | number | Buffer)[]; count: number; nulls: string[] | undefined } {
  const args: (string | number | Buffer)[] = head;
  let nulls: string[] | undefined;
  let count = 0;
  for (const field in row) {
    const v = redisValue(row[field], field);
    if (v === undefined) {
      nulls ??= [];
      nulls.push(field);
    } else {
      args.push(field, v);
      count++;
    }
  }
  return { args, count, nulls };
}

/**
 * The non-null values of a row, checked without building its arguments: a date
 * must be valid, and a list or object is encoded once here too, so one that JSON
 * cannot encode fails the batch before anything of it is sent (they are rare in
 * Redis rows; a scalar costs a type check).
 */
function countValues(row: Row): number {
  let count = 0;
  for (const field in row) {
    const v = row[field];
    if (v === null || v === undefined) continue;
    if (typeof v === 'object') {
      if (v instanceof Date) dateText(v, field);
      else if (!(v instanceof Uint8Array) && redisValue(v, field) === undefined) continue;
    }
    count++;
  }
  return count;
}

/** What sending a checked batch needs beyond its rows (see {@link RedisWriter.check}). */
interface Checked {
  /** `json` mode: every row's JSON text. */
  texts: string[] | undefined;
  /** `stream` mode with `ttl`: the streams to expire after the entries. */
  expire: Set<string> | undefined;
}

type Replies = [Error | null, unknown][] | null;

/**
 * Fails a batch when no pipeline was answered for `ms` (`command_timeout`). One
 * timer per batch, re-armed only when it fires early (ioredis' commandTimeout
 * would start one per command).
 */
class Watchdog {
  fired = false;
  private last = Date.now();
  private handle: NodeJS.Timeout | undefined;
  private onFire: ((error: Error) => void) | undefined;

  constructor(private readonly ms: number) {
    this.arm(ms);
  }

  private arm(delay: number): void {
    this.handle = setTimeout(() => {
      const idle = Date.now() - this.last;
      if (idle < this.ms) return this.arm(this.ms - idle);
      this.fired = true;
      this.onFire?.(this.error());
    }, delay);
  }

  private error(): Error {
    return new Error(`Command timed out: no reply within ${this.ms} ms (command_timeout)`);
  }

  /** `reply`, or a timeout error when no reply came for `ms`. Holds nothing once it settled. */
  async wait<T>(reply: Promise<T>): Promise<T> {
    if (this.fired) throw this.error();
    try {
      return await new Promise<T>((resolve, reject) => {
        this.onFire = reject;
        reply.then(resolve, reject);
      });
    } finally {
      this.onFire = undefined;
      this.last = Date.now();
    }
  }

  stop(): void {
    clearTimeout(this.handle);
  }
}

export function redisSink(opts: RedisOptions): Sink {
  return {
    writer(partition: Partition, ctx: TaskContext): Writer {
      return new RedisWriter(opts, partition, ctx);
    },
  };
}

class RedisWriter implements Writer {
  private client: Redis | undefined;
  private rows = 0;
  private readonly key: KeyTemplate;

  constructor(
    private readonly opts: RedisOptions,
    private readonly partition: Partition,
    private readonly ctx: TaskContext,
  ) {
    this.key = opts.mode === 'stream' ? compileTemplate(opts.stream as string, 'stream') : compileTemplate(opts.key as string, 'key');
  }

  private async connection(): Promise<Redis> {
    if (this.client && this.client.status !== 'ready') {
      this.client.disconnect();
      this.client = undefined;
    }
    this.client ??= await connect(this.opts, this.ctx, `weir:${this.ctx.pipeline}:${this.partition.id}`);
    return this.client;
  }

  async write(batch: Row[]): Promise<void> {
    if (batch.length === 0) return;
    const checked = this.check(batch);
    await this.send(await this.connection(), batch, checked);
    this.rows += batch.length;
  }

  /**
   * Checks every row before anything is sent (a bad row fails the batch here): its
   * key fields, and its values (`json`: its JSON text, kept for sending). Builds no
   * command: those are built pipeline by pipeline in {@link send}, so a batch's
   * commands are never all in memory at once.
   */
  private check(batch: Row[]): Checked {
    const json = this.opts.mode === 'json';
    const stream = this.opts.mode === 'stream';
    const texts = json ? new Array<string>(batch.length) : undefined;
    const expire = stream && this.opts.ttl ? new Set<string>() : undefined;
    for (let i = 0; i < batch.length; i++) {
      const row = batch[i] as Row;
      if (expire) expire.add(this.key.render(row));
      else this.key.check(row);
      if (texts) texts[i] = jsonText(row, 'row');
      else if (countValues(row) === 0 && stream)
        throw new RowError('row has no non-null field: a stream entry needs at least one', { code: 'empty_row' });
    }
    return { texts, expire };
  }

  /** Adds one row's commands to a pipeline; returns how many. */
  private add(p: ChainableCommander, row: Row, text: string | undefined): number {
    const { ttl, mode } = this.opts;
    const key = this.key.render(row);
    if (mode === 'json') {
      p.call('set', ttl ? [key, text as string, 'PX', ttl] : [key, text as string]);
      return 1;
    }
    if (mode === 'stream') {
      const maxlen = this.opts.maxlen;
      p.call('xadd', fieldArgs(row, maxlen ? [key, 'MAXLEN', '~', maxlen, '*'] : [key, '*']).args);
      return 1;
    }
    const { args, count, nulls } = fieldArgs(row, [key]);
    let n = 0;
    if (count) {
      p.call('hset', args);
      n++;
    }
    if (nulls) {
      p.call('hdel', [key, ...nulls]);
      n++;
    }
    if (ttl) {
      p.call('pexpire', [key, ttl]);
      n++;
    }
    return n;
  }

  /**
   * Sends a checked batch as pipelines of `pipeline_depth` commands (one MULTI/EXEC
   * with `atomic`), at most `pipelines_in_flight` awaiting replies. Replies come in
   * order on the one connection, so waiting for the oldest frees the next slot. The
   * first failure stops sending; what is in flight is awaited before it is thrown.
   */
  private async send(client: Redis, batch: Row[], { texts, expire }: Checked): Promise<void> {
    const atomic = this.opts.atomic;
    const depth = atomic ? Number.POSITIVE_INFINITY : this.opts.pipeline_depth;
    const window = atomic ? 1 : this.opts.pipelines_in_flight;
    const inFlight: Promise<Replies>[] = [];
    const watchdog = new Watchdog(this.opts.command_timeout);
    try {
      let i = 0;
      while (i < batch.length) {
        const p = atomic ? client.multi() : client.pipeline();
        let n = 0;
        for (; i < batch.length && n < depth; i++) n += this.add(p, batch[i] as Row, texts?.[i]);
        if (i === batch.length && expire)
          for (const s of expire) {
            p.call('pexpire', [s, this.opts.ttl as number]);
            n++;
          }
        if (n === 0) continue; // rows of only null fields, no ttl: nothing to send
        inFlight.push(p.exec());
        if (inFlight.length >= window) await this.answered(inFlight, watchdog);
      }
      while (inFlight.length > 0) await this.answered(inFlight, watchdog);
    } catch (error) {
      if (watchdog.fired) client.disconnect(); // rejects what is still pending
      await Promise.allSettled(inFlight);
      throw this.failed(error);
    } finally {
      watchdog.stop();
    }
  }

  /** Waits for the oldest pipeline in flight and throws its first failed command's error. */
  private async answered(inFlight: Promise<Replies>[], watchdog: Watchdog): Promise<void> {
    const replies = await watchdog.wait(inFlight[0] as Promise<Replies>);
    inFlight.shift();
    if (replies === null) throw new Error('EXECABORT the transaction was discarded');
    for (const [error] of replies) if (error) throw error;
  }

  private failed(error: unknown): WeirError {
    const e = classify(
      error,
      `writing ${this.opts.mode === 'stream' ? `to stream ${this.opts.stream}` : `keys ${this.opts.key}`} on ${where(this.opts)}`,
    );
    if (e.retryable && this.client) {
      this.client.disconnect(); // the next attempt starts on a fresh connection
      this.client = undefined;
    }
    return e;
  }

  commit(): RedisCommitMessage {
    return { partition_id: this.partition.id, rows: this.rows };
  }

  abort(): void {
    if (this.rows > 0)
      this.ctx.log.warn('redis has no rollback: rows of this partition written before the failure stay', {
        partition_id: this.partition.id,
        rows: this.rows,
      });
    this.rows = 0;
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await release(client);
  }
}
