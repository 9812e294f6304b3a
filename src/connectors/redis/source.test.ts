/**
 * The redis stream source on epochs: pending entries first, acknowledgements only
 * after the epoch committed, a dead consumer's entries claimed, entries at or before
 * `ctx.resumeFrom` acknowledged without being yielded again.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { tempDir } from '../../../test/helpers/cli.js';
import { requireService } from '../../../test/helpers/services.js';
import {
  type AnyConnector,
  defineConnector,
  type EpochMark,
  type Source,
  type StreamChunk,
  type TaskContext,
} from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import { connectorOptions, planContext, taskContext } from '../../sdk/testing.js';
import type { JsonValue, Row } from '../../sdk/types.js';
import redis from './index.js';
import { compareEntryIds } from './source.js';
import { adminClient, dropKeysAndClose } from './test-keys.js';

const up = await requireService('redis');
const prefix = `weirtest:src:${randomBytes(4).toString('hex')}`;
let admin: Redis;

const source = (input: Record<string, unknown>): Source =>
  redis.source?.(connectorOptions(redis, { mode: 'stream', ...input }, 'source')) ?? expect.unreachable();

/** The chunks of one partition until its first heartbeat (a read that got nothing); the stream is then closed. */
async function untilIdle(src: Source, partitionId: string, extra: Partial<TaskContext> = {}): Promise<StreamChunk[]> {
  await src.partitions?.(planContext({ baseDir: '.' }));
  const ctx = { ...taskContext({ baseDir: '.', partitionId }), ...extra };
  const out: StreamChunk[] = [];
  for await (const chunk of (src.stream as NonNullable<Source['stream']>)({ id: partitionId }, ctx)) {
    if (chunk.rows.length === 0 && !chunk.ack) break;
    out.push(chunk);
  }
  return out;
}

const ack = async (chunks: StreamChunk[]) => {
  for (const c of chunks) await c.ack?.();
};
const rowsOf = (chunks: StreamChunk[]) => chunks.flatMap((c) => c.rows);
const pendingCount = async (stream: string, group: string) => ((await admin.call('XPENDING', stream, group)) as [number])[0];
const pendingOf = async (stream: string, group: string) =>
  ((await admin.call('XPENDING', stream, group, '-', '+', 1000)) as [string, string][]).map(([id, owner]) => ({ id, owner }));

async function fill(stream: string, n: number, from = 1): Promise<string[]> {
  const p = admin.pipeline();
  for (let i = from; i < from + n; i++) p.xadd(stream, '*', 'n', String(i));
  return ((await p.exec()) ?? []).map(([, id]) => id as string);
}

describe('stream entry ids', () => {
  it('compare numerically, past 2^53 and by sequence', () => {
    expect(compareEntryIds('9-0', '10-0')).toBe(-1);
    expect(compareEntryIds('10-2', '10-10')).toBe(-1);
    expect(compareEntryIds('18446744073709551615-1', '18446744073709551615-0')).toBe(1);
    expect(compareEntryIds('9007199254740993-0', '9007199254740992-0')).toBe(1);
    expect(compareEntryIds('5-5', '5-5')).toBe(0);
    expect(compareEntryIds('5', '5-0')).toBe(0);
  });

  it('order as the numbers they name, for any ids Redis writes', () => {
    const part = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 1n, 9n, 10n, 2n ** 53n, 2n ** 53n + 1n));
    const id = fc.tuple(part, part);
    const sign = (d: bigint) => (d < 0n ? -1 : d > 0n ? 1 : 0);
    fc.assert(
      fc.property(id, id, ([am, as], [bm, bs]) => {
        const want = am !== bm ? sign(am - bm) : sign(as - bs);
        expect(compareEntryIds(`${am}-${as}`, `${bm}-${bs}`)).toBe(want);
      }),
      { numRuns: 2000 },
    );
  });
});

