#!/usr/bin/env node
/**
 * Redis Streams source benchmark (standalone: `node bench/stream-redis.js`; needs
 * `npm run build`). N entries (`seq`, `device`, `body`) are added to a stream; then a
 * consumer group reads them into PostgreSQL:
 *   raw ioredis   a plain script: XREADGROUP COUNT 1000, rows upserted on `seq` in one
 *                 transaction per 10,000 rows or 1 s, XACK after the COMMIT — weir's work
 *   weir          `weir run`: redis stream source → postgres (mode: upsert,
 *                 key_columns: [seq]), JSON logs at info — observability on
 * messages/s = N ÷ the time from the process's start (start-up included, alike for
 * both) until the bench's poll (every 25 ms) first sees all N rows in the table; both
 * end after 3 s without an entry. Each variant runs in its own process (its own peak
 * RSS), alternately, `--runs` times; the best run of each is reported. Content: count,
 * distinct keys and md5 of every row must match what was added. Gate: weir ≥ 0.8× raw.
 *
 * Options: --messages N (100000) · --runs N (3) · --fetch-size N (weir's `fetch_size`;
 * unset: the default, 1000) · --json FILE.
 * Environment: REDIS_HOST, REDIS_PORT (127.0.0.1, 6379).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BIN, measure } from './lib.js';
import { content, expected, message, PG, pgClient, RawEpochs, table } from './stream-lib.js';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '3' },
    json: { type: 'string' },
    'fetch-size': { type: 'string' },
    raw: { type: 'boolean' },
    stream: { type: 'string' },
    table: { type: 'string' },
  },
});
const N = Number(args.messages);
const REDIS = { host: process.env.REDIS_HOST ?? '127.0.0.1', port: Number(process.env.REDIS_PORT ?? 6379) };
const { Redis } = await import('ioredis');

if (args.raw) await raw();
else await main();

async function raw() {
  const epochs = await RawEpochs.open(args.table);
  const redis = new Redis(REDIS);
  const acker = new Redis(REDIS);
  await redis.call('XGROUP', 'CREATE', args.stream, 'weir', '0', 'MKSTREAM').catch(() => {});
  let last = performance.now();
  for (;;) {
    const reply = await redis.xreadgroup('GROUP', 'weir', 'raw', 'COUNT', 1000, 'BLOCK', 100, 'STREAMS', args.stream, '>');
    const entries = reply?.[0]?.[1] ?? [];
    if (entries.length) {
      last = performance.now();
      const ids = [];
      for (const [id, f] of entries) {
        const row = {};
        for (let i = 0; i + 1 < f.length; i += 2) row[f[i]] = f[i + 1];
        epochs.add(row);
        ids.push(id);
      }
      epochs.acks.push(() => acker.xack(args.stream, 'weir', ...ids));
    }
    if (epochs.due()) await epochs.commit();
    if (performance.now() - last > 3000) break;
  }
  await epochs.commit();
  redis.disconnect();
  acker.disconnect();
  await epochs.close();
}

async function fill(redis, stream) {
  for (let from = 1; from <= N; from += 1000) {
    const p = redis.pipeline();
    for (let seq = from; seq < from + 1000 && seq <= N; seq++) {
      const m = JSON.parse(message(seq));
      p.xadd(stream, '*', 'seq', String(m.seq), 'device', m.device, 'body', m.body);
    }
    await p.exec();
  }
}

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

async function main() {
  const redis = new Redis(REDIS);
  const db = await pgClient();
  const want = await expected(db, N);
  const id = randomBytes(4).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'weir-bench-redis-stream-'));
  const results = { raw: [], weir: [] };
  const failures = [];
  try {
    for (let run = 1; run <= Number(args.runs); run++) {
      for (const variant of ['raw', 'weir']) {
        const tag = `${variant}_${run}_${id}`;
        const stream = `weirbench:stream:${tag}`;
        const tbl = `redis_stream_bench_${tag}`;
        await fill(redis, stream);
        const watch = untilRows(db, tbl);
        let r;
        if (variant === 'raw')
          r = await measure(process.execPath, [new URL(import.meta.url).pathname, '--raw', '--stream', stream, '--table', tbl]);
        else {
          const yaml = join(dir, `${tag}.yaml`);
          writeFileSync(
            yaml,
            `pipeline: bench-${tag}
source: { type: redis, host: ${REDIS.host}, port: ${REDIS.port}, mode: stream, stream: "${stream}", block: 100ms${args['fetch-size'] ? `, fetch_size: ${args['fetch-size']}` : ''} }
sink: { type: postgres, host: ${PG.host}, port: ${PG.port}, user: ${PG.user}, database: ${PG.database}, table: ${tbl}, mode: upsert, key_columns: [seq] }
stream: { stop_when_idle: 3s }
`,
          );
          r = await measure(process.execPath, [BIN, 'run', yaml, '--log-format', 'json'], { cwd: dir });
        }
        const seconds = await watch.stop();
        const got = await content(db, tbl).catch(() => ({ n: 0 }));
        const pending = ((await redis.call('XPENDING', stream, 'weir')) ?? [0])[0];
        const ok = r.code === 0 && got.n === N && got.d === N && got.digest === want && pending === 0;
        if (!ok) failures.push(`${variant} run ${run}: exit ${r.code}, ${JSON.stringify(got)}, ${pending} pending ${r.stderr.slice(-500)}`);
        results[variant].push({ seconds, perSecond: N / seconds, rssMb: r.rssMb, ok });
        console.log(
          `${variant.padEnd(4)} run ${run}: ${(N / seconds).toFixed(0)} msg/s, ${r.rssMb.toFixed(0)} MB, content ${ok ? 'matched' : 'DIFFERS'}`,
        );
        await db.query(`DROP TABLE IF EXISTS "${tbl}"`);
        await db.query('DELETE FROM _weir_runs WHERE pipeline = $1', [`bench-${tag}`]).catch(() => {});
        await db.query('DELETE FROM _weir_checkpoints WHERE pipeline = $1', [`bench-${tag}`]).catch(() => {});
        await redis.unlink(stream);
      }
    }
  } finally {
    await db.end();
    redis.disconnect();
  }
  const best = (xs) => xs.filter((x) => x.ok).reduce((a, b) => (b.perSecond > a.perSecond ? b : a), { perSecond: 0, rssMb: 0 });
  const rawBest = best(results.raw);
  const weirBest = best(results.weir);
  const ratio = weirBest.perSecond / rawBest.perSecond;
  const rows = [
    ['', 'messages/s (best)', 'peak RSS MB (max)', 'ratio weir/raw'],
    ['raw ioredis', rawBest.perSecond.toFixed(0), Math.max(...results.raw.map((x) => x.rssMb)).toFixed(0), ''],
    ['weir', weirBest.perSecond.toFixed(0), Math.max(...results.weir.map((x) => x.rssMb)).toFixed(0), ratio.toFixed(2)],
  ];
  const gates = [
    [`weir redis stream source ≥ 0.8× raw (${ratio.toFixed(2)})`, ratio >= 0.8],
    ['content matched in every run', failures.length === 0],
  ];
  console.log(`\n${N.toLocaleString('en-US')} entries, ${args.runs} runs\n${table(rows)}\n`);
  for (const [name, pass] of gates) console.log(`${pass ? 'PASS' : 'FAIL'} ${name}`);
  for (const f of failures) console.log(`  ${f}`);
  if (args.json) writeFileSync(args.json, JSON.stringify({ messages: N, results, failures }, null, 2));
  process.exitCode = gates.every(([, pass]) => pass) ? 0 : 1;
}
