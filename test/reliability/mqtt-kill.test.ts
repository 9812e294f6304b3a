/**
 * The mqtt source survives SIGKILL, SIGTERM and a cut connection. A Mosquitto of the
 * test's own (`max_queued_messages 0`: the default 1000 would DROP what a killed weir
 * misses while it is down) takes messages from a producer while `weir run` (mqtt →
 * PostgreSQL, upsert on the message's `seq`) is killed at random moments and started
 * again; the last run ends on `stream.stop_when_idle`.
 *
 * The watcher: after each kill, with the producer paused and every publish
 * acknowledged by the broker, the test connects as weir's client id and collects all
 * the session holds (what weir never acknowledged, sent again, and what is queued),
 * acknowledging nothing. Every message published and not in the table must be
 * there: a message acknowledged before its commit, with weir killed before the
 * commit, is in neither — the check fails. Needs `npm run build`.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasMosquitto, type OwnBroker, sessionHolds, startMosquitto, testClient } from '../../src/connectors/mqtt/test-broker.js';
import { type CliResult, runCli, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';
import { TcpProxy } from './proxy.js';

const up = (await requireService('postgres')) && (await requireService('mqtt')) && hasMosquitto();
const MESSAGES = Number(process.env.WEIR_KILL_MESSAGES ?? 4000);
const KILLS = 4;
/** Messages per producer step (every 20 ms): the stream lasts about as long as the kills. */
const STEP = Math.max(10, Math.ceil(MESSAGES / 400));
/**
 * The last run's `stream.stop_when_idle`. With tens of thousands of messages queued for the
 * session, Mosquitto 2.0 pauses for seconds between handing over one Receive Maximum
 * window and the next (docs/mqtt.md): the run must not take that pause for the end.
 */
const IDLE = MESSAGES > 10_000 ? '10s' : '1500ms';
const TIMEOUT = MESSAGES > 10_000 ? 900_000 : 150_000;
const suffix = randomBytes(4).toString('hex');

let db: pg.Client;
let broker: OwnBroker;

beforeAll(async () => {
  if (!up) return;
  db = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
  await db.connect();
  broker = await startMosquitto(['max_queued_messages 0']);
});

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  if (!up) return;
  for (const c of cleanups) await c().catch(() => {});
  await broker?.stop();
  await db.end();
});

