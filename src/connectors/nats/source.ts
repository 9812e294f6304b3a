/**
 * The NATS JetStream source: one durable pull consumer, read without end
 * (`Source.stream`) and committed by the runtime in epochs. One partition: the
 * stream's order is what makes the offsets exact.
 *
 * Offsets are stream sequences. A pull consumer delivers new messages in stream
 * order; the source keeps that true across crashes and lost connections, so the
 * last committed sequence is a watermark: every message of the filter at or before
 * it is committed.
 * - At the start of an attempt, when the consumer holds messages delivered to a run
 *   that died (`num_ack_pending`) beyond the watermark (`ctx.resumeFrom`, else the
 *   consumer's ack floor), the server would deliver them again only after `ack_wait`,
 *   behind newer ones: the consumer is deleted and created again (same settings) at
 *   the sequence after the watermark.
 * - During the attempt, when the connection was lost (deliveries may have vanished
 *   in transit) or a delivery arrives that breaks the order, the attempt fails with
 *   a retryable error: the runtime discards the open epoch and runs the partition
 *   again (`retry.partition_attempts`, with backoff), which places the consumer
 *   after the watermark as above. Nothing is lost, nothing is yielded twice.
 * - A message at or before the watermark (committed, its acknowledgement lost) is
 *   acknowledged at once and skipped; one yielded earlier in this attempt and not
 *   committed yet (delivered again after `ack_wait`) is skipped, its new delivery
 *   acknowledged with the chunk it came in.
 * A chunk's `ack` runs after the epoch holding it was committed, then flushes (the
 * server has the acknowledgements when it returns). The consumers weir creates
 * acknowledge with policy `all`: acknowledging a message acknowledges every earlier
 * one of the consumer (the server moves its ack floor to that stream sequence), which
 * is the watermark above, so a chunk acknowledges only its last message. A consumer
 * created elsewhere with policy `explicit` gets every message acknowledged. Only the
 * sequences of epochs not yet acknowledged are held in memory. `lag` is the
 * server's `num_pending` after the chunk's last message, plus what the client holds.
 */
