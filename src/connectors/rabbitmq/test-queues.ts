/** Test helper: a connection of the test itself for publishing and inspecting queues, and the cleanup of a test's queues and exchanges. */
import amqp, { type Channel, type ChannelModel } from 'amqplib';

export const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';

export interface Admin {
  model: ChannelModel;
  ch: Channel;
  /** Queues and exchanges made by the test, deleted by {@link Admin.close}. */
  queues: Set<string>;
  exchanges: Set<string>;
  /** Declares a durable queue (remembered for cleanup). */
  queue(name: string, args?: Record<string, unknown>): Promise<void>;
  exchange(name: string, type?: string): Promise<void>;
  /** Ready messages and consumers, or undefined when the queue does not exist. */
  depth(name: string): Promise<{ messageCount: number; consumerCount: number } | undefined>;
  /** Publishes payloads (objects as JSON, strings and buffers as they are) to a queue through the default exchange. */
  publish(queue: string, payloads: unknown[], props?: Record<string, unknown>): Promise<void>;
  /** Takes every ready message of a queue (acknowledged). */
  drain(queue: string): Promise<amqp.GetMessage[]>;
  close(): Promise<void>;
}

export async function adminConnection(): Promise<Admin> {
  const model = await amqp.connect(AMQP_URL);
  let ch = await model.createConfirmChannel();
  const fresh = async () => {
    ch = await model.createConfirmChannel();
    ch.on('error', () => {});
  };
  ch.on('error', () => {});
  const admin: Admin = {
    model,
    get ch() {
      return ch;
    },
    queues: new Set(),
    exchanges: new Set(),
    async queue(name, args) {
      admin.queues.add(name);
      await ch.assertQueue(name, { durable: true, ...(args ? { arguments: args } : {}) });
    },
    async exchange(name, type = 'topic') {
      admin.exchanges.add(name);
      await ch.assertExchange(name, type, { durable: true });
    },
    async depth(name) {
      const probe = await model.createChannel();
      probe.on('error', () => {});
      try {
        const q = await probe.checkQueue(name);
        return { messageCount: q.messageCount, consumerCount: q.consumerCount };
      } catch {
        return undefined;
      } finally {
        await probe.close().catch(() => undefined);
      }
    },
    async publish(queue, payloads, props = {}) {
      for (const p of payloads) {
        const body = Buffer.isBuffer(p) ? p : Buffer.from(typeof p === 'string' ? p : JSON.stringify(p));
        ch.publish('', queue, body, { persistent: true, ...props });
      }
      await (ch as amqp.ConfirmChannel).waitForConfirms();
    },
    async drain(queue) {
      const out: amqp.GetMessage[] = [];
      for (;;) {
        const m = await ch.get(queue, { noAck: true });
        if (!m) return out;
        out.push(m);
      }
    },
    async close() {
      await fresh().catch(() => undefined);
      for (const q of admin.queues) await ch.deleteQueue(q).catch(() => undefined);
      for (const e of admin.exchanges) await ch.deleteExchange(e).catch(() => undefined);
      await model.close().catch(() => undefined);
    },
  };
  return admin;
}