/** One scenario's names, pipeline file, producer and probe. */
async function scenario(name: string, extra: { url?: string; yaml?: string; step?: number } = {}) {
  const perStep = extra.step ?? STEP;
  const table = `mqtt_${name}_${suffix}`;
  const pipeline = `mqtt-${name}-${suffix}`;
  const clientId = `weirtest-${name}-${suffix}`;
  const topic = `weirtest/mqtt/${name}/${suffix}`;
  cleanups.push(
    () => db.query(`DROP TABLE IF EXISTS "${table}"`),
    () => db.query('DELETE FROM _weir_runs WHERE pipeline = $1', [pipeline]),
    () => db.query('DELETE FROM _weir_checkpoints WHERE pipeline = $1', [pipeline]),
  );
  // the session exists before the first message, as after weir's first run
  const first = await testClient(broker.url, { clientId, clean: false, properties: { sessionExpiryInterval: 3600 } });
  await first.subscribeAsync(`${topic}/+`, { qos: 1 });
  await first.endAsync();
  const dir = tempDir(`weir-mqtt-${name}-`);
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(
    file,
    `pipeline: ${pipeline}
source: { type: mqtt, url: "${extra.url ?? broker.url}", topics: ["${topic}/+"], client_id: ${clientId}, reconnect_period: 200ms }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${table}, mode: upsert, key_columns: [seq] }
delivery: at-least-once
stream: { epoch_rows: 300, epoch_interval: 200ms, stop_when_idle: ${IDLE} }
${extra.yaml ?? ''}
`,
  );
  const pub: MqttClient = await testClient(broker.url);
  cleanups.push(() => pub.endAsync());
  const producer = {
    published: 0,
    paused: false,
    done: undefined as Promise<void> | undefined,
    /** Publishes every message, STEP every 20 ms (over about 10 s of running), each step acknowledged by the broker; holds while paused. */
    start() {
      this.done = (async () => {
        while (this.published < MESSAGES) {
          if (!this.paused) {
            const step: Promise<unknown>[] = [];
            for (let i = 0; i < perStep && this.published + step.length < MESSAGES; i++) {
              const seq = this.published + step.length + 1;
              step.push(pub.publishAsync(`${topic}/${seq % 7}`, JSON.stringify({ seq, body: `message ${seq}` }), { qos: 1 }));
            }
            await Promise.all(step);
            this.published += step.length;
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
    },
    async pause() {
      this.paused = true;
      await new Promise((r) => setTimeout(r, 60)); // the step in flight is acknowledged
    },
  };
  const stored = async (): Promise<Set<number>> => {
    const exists = await db.query('SELECT to_regclass($1) IS NOT NULL AS ok', [table]);
    if (!exists.rows[0]?.ok) return new Set();
    return new Set((await db.query(`SELECT seq::int AS seq FROM "${table}"`)).rows.map((r) => r.seq as number));
  };
  /** With weir stopped: what the session holds, what is in the table, and the messages in neither. */
  const probe = async () => {
    await producer.pause();
    const table = await stored();
    const held = new Set((await sessionHolds(clientId, broker.url, 1200)).map((p) => (JSON.parse(p.toString()) as { seq: number }).seq));
    const lost: number[] = [];
    for (let s = 1; s <= producer.published; s++) if (!table.has(s) && !held.has(s)) lost.push(s);
    producer.paused = false;
    return { table, held, lost };
  };
  const totals = async () =>
    (await db.query(`SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d, min(seq)::int AS lo, max(seq)::int AS hi FROM "${table}"`))
      .rows[0];
  const runs = async () => (await db.query('SELECT count(*)::int AS n FROM _weir_runs WHERE pipeline = $1', [pipeline])).rows[0].n;
  return { dir, file, clientId, producer, probe, totals, runs };
}

describe.skipIf(!up)('the mqtt source in epochs', () => {
  it(
    `survives ${KILLS} SIGKILLs at random moments: every message once in PostgreSQL, none acknowledged before it was committed`,
    async () => {
      const s = await scenario('kill');
      s.producer.start();
      const lost: string[] = [];
      let redelivered = 0;
      for (let i = 0; i < KILLS; i++) {
        // a random moment once messages flow (the first epoch committed): mid-epoch, mid-commit or mid-acknowledgement
        const after = 20 + Math.floor(Math.random() * 700);
        let armed = false;
        const r: CliResult = await runCli(['run', s.file, '--log-format', 'json', '--log-level', 'debug'], {
          cwd: s.dir,
          onStdout: (chunk, kill) => {
            if (armed || !chunk.includes('"event":"epoch_commit"')) return;
            armed = true;
            setTimeout(() => kill('SIGKILL'), after);
          },
        });
        expect(r.signal, r.stderr).toBe('SIGKILL');
        const p = await s.probe();
        redelivered += p.held.size;
        if (p.lost.length)
          lost.push(`after kill ${i + 1} (${after} ms): ${p.lost.length} messages neither stored nor held, e.g. ${p.lost.slice(0, 5)}`);
      }
      await s.producer.done;
      const last = await runCli(['run', s.file], { cwd: s.dir, timeoutMs: 90_000 });
      expect(last.code, last.stderr).toBe(0);
      expect(lost).toEqual([]);
      expect(redelivered, 'the kills left unacknowledged messages with the session').toBeGreaterThan(0);
      expect(await s.runs(), 'the killed runs were resumed, not restarted').toBe(1);
      expect(await s.totals()).toEqual({ n: MESSAGES, d: MESSAGES, lo: 1, hi: MESSAGES });
      expect(await sessionHolds(s.clientId, broker.url, 800), 'every message acknowledged in the end').toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'SIGTERM commits the open epoch and acknowledges it, exits 143; the next run continues without loss',
    async () => {
      const s = await scenario('term', { step: STEP * 4 });
      s.producer.start();
      let sent = false;
      const r = await runCli(['run', s.file, '--log-format', 'json', '--log-level', 'debug'], {
        cwd: s.dir,
        onStdout: (chunk, kill) => {
          if (!sent && chunk.includes('"event":"epoch_commit"')) {
            sent = true;
            setTimeout(() => kill('SIGTERM'), 300);
          }
        },
      });
      expect(r.code, r.stderr).toBe(143);
      const p = await s.probe();
      expect(p.lost).toEqual([]);
      expect(p.table.size).toBeGreaterThan(0);
      // the drain committed and acknowledged everything it had read: nothing in the table is still held
      expect([...p.held].filter((seq) => p.table.has(seq))).toEqual([]);
      await s.producer.done;
      const last = await runCli(['run', s.file], { cwd: s.dir, timeoutMs: 90_000 });
      expect(last.code, last.stderr).toBe(0);
      expect(await s.totals()).toEqual({ n: MESSAGES, d: MESSAGES, lo: 1, hi: MESSAGES });
      expect(await sessionHolds(s.clientId, broker.url, 800)).toEqual([]);
    },
    TIMEOUT,
  );

  it('a refused password: weir check exits 3 and weir run fails with a clear line, neither prints the password', async () => {
    const canary = `canary-${suffix}-pw`;
    const guarded = await startMosquitto([], { weir: 'the-right-one' });
    cleanups.push(() => guarded.stop());
    const dir = tempDir('weir-mqtt-auth-');
    const file = join(dir, 'pipeline.yaml');
    writeFileSync(
      file,
      `pipeline: mqtt-auth-${suffix}
source: { type: mqtt, url: "${guarded.url}", topics: ["weirtest/mqtt/auth/#"], client_id: weirtest-auth-${suffix}, username: weir, password: "\${env:WEIR_TEST_MQTT_PASSWORD}" }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: mqtt_auth_${suffix} }
stream: { stop_when_idle: 1s }
`,
    );
    cleanups.push(
      () => db.query(`DROP TABLE IF EXISTS "mqtt_auth_${suffix}"`),
      () => db.query('DELETE FROM _weir_runs WHERE pipeline = $1', [`mqtt-auth-${suffix}`]),
    );
    const env = { WEIR_TEST_MQTT_PASSWORD: canary };
    const check = await runCli(['check', file], { cwd: dir, env });
    expect(check.code, check.stdout + check.stderr).toBe(3);
    expect(check.stdout + check.stderr).toMatch(/authentication.*(Bad User Name or Password|Not authorized)/s);
    const run = await runCli(['run', file, '--log-format', 'json'], { cwd: dir, env });
    expect(run.code, run.stderr).toBe(2); // a refused password is a configuration error, as for every connector
    expect(run.stdout + run.stderr).toMatch(/check username and password/);
    for (const output of [check.stdout, check.stderr, run.stdout, run.stderr]) expect(output).not.toContain(canary);
  });

  it(
    'a connection cut twice mid-run (TCP proxy) loses nothing: the source reconnects to its session, one run, exit 0',
    async () => {
      const proxy = await TcpProxy.start(broker.port);
      cleanups.push(() => proxy.close());
      const s = await scenario('cut', { url: `mqtt://127.0.0.1:${proxy.port}`, yaml: 'progress_interval: 200ms', step: STEP * 2 });
      s.producer.start();
      const { cuts, onStdout } = proxy.cutAtProgress([Math.floor(MESSAGES / 4), Math.floor(MESSAGES / 2)]);
      const r = await runCli(['run', s.file, '--log-format', 'json'], { cwd: s.dir, timeoutMs: 90_000, onStdout });
      expect(cuts, r.stderr).toHaveLength(2);
      expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(0);
      expect(r.stdout).toContain('reconnected to the session');
      expect(proxy.accepted).toBeGreaterThanOrEqual(3);
      expect(await s.totals()).toEqual({ n: MESSAGES, d: MESSAGES, lo: 1, hi: MESSAGES });
      expect(await sessionHolds(s.clientId, broker.url, 800)).toEqual([]);
    },
    TIMEOUT,
  );
});
