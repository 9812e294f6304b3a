#!/usr/bin/env node
/**
 * MQTT benchmark (standalone: `node bench/stream-mqtt.js`; needs `npm run build` and
 * `mosquitto` on the PATH). It starts a Mosquitto of its own on a free port
 * (`max_queued_messages 0`, so a queue of any length is kept for an offline session).
 *
 * Source: N messages are published at QoS 1 to the session of a consumer that is
 * not running; then the consumer starts and moves them into PostgreSQL:
 *   raw mqtt.js   a plain script (MQTT 5, persistent session, Receive Maximum 20000)
 *                 buffering messages and upserting them on `seq` in one transaction per
 *                 10,000 rows or 1 s, each PUBACK sent after the COMMIT — weir's work
 *   weir          `weir run`: mqtt source → postgres (mode: upsert, key_columns: [seq]),
 *                 JSON logs at info — observability on
 * Both end after 10 s without a message (Mosquitto 2.0 can pause for seconds while it
 * hands a long queue over); messages/s = N ÷ the time from the process's
 * start (start-up included, alike for both) until the bench's poll (every 25 ms)
 * first sees all N rows in the table.
 *
 * Sink: the same N messages as a JSONL file, published at QoS 1 to `…/{device}`:
 *   raw mqtt.js   a plain script reading the file, 1000 publishes awaiting their PUBACK
 *   weir          `weir run`: jsonl source → mqtt sink (qos 1, max_in_flight 1000)
 * A subscriber of the bench counts the messages and digests their payloads.
 *
 * Each variant runs in its own process (its own peak RSS), alternately, `--runs`
 * times; the best run of each is reported (the machine is shared). Content: the table
 * (count, distinct keys, md5 of every row) and the payloads received must match what
 * was published. Gate: weir's source ≥ 0.8× the raw consumer. Exits 1 when a gate fails.
 *
 * Options: --messages N (100000) · --runs N (3) · --json FILE · --prof DIR (weir's source runs with
 * `--cpu-prof`, profiles in DIR).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BIN, measure } from './lib.js';
import { content, expected, message, PG, pgClient, RawEpochs, table } from './stream-lib.js';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '3' },
    prof: { type: 'string' },
    json: { type: 'string' },
    // internal: one raw variant in this process
    'raw-source': { type: 'boolean' },
    'raw-sink': { type: 'boolean' },
    url: { type: 'string' },
    'client-id': { type: 'string' },
    topic: { type: 'string' },
    table: { type: 'string' },
    file: { type: 'string' },
  },
});
const N = Number(args.messages);
const { default: mqtt } = await import('mqtt');

if (args['raw-source']) await rawSource();
else if (args['raw-sink']) await rawSink();
else await main();

/** The raw consumer: the session's messages into PostgreSQL, PUBACKs after each COMMIT, until 1 s idle. */
async function rawSource() {
  const epochs = await RawEpochs.open(args.table);
  const held = new Error('held');
  const client = mqtt.connect(args.url, {
    protocolVersion: 5,
    clientId: args['client-id'],
    clean: false,
    properties: { sessionExpiryInterval: 3600, receiveMaximum: 20000 },
  });
  let last = performance.now();
  const queue = [];
  client.handleMessage = (packet, cb) => {
    queue.push({ row: JSON.parse(packet.payload.toString()), id: packet.messageId });
    last = performance.now();
    cb(held);
  };
  await new Promise((r) => client.once('connect', r));
  for (;;) {
    // an epoch is 10,000 rows (or 1 s), as weir's: what is queued beyond that waits for the next one
    for (const m of queue.splice(0, epochs.room()))
      epochs.add(m.row, () => client._sendPacket({ cmd: 'puback', messageId: m.id, reasonCode: 0 }));
    if (epochs.due()) await epochs.commit();
    if (queue.length > 0) continue;
    if (performance.now() - last > 10_000 && queue.length === 0) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  await epochs.commit();
  await client.endAsync();
  await epochs.close();
}

/** The raw publisher: the file's lines at QoS 1, 1000 awaiting their PUBACK. */
async function rawSink() {
  const lines = readFileSync(args.file, 'utf8').split('\n').filter(Boolean);
  const client = await mqtt.connectAsync(args.url, { protocolVersion: 5, clean: true });
  let next = 0;
  const worker = async () => {
    while (next < lines.length) {
      const line = lines[next++];
      const device = /"device":"([^"]+)"/.exec(line)[1];
      await client.publishAsync(`${args.topic}/${device}`, line, { qos: 1 });
    }
  };
  await Promise.all(Array.from({ length: 1000 }, worker));
  await client.endAsync();
}

