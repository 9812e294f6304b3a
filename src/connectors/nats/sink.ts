/**
 * The NATS JetStream sink: each row is published as exact JSON to the subject its
 * template renders, and a batch is written once the stream acknowledged (PubAck)
 * every message of it.
 *
 * A batch is checked whole first (every row's subject and JSON: a bad row fails the
 * batch before anything is sent), then published with at most `max_in_flight`
 * messages awaiting their PubAck. Each message carries a `Nats-Msg-Id` of the run,
 * the partition, the writer, the batch and the row index: a batch the runtime
 * writes again after a retryable error (a lost connection, a PubAck that timed out)
 * gets the same ids, so the stream stores each message once within its duplicate
 * window (`duplicate_window`, two minutes by default). The writer part is random:
 * a partition run again as a new attempt, or a run resumed after a crash, may read
 * other rows in the same places (a stream source), so it never reuses ids — it
 * publishes again what the failed attempt had published (at-least-once).
 *
 * `streaming: true`: a PubAck means the message is stored by the stream (replicated
 * as the stream is configured), so each epoch's rows are durable when its writer
 * commits. The setup (planner, once) checks that the stream exists, or creates it
 * (`create_stream`).
 */
import { randomBytes } from 'node:crypto';
import type { PubAck } from '@nats-io/jetstream';
import type { CommitContext, Sink, TaskContext, Writer } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import type { Partition, Row } from '../../sdk/types.js';
import { stringifyJson } from '../../sdk/values.js';
import { compileTemplate, type KeyTemplate } from '../shared/template.js';
import { classify, connect, missingStream, type Nats, release, streamInfo, where } from './client.js';
import { type NatsOptions, subjectsOf } from './spec.js';

/** A subject a message can be published to: dot-separated tokens, no whitespace, no wildcard token. */
const PUBLISHABLE = /^[^\s.*>]+(\.[^\s.*>]+)*$/;

export interface NatsCommitMessage {
  partition_id: string;
  rows: number;
  /** Messages the stream reported as duplicates (stored once: a retried batch). */
  duplicates: number;
  [key: string]: string | number;
}

/** The stream's configuration when `create_stream` creates it. */
function streamConfig(opts: NatsOptions) {
  return {
    name: opts.stream,
    subjects: opts.stream_subjects ?? subjectsOf(opts.subject as string),
    duplicate_window: opts.duplicate_window * 1_000_000,
  };
}

export function natsSink(opts: NatsOptions): Sink {
  return {
    streaming: true,

    /** Checks the stream (planner, once per run): present, or created with `create_stream`, else a configuration error naming it. */
    async setup(ctx: CommitContext) {
      const nats = await connect(opts, ctx, `weir:${ctx.pipeline}:setup`);
      try {
        if (await streamInfo(nats.jsm, opts.stream)) return;
        if (!opts.create_stream) throw missingStream(opts, 'sink');
        const config = streamConfig(opts);
        await nats.jsm.streams.add(config);
        ctx.log.info('nats stream created', { stream: opts.stream, subjects: config.subjects });
      } catch (error) {
        throw classify(error, `preparing stream ${opts.stream} on ${where(opts)}`);
      } finally {
        await release(nats.nc);
      }
    },

    writer(partition: Partition, ctx: TaskContext): Writer {
      return new NatsWriter(opts, partition, ctx);
    },
  };
}

class NatsWriter implements Writer {
  private nats: Nats | undefined;
  private rows = 0;
  private duplicates = 0;
  private batches = 0;
  /** The number of each batch written: a batch written again (the same array, retried by the runtime) keeps its ids. */
  private readonly numbers = new WeakMap<Row[], number>();
  private readonly subject: KeyTemplate;
  private readonly idPrefix: string;
  private readonly encoder = new TextEncoder();