import type { ConsumerConfig, ConsumerInfo, ConsumerMessages, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { PlanContext, Source, StreamChunk, TaskContext } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import { asRow, emptyRow, type Partition, type Row } from '../../sdk/types.js';
import { parseJsonExact } from '../../sdk/values.js';
import { classify, connect, isNotFound, missingStream, type Nats, release, streamInfo, where } from './client.js';
import type { NatsOptions } from './spec.js';

const NANOS = 1_000_000;

/** Where a partition continues: the stream sequence of its last committed epoch (read back from a checkpoint: untrusted). */
export function resumePoint(ctx: Pick<TaskContext, 'resumeFrom' | 'partitionId'>): number | undefined {
  const r = ctx.resumeFrom;
  if (r === undefined || r === null) return undefined;
  if (typeof r === 'number' && Number.isSafeInteger(r) && r >= 0) return r;
  const shown = JSON.stringify(r).slice(0, 80);
  throw new WeirError(
    `the checkpoint of partition ${ctx.partitionId} holds offsets ${shown}, which are not a JetStream stream sequence (a whole number ≥ 0); it was not written by the nats source — start over with \`weir run --fresh\` (the run's committed epochs stay published)`,
    { code: 'invalid_offsets', kind: 'config' },
  );
}

/** The consumer weir creates: acknowledgements by watermark (policy `all`), the source's options, starting at `startSeq` when given. */
function consumerConfig(opts: NatsOptions, startSeq: number | undefined): Partial<ConsumerConfig> {
  return {
    durable_name: opts.durable,
    ack_policy: 'all' as ConsumerConfig['ack_policy'],
    ack_wait: opts.ack_wait * NANOS,
    max_deliver: opts.max_deliver,
    max_ack_pending: opts.max_ack_pending,
    ...(opts.filter_subject !== undefined ? { filter_subject: opts.filter_subject } : {}),
    ...(startSeq !== undefined
      ? { deliver_policy: 'by_start_sequence' as ConsumerConfig['deliver_policy'], opt_start_seq: startSeq }
      : { deliver_policy: opts.deliver as ConsumerConfig['deliver_policy'] }),
  };
}

async function consumerInfo(jsm: JetStreamManager, opts: NatsOptions): Promise<ConsumerInfo | undefined> {
  try {
    return await jsm.consumers.info(opts.stream, opts.durable);
  } catch (error) {
    if (isNotFound(error, 'consumer')) return undefined;
    if (isNotFound(error, 'stream')) throw missingStream(opts, 'source');
    throw error;
  }
}

/** Creates the durable when missing (planner and worker). Returns its information. */
async function ensureConsumer(jsm: JetStreamManager, opts: NatsOptions, startSeq?: number): Promise<ConsumerInfo> {
  const info = await consumerInfo(jsm, opts);
  if (info) return info;
  if (!(await streamInfo(jsm, opts.stream))) throw missingStream(opts, 'source');
  return jsm.consumers.add(opts.stream, consumerConfig(opts, startSeq));
}

/**
 * Deletes the durable and creates it again, with the settings it had, delivering
 * from `startSeq` on (see the module comment: the stream order across a crash or a
 * lost connection).
 */
async function placeAt(jsm: JetStreamManager, opts: NatsOptions, config: ConsumerConfig, startSeq: number): Promise<void> {
  try {
    await jsm.consumers.delete(opts.stream, opts.durable);
  } catch (error) {
    if (!isNotFound(error, 'consumer')) throw error;
  }
  const { opt_start_time: _time, name: _name, ...kept } = config;
  await jsm.consumers.add(opts.stream, {
    ...kept,
    durable_name: opts.durable,
    deliver_policy: 'by_start_sequence' as ConsumerConfig['deliver_policy'],
    opt_start_seq: Math.max(1, startSeq),
  });
}

export function natsSource(opts: NatsOptions): Source {
  return {
    unbounded: true,

    async partitions(ctx: PlanContext): Promise<Partition[]> {
      const nats = await connect(opts, ctx, `weir:${ctx.pipeline}:plan`);
      try {
        await ensureConsumer(nats.jsm, opts);
      } catch (error) {
        throw classify(error, `preparing consumer ${opts.durable} on stream ${opts.stream} (${where(opts)})`);
      } finally {
        await release(nats.nc);
      }
      return [{ id: '0' }];
    },

    async estimate(ctx: PlanContext) {
      let nats: Nats | undefined;
      try {
        nats = await connect(opts, ctx, `weir:${ctx.pipeline}:estimate`);
        const info = await consumerInfo(nats.jsm, opts);
        return info ? info.num_pending + info.num_ack_pending : undefined;
      } catch {
        return undefined;
      } finally {
        await release(nats?.nc);
      }
    },

    read() {
      throw new WeirError('the nats source is unbounded: it is read through stream(), in epochs', { kind: 'internal' });
    },

    stream(_partition: Partition, ctx: TaskContext) {
      return streamMessages(opts, ctx);
    },
  };
}

/**
 * The consumer's deliveries, pumped into a buffer of at most `high` messages: the
 * stream takes whatever arrived (a socket read brings many), so a chunk is as large
 * as the deliveries allow without waiting for a full pull.
 */
class Pump {
  readonly buffer: JsMsg[] = [];
  error: unknown;
  done = false;
  private stopped = false;
  private wakeFill: (() => void) | undefined;
  private wake: (() => void) | undefined;
  private space: (() => void) | undefined;

  constructor(
    private readonly messages: ConsumerMessages,
    private readonly high: number,
  ) {
    void this.run();
  }

  private async run(): Promise<void> {
    try {
      for await (const m of this.messages) {
        if (this.stopped) break;
        this.buffer.push(m);
        this.notify();
        if (this.buffer.length >= this.high) await new Promise<void>((r) => (this.space = r));
        if (this.stopped) break;
      }
    } catch (error) {
      this.error = error;
    } finally {
      this.done = true;
      this.notify();
    }
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Waits until a message is buffered, the pump ended, `ms` passed or `signal` fired. */
  async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.buffer.length > 0 || this.done || signal.aborted) return;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      timer = setTimeout(resolve, ms);
      onAbort = resolve;
      signal.addEventListener('abort', onAbort, { once: true });
    });
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
    this.wake = undefined;
  }

  /**
   * While deliveries keep coming, waits for up to `n` buffered messages: a chunk is one
   * batch of the sink, so a burst is handed over whole instead of message by message.
   * Ends after `gapMs` without a new delivery or `maxMs` in all (a trickle waits little).
   */
  async fill(n: number, gapMs: number, maxMs: number): Promise<void> {
    const until = performance.now() + maxMs;
    while (this.buffer.length < n && !this.done) {
      const before = this.buffer.length;
      const left = until - performance.now();
      if (left <= 0) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(gapMs, left));
        this.wake = () => {
          if (this.buffer.length >= n) {
            clearTimeout(timer);
            resolve();
          } else this.wake = this.wakeFill;
        };
        this.wakeFill = this.wake;
      });
      this.wake = undefined;
      this.wakeFill = undefined;
      if (this.buffer.length === before) return;
    }
  }

  take(n: number): JsMsg[] {
    const out = this.buffer.splice(0, n);
    const s = this.space;
    this.space = undefined;
    s?.();
    return out;
  }

  /** Stops the deliveries; what was delivered and not taken is never acknowledged (the server delivers it again). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.messages.stop();
    this.space?.();
    await Promise.race([this.messages.closed().catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const ACK = new TextEncoder().encode('+ACK');
/** How long a chunk waits for the next delivery of a burst, and at most in all (see {@link Pump.fill}). */
const FILL_GAP_MS = 5;
const FILL_MAX_MS = 100;

