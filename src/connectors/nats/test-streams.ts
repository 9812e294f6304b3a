/** Test helpers: an admin connection and streams named `weirtest_nats_…`, deleted after the tests. Not used by the connector. */
import { randomBytes } from 'node:crypto';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';

export interface Admin {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** Streams made by {@link Admin.stream}, deleted by {@link Admin.close}. */
  streams: Set<string>;
  /** A new stream `weirtest_nats_<tag>_<random>` capturing `<name>.>`; returns its name. */
  stream(tag: string, extra?: Record<string, unknown>): Promise<string>;
  /** Publishes each payload (strings as UTF-8, objects as JSON) to `subject` and waits for the PubAcks. */
  publish(subject: string, payloads: (string | Uint8Array | Record<string, unknown>)[]): Promise<void>;
  close(): Promise<void>;
}

export async function admin(port = 4222): Promise<Admin> {
  const nc = await connect({ servers: `127.0.0.1:${port}` });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const streams = new Set<string>();
  return {
    nc,
    js,
    jsm,
    streams,
    async stream(tag, extra = {}) {
      const name = `weirtest_nats_${tag}_${randomBytes(4).toString('hex')}`;
      await jsm.streams.add({ name, subjects: [`${name}.>`], ...extra });
      streams.add(name);
      return name;
    },
    async publish(subject, payloads) {
      await Promise.all(
        payloads.map((p) =>
          js.publish(subject, typeof p === 'string' || p instanceof Uint8Array ? p : JSON.stringify(p)).then(() => undefined),
        ),
      );
    },
    async close() {
      for (const s of streams) await jsm.streams.delete(s).catch(() => undefined);
      await nc.close();
    },
  };
}
