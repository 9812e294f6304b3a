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
 * Staging: writers never touch the target keys. Every row goes to its key under the
 * run's staging prefix (`weir:stage:<hash of pipeline and run>:<key>`), invisible to
 * readers of the target keys; the job commit publishes the run's staged keys (SCAN of
 * the prefix): a hash or JSON key replaces the target key (RENAME, then PEXPIRE for
 * `ttl`, in one MULTI per SCAN page); a staged stream becomes the target stream when
 * there is none (RENAMENX), else its entries are appended in chunks, each chunk's
 * XADDs and the XDEL of its staged entries in one MULTI, so a repeated job commit
 * appends each entry once. The job abort deletes the staged keys: a failed run leaves
 * the target as it was. A hash therefore holds exactly the run's last row of its key
 * (fields from before the run are gone), and `ttl` counts from the job commit.
 * Before a batch of `hash` or `stream` rows is staged, the types of its target keys
 * are read (TYPE, pipelined): a key holding another type is a bad row (WRONGTYPE),
 * found while the row can still be dead-lettered.
 *
 * Delivery: at-least-once. `hash` and `json` writes are idempotent (a retried or
 * re-run batch stages the same values under the same keys); in `stream` mode a
 * retried batch can stage entries twice (with `atomic` only when the connection
 * drops after EXEC ran but before its reply arrived). A run killed during its job
 * commit has published part of its keys; resuming it publishes the rest.
 */
import { createHash } from 'node:crypto';
import type { ChainableCommander, Redis } from 'ioredis';
import type { CommitContext, PlanContext, Sink, TaskContext, Writer } from '../../sdk/connector.js';
import { RowError, type WeirError } from '../../sdk/errors.js';
import type { JsonValue, Partition, Row } from '../../sdk/types.js';
import { Decimal, stringifyJson } from '../../sdk/values.js';
import { compileTemplate, dateText, type KeyTemplate } from '../shared/template.js';
import { classify, connect, release, where } from './client.js';
import type { RedisOptions } from './spec.js';

/** The prefix of every key a run stages; hex only, so it is its own SCAN pattern. */
export function stagePrefix(pipeline: string, runId: string): string {
  return `weir:stage:${createHash('sha256').update(`${pipeline}\0${runId}`).digest('hex').slice(0, 16)}:`;
}

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
  /** `hash` and `stream` modes: the target keys, whose types must fit. */
  targets: Set<string> | undefined;
}

/** The type a target key must have (or none) in each mode; `json` SET replaces any type. */
const TARGET_TYPE = { hash: 'hash', stream: 'stream', json: undefined } as const;

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
  /** Runs `fn` on a planner-side connection, closed after. */
  const withClient = async (ctx: PlanContext, role: string, fn: (client: Redis) => Promise<void>) => {
    const client = await connect(opts, ctx, `weir:${ctx.pipeline}:${role}`);
    try {
      await fn(client);
    } catch (error) {
      throw classify(error, `${role} of the run's staged keys on ${where(opts)}`);
    } finally {
      await release(client);
    }
  };
  return {
    writer(partition: Partition, ctx: TaskContext): Writer {
      return new RedisWriter(opts, partition, ctx);
    },
    async commit(_messages: JsonValue[], ctx: CommitContext) {
      await withClient(ctx, 'job commit', (client) => publish(client, opts, stagePrefix(ctx.pipeline, ctx.runId)));
    },
    async abort(_messages: JsonValue[], ctx: CommitContext) {
      await withClient(ctx, 'job abort', async (client) => {
        for await (const keys of staged(client, stagePrefix(ctx.pipeline, ctx.runId))) await client.unlink(...keys);
      });
    },
  };
}

/** The run's staged keys, a SCAN page at a time. */
async function* staged(client: Redis, prefix: string): AsyncGenerator<string[]> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) yield keys;
  } while (cursor !== '0');
}

/** Throws the first failed command of a MULTI, a staged key already moved by an earlier job commit aside. */
function checkExec(replies: Replies): void {
  if (replies === null) throw new Error('EXECABORT the transaction was discarded');
  for (const [error] of replies) if (error && !/no such key/i.test(error.message)) throw error;
}

/** The job commit: moves every staged key of the run to its target key (see the module comment). Idempotent. */
async function publish(client: Redis, opts: RedisOptions, prefix: string): Promise<void> {
  const ttl = opts.ttl;
  for await (const keys of staged(client, prefix)) {
    if (opts.mode === 'stream') {
      for (const key of keys) await publishStream(client, opts, key, key.slice(prefix.length));
      continue;
    }
    const m = client.multi();
    for (const key of keys) {
      const target = key.slice(prefix.length);
      m.rename(key, target);
      if (ttl) m.pexpire(target, ttl);
    }
    checkExec(await m.exec());
  }
}