async function publishToSession(url, clientId, topic) {
  const session = await mqtt.connectAsync(url, { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 3600 } });
  await session.subscribeAsync(`${topic}/+`, { qos: 1 });
  await session.endAsync();
  const pub = await mqtt.connectAsync(url, { protocolVersion: 5 });
  let next = 1;
  const worker = async () => {
    while (next <= N) {
      const seq = next++;
      await pub.publishAsync(`${topic}/${seq % 7}`, message(seq), { qos: 1 });
    }
  };
  await Promise.all(Array.from({ length: 1000 }, worker));
  await pub.endAsync();
}

async function dropSession(url, clientId) {
  const c = await mqtt.connectAsync(url, { protocolVersion: 5, clientId, clean: true });
  await c.endAsync();
}

async function main() {
  const { startMosquitto } = await import('../dist/connectors/mqtt/test-broker.js');
  const broker = await startMosquitto(['max_queued_messages 0', 'max_queued_bytes 0']);
  const db = await pgClient();
  const want = await expected(db, N);
  const id = randomBytes(4).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'weir-bench-mqtt-'));
  const file = join(dir, 'messages.jsonl');
  writeFileSync(file, `${Array.from({ length: N }, (_, i) => message(i + 1)).join('\n')}\n`);
  const wantPayloads = digestOf(readFileSync(file, 'utf8').split('\n').filter(Boolean));
  const results = { source: { raw: [], weir: [] }, sink: { raw: [], weir: [] } };
  const failures = [];
  try {
    for (let run = 1; run <= Number(args.runs); run++) {
      for (const variant of ['raw', 'weir']) {
        const tag = `${variant}_${run}_${id}`;
        const topic = `weirbench/mqtt/${tag}`;
        const clientId = `weirbench-${tag}`;
        const tbl = `mqtt_bench_${tag}`;
        await publishToSession(broker.url, clientId, topic);
        let r;
        const watch = untilRows(db, tbl);
        if (variant === 'raw')
          r = await measure(process.execPath, [
            new URL(import.meta.url).pathname,
            '--raw-source',
            '--url',
            broker.url,
            '--client-id',
            clientId,
            '--table',
            tbl,
          ]);
        else {
          const yaml = join(dir, `${tag}.yaml`);
          writeFileSync(
            yaml,
            `pipeline: bench-${tag}
source: { type: mqtt, url: "${broker.url}", topics: ["${topic}/+"], client_id: ${clientId} }
sink: { type: postgres, host: ${PG.host}, port: ${PG.port}, user: ${PG.user}, database: ${PG.database}, table: ${tbl}, mode: upsert, key_columns: [seq] }
stream: { stop_when_idle: 10s }
`,
          );
          const prof = args.prof ? ['--cpu-prof', `--cpu-prof-dir=${args.prof}`] : [];
          r = await measure(process.execPath, [...prof, BIN, 'run', yaml, '--log-format', 'json'], { cwd: dir });
        }
        const seconds = await watch.stop();
        const got = await content(db, tbl).catch(() => ({ n: 0 }));
        const ok = r.code === 0 && got.n === N && got.d === N && got.digest === want;
        if (!ok) failures.push(`source ${variant} run ${run}: exit ${r.code}, ${JSON.stringify(got)} ${r.stderr.slice(-500)}`);
        results.source[variant].push({ seconds, perSecond: N / seconds, rssMb: r.rssMb, ok });
        console.log(
          `source ${variant.padEnd(4)} run ${run}: ${(N / seconds).toFixed(0)} msg/s, ${r.rssMb.toFixed(0)} MB, content ${ok ? 'matched' : 'DIFFERS'}`,
        );
        await db.query(`DROP TABLE IF EXISTS "${tbl}"`);
        await db.query('DELETE FROM _weir_runs WHERE pipeline = $1', [`bench-${tag}`]).catch(() => {});
        await db.query('DELETE FROM _weir_checkpoints WHERE pipeline = $1', [`bench-${tag}`]).catch(() => {});
        await dropSession(broker.url, clientId);
      }
      for (const variant of ['raw', 'weir']) {
        const tag = `sink_${variant}_${run}_${id}`;
        const topic = `weirbench/mqtt/${tag}`;
        const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
        const payloads = [];
        sub.on('message', (_t, p) => payloads.push(p.toString()));
        await sub.subscribeAsync(`${topic}/#`, { qos: 1 });
        let r;
        if (variant === 'raw')
          r = await measure(process.execPath, [
            new URL(import.meta.url).pathname,
            '--raw-sink',
            '--url',
            broker.url,
            '--topic',
            topic,
            '--file',
            file,
          ]);
        else {
          const yaml = join(dir, `${tag}.yaml`);
          writeFileSync(
            yaml,
            `pipeline: bench-${tag}
source: { type: jsonl, path: ${file} }
sink: { type: mqtt, url: "${broker.url}", topic: "${topic}/{device}", max_in_flight: 1000 }
`,
          );
          r = await measure(process.execPath, [BIN, 'run', yaml, '--log-format', 'json'], { cwd: dir });
        }
        const until = performance.now() + 30_000;
        while (payloads.length < N && performance.now() < until) await new Promise((res) => setTimeout(res, 50));
        await sub.endAsync();
        const ok = r.code === 0 && payloads.length === N && digestOf(payloads) === wantPayloads;
        if (!ok) failures.push(`sink ${variant} run ${run}: exit ${r.code}, ${payloads.length} messages ${r.stderr.slice(-500)}`);
        results.sink[variant].push({ seconds: r.seconds, perSecond: N / r.seconds, rssMb: r.rssMb, ok });
        console.log(
          `sink   ${variant.padEnd(4)} run ${run}: ${(N / r.seconds).toFixed(0)} msg/s, ${r.rssMb.toFixed(0)} MB, content ${ok ? 'matched' : 'DIFFERS'}`,
        );
      }
    }
  } finally {
    await db.end();
    await broker.stop();
  }
  const best = (xs) => xs.filter((x) => x.ok).reduce((a, b) => (b.perSecond > a.perSecond ? b : a), { perSecond: 0, rssMb: 0 });
  const rows = [['', 'messages/s (best)', 'peak RSS MB (max)', 'ratio weir/raw']];
  const gates = [];
  for (const role of ['source', 'sink']) {
    const raw = best(results[role].raw);
    const weir = best(results[role].weir);
    const ratio = weir.perSecond / raw.perSecond;
    rows.push([`${role}: raw mqtt.js`, raw.perSecond.toFixed(0), Math.max(...results[role].raw.map((x) => x.rssMb)).toFixed(0), '']);
    rows.push([
      `${role}: weir`,
      weir.perSecond.toFixed(0),
      Math.max(...results[role].weir.map((x) => x.rssMb)).toFixed(0),
      ratio.toFixed(2),
    ]);
    if (role === 'source') gates.push([`weir source ≥ 0.8× raw (${ratio.toFixed(2)})`, ratio >= 0.8]);
  }
  gates.push([`content matched in every run`, failures.length === 0]);
  console.log(`\n${N.toLocaleString('en-US')} messages, ${args.runs} runs\n${table(rows)}\n`);
  for (const [name, pass] of gates) console.log(`${pass ? 'PASS' : 'FAIL'} ${name}`);
  for (const f of failures) console.log(`  ${f}`);
  if (args.json) writeFileSync(args.json, JSON.stringify({ messages: N, results, failures }, null, 2));
  process.exitCode = gates.every(([, pass]) => pass) ? 0 : 1;
}

/** Polls the table from now on; `stop()` gives the seconds until it first held N rows (the process's whole time if never). */
function untilRows(db, tbl) {
  const t0 = performance.now();
  let doneAt;
  let polling = true;
  const loop = (async () => {
    while (polling && doneAt === undefined) {
      const n = await db.query(`SELECT count(*)::int AS n FROM "${tbl}"`).then(
        (r) => r.rows[0].n,
        () => 0,
      );
      if (n >= N) doneAt = performance.now();
      else await new Promise((res) => setTimeout(res, 25));
    }
  })();
  return {
    async stop() {
      polling = false;
      await loop;
      return ((doneAt ?? performance.now()) - t0) / 1000;
    },
  };
}

function digestOf(payloads) {
  return createHash('md5')
    .update([...payloads].sort().join('\n'))
    .digest('hex');
}
