/**
 * Source conformance of every unbounded built-in source: redis streams, nats (JetStream),
 * rabbitmq and mqtt. Each check gets a fresh stream, queue or session holding the data set
 * (the kit's `options()` is called once per check); the kit streams it, stops by aborting
 * the signal, and checks the epoch/ack contract: nothing is acknowledged unless the caller
 * acknowledges (what the runtime does once the epoch is committed).
 */
import { randomBytes } from 'node:crypto';
import mqttClient from 'mqtt';
import { afterAll, describe } from 'vitest';
import { builtinConnectors } from '../../src/connectors/index.js';
import { admin as natsAdmin } from '../../src/connectors/nats/test-streams.js';
import { adminConnection } from '../../src/connectors/rabbitmq/test-queues.js';
import { adminClient, dropKeysAndClose } from '../../src/connectors/redis/test-keys.js';
import type { AnyConnector } from '../../src/sdk/connector.js';
import { requireService } from '../helpers/services.js';
import { describeSourceConformance } from './harness.js';

const connector = (name: string) => builtinConnectors.find((c) => c.name === name) as AnyConnector;
const TAG = `conf_${randomBytes(4).toString('hex')}`;
const MESSAGES = Array.from({ length: 12 }, (_, i) => ({ id: i + 1, name: i === 2 ? '' : `message ${i + 1} "q", ü ✓` }));
let fresh = 0;
const [redisUp, natsUp, rabbitUp, mqttUp] = await Promise.all([
  requireService('redis'),
  requireService('nats'),
  requireService('rabbitmq'),
  requireService('mqtt'),
]);

describe.skipIf(!redisUp)('redis streams', () => {
  const prefix = `${TAG}:stream:`;
  afterAll(async () => dropKeysAndClose(await adminClient(), prefix));
  describeSourceConformance(
    connector('redis'),
    {
      options: async () => {
        const key = `${prefix}${++fresh}`;
        const admin = await adminClient();
        for (const m of MESSAGES) await admin.xadd(key, '*', 'id', String(m.id), 'name', m.name);
        admin.disconnect();
        return { mode: 'stream', stream: key, block: '100ms' };
      },
      // entry fields are text; the entry id differs per fresh stream
      expected: MESSAGES.map((m) => ({ id: String(m.id), name: m.name })),
      ignoreColumns: ['_id'],
      stream: { idleMs: 400 },
      badOptions: { mode: 'stream', stream: `${prefix}none`, port: 1, connect_timeout: '1s' },
    },
    'redis (streams)',
  );
});

describe.skipIf(!natsUp)('nats', async () => {
  const a = natsUp ? await natsAdmin() : undefined;
  afterAll(async () => a?.close());
  describeSourceConformance(connector('nats'), {
    options: async () => {
      const stream = await (a as NonNullable<typeof a>).stream('conf');
      await (a as NonNullable<typeof a>).publish(`${stream}.items`, MESSAGES);
      return { servers: '127.0.0.1:4222', stream, idle_heartbeat: '1s' };
    },
    expected: MESSAGES,
    stream: { idleMs: 500 },
    badOptions: { servers: '127.0.0.1:1', stream: 'none', connect_timeout: '1s' },
  });
});

describe.skipIf(!rabbitUp)('rabbitmq', async () => {
  const a = rabbitUp ? await adminConnection() : undefined;
  afterAll(async () => a?.close());
  describeSourceConformance(connector('rabbitmq'), {
    options: async () => {
      const queue = `${TAG}_q${++fresh}`;
      await (a as NonNullable<typeof a>).queue(queue);
      await (a as NonNullable<typeof a>).publish(queue, MESSAGES);
      return { queue, idle_heartbeat: '150ms' };
    },
    expected: MESSAGES,
    stream: { idleMs: 500 },
    badOptions: { queue: 'none', port: 1, connect_timeout: '1s' },
  });
});

describe.skipIf(!mqttUp)('mqtt', () => {
  describeSourceConformance(
    connector('mqtt'),
    {
      // a persistent session subscribed to a fresh topic, then the messages: the broker keeps them for the session
      options: async () => {
        const topic = `${TAG}/t${++fresh}`;
        const clientId = `${TAG}-c${fresh}`;
        const session = await mqttClient.connectAsync('mqtt://127.0.0.1:1883', {
          clientId,
          clean: false,
          protocolVersion: 5,
          properties: { sessionExpiryInterval: 300 },
        });
        await session.subscribeAsync(topic, { qos: 1 });
        await session.endAsync();
        const publisher = await mqttClient.connectAsync('mqtt://127.0.0.1:1883');
        for (const m of MESSAGES) await publisher.publishAsync(topic, JSON.stringify(m), { qos: 1 });
        await publisher.endAsync();
        return { topics: [topic], client_id: clientId };
      },
      expected: MESSAGES,
      stream: { idleMs: 500 },
      badOptions: { topics: ['none'], url: 'mqtt://127.0.0.1:1', connect_timeout: '1s' },
    },
    'mqtt',
  );
});
