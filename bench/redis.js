#!/usr/bin/env node
/**
 * Redis sink benchmark (standalone: `node bench/redis.js`; needs `npm run build`).
 *
 * Writes the same 1,000,000 generator rows as Redis hashes (HSET key field value …,
 * every value as text) three ways, interleaved in one run so they share the
 * machine's state:
 *   raw ioredis (1 in flight)   a plain script: one pipeline of `--batch` rows, await, next
 *   raw ioredis (8×500)         a tuned script: pipelines of 500 rows, 8 in flight
 *   weir                        `weir run` (the built CLI): generator → redis sink, JSON logs
 *                               at info, summary file — observability on
 * Each variant runs in its own process, so peak RSS is its own. Keys live under a
 * random prefix (never FLUSHDB) and are deleted after each variant; the key count
 * and one hash are checked after each run. Prints rows/s, peak RSS, weir's ratio
 * to the better raw variant and the gates (PASS/FAIL); exits 1 when one fails:
 * weir at least 80% of the better raw variant's rows/s, and weir's peak RSS (the
 * highest of the runs) under 250 MB.
 *
 * Options: --rows N (1000000) · --runs N (3; the median is reported) · --batch N
 * (2000 rows per batch: weir's batch_size and the plain script's pipeline) · --partitions N (4) · --json FILE.
 * Environment: REDIS_HOST, REDIS_PORT (127.0.0.1, 6379), REDIS_DB (0).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'weir.js');
const GENERATOR = join(ROOT, 'dist', 'connectors', 'generator', 'index.js');
const GATES = { weirVsRaw: 0.8, peakRssMb: 250 };

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '3' },
    batch: { type: 'string', default: '2000' },
    partitions: { type: 'string', default: '4' },
    json: { type: 'string' },
    // internal: run one raw variant in this process and print its result as JSON
    raw: { type: 'string' },
    'raw-batch': { type: 'string' },
    prefix: { type: 'string' },
  },
});
const ROWS = Number(args.rows);
const RUNS = Math.max(1, Number(args.runs));
const BATCH = Number(args.batch);
const PARTITIONS = Number(args.partitions);
const REDIS = {
  host: process.env.REDIS_HOST ?? '127.0.0.1',
  port: Number(process.env.REDIS_PORT ?? 6379),
  db: Number(process.env.REDIS_DB ?? 0),
};

const { Redis } = await import('ioredis');

// ---------------------------------------------------------------------------
// the raw baseline (child process)

/** The hash fields of a row exactly as weir writes them: every non-null value as text. */
function fields(row) {
  const out = [];
  for (const k in row) {
    const v = row[k];
    if (v === null || v === undefined) continue;
    out.push(k, typeof v === 'string' ? v : v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v));
  }
  return out;
}

async function rawChild(inflight, batch, prefix) {
  const { generateRow } = await import(GENERATOR);
  const client = new Redis({ ...REDIS, lazyConnect: true });
  await client.connect();
  const t0 = performance.now();
  let next = 1;
  const worker = async () => {
    while (next <= ROWS) {
      const from = next;
      const to = Math.min(ROWS + 1, from + batch);
      next = to;
      const p = client.pipeline();
      for (let id = from; id < to; id++) p.hset(`${prefix}${id}`, fields(generateRow(42, id)));
      const results = await p.exec();
      for (const [error] of results) if (error) throw error;
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  const seconds = (performance.now() - t0) / 1000;
  client.disconnect();
  process.stdout.write(`${JSON.stringify({ seconds, peak_rss_bytes: process.resourceUsage().maxRSS * 1024 })}\n`);
}

if (args.raw) {
  await rawChild(Number(args.raw), Number(args['raw-batch'] ?? BATCH), args.prefix);
  process.exit(0);
}

// ---------------------------------------------------------------------------
// helpers

/** CPU seconds of this process's finished children (Linux /proc; undefined elsewhere). */
function childCpuSeconds() {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[13]) + Number(fields[14])) / 100; // cutime + cstime, in USER_HZ (100 on Linux)
  } catch {
    return undefined;
  }
}

function run(cmd, argv, options = {}) {
  const cpu0 = childCpuSeconds();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const t0 = performance.now();
    child.on('error', reject);
    child.on('close', (code) => {
      const cpu1 = childCpuSeconds();
      resolvePromise({
        code,
        stdout,
        stderr,
        seconds: (performance.now() - t0) / 1000,
        cpu: cpu0 === undefined || cpu1 === undefined ? undefined : cpu1 - cpu0,
      });
    });
  });
}

