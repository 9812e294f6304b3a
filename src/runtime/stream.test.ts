/**
 * The stream task (src/runtime/stream.ts, read-ahead.ts). The read-ahead: chunks in order and once each whatever the timing of
 * source and consumer (fast-check), reads while the consumer is busy, a bound on what it
 * holds, a source error in its place, and `return()` reaching the source. Then, through
 * the runtime: an unbounded source's small chunks reach the sink as batches of the
 * sink's size, every row once, acknowledged only after their epoch committed; an epoch
 * ends once the source has caught up (`stream.epoch_linger`), not only at its interval.
 */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { ofType, runYaml } from '../../test/reliability/harness.js';
import { defineConnector, type Sink, type Source, type StreamChunk } from '../sdk/connector.js';
import type { Row } from '../sdk/types.js';
import { ReadAhead } from './read-ahead.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A source of `sizes.length` chunks (chunk i holds `sizes[i]` rows numbered across chunks), each read taking `delays[i]` ms. */
function source(sizes: number[], delays: number[] = [], failAt?: number) {
  const log = { reads: 0, returned: false, readAt: [] as number[] };
  let next = 0;
  let seq = 0;
  const it: AsyncIterator<StreamChunk> = {
    async next() {
      const i = next++;
      log.reads++;
      log.readAt.push(performance.now());
      await sleep(delays[i] ?? 0);
      if (i === failAt) throw new Error(`read ${i} failed`);
      if (i >= sizes.length) return { done: true, value: undefined };
      const rows = Array.from({ length: sizes[i] as number }, () => ({ seq: ++seq }));
      return { done: false, value: { rows, offsets: { seq } } };
    },
    async return() {
      log.returned = true;
      return { done: true, value: undefined };
    },
  };
  return { it, log };
}

async function drain(ahead: ReadAhead, consumerDelays: number[] = []): Promise<number[]> {
  const seen: number[] = [];
  for (let i = 0; ; i++) {
    const r = await ahead.next();
    if (r.done) return seen;
    for (const row of r.value.rows) seen.push(row.seq as number);
    await sleep(consumerDelays[i] ?? 0);
  }
}