describe.skipIf(!up)('redis stream source on epochs', () => {
  beforeAll(async () => {
    admin = await adminClient();
  });
  afterAll(() => dropKeysAndClose(admin, prefix));

  it('is unbounded and has no batch read', () => {
    const src = source({ stream: `${prefix}:x` });
    expect(src.unbounded).toBe(true);
    expect(() => src.read({ id: '0' }, taskContext({ baseDir: '.' }))).toThrow(/unbounded: it is read through stream\(\)/);
    expect(redis.source?.(connectorOptions(redis, { mode: 'hash' }, 'source')).unbounded).toBeUndefined();
  });

  it('reads this consumer’s pending entries first, in reads of their own; each chunk acknowledges exactly its entries', async () => {
    const stream = `${prefix}:pending`;
    const ids = await fill(stream, 10);
    await admin.call('XGROUP', 'CREATE', stream, 'g', '0');
    // a crashed earlier run: consumer c read 10 entries and never acknowledged them
    await admin.call('XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', 10, 'STREAMS', stream, '>');
    await fill(stream, 12, 11);
    const chunks = await untilIdle(source({ stream, group: 'g', consumer: 'c', fetch_size: 7, block: '100ms' }), '0');
    // two reads of the history (7 + 3: the end of the pending list), then new entries
    expect(chunks.map((c) => c.rows.map((r) => Number(r.n)))).toEqual([
      [1, 2, 3, 4, 5, 6, 7],
      [8, 9, 10],
      [11, 12, 13, 14, 15, 16, 17],
      [18, 19, 20, 21, 22],
    ]);
    expect(chunks[1]?.offsets).toBe(ids[9]);
    expect(chunks[0]?.rows[0]).toMatchObject({ _id: ids[0], n: '1' });
    expect(await pendingCount(stream, 'g')).toBe(22); // nothing acknowledged by reading
    await chunks[1]?.ack?.();
    expect((await pendingOf(stream, 'g')).map((p) => p.id)).not.toContain(ids[9]);
    expect(await pendingCount(stream, 'g')).toBe(19);
    await ack(chunks);
    expect(await pendingCount(stream, 'g')).toBe(0);
  });

  it('several partitions share the group: each entry read by one of them', async () => {
    const stream = `${prefix}:shared`;
    await fill(stream, 300);
    const src = source({ stream, partitions: 3, block: '100ms', fetch_size: 50 });
    expect(await src.partitions?.(planContext({ baseDir: '.' }))).toEqual([{ id: '0' }, { id: '1' }, { id: '2' }]);
    const readers = ['0', '1', '2'].map((id) =>
      (src.stream as NonNullable<Source['stream']>)({ id }, taskContext({ baseDir: '.', partitionId: id }))[Symbol.asyncIterator](),
    );
    const got: StreamChunk[][] = [[], [], []];
    try {
      // one read each in turn until all are idle
      for (let idle = 0; idle < readers.length; ) {
        idle = 0;
        for (const [i, r] of readers.entries()) {
          const chunk = (await r.next()).value as StreamChunk;
          if (chunk.rows.length === 0) idle++;
          else got[i]?.push(chunk);
        }
      }
    } finally {
      for (const r of readers) await r.return?.(undefined);
    }
    expect(got.map((chunks) => rowsOf(chunks).length)).toEqual([100, 100, 100]);
    const n = got.flatMap(rowsOf).map((r) => Number(r.n));
    expect(new Set(n).size).toBe(300);
    expect(new Set((await pendingOf(stream, 'weir')).map((p) => p.owner))).toEqual(new Set(['weir-0', 'weir-1', 'weir-2']));
    for (const chunks of got) await ack(chunks);
    expect(await pendingCount(stream, 'weir')).toBe(0);
  });

  it('skips the entries at or before resumeFrom (committed by an earlier epoch): acknowledged, not yielded again', async () => {
    const stream = `${prefix}:resume`;
    const ids = await fill(stream, 20);
    await admin.call('XGROUP', 'CREATE', stream, 'g', '0');
    await admin.call('XREADGROUP', 'GROUP', 'g', 'weir', 'COUNT', 20, 'STREAMS', stream, '>');
    const src = source({ stream, group: 'g', block: '100ms' });
    const chunks = await untilIdle(src, '0', { resumeFrom: ids[11] as string });
    expect(rowsOf(chunks).map((r) => Number(r.n))).toEqual([13, 14, 15, 16, 17, 18, 19, 20]);
    expect(chunks[0]?.offsets).toBe(ids[19]);
    // the 12 committed ones were acknowledged as they were read; the 8 yielded wait for their epoch
    expect((await pendingOf(stream, 'g')).map((p) => p.id)).toEqual(ids.slice(12));
    await ack(chunks);
    expect(await pendingCount(stream, 'g')).toBe(0);
    // with nothing left the heartbeat keeps the resume point as its offsets
    const ctx = { ...taskContext({ baseDir: '.' }), resumeFrom: ids[19] as string };
    const chunks2 = (src.stream as NonNullable<Source['stream']>)({ id: '0' }, ctx)[Symbol.asyncIterator]();
    try {
      expect((await chunks2.next()).value).toEqual({ rows: [], offsets: ids[19], lag: 0 });
    } finally {
      await chunks2.return?.(undefined);
    }
  });

  it('refuses offsets that are not an entry id, naming the value and the fix', async () => {
    const src = source({ stream: `${prefix}:bad`, block: '100ms' });
    const error = await untilIdle(src, '0', { resumeFrom: { seq: 4 } as JsonValue }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WeirError);
    expect((error as WeirError).message).toMatch(/holds offsets \{"seq":4\}, which are not a Redis stream entry id.*weir run --fresh/);
  });

  it('claims the entries a dead consumer held for claim_idle, never those of the pipeline’s own partitions', async () => {
    const stream = `${prefix}:claim`;
    await fill(stream, 30);
    await admin.call('XGROUP', 'CREATE', stream, 'g', '0');
    await admin.call('XREADGROUP', 'GROUP', 'g', 'dead', 'COUNT', 5, 'STREAMS', stream, '>'); // 1–5
    await admin.call('XREADGROUP', 'GROUP', 'g', 'w-1', 'COUNT', 5, 'STREAMS', stream, '>'); // 6–10: partition 1 of this pipeline
    await new Promise((r) => setTimeout(r, 300));
    const src = source({ stream, group: 'g', consumer: 'w', partitions: 2, claim_idle: '200ms', block: '100ms', fetch_size: 100 });
    const p0 = await untilIdle(src, '0');
    const n0 = rowsOf(p0).map((r) => Number(r.n));
    expect(n0.slice(0, 5)).toEqual([1, 2, 3, 4, 5]); // claimed before new entries are read
    expect(n0.slice(5)).toEqual(Array.from({ length: 20 }, (_, i) => 11 + i));
    const owners = new Map((await pendingOf(stream, 'g')).map((p) => [p.id, p.owner]));
    expect(new Set(owners.values())).toEqual(new Set(['w-0.claims', 'w-0', 'w-1']));
    expect([...owners.values()].filter((o) => o === 'w-1')).toHaveLength(5);
    await ack(p0);
    // partition 1 reads its own pending entries again itself
    const p1 = await untilIdle(src, '1');
    expect(rowsOf(p1).map((r) => Number(r.n))).toEqual([6, 7, 8, 9, 10]);
    await ack(p1);
    expect(await pendingCount(stream, 'g')).toBe(0);
  });

  it('claims a dead consumer’s entries page by page past fetch_size, around the entries of the pipeline’s own partitions', async () => {
    const stream = `${prefix}:claim-pages`;
    await admin.call('XGROUP', 'CREATE', stream, 'g', '0', 'MKSTREAM');
    // 5 rounds: the dead consumer takes 5 entries, partition 1 of this pipeline 1: 25 + 5 pending, interleaved
    for (let round = 0; round < 5; round++) {
      await fill(stream, 6, round * 6 + 1);
      await admin.call('XREADGROUP', 'GROUP', 'g', 'dead', 'COUNT', 5, 'STREAMS', stream, '>');
      await admin.call('XREADGROUP', 'GROUP', 'g', 'w-1', 'COUNT', 1, 'STREAMS', stream, '>');
    }
    await new Promise((r) => setTimeout(r, 250));
    const src = source({ stream, group: 'g', consumer: 'w', partitions: 2, claim_idle: '200ms', block: '100ms', fetch_size: 7 });
    const p0 = await untilIdle(src, '0');
    const claimedN = rowsOf(p0).map((r) => Number(r.n));
    const dead = Array.from({ length: 30 }, (_, i) => i + 1).filter((n) => n % 6 !== 0);
    expect(claimedN).toEqual(dead);
    expect(p0.every((c) => c.rows.length <= 7)).toBe(true); // one page of XPENDING at a time
    const owners = await pendingOf(stream, 'g');
    expect(owners.filter((p) => p.owner === 'dead')).toEqual([]);
    expect(owners.filter((p) => p.owner === 'w-0.claims')).toHaveLength(25);
    expect(owners.filter((p) => p.owner === 'w-1').map((p) => p.id)).toHaveLength(5); // never claimed
    await ack(p0);
    expect(owners.length - 25).toBe(await pendingCount(stream, 'g'));
  });

  it('sets lag on chunks from XINFO GROUPS (entries not yet delivered to the group), sampled at most once a second', async () => {
    const stream = `${prefix}:lag`;
    await fill(stream, 50);
    const src = source({ stream, block: '100ms', fetch_size: 10 });
    await src.partitions?.(planContext({ baseDir: '.' }));
    const chunks = (src.stream as NonNullable<Source['stream']>)({ id: '0' }, taskContext({ baseDir: '.' }))[Symbol.asyncIterator]();
    const seen: { rows: number; lag: number | undefined; at: number }[] = [];
    const t0 = performance.now();
    try {
      // 5 reads of 10, then heartbeats until a second sample came
      while (seen.filter((c) => c.lag !== undefined).length < 2) {
        const c = (await chunks.next()).value as StreamChunk;
        seen.push({ rows: c.rows.length, lag: c.lag, at: performance.now() - t0 });
        await c.ack?.();
        expect(performance.now() - t0).toBeLessThan(10_000);
      }
    } finally {
      await chunks.return?.(undefined);
    }
    expect(seen.slice(0, 5).map((c) => c.rows)).toEqual([10, 10, 10, 10, 10]);
    const sampled = seen.filter((c) => c.lag !== undefined);
    expect(sampled[0]).toMatchObject({ rows: 10, lag: 40 }); // the first read: 40 entries not delivered yet
    expect(seen[0]?.lag).toBe(40);
    expect(sampled[1]?.lag).toBe(0);
    expect((sampled[1]?.at ?? 0) - (sampled[0]?.at ?? 0)).toBeGreaterThanOrEqual(950);
  });

  it('entries claimed and not acknowledged before a crash are read again (at-least-once), not skipped by resumeFrom', async () => {
    const stream = `${prefix}:claim-crash`;
    const ids = await fill(stream, 10);
    await admin.call('XGROUP', 'CREATE', stream, 'g', '0');
    await admin.call('XREADGROUP', 'GROUP', 'g', 'dead', 'COUNT', 3, 'STREAMS', stream, '>');
    await new Promise((r) => setTimeout(r, 150));
    const src = source({ stream, group: 'g', claim_idle: '100ms', block: '100ms' });
    const first = await untilIdle(src, '0');
    expect(rowsOf(first).map((r) => Number(r.n))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // only the own entries' epoch committed (offsets: the last own id); the claimed chunk's epoch was lost
    const own = first.filter((c) => c.rows.some((r) => Number(r.n) > 3));
    await ack(own);
    const again = await untilIdle(src, '0', { resumeFrom: ids[9] as string });
    expect(rowsOf(again).map((r) => Number(r.n))).toEqual([1, 2, 3]);
    await ack(again);
    expect(await pendingCount(stream, 'g')).toBe(0);
  });
});

/** A sink whose epoch commits make rows visible (`streaming: true`), recording what the stream's pending list held at each commit. */
function epochSink(stream: string, group: string, onCommit: (epoch: number) => Promise<unknown>) {
  const seen = { rows: [] as Row[], commits: [] as { epoch: EpochMark | undefined; ids: string[]; pendingAtCommit: Set<string> }[] };
  const connector = defineConnector({
    name: 'epoch-sink',
    description: 'Records epoch commits.',
    options: {},
    sink: () => ({
      streaming: true,
      writer: (partition) => {
        const rows: Row[] = [];
        return {
          write: (batch) => void rows.push(...batch),
          async commit(epoch) {
            const pending = new Set((await pendingOf(stream, group)).map((p) => p.id));
            seen.commits.push({ epoch, ids: rows.map((r) => String(r._id)), pendingAtCommit: pending });
            seen.rows.push(...rows);
            await onCommit(epoch?.epoch ?? 0);
            return { partition_id: partition.id, rows: rows.length };
          },
        };
      },
    }),
  });
  return { seen, connector: connector as unknown as AnyConnector };
}

describe.skipIf(!up)('redis stream source in a run', () => {
  beforeAll(async () => {
    admin = await adminClient();
  });
  afterAll(() => dropKeysAndClose(admin, `${prefix}:run`));

  it('acknowledges an epoch’s entries only after its commit, and ends on stream.stop_when_idle', async () => {
    const stream = `${prefix}:run:epochs`;
    await fill(stream, 250);
    // 50 more entries arrive once the run has committed its first epoch
    const { seen, connector } = epochSink(stream, 'g', async (epoch) => epoch === 1 && (await fill(stream, 50, 251)));
    const { summary } = await runYaml(
      `
pipeline: redis-epochs
source: { type: redis, mode: stream, stream: "${stream}", group: g, block: 50ms, fetch_size: 100 }
sink: { type: epoch-sink }
stream: { epoch_rows: 100, epoch_interval: 100ms, stop_when_idle: 800ms }
`,
      [redis as unknown as AnyConnector, connector],
      tempDir('weir-redis-epochs-'),
    );
    expect(summary.status).toBe('succeeded');
    expect(seen.rows.map((r) => Number(r.n))).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    expect(seen.commits.length).toBeGreaterThanOrEqual(3); // reads of 100 entries, epochs of 100 rows
    // when an epoch commits, its entries are all still pending (acknowledged after the commit), those of earlier epochs none
    const earlier: string[] = [];
    for (const c of seen.commits) {
      expect(c.ids.filter((id) => !c.pendingAtCommit.has(id))).toEqual([]);
      expect(earlier.filter((id) => c.pendingAtCommit.has(id))).toEqual([]);
      earlier.push(...c.ids);
    }
    expect(seen.commits.map((c) => c.epoch?.epoch)).toEqual(seen.commits.map((_, i) => i + 1));
    const lastId = seen.rows.at(-1)?._id;
    expect(seen.commits.at(-1)?.epoch?.offsets).toBe(lastId);
    expect(await pendingCount(stream, 'g')).toBe(0);
  });

  it('an epoch committed and not acknowledged (the ack connection lost): the retried attempt acknowledges its entries without writing them again', async () => {
    const stream = `${prefix}:run:lost-ack`;
    await fill(stream, 300);
    const { seen, connector } = epochSink(stream, 'g', async (epoch) => {
      if (epoch !== 2) return;
      // the acknowledgements of epoch 2 will fail: its entries stay pending though committed
      const line = String(await admin.client('LIST'))
        .split('\n')
        .find((l) => l.includes('name=weir:redis-lost-ack:weir:ack'));
      await admin.client('KILL', 'ID', /id=(\d+)/.exec(line ?? '')?.[1] ?? expect.unreachable());
    });
    const { summary } = await runYaml(
      `
pipeline: redis-lost-ack
source: { type: redis, mode: stream, stream: "${stream}", group: g, block: 50ms, fetch_size: 100 }
sink: { type: epoch-sink }
stream: { epoch_rows: 100, epoch_interval: 100ms, stop_when_idle: 500ms }
retry: { partition_attempts: 2, initial_delay: 10ms }
`,
      [redis as unknown as AnyConnector, connector],
      tempDir('weir-redis-lost-ack-'),
    );
    expect(summary.status).toBe('succeeded');
    expect(summary.totals.partition_retries).toBe(1);
    // every entry written once: epoch 2's entries, read again by the retry, were only acknowledged
    expect(seen.rows.map((r) => Number(r.n))).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    expect(await pendingCount(stream, 'g')).toBe(0);
  });
});
