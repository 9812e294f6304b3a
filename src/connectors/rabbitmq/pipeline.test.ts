/**
 * The rabbitmq connector inside whole runs (in process): a queue → PostgreSQL upsert in
 * epochs until idle, `delivery: exactly-once` refused with the way to get it, and
 * generator → rabbitmq.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { tempDir } from '../../../test/helpers/cli.js';
import { requireService } from '../../../test/helpers/services.js';
import { parsePipelineText } from '../../config/load.js';
import { validatePipeline } from '../../config/pipeline.js';
import { Registry } from '../../config/registry.js';
import { Redactor } from '../../secrets/redactor.js';
import { builtinConnectors } from '../index.js';
import { type Admin, adminConnection } from './test-queues.js';

/** The examples of the CHANGELOG, one per role: they validate as written. */
const EXAMPLES = {
  source: `pipeline: orders-from-rabbitmq
source:
  type: rabbitmq
  url: \${env:RABBITMQ_URL}
  queue: orders
  declare: true
  arguments: { x-queue-type: quorum }
  bind: { exchange: events, routing_keys: [order.*] }
  dead_letter_exchange: weir.dlx
  max_redeliveries: 5
  metadata_fields: [message_id, routing_key]
sink: { type: postgres, host: 127.0.0.1, database: app, table: orders, mode: upsert, key_columns: [order_id] }
errors: { tolerance: all, dead_letter: { type: jsonl, path: out/rejected.jsonl } }
stream: { stop_when_idle: 30s }
`,
  sink: `pipeline: orders-to-rabbitmq
source: { type: postgres, host: 127.0.0.1, database: app, table: orders }
sink: { type: rabbitmq, host: 127.0.0.1, user: loader, password: "\${env:RABBITMQ_PASSWORD}", exchange: events, routing_key: "order.{region}" }
`,
};

describe('rabbitmq examples', () => {
  it('validate, one per role', () => {
    process.env.RABBITMQ_URL ??= 'amqp://loader:secret-value@127.0.0.1:5672/%2F';
    process.env.RABBITMQ_PASSWORD ??= 'secret-value';
    for (const yaml of Object.values(EXAMPLES)) {
      const v = validatePipeline(parsePipelineText(yaml, 'example.yaml'), new Registry([...builtinConnectors]), new Redactor(), '.');
      expect(v.config.pipeline).toMatch(/rabbitmq/);
    }
  });
});

const up = (await requireService('rabbitmq')) && (await requireService('postgres'));
const suffix = randomBytes(4).toString('hex');
const prefix = `weirtest_amqp_run_${suffix}`;
const table = `amqp_run_${suffix}`;
let admin: Admin;
let db: pg.Client;

describe.skipIf(!up)('rabbitmq in a run', () => {
  beforeAll(async () => {
    admin = await adminConnection();
    db = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
    await db.connect();
  });
  afterAll(async () => {
    await admin.close();
    await db.query(`DROP TABLE IF EXISTS "${table}"`);
    await db.query(`DELETE FROM _weir_runs WHERE pipeline LIKE 'amqp-run-${suffix}%'`).catch(() => {});
    await db.query(`DELETE FROM _weir_checkpoints WHERE pipeline LIKE 'amqp-run-${suffix}%'`).catch(() => {});
    await db.end();
  });

  it('a queue → PostgreSQL upsert: every message once, the queue empty after, lag reported', async () => {
    const queue = `${prefix}_in`;
    await admin.queue(queue);
    // a duplicate of message 7 (as a redelivery would be) lands once
    await admin.publish(queue, [...Array.from({ length: 3000 }, (_, i) => ({ id: i + 1, v: `m${i + 1}` })), { id: 7, v: 'm7' }]);
    const dir = tempDir('weir-amqp-run-');
    const { summary, events } = await runYaml(
      `
pipeline: amqp-run-${suffix}
source: { type: rabbitmq, queue: ${queue}, prefetch: 1000, metadata_fields: [redelivered] }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${table}, mode: upsert, key_columns: [id] }
stream: { epoch_rows: 1000, epoch_interval: 200ms, stop_when_idle: 1s }
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
      [],
      dir,
    );
    expect(summary.status).toBe('succeeded');
    expect(summary.totals.rows_read).toBe(3001);
    const got = await db.query(`SELECT count(*)::int AS n, count(DISTINCT id)::int AS d, bool_or("_redelivered") AS r FROM "${table}"`);
    expect(got.rows[0]).toEqual({ n: 3000, d: 3000, r: false });
    expect((await admin.depth(queue))?.messageCount).toBe(0);
    expect(events.some((e) => e.type === 'epoch_commit')).toBe(true);
    expect(events.some((e) => e.type === 'source_lag')).toBe(true);
  });

  it('refuses delivery: exactly-once before it connects, naming upsert with a key', async () => {
    const dir = tempDir('weir-amqp-eo-');
    const run = runYaml(
      `
pipeline: amqp-run-${suffix}-eo
source: { type: rabbitmq, queue: ${prefix}_never, port: 1 }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${table} }
delivery: exactly-once
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
      [],
      dir,
    );
    const { summary } = await run;
    expect(summary.status).toBe('failed');
    expect(JSON.stringify(summary)).toMatch(
      /delivery: exactly-once cannot hold with the rabbitmq source: .*Use delivery: at-least-once with a sink that deduplicates: the postgres sink with mode: upsert and key/,
    );
    expect(JSON.stringify(summary)).not.toMatch(/ECONNREFUSED/);
  });

  it('a refused login fails the run with a clear line; the password (literal or in the url) is in no log line or summary', async () => {
    const canary = `canary-${randomBytes(8).toString('hex')}`;
    for (const broker of [`password: "${canary}"`, `url: "amqp://guest:${canary}@127.0.0.1:5672/%2F"`]) {
      const dir = tempDir('weir-amqp-canary-');
      const { summary, logs } = await runYaml(
        `
pipeline: amqp-run-${suffix}-canary
source: { type: rabbitmq, queue: ${prefix}_never, ${broker} }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${table}, mode: upsert, key_columns: [id] }
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
        [],
        dir,
      );
      expect(summary.status).toBe('failed');
      expect(JSON.stringify(summary)).toMatch(/refused the login \(ACCESS_REFUSED\); check user and password/);
      expect(`${logs}${JSON.stringify(summary)}`).not.toContain(canary);
    }
  });

  it('generator → rabbitmq: every row one confirmed message', async () => {
    const queue = `${prefix}_out`;
    await admin.queue(queue);
    const dir = tempDir('weir-amqp-gen-');
    const { summary } = await runYaml(
      `
pipeline: amqp-run-${suffix}-gen
source: { type: generator, rows: 5000, partitions: 2 }
sink: { type: rabbitmq, routing_key: ${queue}, batch_size: 700 }
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
      [],
      dir,
    );
    expect(summary.status).toBe('succeeded');
    expect(summary.totals.rows_written).toBe(5000);
    const messages = await admin.drain(queue);
    expect(messages).toHaveLength(5000);
    expect(new Set(messages.map((m) => JSON.parse(m.content.toString()).id)).size).toBe(5000);
    expect(new Set(messages.map((m) => m.properties.messageId)).size).toBe(5000);
  });
});
