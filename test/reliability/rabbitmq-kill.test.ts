/**
 * The rabbitmq source survives SIGKILL, SIGTERM and a cut connection. Messages are
 * published to a queue while `weir run` (rabbitmq → PostgreSQL, `mode: upsert` on the
 * message's id: at-least-once delivery made exact by the key) is killed at random
 * moments and started again, until a last run ends on `stream.stop_when_idle`.
 *
 * What is checked, and how it could fail:
 * - every message is in the table exactly once (the upsert key), and a trigger counts
 *   the writes: at least one per message (at-least-once; more when a killed epoch was
 *   committed but not acknowledged, or written but not committed);
 * - nothing is acknowledged before its commit. The broker's view is exact only when no
 *   consumer holds messages (checkQueue counts ready messages, not unacknowledged
 *   ones), so after each kill — weir dead, its unacknowledged messages back in the
 *   queue — the test browses the queue (consumes every ready message without
 *   acknowledging, then closes the channel, which returns them): every published id
 *   not in the queue was acknowledged, and must be in the table. A source that
 *   acknowledged at delivery, or before the epoch's commit, loses the messages of the
 *   epoch a kill cut short, and this check names them. While weir runs, a watcher
 *   holds the weaker bound the counts allow: rows in the table ≥ published − ready −
 *   prefetch (at most `prefetch` are out unacknowledged).
 *
 * `WEIR_KILL_MESSAGES=50000` runs the kill case with more messages. Needs `npm run build`.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../src/observe/events.js';
import { type CliResult, runCli, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';
import { onProgress, TcpProxy } from './proxy.js';

const up = (await requireService('postgres')) && (await requireService('rabbitmq'));
const MESSAGES = Number(process.env.WEIR_KILL_MESSAGES ?? 4000);
const KILLS = 4;
const PREFETCH = 500;
const suffix = randomBytes(4).toString('hex');
const queueOf = (name: string) => `weirtest_amqp_${name}_${suffix}`;
const tableOf = (name: string) => `amqp_${name}_${suffix}`;
const pipelineOf = (name: string) => `amqp-${name}-${suffix}`;

let db: pg.Client;
let model: ChannelModel;
let ch: ConfirmChannel;
const queues: string[] = [];
const tables: string[] = [];
const pipelines: string[] = [];

beforeAll(async () => {
  if (!up) return;
  db = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
  await db.connect();
  model = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
  ch = await model.createConfirmChannel();
});

afterAll(async () => {
  if (!up) return;
  for (const q of queues) await ch.deleteQueue(q).catch(() => undefined);
  await model.close().catch(() => undefined);
  for (const t of tables) {
    await db.query(`DROP TABLE IF EXISTS "${t}"`);
    await db.query(`DROP TABLE IF EXISTS "${t}_writes"`);
  }
  for (const p of pipelines) {
    await db.query('DELETE FROM _weir_runs WHERE pipeline = $1', [p]).catch(() => {});
    await db.query('DELETE FROM _weir_checkpoints WHERE pipeline = $1', [p]).catch(() => {});
  }
  await db.end();
});

/** A queue, a table with the upsert key and a trigger counting every write into it, and a pipeline file. */
async function scenario(name: string, extra = '', port = 5672): Promise<{ queue: string; table: string; file: string; dir: string }> {
  const queue = queueOf(name);
  const table = tableOf(name);
  const pipeline = pipelineOf(name);
  queues.push(queue);
  tables.push(table);
  pipelines.push(pipeline);
  await ch.assertQueue(queue, { durable: true });
  await db.query(`CREATE TABLE "${table}" (id bigint PRIMARY KEY, v text)`);
  await db.query(`CREATE TABLE "${table}_writes" (id bigint)`);
  await db.query(`CREATE FUNCTION "${table}_count"() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO "${table}_writes" VALUES (NEW.id); RETURN NEW; END $$`);
  await db.query(`CREATE TRIGGER "${table}_writes" AFTER INSERT OR UPDATE ON "${table}" FOR EACH ROW EXECUTE FUNCTION "${table}_count"()`);
  const dir = tempDir(`weir-amqp-${name}-`);
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(
    file,
    `pipeline: ${pipeline}
source: { type: rabbitmq, port: ${port}, queue: ${queue}, prefetch: ${PREFETCH}, idle_heartbeat: 100ms }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${table}, mode: upsert, key_columns: [id], batch_size: 500 }
stream: { epoch_rows: 300, epoch_interval: 200ms, stop_when_idle: 1500ms }
${extra}`,
  );
  return { queue, table, file, dir };
}

