/**
 * The RabbitMQ sink: each row is published as one persistent message (JSON, delivery
 * mode 2) to `exchange` with a routing key rendered from the row, on a confirm
 * channel.
 *
 * One batch = every row checked first (its routing key, its JSON: a bad row fails
 * the batch before anything is published), then published with `mandatory`, honouring
 * the channel's backpressure (publish returning false waits for `drain`), and written
 * only when the broker confirmed every message (`waitForConfirms`, within
 * `confirm_timeout`). A message the broker returns (basic.return: no queue is bound
 * for its routing key) would be lost, so it fails the batch, not retryable, naming the
 * routing key. A persistent message confirmed by the broker is on disk (classic
 * queues) or on a quorum of nodes, so every writer commit has its rows durable at the
 * broker: the sink takes unbounded sources (`streaming: true`).
 *
 * Delivery: at-least-once. A batch retried after a lost connection or a missing
 * confirmation is published again; each message carries a `message_id`
 * `<run>:<partition>:<writer>:<batch>:<row>` — the same in a retry of the same batch —
 * so a consumer that deduplicates on it (RabbitMQ does not) sees each row once.
 * `<writer>` is random per writer: a resumed run's attempts and batches are numbered
 * from 1 again, and its new rows must not take the ids of rows already published.
 */
import { randomBytes } from 'node:crypto';
import type { ChannelModel, ConfirmChannel, Options } from 'amqplib';
import type { CommitContext, Sink, TaskContext, Writer } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import type { JsonValue, Partition, Row } from '../../sdk/types.js';
import { stringifyJson } from '../../sdk/values.js';
import { compileTemplate, type KeyTemplate } from '../shared/template.js';
import { classify, connect, release, replyCode, where } from './client.js';
import type { RabbitmqOptions } from './spec.js';

export interface RabbitmqCommitMessage {
  partition_id: string;
  rows: number;
  [key: string]: JsonValue;
}

/** Checks the exchange exists (a publish to a missing one closes the channel). */
export async function checkExchange(model: ChannelModel, opts: RabbitmqOptions): Promise<void> {
  if (opts.exchange === '') return; // the default exchange always exists
  const ch = await model.createChannel();
  ch.on('error', () => {});
  try {
    await ch.checkExchange(opts.exchange);
  } catch (error) {
    throw replyCode(error) === 404
      ? new WeirError(`exchange ${JSON.stringify(opts.exchange)} does not exist on ${where(opts)}; declare it first, or fix exchange`, {
          code: 'exchange_not_found',
          kind: 'config',
          cause: error,
        })
      : classify(error, `checking exchange ${opts.exchange} on ${where(opts)}`);
  } finally {
    await ch.close().catch(() => undefined);
  }
}

export function rabbitmqSink(opts: RabbitmqOptions): Sink {
  return {
    streaming: true,
    async setup(ctx: CommitContext) {
      const model = await connect(opts, ctx, `weir:${ctx.pipeline}:setup`);
      try {
        await checkExchange(model, opts);
      } finally {
        await release(model);
      }
    },
    writer(partition: Partition, ctx: TaskContext): Writer {
      return new RabbitmqWriter(opts, partition, ctx);
    },
  };
}

/** Resolves once the channel takes writes again, or closed (the loop then throws what broke it). */
function drained(ch: ConfirmChannel): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      ch.off('drain', done);
      ch.off('close', done);
      resolve();
    };
    ch.on('drain', done);
    ch.on('close', done);
  });
}

const BASE_PROPERTIES: Options.Publish = { persistent: true, mandatory: true, contentType: 'application/json' };

class RabbitmqWriter implements Writer {
  private model: ChannelModel | undefined;
  private channel: ConfirmChannel | undefined;
  private broken: WeirError | undefined;
  private returned: { routingKey: string; count: number } | undefined;
  private rows = 0;
  private batches = 0;
  private readonly routingKey: KeyTemplate;
  private readonly idPrefix: string;
  private readonly target: string;

  constructor(
    private readonly opts: RabbitmqOptions,
    private readonly partition: Partition,
    private readonly ctx: TaskContext,
  ) {
    this.routingKey = compileTemplate(opts.routing_key as string, 'routing_key');
    this.idPrefix = `${ctx.runId}:${partition.id}:${randomBytes(6).toString('base64url')}:`;
    this.target = `exchange ${JSON.stringify(opts.exchange)} on ${where(opts)}`;
  }