  constructor(
    private readonly opts: NatsOptions,
    private readonly partition: Partition,
    private readonly ctx: TaskContext,
  ) {
    this.subject = compileTemplate(opts.subject as string, 'subject');
    this.idPrefix = `weir.${ctx.runId}.${partition.id}.${randomBytes(6).toString('hex')}`;
  }

  private async connection(): Promise<Nats> {
    if (this.nats?.nc.isClosed()) this.nats = undefined;
    this.nats ??= await connect(this.opts, this.ctx, `weir:${this.ctx.pipeline}:${this.partition.id}`);
    return this.nats;
  }

  async write(batch: Row[]): Promise<void> {
    if (batch.length === 0) return;
    let number = this.numbers.get(batch);
    if (number === undefined) {
      number = ++this.batches;
      this.numbers.set(batch, number);
    }
    const subjects = new Array<string>(batch.length);
    const payloads = new Array<Uint8Array>(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const row = batch[i] as Row;
      const subject = this.subject.render(row);
      if (!PUBLISHABLE.test(subject))
        throw new RowError(
          `subject ${JSON.stringify(subject.slice(0, 200))} rendered from the template ${JSON.stringify(this.opts.subject)} is not a subject a message can be published to (empty tokens, whitespace or the wildcards * and > are not allowed); fix the row's fields or the template`,
          { code: 'invalid_subject' },
        );
      subjects[i] = subject;
      let text: string;
      try {
        text = stringifyJson(row);
      } catch (error) {
        throw new RowError(`row cannot be written as JSON: ${(error as Error).message}`, { code: 'invalid_json', cause: error });
      }
      payloads[i] = this.encoder.encode(text);
    }
    const { js } = await this.connection();
    const idBase = `${this.idPrefix}.${number}.`;
    const window = this.opts.max_in_flight;
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    let duplicates = 0;
    for (let i = 0; i < batch.length && failure === undefined; i++) {
      const p = js
        .publish(subjects[i] as string, payloads[i], {
          msgID: idBase + i,
          timeout: this.opts.publish_timeout,
          expect: { streamName: this.opts.stream },
        })
        .then(
          (ack: PubAck) => {
            if (ack.duplicate) duplicates++;
          },
          (error: unknown) => {
            failure ??= error;
          },
        )
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= window) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw this.failed(failure, subjects);
    this.rows += batch.length;
    this.duplicates += duplicates;
    let bytes = 0;
    for (const p of payloads) bytes += p.byteLength;
    this.ctx.count('bytes_sent', bytes);
  }

  private failed(error: unknown, subjects: string[]): WeirError {
    const message = (error as Error | undefined)?.message ?? String(error);
    if (/no responders|503/i.test(message))
      return new WeirError(
        `publishing to stream ${this.opts.stream} on ${where(this.opts)}: no stream answered for subject ${subjects[0]} (no responders): check that stream ${this.opts.stream} captures the subjects the template ${JSON.stringify(this.opts.subject)} renders, and that JetStream is running`,
        { code: 'no_responders', kind: 'connector', retryable: true, cause: error },
      );
    if (/expected stream does not match/i.test(message))
      return new WeirError(
        `publishing to stream ${this.opts.stream} on ${where(this.opts)}: subject ${subjects[0]} is captured by another stream; change the subject template or the stream`,
        { code: 'wrong_stream', kind: 'config', cause: error },
      );
    const e = classify(error, `publishing to stream ${this.opts.stream} on ${where(this.opts)}`);
    if (e.retryable && this.nats) {
      const nc = this.nats.nc;
      this.nats = undefined;
      void nc.close().catch(() => undefined); // the retry starts on a fresh connection
    }
    return e;
  }

  commit(): NatsCommitMessage {
    return { partition_id: this.partition.id, rows: this.rows, duplicates: this.duplicates };
  }

  /** Published messages cannot be taken back: a failed partition leaves what it published (at-least-once). */
  abort(): void {
    this.rows = 0;
  }

  async close(): Promise<void> {
    const nats = this.nats;
    this.nats = undefined;
    await release(nats?.nc);
  }
}
