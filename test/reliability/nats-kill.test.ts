/**
 * The nats source survives SIGKILL: messages are published to a JetStream stream
 * while `weir run` (nats → PostgreSQL, exactly-once, in epochs) is killed at random
 * moments and started again. After the last run ends on `stream.stop_when_idle`,
 * every message is in the table exactly once and none awaits acknowledgement; and a
 * watcher that keeps comparing the consumer's ack floor with the table never saw a
 * message acknowledged before it was committed. Needs `npm run build`.
 *
 * `WEIR_KILL_MESSAGES=50000` runs the must-show (50,000 JSON messages,
 * published before the first run); the suite publishes 4,000 during the runs.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runKilledThenToEnd, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';

const up = (await requireService('postgres')) && (await requireService('nats'));
const MESSAGES = Number(process.env.WEIR_KILL_MESSAGES ?? 4000);
const BIG = MESSAGES > 10_000;
const KILLS = BIG ? 5 : 4;
const suffix = randomBytes(4).toString('hex');
const table = `nats_kill_${suffix}`;
const pipeline = `nats-kill-${suffix}`;
const stream = `weirtest_nats_kill_${suffix}`;
const durable = 'weir';

let db: pg.Client;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;

beforeAll(async () => {
  if (!up) return;
  db = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
  await db.connect();
  nc = await connect({ servers: '127.0.0.1:4222' });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
});

afterAll(async () => {
  if (!up) return;
  await jsm.streams.delete(stream).catch(() => {});
  await nc.close();
  await db.query(`DROP TABLE IF EXISTS "${table}"`);
  await db.query('DELETE FROM _weir_runs WHERE pipeline = $1', [pipeline]).catch(() => {});
  await db.query('DELETE FROM _weir_checkpoints WHERE pipeline = $1', [pipeline]).catch(() => {});
  await db.end();
});

async function publish(from: number, to: number): Promise<void> {
  const acks = [];
  for (let i = from; i <= to; i++) acks.push(js.publish(`${stream}.orders`, JSON.stringify({ seq: i, amount: `${i}.10` })));
  await Promise.all(acks);
}

/**
 * Messages acknowledged and not in the table: acknowledged before their commit. The
 * consumer's ack floor is read first (every message at or below it is acknowledged):
 * an acknowledged message was committed earlier, so the table read after it holds it.
 * While weir places the consumer again, it is missing for a moment: nothing to check.
 */
async function ackedBeforeCommit(): Promise<string[]> {
  let floor: number;
  try {
    floor = (await jsm.consumers.info(stream, durable)).ack_floor.stream_seq;
  } catch {
    return [];
  }
  const exists = await db.query('SELECT to_regclass($1) IS NOT NULL AS ok', [table]);
  if (!exists.rows[0]?.ok) return floor > 0 ? [`ack floor ${floor} with no table`] : [];
  const r = await db.query(`SELECT count(DISTINCT _seq)::int AS n FROM "${table}" WHERE _seq <= $1`, [floor]);
  const n = r.rows[0].n as number;
  return n < floor ? [`ack floor at ${floor}, only ${n} of those messages in the table`] : [];
}

describe.skipIf(!up)('the nats source in epochs', () => {
  it(`survives ${KILLS} SIGKILLs at random moments with ${MESSAGES} messages: every message once in PostgreSQL, none acknowledged before it was committed`, async () => {
    const dir = tempDir('weir-nats-kill-');
    const file = join(dir, 'pipeline.yaml');
    writeFileSync(
      file,
      `pipeline: ${pipeline}
source: { type: nats, stream: ${stream}, durable: ${durable}, batch: 500, metadata_fields: [sequence] }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${table} }
delivery: exactly-once
stream: { epoch_rows: ${BIG ? 5000 : 300}, epoch_interval: 200ms, stop_when_idle: 2s }
`,
    );
    let published = 0;
    let producer: NodeJS.Timeout | undefined;
    const t0 = performance.now();
    if (BIG) {
      for (let i = 1; i <= MESSAGES; i += 5000) await publish(i, Math.min(MESSAGES, i + 4999));
      published = MESSAGES;
    } else {
      let busy = false;
      producer = setInterval(() => {
        if (busy || published >= MESSAGES) return;
        busy = true;
        const from = published + 1;
        const to = Math.min(MESSAGES, published + 25);
        void publish(from, to).then(() => {
          published = to;
          busy = false;
        });
      }, 20);
    }
    const violations: string[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        violations.push(...(await ackedBeforeCommit()));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      const last = await runKilledThenToEnd(file, dir, KILLS, BIG ? 1500 : 700, BIG ? 3000 : 1200, (r) =>
        expect(r.signal, r.stderr).toBe('SIGKILL'),
      );
      expect(last.code, last.stderr).toBe(0);
    } finally {
      clearInterval(producer);
      watching = false;
      await watcher;
    }
    if (BIG)
      process.stderr.write(`\n[nats-kill] ${MESSAGES} messages, ${KILLS} SIGKILLs: ${Math.round(performance.now() - t0)} ms in all\n`);
    expect(published).toBe(MESSAGES);
    const runs = await db.query('SELECT count(*)::int AS n FROM _weir_runs WHERE pipeline = $1', [pipeline]);
    expect(runs.rows[0].n, 'the killed runs were resumed, not restarted').toBe(1);
    const got = await db.query(
      `SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d, min(seq::int) AS lo, max(seq::int) AS hi FROM "${table}"`,
    );
    expect(got.rows[0]).toEqual({ n: MESSAGES, d: MESSAGES, lo: 1, hi: MESSAGES });
    expect(violations).toEqual([]);
    const info = await jsm.consumers.info(stream, durable);
    expect(info.num_ack_pending).toBe(0);
    expect(info.ack_floor.stream_seq).toBe(MESSAGES);
  }, 300_000);
});
