#!/usr/bin/env node
/**
 * RabbitMQ benchmark (standalone: `node bench/stream-rabbitmq.js`; needs `npm run build`).
 *
 * Source: the same N generator rows, published as JSON messages to a durable queue,
 * drained into a PostgreSQL table two ways, alternately, in processes of their own:
 *   raw amqplib   a plain consumer script: prefetch 10,000, manual acks; every 5,000
 *                 messages (or 50 ms) one COPY … FROM STDIN (csv) in a transaction,
 *                 then one multiple ack — what a careful hand-written consumer does
 *   weir          `weir run` rabbitmq → postgres (append, at-least-once), epochs of
 *                 10,000 rows, JSON logs at info — observability on
 * Both end after 1 s without a message (weir: `stream.stop_when_idle: 1s`); messages/s
 * is N / (wall time − 1 s), start-up included. The two tables are compared row by row
 * (an md5 of every row in id order) — "content matched".
 *
 * Sink: N generator rows published as persistent JSON messages (the same bytes: both
 * use weir's exact JSON) on a confirm channel, batches of 1,000 each confirmed before
 * the next — raw amqplib vs `weir run` generator → rabbitmq; the queue's messages are
 * then consumed and hashed in order for both.
 *
 * Options: --rows N (200000) · --runs N (3; best of the runs is reported, baseline and
 * weir alternating) · --json FILE. Gate: weir's source ≥ 0.8× the raw consumer.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BIN, measure, ROOT } from './lib.js';

const GENERATOR = join(ROOT, 'dist', 'connectors', 'generator', 'index.js');
const VALUES = join(ROOT, 'dist', 'sdk', 'values.js');
const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };
const IDLE_S = 1;
const GATE = 0.8;

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '200000' },
    runs: { type: 'string', default: '3' },
    json: { type: 'string' },
    'raw-source': { type: 'string' },
    'raw-sink': { type: 'string' },
    table: { type: 'string' },
  },
});
const ROWS = Number(args.rows);
const RUNS = Math.max(1, Number(args.runs));
const amqp = (await import('amqplib')).default;
const pg = (await import('pg')).default;

const csvOf = (r) => `${r.id},${r.name},${r.email},${r.category},${r.amount},${r.quantity},${r.active},${r.created_at}\n`;

/** The raw consumer (a child process): queue → COPY batches → multiple ack; ends after IDLE_S without a message. */
async function rawSource(queue, table) {
  const { from: copyFrom } = await import('pg-copy-streams');
  const db = new pg.Client(PG);
  await db.connect();
  const model = await amqp.connect(AMQP_URL);
  const ch = await model.createChannel();
  await ch.prefetch(10_000);
  let buffer = [];
  let last = Date.now();
  let wake;
  await ch.consume(
    queue,
    (m) => {
      buffer.push(m);
      last = Date.now();
      if (buffer.length >= 5000) wake?.();
    },
    { noAck: false },
  );
  for (;;) {
    await new Promise((r) => {
      wake = r;
      setTimeout(r, 50);
    });
    if (buffer.length === 0) {
      if (Date.now() - last >= IDLE_S * 1000) break;
      continue;
    }
    const batch = buffer;
    buffer = [];
    let text = '';
    for (const m of batch) text += csvOf(JSON.parse(m.content.toString()));
    await db.query('BEGIN');
    const stream = db.query(copyFrom(`COPY "${table}" FROM STDIN (FORMAT csv)`));
    await new Promise((resolve, reject) => {
      stream.on('finish', resolve).on('error', reject);
      stream.end(text);
    });
    await db.query('COMMIT');
    ch.ack(batch[batch.length - 1], true);
  }
  await ch.close();
  await model.close();
  await db.end();
}

/** The raw publisher (a child process): generator rows as weir's JSON, batches of 1,000 confirmed one after the other. */
async function rawSink(queue) {
  const { generateRow } = await import(GENERATOR);
  const { stringifyJson } = await import(VALUES);
  const model = await amqp.connect(AMQP_URL);
  const ch = await model.createConfirmChannel();
  for (let id = 1; id <= ROWS; ) {
    const end = Math.min(ROWS, id + 999);
    for (; id <= end; id++) {
      const ok = ch.publish('', queue, Buffer.from(stringifyJson(generateRow(42, id))), {
        persistent: true,
        mandatory: true,
        contentType: 'application/json',
        messageId: String(id),
      });
      if (!ok) await new Promise((r) => ch.once('drain', r));
    }
    await ch.waitForConfirms();
  }
  await model.close();
}

