/**
 * The MQTT sink: each row is published to the topic its `topic` template renders,
 * at QoS 1 (or 2), as weir's exact JSON (`format: json`) or as the bytes of one
 * field (`format: raw`).
 *
 * One batch = every row checked and encoded first (its topic fields, its payload:
 * a bad row fails the batch before anything is sent), then published with at most
 * `max_in_flight` publishes awaiting their PUBACK (PUBCOMP at QoS 2); `write()`
 * returns once the broker acknowledged every message of the batch, so a committed
 * epoch's rows are at the broker (`streaming: true`). A writer has one connection
 * with a clean session and no automatic reconnect: a lost connection fails the
 * batch (retryable) and the retried batch opens a new one. MQTT cannot deduplicate
 * across connections, so a retried batch can publish some messages twice:
 * at-least-once.
 */
import type { MqttClient } from 'mqtt';
import type { Sink, TaskContext, Writer } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import { type Partition, type Row, rowValue } from '../../sdk/types.js';
import { stringifyJson } from '../../sdk/values.js';
import { compileTemplate } from '../shared/template.js';
import { classify, connect, release, sinkClientId, where } from './client.js';
import type { MqttOptions } from './spec.js';

/** A row's payload: weir's exact JSON of the row, or the `payload_field` bytes or text with `format: raw`. */
export function payloadOf(row: Row, opts: MqttOptions): Buffer | string {
  if (opts.format === 'json') {
    try {
      return stringifyJson(row);
    } catch (error) {
      throw new RowError(`row cannot be written as JSON: ${(error as Error).message}`, { code: 'invalid_value' });
    }
  }
  const v = rowValue(row, opts.payload_field);
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new RowError(
    `format is raw but field ${opts.payload_field} holds ${v === null || v === undefined ? 'no value' : typeof v}; it must hold bytes or text (or use format: json)`,
    { code: 'invalid_payload' },
  );
}

export function mqttSink(opts: MqttOptions): Sink {
  const topic = compileTemplate(opts.topic as string, 'topic');
  return {
    streaming: true,
    writer(partition: Partition, ctx: TaskContext): Writer {
      let client: MqttClient | undefined;
      let rows = 0;
      const open = async () => {
        if (client?.connected) return client;
        await release(client);
        client = undefined;
        client = await connect(
          opts,
          { clientId: sinkClientId(opts, ctx.pipeline, partition.id), persistent: false, reconnect: false },
          ctx,
        );
        return client;
      };
      return {
        async write(batch: Row[]) {
          const messages = batch.map((row) => {
            const t = topic.render(row);
            if (t.length === 0 || /[+#\0]/.test(t))
              throw new RowError(
                `the topic template ${JSON.stringify(opts.topic)} renders ${JSON.stringify(t)} for this row; a topic cannot be empty or hold +, # or NUL`,
                {
                  code: 'invalid_topic',
                },
              );
            return { topic: t, payload: payloadOf(row, opts) };
          });
          const c = await open();
          await publishAll(c, messages, opts, ctx);
          rows += batch.length;
        },
        commit() {
          return { partition_id: partition.id, rows };
        },
        async close() {
          await release(client);
          client = undefined;
        },
      };
    },
  };
}

/** Publishes every message, `max_in_flight` at a time; resolves when all were acknowledged. */
async function publishAll(
  client: MqttClient,
  messages: { topic: string; payload: Buffer | string }[],
  opts: MqttOptions,
  ctx: TaskContext,
): Promise<void> {
  const qos = opts.qos as 1 | 2;
  let bytes = 0;
  let onClose: () => void = () => {};
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      let sent = 0;
      let acked = 0;
      let inFlight = 0;
      let failed = false;
      const fail = (error: unknown) => {
        if (failed) return;
        failed = true;
        reject(error);
      };
      const pump = () => {
        while (!failed && inFlight < opts.max_in_flight && sent < messages.length) {
          const m = messages[sent++] as { topic: string; payload: Buffer | string };
          inFlight++;
          bytes += typeof m.payload === 'string' ? Buffer.byteLength(m.payload) : m.payload.byteLength;
          client.publish(m.topic, m.payload, { qos, retain: opts.retain }, (error) => {
            inFlight--;
            if (error) return fail(error);
            if (++acked === messages.length) resolve();
            else pump();
          });
        }
      };
      onClose = () => fail(new Error('connection closed (ECONNRESET)'));
      client.on('close', onClose);
      timer = setTimeout(
        () =>
          fail(
            new WeirError(
              `publishing to ${where(opts)}: the broker did not acknowledge a batch within publish_timeout (${opts.publish_timeout} ms)`,
              {
                code: 'ETIMEDOUT',
                kind: 'connector',
                retryable: true,
              },
            ),
          ),
        opts.publish_timeout,
      );
      if (messages.length === 0) resolve();
      else pump();
    });
    ctx.count('bytes_sent', bytes);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 0x87 || code === 0x90)
      throw new WeirError(
        `publishing to ${where(opts)}: the broker refused a message (${(error as Error).message}); check that the user may publish to the topics of ${JSON.stringify(opts.topic)} (broker ACL)`,
        { code: 'publish_refused', kind: 'config', cause: error },
      );
    client.end(true);
    throw classify(error, `publishing to ${where(opts)}`);
  } finally {
    clearTimeout(timer);
    client.off('close', onClose);
  }
}