async function deleteKeys(client, prefix) {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5000);
    cursor = next;
    if (keys.length) {
      n += keys.length;
      await client.unlink(...keys);
    }
  } while (cursor !== '0');
  return n;
}

async function countKeys(client, prefix) {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5000);
    cursor = next;
    n += keys.length;
  } while (cursor !== '0');
  return n;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mb = (b) => `${Math.round(b / 1024 / 1024)} MB`;
const fmt = (n) => Math.round(n).toLocaleString('en-US');

// ---------------------------------------------------------------------------
// variants

async function rawVariant(inflight, batch, prefix) {
  const self = fileURLToPath(import.meta.url);
  const argv = [self, '--raw', String(inflight), '--raw-batch', String(batch), '--prefix', prefix, '--rows', String(ROWS)];
  const r = await run(process.execPath, argv);
  if (r.code !== 0) throw new Error(`raw variant failed (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  // wall time of the whole process, start-up included, as for weir
  return { seconds: r.seconds, cpu: r.cpu, innerSeconds: out.seconds, peak: out.peak_rss_bytes };
}

async function weirVariant(prefix, dir) {
  const file = join(dir, 'redis.yaml');
  const summary = join(dir, 'summary.json');
  writeFileSync(
    file,
    `pipeline: bench-redis
source: { type: generator, rows: ${ROWS}, partitions: ${PARTITIONS} }
sink:
  type: redis
  host: ${REDIS.host}
  port: ${REDIS.port}
  db: ${REDIS.db}
  mode: hash
  key: "${prefix}{id}"
  batch_size: ${BATCH}
concurrency: ${PARTITIONS}
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
  );
  const r = await run(process.execPath, [BIN, 'run', file, '--log-format', 'json', '--log-level', 'info', '--summary-json', summary], {
    cwd: dir,
  });
  if (r.code !== 0) throw new Error(`weir run failed (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  const s = JSON.parse(readFileSync(summary, 'utf8'));
  if (s.totals.rows_written !== ROWS) throw new Error(`weir wrote ${s.totals.rows_written} rows, expected ${ROWS}`);
  // wall time of the whole process (start-up, planning and shutdown included), like the raw scripts' own timer plus their start-up
  return { seconds: r.seconds, cpu: r.cpu, runSeconds: s.totals.duration_seconds, peak: s.peak_rss_bytes };
}

// ---------------------------------------------------------------------------
// main

if (!existsSync(GENERATOR)) {
  console.error('dist/ is missing: run `npm run build` first');
  process.exit(2);
}
const admin = new Redis({ ...REDIS, lazyConnect: true });
try {
  await admin.connect();
} catch (error) {
  console.error(`cannot reach Redis at ${REDIS.host}:${REDIS.port}: ${error.message}`);
  process.exit(2);
}
const { generateRow } = await import(GENERATOR);
const expected = Object.fromEntries(
  (() => {
    const f = fields(generateRow(42, 7));
    const pairs = [];
    for (let i = 0; i < f.length; i += 2) pairs.push([f[i], f[i + 1]]);
    return pairs;
  })(),
);
const dir = mkdtempSync(join(tmpdir(), 'weir-bench-redis-'));
const tag = randomBytes(4).toString('hex');
const variants = [
  { name: 'raw ioredis (1 in flight)', run: (prefix) => rawVariant(1, BATCH, prefix) },
  { name: 'raw ioredis (8×500)', run: (prefix) => rawVariant(8, 500, prefix) },
  { name: 'weir (obs on)', run: (prefix) => weirVariant(prefix, dir) },
];
const results = new Map(variants.map((v) => [v.name, { seconds: [], cpu: [], peak: [] }]));
const cores = availableParallelism();

console.log(
  `redis sink benchmark: ${fmt(ROWS)} generator rows → hashes (8 fields), batch ${BATCH}, ${RUNS} run(s), Redis ${REDIS.host}:${REDIS.port}/${REDIS.db}`,
);
console.log(`machine: ${cores} core(s), load average ${loadavg()[0].toFixed(1)} at the start`);
try {
  for (let i = 0; i < RUNS; i++) {
    for (const v of variants) {
      const prefix = `weirbench:${tag}:${i}:${v.name.replace(/[^a-z0-9]+/gi, '-')}:`;
      const r = await v.run(prefix);
      const keys = await countKeys(admin, prefix);
      const sample = await admin.hgetall(`${prefix}7`);
      if (keys !== ROWS) throw new Error(`${v.name}: ${keys} keys written, expected ${ROWS}`);
      if (JSON.stringify(sample) !== JSON.stringify(expected))
        throw new Error(`${v.name}: hash 7 is ${JSON.stringify(sample)}, expected ${JSON.stringify(expected)}`);
      await deleteKeys(admin, prefix);
      const res = results.get(v.name);
      res.seconds.push(r.seconds);
      res.peak.push(r.peak);
      if (r.cpu !== undefined) res.cpu.push(r.cpu);
      const cpu = r.cpu === undefined ? '' : `  cpu ${r.cpu.toFixed(2)} s`;
      console.log(
        `  run ${i + 1}  ${v.name.padEnd(26)} ${r.seconds.toFixed(2).padStart(6)} s  ${fmt(ROWS / r.seconds).padStart(9)} rows/s  peak ${mb(r.peak)}${cpu}`,
      );
    }
  }
} finally {
  await deleteKeys(admin, `weirbench:${tag}:`);
  admin.disconnect();
  rmSync(dir, { recursive: true, force: true });
}

const table = [...results].map(([name, r]) => ({
  name,
  seconds: median(r.seconds),
  rowsPerSecond: ROWS / median(r.seconds),
  peakRssBytes: Math.max(...r.peak),
  cpuSeconds: r.cpu.length ? median(r.cpu) : undefined,
}));
const raw = table.filter((t) => t.name.startsWith('raw')).reduce((a, b) => (b.rowsPerSecond > a.rowsPerSecond ? b : a));
const weir = table.find((t) => t.name.startsWith('weir'));
const ratio = weir.rowsPerSecond / raw.rowsPerSecond;
const cpuRatio = weir.cpuSeconds && raw.cpuSeconds ? raw.cpuSeconds / weir.cpuSeconds : undefined;
console.log('\nmedian of the runs (seconds are wall time of the whole process, start-up included):');
console.log(
  `  ${'variant'.padEnd(26)} ${'seconds'.padStart(8)} ${'rows/s'.padStart(10)} ${'peak RSS'.padStart(9)} ${'client CPU s'.padStart(13)}`,
);
for (const t of table)
  console.log(
    `  ${t.name.padEnd(26)} ${t.seconds.toFixed(2).padStart(8)} ${fmt(t.rowsPerSecond).padStart(10)} ${mb(t.peakRssBytes).padStart(9)} ${(t.cpuSeconds?.toFixed(2) ?? '-').padStart(13)}`,
  );
const peakMb = weir.peakRssBytes / 1024 / 1024;
const gates = [
  {
    name: `weir ≥ ${GATES.weirVsRaw * 100}% of the best raw rows/s`,
    ok: ratio >= GATES.weirVsRaw,
    detail: `${(100 * ratio).toFixed(0)}% of ${raw.name}`,
  },
  { name: `weir peak RSS < ${GATES.peakRssMb} MB`, ok: peakMb < GATES.peakRssMb, detail: `${peakMb.toFixed(0)} MB (highest of the runs)` },
];
const pass = gates.every((g) => g.ok);
console.log(`\nweir / best raw (${raw.name}) = ${ratio.toFixed(2)} in rows/s`);
if (cpuRatio !== undefined)
  console.log(`client CPU per row: raw / weir = ${cpuRatio.toFixed(2)} (1.00 = weir costs nothing over the raw script)`);
const load = loadavg()[0];
if (load > cores)
  console.log(
    `note: load average ${load.toFixed(1)} on ${cores} core(s) — other work competed for the CPU; wall-time ratios are noisy, prefer more --runs`,
  );
console.log('');
for (const g of gates) console.log(`${g.ok ? 'PASS' : 'FAIL'}  ${g.name}: ${g.detail}`);
if (args.json)
  writeFileSync(
    args.json,
    `${JSON.stringify({ rows: ROWS, batch: BATCH, runs: RUNS, variants: table, ratio, cpuRatio, gates, pass, load }, null, 2)}\n`,
  );
process.exit(pass ? 0 : 1);