if (args['raw-source']) {
  await rawSource(args['raw-source'], args.table);
  process.exit(0);
}
if (args['raw-sink']) {
  await rawSink(args['raw-sink']);
  process.exit(0);
}

// ---------------------------------------------------------------------------

if (!existsSync(GENERATOR)) {
  process.stderr.write('run `npm run build` first (the bench runs dist/)\n');
  process.exit(2);
}
const { generateRow } = await import(GENERATOR);
const { stringifyJson } = await import(VALUES);
const suffix = randomBytes(4).toString('hex');
const model = await amqp.connect(AMQP_URL);
const ch = await model.createConfirmChannel();
const db = new pg.Client(PG);
await db.connect();
const dir = mkdtempSync(join(tmpdir(), 'weir-bench-amqp-'));
const self = fileURLToPath(import.meta.url);
const fmt = (n) => Math.round(n).toLocaleString('en-US');

async function fill(queue) {
  await ch.assertQueue(queue, { durable: true });
  await ch.purgeQueue(queue);
  for (let id = 1; id <= ROWS; ) {
    const end = Math.min(ROWS, id + 999);
    for (; id <= end; id++)
      if (!ch.sendToQueue(queue, Buffer.from(stringifyJson(generateRow(42, id))), { persistent: true }))
        await new Promise((r) => ch.once('drain', r));
    await ch.waitForConfirms();
  }
}

async function freshTable(table) {
  await db.query(`DROP TABLE IF EXISTS "${table}"`);
  await db.query(
    `CREATE TABLE "${table}" (id bigint, name text, email text, category text, amount numeric, quantity int, active boolean, created_at timestamptz)`,
  );
}

async function tableDigest(table) {
  const r = await db.query(
    `SELECT count(*)::int AS n, md5(string_agg(concat_ws('|', id, name, email, category, amount, quantity, active, created_at), ',' ORDER BY id)) AS h FROM "${table}"`,
  );
  return r.rows[0];
}

/** Consumes a queue to its end and hashes the bodies in order. */
async function queueDigest(queue) {
  const c = await model.createChannel();
  await c.prefetch(5000);
  const { createHash } = await import('node:crypto');
  const h = createHash('md5');
  const total = (await c.checkQueue(queue)).messageCount;
  let n = 0;
  let ids = true;
  await new Promise((resolve) => {
    if (total === 0) resolve();
    c.consume(queue, (m) => {
      h.update(m.content);
      h.update(',');
      if (!m.properties.messageId) ids = false;
      c.ack(m);
      if (++n === total) resolve();
    });
  });
  await c.close();
  return { n, h: h.digest('hex'), ids };
}

