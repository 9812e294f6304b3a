#!/usr/bin/env node
/**
 * HTTP sink benchmark (standalone: `node bench/http.js`; needs `npm run build`).
 *
 * Sends the same generator rows as JSON-array requests to a local server that
 * parses each body, counts its rows and the sum of their ids (the content check),
 * and discards it. Two contenders, interleaved, each in its own process:
 *   raw undici   a plain script: a keep-alive Pool, `--partitions` requests in flight,
 *                each a JSON array of `--batch` rows
 *   weir         `weir run` (the built CLI): generator → http sink with the same batch
 *                size, format and concurrency (one partition per in-flight request),
 *                JSON logs at info, summary file, Idempotency-Key on
 * Prints rows/s, peak RSS and weir's ratio to raw, and the gates (PASS/FAIL); exits 1
 * when one fails: weir ≥ 0.9 × raw rows/s, weir's peak RSS under 200 MB.
 *
 * Options: --rows N (1000000) · --runs N (3; the median) · --batch N (1000) · --partitions N (4) · --json FILE.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'weir.js');
const GENERATOR = join(ROOT, 'dist', 'connectors', 'generator', 'index.js');
const GATES = { weirVsRaw: 0.9, peakRssMb: 200 };

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '3' },
    batch: { type: 'string', default: '1000' },
    partitions: { type: 'string', default: '4' },
    json: { type: 'string' },
    raw: { type: 'string' }, // internal: the raw client, against this URL
  },
});
const ROWS = Number(args.rows);
const BATCH = Number(args.batch);
const PARTITIONS = Number(args.partitions);

if (args.raw) {
  const { Pool } = await import('undici');
  const { generateRow } = await import(GENERATOR);
  const pool = new Pool(args.raw, { connections: PARTITIONS });
  const t0 = performance.now();
  let next = 1;
  const worker = async () => {
    while (next <= ROWS) {
      const from = next;
      const to = Math.min(ROWS + 1, from + BATCH);
      next = to;
      const rows = [];
      for (let id = from; id < to; id++) rows.push(JSON.stringify(generateRow(42, id)));
      const res = await pool.request({
        path: '/ingest',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `[${rows.join(',')}]`,
      });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
    }
  };
  await Promise.all(Array.from({ length: PARTITIONS }, worker));
  const seconds = (performance.now() - t0) / 1000;
  await pool.close();
  process.stdout.write(`${JSON.stringify({ seconds, peak_rss_bytes: process.resourceUsage().maxRSS * 1024 })}\n`);
  process.exit(0);
}

let received = { rows: 0, idSum: 0 };
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const rows = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    received.rows += rows.length;
    for (const r of rows) received.idSum += Number(r.id);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const URL_ = `http://127.0.0.1:${server.address().port}`;

function run(argv) {
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t0 = performance.now();
    child.on('error', fail);
    child.on('close', (code) => ok({ code, stdout, stderr, seconds: (performance.now() - t0) / 1000 }));
  });
}

function checkContent(name) {
  const want = (ROWS * (ROWS + 1)) / 2;
  if (received.rows !== ROWS || received.idSum !== want)
    throw new Error(`${name}: the server received ${received.rows} rows (id sum ${received.idSum}), expected ${ROWS} (${want})`);
  received = { rows: 0, idSum: 0 };
}

async function raw() {
  const r = await run([
    fileURLToPath(import.meta.url),
    '--raw',
    URL_,
    '--rows',
    String(ROWS),
    '--batch',
    String(BATCH),
    '--partitions',
    String(PARTITIONS),
  ]);
  if (r.code !== 0) throw new Error(`raw client failed: ${r.stderr}`);
  checkContent('raw undici');
  return { seconds: r.seconds, peak: JSON.parse(r.stdout).peak_rss_bytes };
}

async function weir() {
  const dir = mkdtempSync(join(tmpdir(), 'weir-bench-http-'));
  const pipeline = join(dir, 'p.yaml');
  writeFileSync(
    pipeline,
    `pipeline: bench-http
source: { type: generator, rows: ${ROWS}, partitions: ${PARTITIONS}, seed: 42 }
sink: { type: http, url: "${URL_}/ingest", batch_size: ${BATCH}, format: json, connections: 1 }
checkpoint: { path: ${join(dir, 'state.db')} }
`,
  );
  const r = await run([BIN, 'run', pipeline, '--log-format', 'json', '--summary-json', join(dir, 'summary.json')]);
  if (r.code !== 0) throw new Error(`weir failed (${r.code}): ${r.stderr.slice(-2000)}`);
  const s = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
  rmSync(dir, { recursive: true, force: true });
  checkContent('weir');
  return { seconds: r.seconds, peak: s.peak_rss_bytes };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = { raw: [], weir: [] };
for (let i = 0; i < Number(args.runs); i++) {
  results.raw.push(await raw());
  results.weir.push(await weir());
  const [a, b] = [results.raw.at(-1), results.weir.at(-1)];
  console.log(`run ${i + 1}: raw ${(ROWS / a.seconds).toFixed(0)} rows/s · weir ${(ROWS / b.seconds).toFixed(0)} rows/s`);
}
server.close();
const row = (name, xs) => {
  const seconds = median(xs.map((x) => x.seconds));
  return { name, seconds, rowsPerSecond: ROWS / seconds, peakMb: Math.max(...xs.map((x) => x.peak)) / 1048576 };
};
const table = [row('raw undici', results.raw), row('weir', results.weir)];
console.log(`\n${ROWS} rows, batch ${BATCH}, ${PARTITIONS} in flight, median of ${args.runs}`);
console.log('contender     seconds   rows/s    peak RSS');
for (const t of table)
  console.log(
    `${t.name.padEnd(12)}  ${t.seconds.toFixed(2).padStart(7)}  ${t.rowsPerSecond.toFixed(0).padStart(8)}  ${t.peakMb.toFixed(0).padStart(5)} MB`,
  );
const ratio = table[1].rowsPerSecond / table[0].rowsPerSecond;
const gates = [
  [`weir ≥ ${GATES.weirVsRaw} × raw rows/s (${ratio.toFixed(2)})`, ratio >= GATES.weirVsRaw],
  [`weir peak RSS < ${GATES.peakRssMb} MB (${table[1].peakMb.toFixed(0)} MB)`, table[1].peakMb < GATES.peakRssMb],
];
for (const [text, ok] of gates) console.log(`${ok ? 'PASS' : 'FAIL'}  ${text}`);
if (args.json) writeFileSync(args.json, JSON.stringify({ rows: ROWS, batch: BATCH, partitions: PARTITIONS, table, ratio }, null, 2));
process.exit(gates.every(([, ok]) => ok) ? 0 : 1);
