/**
 * The Redis source.
 *
 * - `stream` mode is unbounded (`Source.stream`): each partition is one consumer of
 *   a consumer group, committed by the runtime in epochs. A partition first reads
 *   again the entries it was given before and never acknowledged (XREADGROUP from
 *   id 0), then those it claimed from other consumers and never acknowledged, then
 *   new entries (`>`, with BLOCK); a read is one chunk, and a read that gets nothing
 *   is a heartbeat. Every `claim_idle / 2` it claims (XPENDING IDLE, XCLAIM) the
 *   entries other consumers of the group have held unacknowledged for `claim_idle`
 *   — a consumer that died — except those of this pipeline's own partitions, which
 *   read their own entries again when they restart. A chunk's `ack` XACKs exactly
 *   its entries, after the epoch holding it was committed; so only the open epoch's
 *   ids are held in memory. The offsets are the last entry id this consumer read
 *   (a string, `ms-seq`): entries at or before `ctx.resumeFrom` were committed by an
 *   earlier epoch whose acknowledgement was lost, and are acknowledged without
 *   being yielded again. Claimed entries go to a second consumer
 *   (`<consumer>.claims`), so the ids below the offsets in this consumer's own list
 *   are always committed ones; claimed entries are at-least-once (one committed
 *   and not acknowledged before a crash is read again). Claiming stays XPENDING IDLE +
 *   XCLAIM, not XAUTOCLAIM: XAUTOCLAIM takes every idle entry whoever holds it, so it
 *   would take a stopped partition's committed-but-unacknowledged entries (read again
 *   → duplicates under exactly-once); XPENDING names the owner, page by page (at most
 *   `fetch_size` ids in memory). At most once a second a chunk carries the group's
 *   `lag` (XINFO GROUPS, Redis 7): the entries not yet delivered to the group.
 * - `hash` / `json` modes: SCAN for the keys matching `match` (of that type) and
 *   read each with HGETALL or GET, one pipeline per SCAN page. One partition.
 *   SCAN may return a key twice when the keyspace is resized meanwhile.
 */
import type { Redis } from 'ioredis';
import type { PlanContext, Source, StreamChunk, TaskContext } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import { emptyRow, type Partition, type Row } from '../../sdk/types.js';
import { parseJsonExact } from '../../sdk/values.js';
import { classify, connect, release, where } from './client.js';
import type { RedisOptions } from './spec.js';

type StreamEntry = [id: string, fields: string[] | null];
type ReadReply = [stream: string, entries: StreamEntry[]][] | null;
/** One XPENDING extended-form line: id, owner, idle ms, deliveries. */
type PendingLine = [id: string, consumer: string, idle: number, deliveries: number];

/** XREADGROUP through the typed method: it keeps the RESP2 shape under RESP3 (`call` would return the map flattened). */
function xreadgroup(client: Redis, ...args: (string | number)[]): Promise<ReadReply> {
  return (client.xreadgroup as unknown as (...a: (string | number)[]) => Promise<ReadReply>).apply(client, args);
}

function entryRow(id: string, fields: string[] | null, idField: string): Row {
  const row = emptyRow();
  row[idField] = id;
  if (fields) for (let i = 0; i + 1 < fields.length; i += 2) row[fields[i] as string] = fields[i + 1];
  return row;
}

/** A row holding only its key (Object.assign onto it keeps a field named `__proto__` as a field). */
function keyRow(keyField: string, key: string): Row {
  const row = emptyRow();
  row[keyField] = key;
  return row;
}

async function ensureGroup(client: Redis, opts: RedisOptions): Promise<void> {
  try {
    await client.call('XGROUP', 'CREATE', opts.stream as string, opts.group, opts.start, 'MKSTREAM');
  } catch (error) {
    if (!/BUSYGROUP/.test((error as Error).message)) throw error;
  }
}

const ENTRY_ID = /^(0|[1-9]\d{0,19})-(0|[1-9]\d{0,19})$/;

/**
 * Orders two stream entry ids numerically (`ms-seq`; both parts may pass 2^53), as
 * Redis writes them: digits without leading zeros, so the longer part is the larger
 * and parts of one length compare digit by digit (no number is built: this runs for
 * every entry read).
 */
export function compareEntryIds(a: string, b: string): number {
  const ad = a.indexOf('-');
  const bd = b.indexOf('-');
  if (ad < 0 || bd < 0) return compareEntryIds(ad < 0 ? `${a}-0` : a, bd < 0 ? `${b}-0` : b); // `ms` alone is `ms-0`
  return compareDigits(a, 0, ad, b, 0, bd) || compareDigits(a, ad + 1, a.length, b, bd + 1, b.length);
}

