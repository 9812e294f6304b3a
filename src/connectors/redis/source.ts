/**
 * The Redis source.
 *
 * - `stream` mode: reads a stream through a consumer group (XREADGROUP). Each
 *   partition is one consumer; it first re-reads the entries it was given before
 *   but never acknowledged (a crashed or failed earlier run), then new ones, and
 *   ends when a read waits `block` without getting any (batch semantics).
 *   Entries are acknowledged (XACK) once the partition's rows are committed by
 *   the sink (`ctx.onCommit`) — at-least-once.
 * - `hash` / `json` modes: SCAN for the keys matching `match` (of that type) and
 *   read each with HGETALL or GET, one pipeline per SCAN page. One partition.
 *   SCAN may return a key twice when the keyspace is resized meanwhile.
 */
import type { Redis } from 'ioredis';
import type { PlanContext, Source, TaskContext } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import { emptyRow, type Partition, type Row } from '../../sdk/types.js';
import { parseJsonExact } from '../../sdk/values.js';
import { classify, connect, release, where } from './client.js';
import type { RedisOptions } from './spec.js';

type StreamEntry = [id: string, fields: string[] | null];
type ReadReply = [stream: string, entries: StreamEntry[]][] | null;

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

export function redisSource(opts: RedisOptions): Source {
  const consumerOf = (p: Partition) => (opts.partitions > 1 ? `${opts.consumer}-${p.id}` : opts.consumer);
  return {
    async partitions(ctx: PlanContext): Promise<Partition[]> {
      if (opts.mode !== 'stream') return [{ id: '0' }];
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
      if (opts.mode !== 'stream') return undefined;
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

    read(partition: Partition, ctx: TaskContext) {
      return opts.mode === 'stream' ? readStream(opts, consumerOf(partition), ctx) : readKeys(opts, ctx);
    },
  };
}

async function* readStream(opts: RedisOptions, consumer: string, ctx: TaskContext): AsyncGenerator<Row[]> {
  const stream = opts.stream as string;
  const client = await connect(opts, ctx, `weir:${ctx.pipeline}:${consumer}`);
  const ids: string[] = [];
  let reading = true;
  const ack = async () => {
    if (ids.length === 0) return;
    const acker = reading ? client : await connect(opts, ctx);
    try {
      for (let i = 0; i < ids.length; i += 10_000) await acker.xack(stream, opts.group, ...ids.slice(i, i + 10_000));
      ids.length = 0;
    } finally {
      if (acker !== client) await release(acker);
    }
  };
  ctx.onCommit(ack);
  try {
    await ensureGroup(client, opts);
    // first the entries given to this consumer earlier and never acknowledged, then new ones
    let cursor = '0';
    for (;;) {
      if (ctx.signal.aborted) return;
      const reply = await xreadgroup(client, 'GROUP', opts.group, consumer, 'COUNT', opts.fetch_size, 'STREAMS', stream, cursor);
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length === 0) break;
      const rows: Row[] = [];
      for (const [id, fields] of entries) {
        ids.push(id);
        if (fields) rows.push(entryRow(id, fields, opts.id_field)); // null: the entry was deleted since
      }
      cursor = (entries[entries.length - 1] as StreamEntry)[0];
      if (rows.length) yield rows;
    }
    for (;;) {
      if (ctx.signal.aborted) return;
      const reply = await xreadgroup(
        client,
        'GROUP',
        opts.group,
        consumer,
        'COUNT',
        opts.fetch_size,
        'BLOCK',
        opts.block,
        'STREAMS',
        stream,
        '>',
      );
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length === 0) break; // waited `block` for nothing: drained
      const rows: Row[] = new Array(entries.length);
      for (let i = 0; i < entries.length; i++) {
        const [id, fields] = entries[i] as StreamEntry;
        ids.push(id);
        rows[i] = entryRow(id, fields, opts.id_field);
      }
      yield rows;
    }
  } catch (error) {
    throw classify(error, `reading stream ${stream} as ${opts.group}/${consumer} (${where(opts)})`);
  } finally {
    reading = false;
    await release(client);
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