  /** The confirm channel, opened again after a lost connection. */
  private async open(): Promise<ConfirmChannel> {
    if (this.channel && !this.broken) return this.channel;
    await this.drop();
    const model = await connect(this.opts, this.ctx, `weir:${this.ctx.pipeline}:${this.partition.id}:publish`);
    this.model = model;
    model.on('close', (error?: Error) => {
      this.broken ??= classify(error ?? new Error('Connection closed'), `publishing to ${this.target}: the connection was lost`);
    });
    const ch = await model.createConfirmChannel();
    ch.on('error', (error: Error) => {
      this.broken ??= classify(error, `publishing to ${this.target}`);
    });
    ch.on('close', () => {
      this.broken ??= new WeirError(`publishing to ${this.target}: the channel was closed`, { code: 'channel_closed', retryable: true });
    });
    ch.on('return', (msg: { fields: { routingKey: string } }) => {
      if (this.returned) this.returned.count++;
      else this.returned = { routingKey: msg.fields.routingKey, count: 1 };
    });
    this.broken = undefined;
    this.channel = ch;
    return ch;
  }

  private async drop(): Promise<void> {
    const model = this.model;
    this.model = undefined;
    this.channel = undefined;
    if (model) {
      model.removeAllListeners('close');
      await release(model);
    }
  }

  async write(batch: Row[]): Promise<void> {
    if (batch.length === 0) return;
    const keys = new Array<string>(batch.length);
    const bodies = new Array<Buffer>(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const row = batch[i] as Row;
      keys[i] = this.routingKey.render(row);
      let text: string;
      try {
        text = stringifyJson(row);
      } catch (error) {
        throw new RowError(`row cannot be written as JSON: ${(error as Error).message}`, { code: 'invalid_json', cause: error });
      }
      bodies[i] = Buffer.from(text);
    }
    const ch = await this.open().catch((error) => {
      throw classify(error, `publishing to ${this.target}`);
    });
    const prefix = `${this.idPrefix}${this.batches + 1}:`;
    const timestamp = Math.floor(Date.now() / 1000);
    this.returned = undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new WeirError(
                `publishing to ${this.target}: the broker confirmed nothing within confirm_timeout (${this.opts.confirm_timeout} ms); a broker under a memory or disk alarm blocks publishers`,
                { code: 'confirm_timeout', retryable: true },
              ),
            ),
          this.opts.confirm_timeout,
        );
      });
      const broken = () => this.broken;
      await Promise.race([
        (async () => {
          for (let i = 0; i < batch.length; i++) {
            const b = broken();
            if (b) throw b;
            const more = ch.publish(this.opts.exchange, keys[i] as string, bodies[i] as Buffer, {
              ...BASE_PROPERTIES,
              messageId: prefix + i,
              timestamp,
            });
            if (!more) await drained(ch);
          }
          await ch.waitForConfirms();
        })(),
        timeout,
      ]);
    } catch (error) {
      const e = this.broken ?? classify(error, `publishing to ${this.target}`);
      await this.drop(); // the next try starts on a fresh connection
      throw e.retryable || e.kind === 'config' ? e : new WeirError(e.message, { code: e.code, retryable: true, cause: error });
    } finally {
      clearTimeout(timer);
    }
    if (this.returned) {
      const { routingKey, count } = this.returned;
      throw new WeirError(
        `${count} message(s) of the batch were unroutable: ${this.target} has no queue bound for routing key ${JSON.stringify(routingKey)}, so RabbitMQ would drop them; bind a queue for it (or an alternate exchange), or fix routing_key`,
        { code: 'unroutable', kind: 'config' },
      );
    }
    this.batches++;
    this.rows += batch.length;
  }

  commit(): RabbitmqCommitMessage {
    return { partition_id: this.partition.id, rows: this.rows };
  }

  /** Nothing to take back: confirmed messages are in their queues, and may already be consumed. */
  abort(): void {}

  async close(): Promise<void> {
    await this.drop();
  }
}