/** Compares the digits `a[aFrom, aTo)` and `b[bFrom, bTo)` as numbers written without leading zeros. */
function compareDigits(a: string, aFrom: number, aTo: number, b: string, bFrom: number, bTo: number): number {
  const length = aTo - aFrom;
  if (length !== bTo - bFrom) return length < bTo - bFrom ? -1 : 1;
  for (let i = 0; i < length; i++) {
    const d = a.charCodeAt(aFrom + i) - b.charCodeAt(bFrom + i);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** Where a partition continues: the entry id of its last committed epoch (read back from a checkpoint: untrusted). */
function resumePoint(ctx: TaskContext): string {
  const r = ctx.resumeFrom;
  if (r === undefined || r === null) return '0-0';
  if (typeof r === 'string' && ENTRY_ID.test(r)) return r;
  const shown = JSON.stringify(r).slice(0, 80);
  throw new WeirError(
    `the checkpoint of partition ${ctx.partitionId} holds offsets ${shown}, which are not a Redis stream entry id (such as "1700000000000-0"); it was not written by the redis source — start over with \`weir run --fresh\` (the run's committed epochs stay published)`,
    { code: 'invalid_offsets', kind: 'config' },
  );
}

const claimerOf = (consumer: string) => `${consumer}.claims`;

/**
 * Acknowledges on a connection of its own: the reading one may be blocked in
 * XREADGROUP BLOCK when an epoch commits. Once closed (the partition ended), an
 * acknowledgement still due opens a connection for itself.
 */
class Acknowledger {
  private client: Promise<Redis> | undefined;
  private closed = false;
  constructor(
    private readonly opts: RedisOptions,
    private readonly ctx: TaskContext,
    private readonly name: string,
  ) {}

  async ack(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const stream = this.opts.stream as string;
    const own = !this.closed;
    let client: Redis | undefined;
    try {
      if (own) this.client ??= connect(this.opts, this.ctx, this.name);
      client = own ? await (this.client as Promise<Redis>) : await connect(this.opts, this.ctx, this.name);
      for (let i = 0; i < ids.length; i += 10_000) await client.xack(stream, this.opts.group, ...ids.slice(i, i + 10_000));
    } catch (error) {
      if (own) this.forget();
      throw classify(error, `acknowledging ${ids.length} entries of stream ${stream} in group ${this.opts.group} (${where(this.opts)})`);
    } finally {
      if (!own) await release(client);
    }
  }

  private forget(): void {
    const c = this.client;
    this.client = undefined;
    c?.then(
      (x) => x.disconnect(),
      () => undefined,
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = this.client;
    this.client = undefined;
    if (c) await release(await c.catch(() => undefined));
  }
}

export function redisSource(opts: RedisOptions): Source {
  const consumerOf = (id: string) => (opts.partitions > 1 ? `${opts.consumer}-${id}` : opts.consumer);
  // this pipeline's consumers: their entries are read again by their own partition, never claimed
  const ours = new Set(Array.from({ length: opts.partitions }, (_, i) => consumerOf(String(i))).flatMap((c) => [c, claimerOf(c)]));
  const keys: Source = {
    read(_partition: Partition, ctx: TaskContext) {
      return readKeys(opts, ctx);
    },
  };
  if (opts.mode !== 'stream') return keys;
  return {
    unbounded: true,

    async partitions(ctx: PlanContext): Promise<Partition[]> {
      const client = await connect(opts, ctx);
      try {
        await ensureGroup(client, opts);
      } catch (error) {
        throw classify(error, `creating consumer group ${opts.group} on stream ${opts.stream} (${where(opts)})`);
      } finally {
        await release(client);
      }
      return Array.from({ length: opts.partitions }, (_, i) => ({ id: String(i) }));
    },

    async estimate(ctx: PlanContext) {
      const client = await connect(opts, ctx);
      try {
        const groups = (await client.call('XINFO', 'GROUPS', opts.stream as string)) as unknown[][];
        for (const g of groups) {
          const info: Record<string, unknown> = {};
          for (let i = 0; i + 1 < g.length; i += 2) info[String(g[i])] = g[i + 1];
          if (info.name === opts.group && typeof info.lag === 'number') return info.lag + Number(info.pending ?? 0);
        }
        return undefined;
      } catch {
        return undefined;
      } finally {
        await release(client);
      }
    },

    read() {
      throw new WeirError('the redis source in stream mode is unbounded: it is read through stream(), in epochs', { kind: 'internal' });
    },

    stream(partition: Partition, ctx: TaskContext) {
      return streamEntries(opts, consumerOf(partition.id), ours, ctx);
    },
  };
}

/** One partition of a stream, as chunks of one read each (worker, once per partition attempt). */
async function* streamEntries(opts: RedisOptions, consumer: string, ours: Set<string>, ctx: TaskContext): AsyncGenerator<StreamChunk> {
  const stream = opts.stream as string;
  const committed = resumePoint(ctx);
  let last = committed;
  const acks = new Acknowledger(opts, ctx, `weir:${ctx.pipeline}:${consumer}:ack`);
  const client = await connect(opts, ctx, `weir:${ctx.pipeline}:${consumer}`);
  const onAbort = () => client.disconnect(); // a blocked read ends at once
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const read = async (as: string, id: string, block: boolean) => {
    const args: (string | number)[] = ['GROUP', opts.group, as, 'COUNT', opts.fetch_size];
    if (block) args.push('BLOCK', opts.block);
    return (await xreadgroup(client, ...args, 'STREAMS', stream, id))?.[0]?.[1] ?? [];
  };
  /** Entries this consumer read: those committed already (at or before the resume point) are acknowledged now, the others yielded. */
  const own = async (entries: StreamEntry[]): Promise<StreamChunk> => {
    const done: string[] = [];
    const due: string[] = [];
    const rows: Row[] = [];
    for (const [id, fields] of entries) {
      if (compareEntryIds(id, last) > 0) last = id;
      if (compareEntryIds(id, committed) <= 0) done.push(id);
      else {
        due.push(id);
        if (fields) rows.push(entryRow(id, fields, opts.id_field)); // null: deleted since it was read
      }
    }
    if (done.length) await client.xack(stream, opts.group, ...done);
    return { rows, offsets: last, ack: () => acks.ack(due) };
  };
  /** Entries claimed from another consumer: always yielded (the resume point says nothing of them). */
  const claimed = (entries: (StreamEntry | null)[]): StreamChunk => {
    const ids: string[] = [];
    const rows: Row[] = [];
    for (const e of entries) {
      if (!e) continue;
      ids.push(e[0]);
      if (e[1]) rows.push(entryRow(e[0], e[1], opts.id_field));
    }
    return { rows, offsets: last, ack: () => acks.ack(ids) };
  };
  try {
    await ensureGroup(client, opts);
    // what this consumer was given before and never acknowledged, then what it claimed and never acknowledged
    for (const [as, chunkOf] of [
      [consumer, own],
      [claimerOf(consumer), claimed],
    ] as const) {
      // a consumer that holds nothing is not read (XREADGROUP would create it)
      if (((await client.call('XPENDING', stream, opts.group, '-', '+', 1, as)) as unknown[]).length === 0) continue;
      for (let cursor = '0'; ; ) {
        const entries = await read(as, cursor, false);
        if (entries.length === 0) break;
        cursor = (entries[entries.length - 1] as StreamEntry)[0];
        yield await chunkOf(entries);
      }
    }
    let claimAt = 0;
    let lagAt = 0;
    /**
     * During a burst, the next read is sent before the chunk of the last one is handed
     * on, so the run writes a chunk while the next one travels. Its entries are this
     * consumer's once read: when the partition ends first, they stay pending and the
     * next attempt reads them again (from id 0, above).
     */
    let ahead: Promise<StreamEntry[]> | undefined;
    for (;;) {
      if (ctx.signal.aborted) return;
      if (performance.now() >= claimAt) {
        for await (const entries of claimIdle(client, opts, ours, consumer)) yield claimed(entries);
        claimAt = performance.now() + opts.claim_idle / 2;
      }
      const entries = await (ahead ?? read(consumer, '>', true));
      ahead = undefined;
      const chunk: StreamChunk = entries.length === 0 ? { rows: [], offsets: last } : await own(entries);
      if (performance.now() >= lagAt) {
        lagAt = performance.now() + LAG_SAMPLE_MS;
        const lag = await groupLag(client, stream, opts.group);
        if (lag !== undefined) chunk.lag = lag;
      }
      if (entries.length > 0) {
        ahead = read(consumer, '>', true);
        ahead.catch(() => undefined); // awaited in the next turn; a partition that ends first does not wait for it
      }
      yield chunk;
    }
  } catch (error) {
    if (ctx.signal.aborted) return;
    throw classify(error, `reading stream ${stream} as ${opts.group}/${consumer} (${where(opts)})`);
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    await release(client);
    await acks.close();
  }
}

/** How often a partition asks for its group's lag (XINFO GROUPS walks every group of the stream). */
const LAG_SAMPLE_MS = 1000;

/**
 * The group's `lag` (Redis 7: entries added to the stream and not yet delivered to the
 * group): undefined when the server does not say (Redis < 7, or a count it cannot
 * know after XDEL or XTRIM) or the reply is not what Redis 7 sends.
 */
export async function groupLag(client: Redis, stream: string, group: string): Promise<number | undefined> {
  const groups = (await client.call('XINFO', 'GROUPS', stream)) as unknown;
  if (!Array.isArray(groups)) return undefined;
  for (const g of groups) {
    if (!Array.isArray(g)) continue;
    const info: Record<string, unknown> = {};
    for (let i = 0; i + 1 < g.length; i += 2) info[String(g[i])] = g[i + 1];
    if (info.name !== group) continue;
    return typeof info.lag === 'number' && Number.isSafeInteger(info.lag) && info.lag >= 0 ? info.lag : undefined;
  }
  return undefined;
}

/**
 * Claims, for `consumer`'s claim list, the entries other consumers of the group have
 * held unacknowledged for `claim_idle` (XPENDING IDLE names each entry's owner, so
 * this pipeline's own consumers are left out; XCLAIM checks the idle time again).
 * One page of `fetch_size` pending entries at a time.
 */
async function* claimIdle(client: Redis, opts: RedisOptions, ours: Set<string>, consumer: string): AsyncGenerator<(StreamEntry | null)[]> {
  const stream = opts.stream as string;
  for (let start = '-'; ; ) {
    const page = (await client.call('XPENDING', stream, opts.group, 'IDLE', opts.claim_idle, start, '+', opts.fetch_size)) as PendingLine[];
    const foreign = page.filter(([, owner]) => !ours.has(owner)).map(([id]) => id);
    if (foreign.length > 0) {
      const entries = (await client.xclaim(stream, opts.group, claimerOf(consumer), opts.claim_idle, ...foreign)) as (StreamEntry | null)[];
      if (entries.length > 0) yield entries;
    }
    if (page.length < opts.fetch_size) return;
    start = `(${(page[page.length - 1] as PendingLine)[0]}`;
  }
}

async function* readKeys(opts: RedisOptions, ctx: TaskContext): AsyncGenerator<Row[]> {
  const client = await connect(opts, ctx, `weir:${ctx.pipeline}:scan`);
  const type = opts.mode === 'hash' ? 'hash' : 'string';
  try {
    let cursor = '0';
    do {
      if (ctx.signal.aborted) return;
      const [next, keys] = await client.scan(cursor, 'MATCH', opts.match, 'COUNT', opts.fetch_size, 'TYPE', type);
      cursor = next;
      if (keys.length === 0) continue;
      const p = client.pipeline();
      for (const k of keys) {
        if (opts.mode === 'hash') p.hgetall(k);
        else p.get(k);
      }
      const replies = (await p.exec()) ?? [];
      const rows: Row[] = [];
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i] as string;
        const [error, value] = replies[i] ?? [null, null];
        if (error) {
          const e = classify(error, `reading key ${key}`);
          if (e instanceof RowError) await ctx.reject({ [opts.key_field]: key }, e);
          else throw e;
          continue;
        }
        if (value === null || value === undefined) continue; // deleted since SCAN
        if (opts.mode === 'hash') {
          const fields = value as Record<string, string>;
          if (Object.keys(fields).length === 0) continue;
          rows.push(Object.assign(keyRow(opts.key_field, key), fields));
          continue;
        }
        let parsed: unknown;
        try {
          parsed = parseJsonExact(value as string, opts.max_depth);
        } catch (error) {
          await ctx.reject(
            { [opts.key_field]: key, value },
            new RowError(`key ${key} does not hold JSON: ${(error as Error).message}`, { code: 'invalid_json' }),
          );
          continue;
        }
        rows.push(
          parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
            ? Object.assign(keyRow(opts.key_field, key), parsed)
            : Object.assign(keyRow(opts.key_field, key), { value: parsed }),
        );
      }
      if (rows.length) yield rows;
    } while (cursor !== '0');
  } catch (error) {
    throw error instanceof WeirError ? error : classify(error, `scanning ${opts.match} (${where(opts)})`);
  } finally {
    await release(client);
  }
}