describe('ReadAhead', () => {
  it('gives every chunk once and in order, whatever the timing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 12 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 12 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 12 }),
        fc.integer({ min: 1, max: 8 }),
        async (sizes, readDelays, consumerDelays, maxRows) => {
          const { it } = source(sizes, readDelays);
          const total = sizes.reduce((a, b) => a + b, 0);
          expect(await drain(new ReadAhead(it, maxRows), consumerDelays)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('reads the next chunk while the consumer is busy with the last one', async () => {
    const { it, log } = source([10, 10, 10], [0, 0, 0]);
    const ahead = new ReadAhead(it, 100);
    const first = await ahead.next();
    expect(first.done).toBe(false);
    // the consumer is busy with its batch (asks nothing): the rest is fetched meanwhile
    await vi.waitFor(() => expect(log.reads).toBeGreaterThanOrEqual(3), { timeout: 5000 });
  });

  it('holds at most the bound (plus the chunk that crossed it) while nobody reads', async () => {
    const { it, log } = source(Array.from({ length: 50 }, () => 10));
    const ahead = new ReadAhead(it, 35);
    await ahead.next();
    // 4 chunks of 10 cross 35 rows: then it stops asking the source
    await vi.waitFor(() => expect(log.reads).toBe(1 + 4), { timeout: 5000 });
    await sleep(50);
    expect(log.reads).toBe(1 + 4);
    await ahead.next(); // one taken: one more read
    await vi.waitFor(() => expect(log.reads).toBe(1 + 5), { timeout: 5000 });
    await sleep(50);
    expect(log.reads).toBe(1 + 5);
  });

  it("gives a source's error in its place, after the chunks before it", async () => {
    const { it } = source([1, 2, 3], [], 2);
    const ahead = new ReadAhead(it, 100);
    expect((await ahead.next()).value.rows).toHaveLength(1);
    expect((await ahead.next()).value.rows).toHaveLength(2);
    await expect(ahead.next()).rejects.toThrow('read 2 failed');
  });

  it('ends the source on return(), dropping what it holds', async () => {
    const { it, log } = source([5, 5, 5]);
    const ahead = new ReadAhead(it, 100);
    await ahead.next();
    await ahead.return();
    expect(log.returned).toBe(true);
    expect((await ahead.next()).done).toBe(true);
  });
});

describe('an unbounded source through the runtime', () => {
  /** A connector: an unbounded source of `seq` rows in one partition, chunks from `stream`; the sink `sink`. */
  const streamConnector = (name: string, stream: Source['stream'], sink: () => Sink) =>
    defineConnector({
      name,
      description: `${name}: a test stream.`,
      options: {},
      source: () => ({
        unbounded: true,
        schema: () => [{ name: 'seq', type: 'integer' }],
        partitions: () => [{ id: name }],
        read() {
          throw new Error('read through stream()');
        },
        stream,
      }),
      sink,
    });

  it("cuts small chunks into batches of the sink's size; every row once, acknowledged after its epoch", async () => {
    const TOTAL = 230;
    const acked: number[] = [];
    const committed: number[] = [];
    const batches: number[] = [];
    const connector = streamConnector(
      'chunky',
      async function* () {
        for (let from = 1; from <= TOTAL; from += 7) {
          const rows = Array.from({ length: Math.min(7, TOTAL - from + 1) }, (_, i) => ({ seq: from + i }));
          const last = from + rows.length - 1;
          yield { rows, offsets: { seq: last }, ack: () => void acked.push(...rows.map((r) => r.seq)) };
        }
        for (;;) {
          await sleep(20);
          yield { rows: [], offsets: { seq: TOTAL } };
        }
      },
      () => ({
        streaming: true,
        writer() {
          const rows: Row[] = [];
          return {
            write(batch) {
              batches.push(batch.length);
              rows.push(...batch);
            },
            commit() {
              // nothing of this epoch may have been acknowledged before its commit
              expect(rows.some((r) => acked.includes(r.seq as number))).toBe(false);
              committed.push(...rows.map((r) => r.seq as number));
              return { rows: rows.length };
            },
          };
        },
      }),
    );
    const run = await runYaml(
      `pipeline: chunky
source: { type: chunky }
sink: { type: chunky }
batch: { rows: 50 }
stream: { epoch_rows: 100, epoch_interval: 5s, stop_when_idle: 300ms }
`,
      { connectors: [connector] },
    );
    expect(run.summary.status, run.logs).toBe('succeeded');
    expect(committed).toEqual(Array.from({ length: TOTAL }, (_, i) => i + 1));
    expect(acked.sort((a, b) => a - b)).toEqual(committed);
    // epochs end past 100 rows (15 chunks = 105); each is cut into batches of at most 50
    expect(batches.every((n) => n <= 50)).toBe(true);
    expect(batches.slice(0, 3)).toEqual([50, 50, 5]);
    expect(ofType(run.events, 'epoch_commit').map((e) => e.rows)).toEqual([105, 105, 20]);
  });

  /** A source that gives 5 rows, then nothing (no heartbeat) for 3 s; the times of its epoch commits. */
  async function lingerRun(stream: string): Promise<{ commitsAfterMs: number[]; rows: number[] }> {
    const connector = streamConnector(
      'trickle',
      async function* (_p, ctx) {
        yield { rows: [1, 2, 3, 4, 5].map((seq) => ({ seq })), offsets: { seq: 5 } };
        await new Promise((r) => {
          const t = setTimeout(r, 3000);
          ctx.signal.addEventListener('abort', () => {
            clearTimeout(t);
            r(undefined);
          });
        });
      },
      () => ({ streaming: true, writer: () => ({ write() {}, commit: () => ({}) }) }),
    );
    const started = performance.now();
    const commitsAt: number[] = [];
    const run = await runYaml(`pipeline: trickle\nsource: { type: trickle }\nsink: { type: trickle }\nstream: ${stream}\n`, {
      connectors: [connector],
      onEvent: (e) => {
        if (e.type === 'epoch_commit') commitsAt.push(performance.now() - started);
      },
    });
    expect(run.summary.status, run.logs).toBe('succeeded');
    return { commitsAfterMs: commitsAt, rows: ofType(run.events, 'epoch_commit').map((e) => e.rows) };
  }

  it('commits an epoch once the source has caught up (epoch_linger), not at epoch_interval', async () => {
    const r = await lingerRun('{ epoch_interval: 2s, epoch_linger: 50ms, stop_when_idle: 2500ms }');
    expect(r.rows).toEqual([5]);
    expect(r.commitsAfterMs[0]).toBeLessThan(1500);
  });

  it('with epoch_linger 0, waits for epoch_interval', async () => {
    const r = await lingerRun('{ epoch_interval: 2s, epoch_linger: 0s, stop_when_idle: 2500ms }');
    expect(r.rows).toEqual([5]);
    expect(r.commitsAfterMs[0]).toBeGreaterThanOrEqual(1900);
  });

  it("ends at stop_when_idle though the source waits longer for its next message: the source's signal tells it the runtime is done", async () => {
    let returnedAfterAbort = false;
    const connector = streamConnector(
      'patient',
      async function* (_p, ctx) {
        yield { rows: [{ seq: 1 }], offsets: { seq: 1 } };
        try {
          for (;;) {
            // a broker's long poll: 10 s before it says anything, unless told to stop
            await new Promise((r) => {
              const t = setTimeout(r, 10_000);
              ctx.signal.addEventListener('abort', () => {
                clearTimeout(t);
                r(undefined);
              });
            });
            if (ctx.signal.aborted) return;
            yield { rows: [], offsets: { seq: 1 } };
          }
        } finally {
          returnedAfterAbort = ctx.signal.aborted;
        }
      },
      () => ({ streaming: true, writer: () => ({ write() {}, commit: () => ({}) }) }),
    );
    const started = performance.now();
    const run = await runYaml(
      'pipeline: patient\nsource: { type: patient }\nsink: { type: patient }\nstream: { epoch_interval: 200ms, stop_when_idle: 300ms }\n',
      { connectors: [connector] },
    );
    expect(run.summary.status, run.logs).toBe('succeeded');
    expect(performance.now() - started).toBeLessThan(3000); // not the source's 10 s
    expect(returnedAfterAbort).toBe(true);
    expect(ofType(run.events, 'epoch_commit').map((e) => e.rows)).toEqual([1]);
  });
});
