#!/usr/bin/env node
/**
 * Distributed benchmark (standalone: `node bench/distributed.js`; needs `npm run build`
 * and `redis-server` on the PATH).
 *
 * A latency-bound pipeline — generator rows into a sink that takes 20 ms per batch
 * (`latency-sink` of test/distributed/fixtures/connectors.mjs) — on a FRESH
 * redis-server (free port, no persistence, stopped by pid):
 *   scale   `weir run --engine bullmq` with 1, 2 and 4 `weir worker --concurrency 2`
 *           processes, the pipeline's `concurrency` 8 (each worker's 2 slots are the limit)
 *   engine  the same pipeline with `concurrency: 2` on the local engine and on the bullmq
 *           engine with one worker (`--concurrency 2`)
 * Each contender runs `--runs` times (the median of the summary's rows/s, which counts
 * from the run's start: plan, submission and job commit included, Node's start-up not).
 * Gates: 4 workers ≥ 3.5 × 1 worker; bullmq with one worker ≥ 0.9 × local. Exit 1 when
 * one fails.
 *
 * Options: --partitions N (32) · --batches N (80 per partition) · --batch N (25 rows: latency-bound, not CPU-bound) ·
 * --runs N (1) · --json FILE.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'weir.js');
const FIXTURE = join(ROOT, 'test', 'distributed', 'fixtures', 'connectors.mjs');
const GATES = { speedup4: 3.5, bullmqVsLocal: 0.9 };

const { values } = parseArgs({
  options: {
    partitions: { type: 'string', default: '32' },
    batches: { type: 'string', default: '80' },
    batch: { type: 'string', default: '25' },
    runs: { type: 'string', default: '1' },
    json: { type: 'string' },
  },
});
const partitions = Number(values.partitions);
const batch = Number(values.batch);
const rows = partitions * Number(values.batches) * batch;
const runs = Number(values.runs);

if (spawnSync('redis-server', ['--version']).status !== 0) {
  process.stderr.write('redis-server is not on the PATH: the distributed benchmark needs it\n');
  process.exit(2);
}

const freePort = () =>
  new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });

const port = await freePort();
const redis = spawn(
  'redis-server',
  ['--port', String(port), '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--bind', '127.0.0.1'],
  {
    stdio: 'ignore',
  },
);
const url = `redis://127.0.0.1:${port}`;
await new Promise((r) => setTimeout(r, 500));

const dir = mkdtempSync(join(tmpdir(), 'weir-bench-distributed-'));
const pipeline = (concurrency) => {
  const file = join(dir, `p${concurrency}.yaml`);
  writeFileSync(
    file,
    `pipeline: bench-distributed-${concurrency}\nconnectors: [${JSON.stringify(FIXTURE)}]\n` +
      `source: { type: generator, rows: ${rows}, partitions: ${partitions} }\n` +
      `sink: { type: latency-sink, latency_ms: 20 }\nbatch: { rows: ${batch} }\nconcurrency: ${concurrency}\ncheckpoint: { path: ${JSON.stringify(join(dir, 'state.db'))} }\n`,
  );
  return file;
};

function run(args) {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => {
      err += d;
    });
    p.on('exit', (code) => (code === 0 ? res() : rej(new Error(`weir ${args.join(' ')} exited ${code}:\n${err.slice(-2000)}`))));
  });
}

async function startWorkers(n) {
  const procs = [];
  for (let i = 0; i < n; i++) {
    const p = spawn(
      process.execPath,
      [BIN, 'worker', '--redis', url, '--concurrency', '2', '--log-level', 'warn', '--log-format', 'json'],
      {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    procs.push(p);
  }
  await new Promise((r) => setTimeout(r, 1500));
  return procs;
}

async function stopWorkers(procs) {
  await Promise.all(
    procs.map(
      (p) =>
        new Promise((r) => {
          p.once('exit', r);
          p.kill('SIGTERM');
        }),
    ),
  );
}

async function measure(name, file, extra) {
  const rates = [];
  for (let i = 0; i < runs; i++) {
    const summary = join(dir, `${name}-${i}.json`);
    await run(['run', file, '--log-level', 'warn', '--log-format', 'json', '--summary-json', summary, '--fresh', ...extra]);
    const s = JSON.parse(readFileSync(summary, 'utf8'));
    if (s.totals.rows_written !== rows) throw new Error(`${name}: ${s.totals.rows_written} rows written, expected ${rows}`);
    rates.push(s.totals.rows_per_second);
    process.stderr.write(`${name} run ${i + 1}: ${s.totals.rows_per_second} rows/s in ${s.totals.duration_seconds} s\n`);
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)];
}

const results = {};
try {
  const bullmq = ['--engine', 'bullmq', '--redis', url];
  for (const n of [1, 2, 4]) {
    const workers = await startWorkers(n);
    try {
      results[`bullmq_${n}_workers`] = await measure(`bullmq ${n} worker(s)`, pipeline(8), bullmq);
      if (n === 1) results.bullmq_1_worker_c2 = await measure('bullmq 1 worker, concurrency 2', pipeline(2), bullmq);
    } finally {
      await stopWorkers(workers);
    }
  }
  results.local_c2 = await measure('local, concurrency 2', pipeline(2), []);
} finally {
  redis.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}

const speedup2 = results.bullmq_2_workers / results.bullmq_1_workers;
const speedup4 = results.bullmq_4_workers / results.bullmq_1_workers;
const vsLocal = results.bullmq_1_worker_c2 / results.local_c2;
const line = (k, v) => process.stdout.write(`${k.padEnd(40)}${v}\n`);
process.stdout.write(`\n${rows} rows, ${partitions} partitions, batches of ${batch} rows, 20 ms per batch\n`);
line('bullmq, 1 worker (rows/s)', results.bullmq_1_workers);
line('bullmq, 2 workers (rows/s)', `${results.bullmq_2_workers}  (${speedup2.toFixed(2)}x)`);
line('bullmq, 4 workers (rows/s)', `${results.bullmq_4_workers}  (${speedup4.toFixed(2)}x)`);
line('local engine, concurrency 2 (rows/s)', results.local_c2);
line('bullmq 1 worker, concurrency 2 (rows/s)', `${results.bullmq_1_worker_c2}  (${(vsLocal * 100).toFixed(1)}% of local)`);
const gates = [
  [`4 workers >= ${GATES.speedup4}x of 1`, speedup4 >= GATES.speedup4],
  [`bullmq with one worker >= ${GATES.bullmqVsLocal * 100}% of local`, vsLocal >= GATES.bullmqVsLocal],
];
for (const [name, ok] of gates) process.stdout.write(`${ok ? 'PASS' : 'FAIL'}  ${name}\n`);
if (values.json)
  writeFileSync(values.json, `${JSON.stringify({ rows, partitions, batch, results, speedup2, speedup4, vsLocal }, null, 2)}\n`);
process.exit(gates.every(([, ok]) => ok) ? 0 : 1);