/** One partition of the stream, as chunks of what arrived (worker, once per partition attempt). */
async function* streamMessages(opts: NatsOptions, ctx: TaskContext): AsyncGenerator<StreamChunk> {
  const resume = resumePoint(ctx);
  const context = `reading stream ${opts.stream} through consumer ${opts.durable} (${where(opts)})`;
  const nats = await connect(opts, ctx, `weir:${ctx.pipeline}:${opts.durable}`);
  const { nc, js, jsm } = nats;
  let disrupted = false;
  const status = nc.status();
  const watching = (async () => {
    for await (const s of status) if (s.type === 'disconnect' || s.type === 'reconnect') disrupted = true;
  })().catch(() => undefined);
  /** Every message of the filter at or before it is committed (and acknowledged, or acknowledged when delivered again). */
  let committed = 0;
  /** Sequences yielded in this attempt whose epoch is not acknowledged yet. */
  const inFlight = new Set<number>();
  let last = 0;
  let lag: number | undefined;
  let pump: Pump | undefined;
  /** Policy `all`: one acknowledgement, of the last message, covers the earlier ones (see the module comment). */
  let byWatermark = false;
  /**
   * Acknowledges on the reading connection, then flushes (the server has the
   * acknowledgements when it returns). Once the partition closed it, an
   * acknowledgement still due goes through a connection of its own.
   */
  const acknowledge = async (due: JsMsg[]) => {
    if (due.length === 0) return;
    const messages = byWatermark ? [latest(due)] : due;
    try {
      if (!nc.isClosed()) {
        for (const m of messages) m.ack();
        await nc.flush();
        return;
      }
      const late = await connect(opts, ctx, `weir:${ctx.pipeline}:${opts.durable}:ack`);
      try {
        for (const m of messages) late.nc.publish((m as unknown as { reply: string }).reply, ACK);
        await late.nc.flush();
      } finally {
        await release(late.nc);
      }
    } catch (error) {
      throw classify(error, `acknowledging ${messages.length} message(s) of stream ${opts.stream} (consumer ${opts.durable})`);
    }
  };
  const lost = (why: string) =>
    new WeirError(
      `${context}: ${why}; deliveries may have been lost in transit, so the partition runs again from its last committed message (stream sequence ${committed})`,
      { code: 'deliveries_lost', kind: 'connector', retryable: true },
    );
  try {
    const info = await ensureConsumer(jsm, opts, resume === undefined ? undefined : resume + 1);
    committed = resume ?? info.ack_floor.stream_seq;
    if (info.num_ack_pending > 0 && info.delivered.stream_seq > committed) {
      ctx.log.info('nats consumer placed again after the last committed message', {
        stream: opts.stream,
        consumer: opts.durable,
        start_sequence: committed + 1,
        unacknowledged: info.num_ack_pending,
      });
      await placeAt(jsm, opts, info.config, committed + 1);
    }
    byWatermark = info.config.ack_policy === 'all';
    last = committed;
    const consumer = await js.consumers.get(opts.stream, opts.durable);
    pump = new Pump(
      await consumer.consume({
        max_messages: opts.batch,
        expires: Math.max(opts.idle_heartbeat * 5, 5000),
        idle_heartbeat: Math.max(500, Math.min(opts.idle_heartbeat, 5000)),
      }),
      opts.batch * 2,
    );
    for (;;) {
      if (ctx.signal.aborted) return;
      if (disrupted) throw lost('the connection to the server was lost');
      if (pump.done) throw pump.error ? classify(pump.error, context) : lost('the consumer stopped delivering');
      await pump.wait(opts.idle_heartbeat, ctx.signal);
      if (pump.buffer.length > 0) await pump.fill(opts.batch, FILL_GAP_MS, FILL_MAX_MS);
      const messages = pump.take(opts.batch);
      if (messages.length === 0) {
        if (!pump.done && !disrupted) yield { rows: [], offsets: last, ...(lag !== undefined ? { lag } : {}) };
        continue;
      }
      const rows: Row[] = [];
      const due: JsMsg[] = [];
      const seqs: number[] = [];
      const done: JsMsg[] = [];
      for (const m of messages) {
        const seq = m.seq;
        if (seq <= committed) {
          done.push(m);
          continue;
        }
        due.push(m);
        if (inFlight.has(seq)) continue; // delivered again before its epoch was acknowledged
        if (seq < last) throw lost(`message ${seq} arrived after ${last}`);
        inFlight.add(seq);
        seqs.push(seq);
        last = seq;
        const row = await toRow(m, opts, ctx);
        if (row) rows.push(row);
      }
      if (done.length > 0) for (const m of byWatermark ? [latest(done)] : done) m.ack();
      lag = (messages[messages.length - 1] as JsMsg).info.pending + pump.buffer.length;
      const offsets = last;
      yield {
        rows,
        offsets,
        lag,
        ack: async () => {
          await acknowledge(due);
          if (offsets > committed) committed = offsets;
          for (const s of seqs) inFlight.delete(s);
        },
      };
    }
  } catch (error) {
    if (ctx.signal.aborted) return;
    throw classify(error, context);
  } finally {
    await pump?.stop();
    await release(nc);
    (status as unknown as { stop(): void }).stop();
    await watching;
  }
}

