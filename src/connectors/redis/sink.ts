/**
 * The Redis sink: each row becomes a hash (HSET), a JSON string (SET) or a stream
 * entry (XADD), under a key rendered from the row.
 *
 * One batch = every row's command, prepared first (a bad row fails the batch
 * before anything is sent), then sent as pipelines of `pipeline_depth` commands
 * that are all in flight at once, and fully acknowledged before `write()` returns.
 * With `atomic`, the batch is one MULTI/EXEC instead: all or nothing, but measured
 * 1.4–2.5× slower on 300k hashes (every command also gets a QUEUED reply, and the
 * server only starts once the whole batch arrived), so plain pipelines are the default.
 *
 * Delivery: Redis has no transaction across batches, so rows are visible as soon
 * as their batch is written and `abort()` cannot take them back. `hash` and `json`
 * writes are idempotent (a retried or re-run batch writes the same values to the
 * same keys), so re-running gives the same result; `stream` mode is at-least-once
 * (a retried batch can append entries twice; with `atomic` only when the connection
 * drops after EXEC ran but before its reply arrived).
 */
import type { Redis } from 'ioredis';
import type { Sink, TaskContext, Writer } from '../../sdk/connector.js';
import { RowError, type WeirError } from '../../sdk/errors.js';
import type { JsonValue, Partition, Row } from '../../sdk/types.js';
import { classify, connect, release, where } from './client.js';
import type { RedisOptions } from './spec.js';
import { compileTemplate, type KeyTemplate } from './template.js';

export interface RedisCommitMessage {
  partition_id: string;
  rows: number;
  [key: string]: JsonValue;
}

/** A row's value as Redis text; undefined for null (not stored). */
export function redisValue(v: unknown): string | Buffer | undefined {
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
      if (v instanceof Date) return v.toISOString();
      if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      return JSON.stringify(v);
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
    const v = redisValue(row[field]);
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

function jsonText(row: Row): string {
  try {
    return JSON.stringify(row, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch (error) {
    throw new RowError(`row cannot be written as JSON: ${(error as Error).message}`, { code: 'invalid_json', cause: error });
  }
}

/** Prepared commands of a batch: `names[i]` with the flat argument list `args[i]`. */
interface Prepared {
  names: string[];
  args: unknown[][];
}

/** One timer per batch (ioredis' commandTimeout would start one per command). */
function timeout(ms: number): { promise: Promise<never>; clear(): void } {
  let handle: NodeJS.Timeout | undefined;
  const promise = new Promise<never>((_, reject) => {
    handle = setTimeout(() => reject(new Error(`Command timed out: no reply within ${ms} ms (command_timeout)`)), ms);
  });
  return { promise, clear: () => clearTimeout(handle) };
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
  private readonly key: KeyTemplate | undefined;
  private readonly stream: KeyTemplate | undefined;

  constructor(
    private readonly opts: RedisOptions,
    private readonly partition: Partition,
    private readonly ctx: TaskContext,
  ) {
    this.key = opts.mode === 'stream' ? undefined : compileTemplate(opts.key as string, 'key');
    this.stream = opts.mode === 'stream' ? compileTemplate(opts.stream as string, 'stream') : undefined;
  }

  private async connection(): Promise<Redis> {
    if (this.client && this.client.status !== 'ready') {
      this.client.disconnect();
      this.client = undefined;
    }
    this.client ??= await connect(this.opts, this.ctx, `weir:${this.ctx.pipeline}:${this.partition.id}`);
    return this.client;
  }

  /** Every row's commands, prepared before anything is sent (a bad row fails the batch here). */
  private prepare(batch: Row[]): Prepared {
    const { ttl } = this.opts;
    const names: string[] = [];
    const args: unknown[][] = [];
    if (this.opts.mode === 'json') {
      const key = this.key as KeyTemplate;
      for (const row of batch) {
        names.push('set');
        args.push(ttl ? [key.render(row), jsonText(row), 'PX', ttl] : [key.render(row), jsonText(row)]);
      }
    } else if (this.opts.mode === 'hash') {
      const key = this.key as KeyTemplate;
      for (const row of batch) {
        const k = key.render(row);
        const { args: hset, count, nulls } = fieldArgs(row, [k]);
        if (count) {
          names.push('hset');
          args.push(hset);
        }
        if (nulls) {
          names.push('hdel');
          args.push([k, ...nulls]);
        }
        if (ttl) {
          names.push('pexpire');
          args.push([k, ttl]);
        }
      }
    } else {
      const stream = this.stream as KeyTemplate;
      const maxlen = this.opts.maxlen;
      const expire = ttl ? new Set<string>() : undefined;
      for (const row of batch) {
        const s = stream.render(row);
        expire?.add(s);
        const { args: xadd, count } = fieldArgs(row, maxlen ? [s, 'MAXLEN', '~', maxlen, '*'] : [s, '*']);
        if (count === 0) throw new RowError('row has no non-null field: a stream entry needs at least one', { code: 'empty_row' });
        names.push('xadd');
        args.push(xadd);
      }
      if (expire)
        for (const s of expire) {
          names.push('pexpire');
          args.push([s, ttl]);
        }
    }
    return { names, args };
  }

  async write(batch: Row[]): Promise<void> {
    if (batch.length === 0) return;
    const { names, args } = this.prepare(batch);
    const client = await this.connection();
    const pending: Promise<[Error | null, unknown][] | null>[] = [];
    try {
      if (this.opts.atomic) {
        const multi = client.multi();
        for (let i = 0; i < names.length; i++) multi.call(names[i] as string, args[i] as never);
        pending.push(multi.exec());
      } else {
        const depth = this.opts.pipeline_depth;
        for (let from = 0; from < names.length; from += depth) {
          const pipeline = client.pipeline();
          const to = Math.min(names.length, from + depth);
          for (let i = from; i < to; i++) pipeline.call(names[i] as string, args[i] as never);
          pending.push(pipeline.exec());
        }
      }
    } catch (error) {
      await Promise.allSettled(pending);
      throw this.failed(error);
    }
    const timer = timeout(this.opts.command_timeout);
    try {
      await Promise.race([Promise.allSettled(pending), timer.promise]);
    } catch (error) {
      this.client?.disconnect(); // rejects what is still pending
      await Promise.allSettled(pending);
      throw this.failed(error);
    } finally {
      timer.clear();
    }
    const settled = await Promise.allSettled(pending);
    let first: unknown;
    for (const s of settled) {
      if (s.status === 'rejected') {
        first ??= s.reason;
        continue;
      }
      if (s.value === null) first ??= new Error('EXECABORT the transaction was discarded');
      else
        for (const [error] of s.value)
          if (error) {
            first ??= error;
            break;
          }
    }
    if (first !== undefined) throw this.failed(first);
    this.rows += batch.length;
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
