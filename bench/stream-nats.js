#!/usr/bin/env node
/**
 * NATS JetStream benchmark (standalone: `node bench/stream-nats.js`; needs `npm run build`,
 * PostgreSQL and NATS with JetStream on this machine).
 *
 * Source: the same `--messages` JSON messages (generator rows, seed 42) are drained from a
 * JetStream stream into PostgreSQL two ways, alternated, best of `--runs`:
 *   raw     a plain nats.js script: one durable pull consumer (consume, `--batch` per pull),
 *           rows COPYed (text format) in batches of `--batch-size` inside one transaction per
 *           epoch (`--epoch-rows` rows or 1 s, as weir's defaults), acknowledged after the COMMIT
 *   weir    `weir run`: nats → postgres, delivery: exactly-once (the checkpoint stored in the
 *           epoch's transaction), JSON logs at info — observability on
 * Both end once no message arrived for 1 s; that wait is subtracted from both wall times
 * (process start-up included in both). weir creates its table in the first run, the raw
 * script copies its shape; later runs start from empty tables. The two tables must hold the
 * same rows (md5 of every row as text, in id order).
 *
 * Sink: the same generator rows published to a stream two ways: raw (js.publish, `--inflight`
 * awaiting their PubAck, each with a Nats-Msg-Id) and weir (generator → nats sink); the
 * stream must hold `--messages` messages with the same payloads (md5 of all payloads).
 *
 * Prints messages/s, peak RSS and weir's ratio to raw; exits 1 when the source ratio is below 0.8.
 * Options: --messages N (200000) · --runs N (3) · --batch N (1000) · --batch-size N (5000)
 * · --epoch-rows N (10000) · --inflight N (1000) · --json FILE · --no-sink (the source only).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BIN, measure, ROOT } from './lib.js';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '200000' },
    runs: { type: 'string', default: '3' },
    batch: { type: 'string', default: '5000' },
    'batch-size': { type: 'string', default: '5000' },
    'epoch-rows': { type: 'string', default: '10000' },
    inflight: { type: 'string', default: '1000' },
    json: { type: 'string' },
    'no-sink': { type: 'boolean' },
    child: { type: 'string' }, // internal: raw-source | raw-sink
    stream: { type: 'string' },
    table: { type: 'string' },
  },
});
const N = Number(args.messages);
const RUNS = Math.max(1, Number(args.runs));
const BATCH = Number(args.batch);
const BATCH_SIZE = Number(args['batch-size']);
const EPOCH_ROWS = Number(args['epoch-rows']);
const INFLIGHT = Number(args.inflight);
const IDLE_MS = 1000;
const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };
const GENERATOR = join(ROOT, 'dist', 'connectors', 'generator', 'index.js');
const VALUES = join(ROOT, 'dist', 'sdk', 'values.js');

const { connect } = await import('@nats-io/transport-node');
const { jetstream, jetstreamManager } = await import('@nats-io/jetstream');
const pg = (await import('pg')).default;

// ---------------------------------------------------------------------------
// raw children

/** A value as COPY text (the format weir's postgres sink uses for these types). */
const copyText = (v) =>
  v === null || v === undefined
    ? '\\N'
    : String(v).replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));