/**
 * Publishes `{id, v}` messages 1..total in confirmed rounds of 50 every 10 ms;
 * `confirmed` is how many the broker took. With `trickle`, the last 10% go out one
 * every 50 ms until {@link finish}, so the runs never see the queue idle (and never end
 * on stop_when_idle) before the test is done killing them.
 */
function producer(queue: string, total: number, trickle = false, step = 50) {
  const state = { confirmed: 0, paused: false, trickle, done: undefined as Promise<void> | undefined };
  const fast = trickle ? Math.floor(total * 0.9) : total;
  let next = 1;
  state.done = (async () => {
    while (next <= total) {
      if (state.paused) {
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      const slow = state.trickle && next > fast;
      const end = Math.min(total, slow ? next : next + step - 1);
      for (; next <= end; next++)
        ch.sendToQueue(queue, Buffer.from(JSON.stringify({ id: next, v: `m${next}` })), { persistent: true, messageId: String(next) });
      await ch.waitForConfirms();
      state.confirmed = end;
      await new Promise((r) => setTimeout(r, slow ? 50 : 10));
    }
  })();
  /** Stops publishing between two rounds (what was sent is confirmed), for an exact look at the queue. */
  const pause = async () => {
    state.paused = true;
    await ch.waitForConfirms();
  };
  return {
    state,
    pause,
    resume: () => {
      state.paused = false;
    },
    finish: () => {
      state.trickle = false;
      return state.done;
    },
  };
}

/**
 * Cuts every connection through the proxy once the producer has confirmed each of `at`
 * messages and weir's attempt is consuming: two of its progress lines since the
 * previous cut show different row counts. So each cut fails an attempt mid-run, not a
 * connection being set up (which the source retries itself) nor a backoff, however
 * fast weir drains the queue; progress thresholds alone would not do, a fast run
 * passes both between two lines.
 */
function cutWhileConsuming(proxy: TcpProxy, state: { confirmed: number }, at: readonly number[]) {
  const cuts: string[] = [];
  const t0 = performance.now();
  let lastRows = -1;
  let moved = false;
  const onStdout = onProgress((rows) => {
    if (lastRows >= 0 && rows !== lastRows) moved = true;
    lastRows = rows;
  });
  const timer = setInterval(() => {
    const due = at[cuts.length];
    if (due === undefined) return clearInterval(timer);
    if (state.confirmed < due || !moved) return;
    cuts.push(`${proxy.cutAll()} connections cut at ${state.confirmed} published (${Math.round(performance.now() - t0)} ms)`);
    lastRows = -1;
    moved = false;
  }, 10);
  timer.unref();
  return { cuts, onStdout };
}

async function depth(queue: string): Promise<{ messageCount: number; consumerCount: number }> {
  const probe = await model.createChannel();
  try {
    const { messageCount, consumerCount } = await probe.checkQueue(queue);
    return { messageCount, consumerCount };
  } finally {
    await probe.close().catch(() => undefined);
  }
}

/** The ids ready in the queue, read without acknowledging (the channel's close returns them). Only exact with no other consumer. */
async function browse(queue: string): Promise<Set<number>> {
  for (let i = 0; i < 100 && (await depth(queue)).consumerCount > 0; i++) await new Promise((r) => setTimeout(r, 50));
  const ready = (await depth(queue)).messageCount;
  const seen = new Set<number>();
  const c = await model.createChannel();
  try {
    await c.consume(queue, (m) => m && seen.add(Number(m.properties.messageId)), { noAck: false });
    for (let i = 0; i < 200 && seen.size < ready; i++) await new Promise((r) => setTimeout(r, 20));
  } finally {
    await c.close();
  }
  return seen;
}

async function tableIds(table: string): Promise<Set<number>> {
  return new Set((await db.query(`SELECT id FROM "${table}"`)).rows.map((r) => Number(r.id)));
}

/** Published ids gone from the queue (acknowledged) that are not in the table: acknowledged before their commit. */
async function ackedNotCommitted(queue: string, table: string, published: number): Promise<number[]> {
  const inQueue = await browse(queue);
  const stored = await tableIds(table);
  const lost: number[] = [];
  for (let id = 1; id <= published; id++) if (!inQueue.has(id) && !stored.has(id)) lost.push(id);
  return lost;
}

async function finalState(queue: string, table: string) {
  const got = await db.query(
    `SELECT count(*)::int AS n, count(DISTINCT id)::int AS d, min(id)::int AS lo, max(id)::int AS hi FROM "${table}"`,
  );
  const writes = await db.query(`SELECT count(*)::int AS n FROM "${table}_writes"`);
  return { rows: got.rows[0], writes: writes.rows[0].n as number, queue: await depth(queue) };
}

describe.skipIf(!up)('the rabbitmq source in epochs', () => {
  it(`survives ${KILLS} SIGKILLs at random moments: every message once in PostgreSQL, none acknowledged before it was committed`, async () => {
    const { queue, table, file, dir } = await scenario('kill');
    const p = producer(queue, MESSAGES, true);
    const violations: string[] = [];
    let browsing = 0; // odd while the test browses the queue
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        // ready first, rows after: anything acknowledged by the time of the first read was committed before the second
        const round = browsing;
        const published = p.state.confirmed;
        const ready = (await depth(queue)).messageCount;
        const rows = (await db.query(`SELECT count(*)::int AS n FROM "${table}"`)).rows[0].n as number;
        // the browse holds every ready message itself: no bound then
        if (round === browsing && browsing % 2 === 0 && rows < published - ready - PREFETCH)
          violations.push(`${rows} rows with ${published} published, ${ready} ready`);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const runs: CliResult[] = [];
    const killedAt: string[] = [];
    try {
      for (let i = 0; i < KILLS; i++) {
        // a random moment after the run's first epoch commit (start-up time varies with the machine's load)
        const after = Math.floor(Math.random() * 1200);
        let armed = false;
        const r = await runCli(['run', file, '--log-format', 'json', '--log-level', 'debug'], {
          cwd: dir,
          onStdout: (chunk, kill) => {
            if (armed || !chunk.includes('"event":"epoch_commit"')) return;
            armed = true;
            setTimeout(() => kill('SIGKILL'), after);
          },
        });
        runs.push(r);
        expect(r.signal, r.stderr).toBe('SIGKILL');
        await p.pause();
        browsing++;
        const lost = await ackedNotCommitted(queue, table, p.state.confirmed).finally(() => browsing++);
        expect(lost, `after kill ${i + 1} (${after} ms): acknowledged and not in the table`).toEqual([]);
        killedAt.push(`+${after} ms: ${(await tableIds(table)).size} rows`);
        p.resume();
      }
      await p.finish();
      const last = await runCli(['run', file, '--summary-json', join(dir, 'summary.json')], { cwd: dir, timeoutMs: 120_000 });
      expect(last.code, last.stderr).toBe(0);
    } finally {
      watching = false;
      await watcher;
    }
    expect(p.state.confirmed).toBe(MESSAGES);
    const runsRow = await db.query('SELECT count(*)::int AS n FROM _weir_runs WHERE pipeline = $1', [pipelineOf('kill')]);
    expect(runsRow.rows[0].n, 'the killed runs were resumed, not restarted').toBe(1);
    const end = await finalState(queue, table);
    expect(end.rows).toEqual({ n: MESSAGES, d: MESSAGES, lo: 1, hi: MESSAGES });
    expect(end.writes).toBeGreaterThanOrEqual(MESSAGES); // at-least-once: redelivered epochs written again
    expect(end.queue).toEqual({ messageCount: 0, consumerCount: 0 });
    expect(violations).toEqual([]);
    const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as RunSummary;
    expect(summary.status).toBe('succeeded');
    process.stdout.write(
      `[rabbitmq-kill] ${MESSAGES} messages, ${KILLS} SIGKILLs (${killedAt.join(', ')}): ${end.writes} writes (${end.writes - MESSAGES} redelivered and written again), ${MESSAGES} rows once each\n`,
    );
  }, 240_000);

  it('SIGTERM commits and acknowledges the open epoch, exits 143, and the next run continues', async () => {
    const total = 3000;
    const { queue, table, file, dir } = await scenario('term');
    const p = producer(queue, total);
    let sent = false;
    const r = await runCli(['run', file, '--log-format', 'json', '--log-level', 'debug'], {
      cwd: dir,
      onStdout: (chunk, kill) => {
        if (!sent && chunk.includes('"event":"epoch_commit"')) {
          sent = true;
          setTimeout(() => kill('SIGTERM'), 150); // inside a later epoch, with rows in it
        }
      },
    });
    expect(r.code, r.stderr).toBe(143);
    await p.pause();
    const inQueue = await browse(queue);
    const stored = await tableIds(table);
    expect(stored.size).toBeGreaterThan(0);
    // committed epochs were all acknowledged: none of the table's messages is still in the queue …
    expect([...stored].filter((id) => inQueue.has(id))).toEqual([]);
    // … and every message gone from the queue is in the table
    const gone = Array.from({ length: p.state.confirmed }, (_, i) => i + 1).filter((id) => !inQueue.has(id));
    expect(gone.filter((id) => !stored.has(id))).toEqual([]);
    const writesBefore = (await db.query(`SELECT count(*)::int AS n FROM "${table}_writes"`)).rows[0].n as number;
    expect(writesBefore).toBe(stored.size); // nothing was written twice: the drain committed what it had
    p.resume();
    await p.state.done;
    const next = await runCli(['run', file], { cwd: dir, timeoutMs: 60_000 });
    expect(next.code, next.stderr).toBe(0);
    const end = await finalState(queue, table);
    expect(end.rows).toEqual({ n: total, d: total, lo: 1, hi: total });
    expect(end.writes).toBe(total); // no kill: every message written once
    expect(end.queue).toEqual({ messageCount: 0, consumerCount: 0 });
  }, 120_000);

  it('a connection cut twice mid-run (TCP proxy) fails the attempt retryably; the partition runs again and nothing is lost', async () => {
    const total = 6000;
    const proxy = await TcpProxy.start(5672);
    try {
      const { queue, table, file, dir } = await scenario(
        'cut',
        'retry: { max_attempts: 5, initial_delay: 50ms, max_delay: 1s, partition_attempts: 4 }\nprogress_interval: 200ms\n',
        proxy.port,
      );
      // 20 messages every ~10 ms: about 3 s of publishing, which both cuts fall into
      const p = producer(queue, total, false, 20);
      const { cuts, onStdout } = cutWhileConsuming(proxy, p.state, [800, 2400]);
      const r = await runCli(['run', file, '--log-format', 'json', '--summary-json', join(dir, 'summary.json')], {
        cwd: dir,
        timeoutMs: 90_000,
        onStdout,
      });
      await p.state.done;
      expect(cuts, r.stderr).toHaveLength(2);
      expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(0);
      const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as RunSummary;
      expect(summary.totals.partition_retries).toBeGreaterThanOrEqual(2);
      const end = await finalState(queue, table);
      expect(end.rows).toEqual({ n: total, d: total, lo: 1, hi: total });
      expect(end.queue).toEqual({ messageCount: 0, consumerCount: 0 });
      process.stdout.write(
        `[rabbitmq-cut] ${cuts.join('; ')}; ${summary.totals.partition_retries} partition retries, ${end.writes} writes of ${total} messages\n`,
      );
    } finally {
      await proxy.close();
    }
  }, 120_000);
});