/** Publishes one staged stream: renamed when the target has none, else appended chunk by chunk. */
async function publishStream(client: Redis, opts: RedisOptions, key: string, target: string): Promise<void> {
  const { maxlen, ttl } = opts;
  const renamed = await client.renamenx(key, target).catch((error: Error) => {
    if (/no such key/i.test(error.message)) return 2; // published by an earlier job commit
    throw error;
  });
  if (renamed === 0)
    for (;;) {
      const entries = await client.xrange(key, '-', '+', 'COUNT', opts.pipeline_depth);
      if (entries.length === 0) {
        await client.del(key);
        break;
      }
      const m = client.multi();
      for (const [, fields] of entries) m.call('xadd', maxlen ? [target, 'MAXLEN', '~', maxlen, '*', ...fields] : [target, '*', ...fields]);
      m.xdel(key, ...entries.map(([id]) => id));
      checkExec(await m.exec());
    }
  else if (renamed === 1 && maxlen) await client.xtrim(target, 'MAXLEN', '~', maxlen);
  if (ttl) await client.pexpire(target, ttl);
}

class RedisWriter implements Writer {
  private client: Redis | undefined;
  private rows = 0;
  private readonly key: KeyTemplate;
  private readonly prefix: string;

  constructor(
    private readonly opts: RedisOptions,
    private readonly partition: Partition,
    private readonly ctx: TaskContext,
  ) {
    this.key = opts.mode === 'stream' ? compileTemplate(opts.stream as string, 'stream') : compileTemplate(opts.key as string, 'key');
    this.prefix = stagePrefix(ctx.pipeline, ctx.runId);
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
    const client = await this.connection();
    if (checked.targets) await this.checkTypes(client, checked.targets);
    await this.send(client, batch, checked);
    this.rows += batch.length;
  }

  /** Fails the batch (WRONGTYPE, a row error) when a target key holds another type than the mode writes. */
  private async checkTypes(client: Redis, targets: Set<string>): Promise<void> {
    const want = TARGET_TYPE[this.opts.mode];
    const keys = [...targets];
    const watchdog = new Watchdog(this.opts.command_timeout);
    try {
      for (let i = 0; i < keys.length; i += this.opts.pipeline_depth) {
        const chunk = keys.slice(i, i + this.opts.pipeline_depth);
        const p = client.pipeline();
        for (const k of chunk) p.type(k);
        const replies = (await watchdog.wait(p.exec())) ?? [];
        replies.forEach(([error, type], j) => {
          if (error) throw error;
          if (type !== 'none' && type !== want)
            throw new Error(`WRONGTYPE key ${chunk[j]} holds a ${type}, not a ${want}: delete it or choose another key`);
        });
      }
    } catch (error) {
      if (watchdog.fired) client.disconnect();
      throw this.failed(error);
    } finally {
      watchdog.stop();
    }
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
    const targets = json ? undefined : new Set<string>();
    for (let i = 0; i < batch.length; i++) {
      const row = batch[i] as Row;
      if (targets) targets.add(this.key.render(row));
      else this.key.check(row);
      if (texts) texts[i] = jsonText(row, 'row');
      else if (countValues(row) === 0 && stream)
        throw new RowError('row has no non-null field: a stream entry needs at least one', { code: 'empty_row' });
    }
    return { texts, targets };
  }

  /** Adds one row's commands to a pipeline; returns how many. */
  private add(p: ChainableCommander, row: Row, text: string | undefined): number {
    const { mode } = this.opts;
    const key = this.prefix + this.key.render(row);
    if (mode === 'json') {
      p.call('set', [key, text as string]);
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
    return n;
  }

  /**
   * Sends a checked batch as pipelines of `pipeline_depth` commands (one MULTI/EXEC
   * with `atomic`), at most `pipelines_in_flight` awaiting replies. Replies come in
   * order on the one connection, so waiting for the oldest frees the next slot. The
   * first failure stops sending; what is in flight is awaited before it is thrown.
   */
  private async send(client: Redis, batch: Row[], { texts }: Checked): Promise<void> {
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
        if (n === 0) continue; // rows of only null fields: nothing to send
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

  /** Nothing to take back here: the rows are staged, invisible, and the job abort deletes them. */
  abort(): void {
    this.rows = 0;
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await release(client);
  }
}