async function sourceRun(variant) {
  const queue = `weirbench_amqp_src_${suffix}`;
  const table = `amqp_bench_${variant}_${suffix}`;
  await fill(queue);
  await freshTable(table);
  let r;
  if (variant === 'raw') r = await measure(process.execPath, [self, '--raw-source', queue, '--table', table]);
  else {
    const file = join(dir, 'source.yaml');
    writeFileSync(
      file,
      `pipeline: amqp-bench-${suffix}
source: { type: rabbitmq, url: "${AMQP_URL}", queue: ${queue} }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${table}, batch_size: 5000 }
stream: { epoch_rows: 10000, epoch_interval: 1s, stop_when_idle: ${IDLE_S}s }
checkpoint: { path: ${join(dir, `cp-${Math.random()}.db`)} }
`,
    );
    r = await measure(process.execPath, [BIN, 'run', file, '--log-format', 'json'], { cwd: dir });
  }
  if (r.code !== 0) throw new Error(`${variant} source failed (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  const digest = await tableDigest(table);
  await db.query(`DROP TABLE IF EXISTS "${table}"`);
  await ch.deleteQueue(queue);
  return { rate: ROWS / Math.max(0.001, r.seconds - IDLE_S), rssMb: r.rssMb, digest };
}

async function sinkRun(variant) {
  const queue = `weirbench_amqp_sink_${suffix}`;
  await ch.assertQueue(queue, { durable: true });
  await ch.purgeQueue(queue);
  let r;
  if (variant === 'raw') r = await measure(process.execPath, [self, '--raw-sink', queue, '--rows', String(ROWS)]);
  else {
    const file = join(dir, 'sink.yaml');
    writeFileSync(
      file,
      `pipeline: amqp-bench-sink-${suffix}
source: { type: generator, rows: ${ROWS}, partitions: 1 }
sink: { type: rabbitmq, url: "${AMQP_URL}", routing_key: ${queue}, batch_size: 1000 }
checkpoint: { path: ${join(dir, `cps-${Math.random()}.db`)} }
`,
    );
    r = await measure(process.execPath, [BIN, 'run', file, '--log-format', 'json'], { cwd: dir });
  }
  if (r.code !== 0) throw new Error(`${variant} sink failed (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  const digest = await queueDigest(queue);
  await ch.deleteQueue(queue);
  return { rate: ROWS / r.seconds, rssMb: r.rssMb, digest };
}

process.stdout.write(`rabbitmq benchmark: ${fmt(ROWS)} generator rows, best of ${RUNS} run(s), baseline and weir alternating\n`);
const results = { source: { raw: [], weir: [] }, sink: { raw: [], weir: [] } };
for (let i = 0; i < RUNS; i++) {
  for (const v of ['raw', 'weir']) {
    const s = await sourceRun(v);
    results.source[v].push(s);
    process.stdout.write(`  source ${v.padEnd(4)} run ${i + 1}: ${fmt(s.rate)} msg/s, peak RSS ${fmt(s.rssMb)} MB\n`);
  }
  for (const v of ['raw', 'weir']) {
    const s = await sinkRun(v);
    results.sink[v].push(s);
    process.stdout.write(`  sink   ${v.padEnd(4)} run ${i + 1}: ${fmt(s.rate)} msg/s, peak RSS ${fmt(s.rssMb)} MB\n`);
  }
}
const best = (xs) => xs.reduce((a, b) => (b.rate > a.rate ? b : a));
const report = {};
let failed = false;
for (const role of ['source', 'sink']) {
  const raw = best(results[role].raw);
  const weir = best(results[role].weir);
  const digests = [...results[role].raw, ...results[role].weir].map((x) => JSON.stringify({ n: x.digest.n, h: x.digest.h }));
  const matched = new Set(digests).size === 1 && raw.digest.n === ROWS && (role === 'source' || weir.digest.ids);
  const ratio = weir.rate / raw.rate;
  report[role] = {
    raw: { msg_s: Math.round(raw.rate), peak_rss_mb: Math.round(raw.rssMb) },
    weir: { msg_s: Math.round(weir.rate), peak_rss_mb: Math.round(weir.rssMb) },
    ratio,
    matched,
  };
  const gate = role === 'source' ? (ratio >= GATE ? 'PASS' : 'FAIL') : 'info';
  if (role === 'source' && ratio < GATE) failed = true;
  if (!matched) failed = true;
  process.stdout.write(
    `${role}: raw ${fmt(raw.rate)} msg/s (${fmt(raw.rssMb)} MB) · weir ${fmt(weir.rate)} msg/s (${fmt(weir.rssMb)} MB) · ratio ${ratio.toFixed(2)}x [${gate}] · content ${matched ? 'matched' : 'DIFFERS'}\n`,
  );
}
if (args.json) writeFileSync(args.json, JSON.stringify({ rows: ROWS, runs: RUNS, ...report }, null, 2));
await db.query(`DELETE FROM _weir_runs WHERE pipeline LIKE 'amqp-bench-%${suffix}'`).catch(() => {});
await db.query(`DELETE FROM _weir_checkpoints WHERE pipeline LIKE 'amqp-bench-%${suffix}'`).catch(() => {});
await db.end();
await model.close();
process.exit(failed ? 1 : 0);