async function rawSource(stream, table) {
  const { from: copyFrom } = await import('pg-copy-streams');
  const db = new pg.Client(PG);
  await db.connect();
  const cols = (
    await db.query('SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position', [table])
  ).rows.map((r) => r.column_name);
  const copySql = `COPY "${table}" (${cols.map((c) => `"${c}"`).join(', ')}) FROM STDIN`;
  const nc = await connect({ servers: '127.0.0.1:4222' });
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(stream, { durable_name: 'raw', ack_policy: 'explicit', max_ack_pending: 50_000 });
  const consumer = await jetstream(nc).consumers.get(stream, 'raw');
  const messages = await consumer.consume({ max_messages: BATCH, expires: 5000 });
  const t0 = performance.now();
  let epoch = [];
  let rows = [];
  let opened = performance.now();
  let last = performance.now();
  let total = 0;
  const copy = async () => {
    if (rows.length === 0) return;
    const s = db.query(copyFrom(copySql));
    let text = '';
    for (const r of rows) text += `${cols.map((c) => copyText(r[c])).join('\t')}\n`;
    await new Promise((res, rej) => {
      s.on('finish', res);
      s.on('error', rej);
      s.end(text);
    });
    rows = [];
  };
  const commit = async () => {
    await copy();
    await db.query('COMMIT');
    for (const m of epoch) m.ack();
    await nc.flush();
    total += epoch.length;
    epoch = [];
  };
  let busy = false;
  const idle = setInterval(() => {
    if (!busy && performance.now() - last >= IDLE_MS) messages.stop();
  }, 50);
  for await (const m of messages) {
    busy = true;
    if (epoch.length === 0) {
      await db.query('BEGIN');
      opened = performance.now();
    }
    epoch.push(m);
    rows.push(m.json());
    if (rows.length >= BATCH_SIZE) await copy();
    if (epoch.length >= EPOCH_ROWS || performance.now() - opened >= 1000) await commit();
    last = performance.now();
    busy = false;
  }
  clearInterval(idle);
  if (epoch.length > 0) await commit();
  const seconds = (performance.now() - t0) / 1000;
  await nc.close();
  await db.end();
  process.stdout.write(`${JSON.stringify({ seconds, rows: total })}\n`);
}

async function rawSink(stream) {
  const { generateRow } = await import(GENERATOR);
  const { stringifyJson } = await import(VALUES);
  const nc = await connect({ servers: '127.0.0.1:4222' });
  const js = jetstream(nc);
  const enc = new TextEncoder();
  const t0 = performance.now();
  const inFlight = new Set();
  for (let id = 1; id <= N; id++) {
    const p = js
      .publish(`${stream}.rows`, enc.encode(stringifyJson(generateRow(42, id))), { msgID: `raw.${id}` })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= INFLIGHT) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const seconds = (performance.now() - t0) / 1000;
  await nc.close();
  process.stdout.write(`${JSON.stringify({ seconds, rows: N })}\n`);
}

if (args.child === 'raw-source') {
  await rawSource(args.stream, args.table);
  process.exit(0);
}
if (args.child === 'raw-sink') {
  await rawSink(args.stream);
  process.exit(0);
}

// ---------------------------------------------------------------------------
// the comparison

if (!existsSync(GENERATOR)) {
  process.stderr.write('build first: npm run build\n');
  process.exit(2);
}
const { generateRow } = await import(GENERATOR);
const { stringifyJson } = await import(VALUES);
const tag = randomBytes(3).toString('hex');
const nc = await connect({ servers: '127.0.0.1:4222' });
const js = jetstream(nc);
const jsm = await jetstreamManager(nc);
const db = new pg.Client(PG);
await db.connect();
const dir = mkdtempSync(join(tmpdir(), 'weir-bench-nats-'));
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const streams = [];
const tables = [];

async function freshStream(name) {
  await jsm.streams.delete(name).catch(() => {});
  await jsm.streams.add({ name, subjects: [`${name}.>`] });
  if (!streams.includes(name)) streams.push(name);
}

async function fill(name) {
  const enc = new TextEncoder();
  const inFlight = new Set();
  for (let id = 1; id <= N; id++) {
    const p = js.publish(`${name}.rows`, enc.encode(stringifyJson(generateRow(42, id)))).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= 2000) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
}

const tableDigest = async (table) =>
  (await db.query(`SELECT count(*)::int AS n, md5(string_agg(t::text, E'\\n' ORDER BY id)) AS md5 FROM "${table}" t`)).rows[0];

async function streamDigest(name) {
  const info = await jsm.streams.info(name);
  const c = await jsm.consumers.add(name, { ack_policy: 'none', inactive_threshold: 60_000_000_000 });
  const consumer = await js.consumers.get(name, c.name);
  const payloads = [];
  while (payloads.length < info.state.messages) {
    const it = await consumer.fetch({ max_messages: Math.min(10_000, info.state.messages - payloads.length), expires: 10_000 });
    const before = payloads.length;
    for await (const m of it) payloads.push(m.string());
    if (payloads.length === before) break;
  }
  payloads.sort();
  return { n: info.state.messages, md5: createHash('md5').update(payloads.join('\n')).digest('hex') };
}