/** The message of the highest stream sequence (a redelivered one may come after later ones). */
function latest(messages: JsMsg[]): JsMsg {
  let top = messages[0] as JsMsg;
  for (const m of messages) if (m.seq > top.seq) top = m;
  return top;
}

/** A message as a row; undefined when it was handed to the error policy (bad JSON). */
async function toRow(m: JsMsg, opts: NatsOptions, ctx: TaskContext): Promise<Row | undefined> {
  let row: Row;
  if (opts.format === 'raw') {
    row = emptyRow();
    row[opts.data_field] = m.data.slice();
  } else {
    let parsed: unknown;
    try {
      parsed = parseJsonExact(utf8.decode(m.data), opts.max_depth);
    } catch (error) {
      await ctx.reject(
        { subject: m.subject, sequence: m.seq, payload: Buffer.from(m.data).toString('utf8') },
        new RowError(
          `message ${m.seq} on subject ${m.subject} of stream ${opts.stream} is not valid JSON: ${(error as Error).message}; send JSON objects, or read the payload as bytes with format: raw`,
          { code: 'invalid_json' },
        ),
      );
      return undefined;
    }
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) row = asRow(parsed);
    else {
      row = emptyRow();
      row.value = parsed as Row[string];
    }
  }
  for (const f of opts.metadata_fields) {
    if (f === 'subject') row[opts.subject_field] = m.subject;
    else if (f === 'sequence') row[opts.sequence_field] = m.seq;
    else if (f === 'timestamp') row[opts.timestamp_field] = m.time;
    else row[opts.redelivered_field] = m.redelivered;
  }
  return row;
}