function child(mode, extra) {
  return measure(process.execPath, [
    join(ROOT, 'bench', 'stream-nats.js'),
    '--child',
    mode,
    '--messages',
    String(N),
    '--batch',
    String(BATCH),
    '--batch-size',
    String(BATCH_SIZE),
    '--epoch-rows',
    String(EPOCH_ROWS),
    '--inflight',
    String(INFLIGHT),
    ...extra,
  ]);
}

async function weirSource(stream, table) {
  const file = join(dir, 'source.yaml');
  writeFileSync(
    file,
    `pipeline: nats-bench-${tag}
source: { type: nats, stream: ${stream}, durable: weir, batch: ${BATCH} }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${table}, batch_size: ${BATCH_SIZE} }
delivery: exactly-once
stream: { epoch_rows: ${EPOCH_ROWS}, epoch_interval: 1s, stop_when_idle: ${IDLE_MS}ms }
`,
  );
  const r = await measure(process.execPath, [BIN, 'run', file, '--log-format', 'json', '--fresh'], { cwd: dir });
  if (r.code !== 0) throw new Error(`weir run failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return { seconds: r.seconds - IDLE_MS / 1000, rssMb: r.rssMb };
}

async function weirSink(stream) {
  const file = join(dir, 'sink.yaml');
  writeFileSync(
    file,
    `pipeline: nats-bench-sink-${tag}
source: { type: generator, rows: ${N}, seed: 42 }
sink: { type: nats, stream: ${stream}, subject: "${stream}.rows", max_in_flight: ${INFLIGHT} }
batch: { rows: ${BATCH_SIZE} }
`,
  );
  const r = await measure(process.execPath, [BIN, 'run', file, '--log-format', 'json', '--fresh'], { cwd: dir });
  if (r.code !== 0) throw new Error(`weir run failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return { seconds: r.seconds, rssMb: r.rssMb };
}

const results = { source: { raw: [], weir: [] }, sink: { raw: [], weir: [] } };
const matched = { source: true, sink: true };
try {
  console.log(
    `nats benchmark: ${fmt(N)} JSON messages, pull batch ${BATCH}, COPY batch ${BATCH_SIZE}, epochs of ${fmt(EPOCH_ROWS)}, ${RUNS} run(s) each`,
  );
  const srcStream = `weirtest_nats_bench_${tag}`;
  await freshStream(srcStream);
  await fill(srcStream);
  const weirTable = `nats_bench_weir_${tag}`;
  const rawTable = `nats_bench_raw_${tag}`;
  tables.push(weirTable, rawTable);
  let reference;
  for (let run = 0; run < RUNS; run++) {
    for (const variant of ['weir', 'raw']) {
      await jsm.consumers.delete(srcStream, variant).catch(() => {});
      if (variant === 'weir') {
        // created by the first run; later runs start from an empty table, as the raw script does
        if (run > 0) await db.query(`TRUNCATE "${weirTable}"`);
        await db.query('DELETE FROM _weir_runs WHERE pipeline = $1', [`nats-bench-${tag}`]).catch(() => {});
        await db.query('DELETE FROM _weir_checkpoints WHERE pipeline = $1', [`nats-bench-${tag}`]).catch(() => {});
        const r = await weirSource(srcStream, weirTable);
        results.source.weir.push(r);
      } else {
        await db.query(`DROP TABLE IF EXISTS "${rawTable}"`);
        await db.query(`CREATE TABLE "${rawTable}" (LIKE "${weirTable}")`);
        const r = await child('raw-source', ['--stream', srcStream, '--table', rawTable]);
        if (r.code !== 0) throw new Error(`raw source failed: ${r.stderr.slice(-2000)}`);
        results.source.raw.push({ seconds: r.seconds - IDLE_MS / 1000, rssMb: r.rssMb }); // wall time, as weir's
      }
      const d = await tableDigest(variant === 'weir' ? weirTable : rawTable);
      reference ??= d;
      if (d.n !== N || d.md5 !== reference.md5) matched.source = false;
      const last = results.source[variant].at(-1);
      console.log(
        `  source ${variant.padEnd(4)} run ${run + 1}: ${fmt(N / last.seconds)} msg/s, peak RSS ${fmt(last.rssMb)} MB, ${d.n} rows`,
      );
    }
  }
  await jsm.streams.delete(srcStream).catch(() => {});
  const sinkStream = `weirtest_nats_bench_sink_${tag}`;
  let sinkRef;
  for (let run = 0; run < (args['no-sink'] ? 0 : RUNS); run++) {
    for (const variant of ['weir', 'raw']) {
      await freshStream(sinkStream);
      let r;
      if (variant === 'weir') r = await weirSink(sinkStream);
      else {
        const m = await child('raw-sink', ['--stream', sinkStream]);
        if (m.code !== 0) throw new Error(`raw sink failed: ${m.stderr.slice(-2000)}`);
        r = { seconds: m.seconds, rssMb: m.rssMb }; // wall time, as weir's
      }
      results.sink[variant].push(r);
      const d = await streamDigest(sinkStream);
      sinkRef ??= d;
      if (d.n !== N || d.md5 !== sinkRef.md5) matched.sink = false;
      console.log(
        `  sink   ${variant.padEnd(4)} run ${run + 1}: ${fmt(N / r.seconds)} msg/s, peak RSS ${fmt(r.rssMb)} MB, ${d.n} messages`,
      );
    }
  }
} finally {
  for (const s of streams) await jsm.streams.delete(s).catch(() => {});
  for (const t of tables) await db.query(`DROP TABLE IF EXISTS "${t}"`).catch(() => {});
  await db.query('DELETE FROM _weir_runs WHERE pipeline LIKE $1', [`nats-bench-%${tag}`]).catch(() => {});
  await db.query('DELETE FROM _weir_checkpoints WHERE pipeline LIKE $1', [`nats-bench-%${tag}`]).catch(() => {});
  await db.end();
  await nc.close();
  rmSync(dir, { recursive: true, force: true });
}

const best = (xs) => xs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
const summary = {};
const roles = args['no-sink'] ? ['source'] : ['source', 'sink'];
for (const role of roles) {
  const raw = best(results[role].raw);
  const weir = best(results[role].weir);
  summary[role] = {
    raw_msgs_per_s: Math.round(N / raw.seconds),
    weir_msgs_per_s: Math.round(N / weir.seconds),
    ratio: Number((raw.seconds / weir.seconds).toFixed(2)),
    raw_peak_rss_mb: Math.round(Math.max(...results[role].raw.map((r) => r.rssMb))),
    weir_peak_rss_mb: Math.round(Math.max(...results[role].weir.map((r) => r.rssMb))),
    content_matched: matched[role],
  };
}
console.log('\n| | raw msg/s | weir msg/s | weir / raw | raw peak RSS | weir peak RSS | content |');
console.log('|---|---|---|---|---|---|---|');
for (const role of roles) {
  const s = summary[role];
  console.log(
    `| ${role} | ${fmt(s.raw_msgs_per_s)} | ${fmt(s.weir_msgs_per_s)} | ${s.ratio}x | ${s.raw_peak_rss_mb} MB | ${s.weir_peak_rss_mb} MB | ${s.content_matched ? 'matched' : 'DIFFERS'} |`,
  );
}
if (args.json) writeFileSync(args.json, JSON.stringify({ messages: N, ...summary }, null, 2));
const ok = summary.source.ratio >= 0.8 && matched.source && matched.sink;
console.log(
  `\nsource ≥ 0.8x raw: ${summary.source.ratio >= 0.8 ? 'PASS' : 'FAIL'} · content: ${matched.source && matched.sink ? 'PASS' : 'FAIL'}`,
);
process.exit(ok ? 0 : 1);
