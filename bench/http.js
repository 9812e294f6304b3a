#!/usr/bin/env node
/**
 * HTTP sink benchmark (standalone: `node bench/http.js`; needs `npm run build`).
 *
 * Three processes, so no contender shares its event loop with the server:
 *   server       (`--serve`, forked) a node:http server that, for every body, takes its
 *                SHA-256, parses it, counts its rows and marks each id in a bitmap; the
 *                parent asks it over IPC for the totals after each run: rows, ids seen
 *                twice, ids missing, and the sum of the body digests (the same multiset
 *                of bodies gives the same sum)
 *   raw undici   (`--raw URL`) a plain script: the generator's `generateRow` for the same
 *                partitions (contiguous id ranges) weir plans, `--batch` rows at a time
 *                made into one body by `JSON.stringify(rows)` (the fastest plain way), `--partitions`
 *                workers each sending its own partition's batches in order through one
 *                keep-alive undici Pool of `--partitions` connections
 *   weir         `weir run` (the built CLI): generator → http sink with the same
 *                partitions, batch size and format (one connection per partition), JSON
 *                logs at info, summary file, Idempotency-Key on
 * Both send byte-for-byte the same bodies, so the server's digest must match between them.
 * Contenders alternate (raw, weir, weir, raw, …) for `--runs` rounds; the table shows the best
 * run of each, the median and the spread (slowest/fastest). The gates compare best with best:
 * weir ≥ 0.9 × raw rows/s, weir's peak RSS under 200 MB, content equal. Exits 1 when one fails.
 *
 * Options: --rows N (1000000) · --runs N (5) · --batch N (1000) · --partitions N (4) ·
 * --json FILE · --prof DIR (weir with `--cpu-prof`, profiles in DIR) · --only raw|weir.
 */
import { fork, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'weir.js');
const SELF = fileURLToPath(import.meta.url);
const GENERATOR = join(ROOT, 'dist', 'connectors', 'generator', 'index.js');
const GATES = { weirVsRaw: 0.9, peakRssMb: 200 };

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '5' },
    batch: { type: 'string', default: '1000' },
    partitions: { type: 'string', default: '4' },
    json: { type: 'string' },
    prof: { type: 'string' },
    only: { type: 'string' },
    raw: { type: 'string' }, // internal: the raw client, against this URL
    serve: { type: 'boolean' }, // internal: the counting server
  },
});
const ROWS = Number(args.rows);
const BATCH = Number(args.batch);
const PARTITIONS = Number(args.partitions);

/**
 * Runs a process under GNU time: wall seconds, CPU seconds (user + system) and peak RSS.
 * CPU is the steadier number on a shared machine; wall time is what the gate compares.
 */
function measure(argv) {
  return new Promise((ok, fail) => {
    const stats = join(tmpdir(), `weir-bench-http-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', ['-f', '%U %S %M', '-o', stats, process.execPath, ...argv], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => {
      const seconds = (performance.now() - t0) / 1000;
      const [user, sys, kb] = readFileSync(stats, 'utf8').trim().split('\n').pop().split(' ').map(Number);
      rmSync(stats, { force: true });
      ok({ code, stdout, stderr, seconds, cpuSeconds: user + sys, peakMb: kb / 1024 });
    });
  });
}

/** The generator's plan: `PARTITIONS` contiguous id ranges starting at 1 (as `generator.partitions`). */
function ranges() {
  const size = Math.floor(ROWS / PARTITIONS);
  const extra = ROWS % PARTITIONS;
  const out = [];
  let start = 1;
  for (let i = 0; i < PARTITIONS; i++) {
    const count = size + (i < extra ? 1 : 0);
    out.push([start, start + count]);
    start += count;
  }
  return out;
}

if (args.serve) await serve();
else if (args.raw) await rawClient(args.raw);
else await main();

async function serve() {
  let ids = new Uint8Array(ROWS + 2);
  let totals;
  const reset = () => {
    ids = new Uint8Array(ROWS + 2);
    totals = { bodies: 0, bytes: 0, rows: 0, twice: 0, outOfRange: 0, digest: 0n, cpu: process.cpuUsage(), maxInFlight: 0 };
  };
  reset();
  let inFlight = 0;
  const server = createServer((req, res) => {
    totals.maxInFlight = Math.max(totals.maxInFlight, ++inFlight);
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      totals.bodies++;
      totals.bytes += body.length;
      totals.digest = (totals.digest + createHash('sha256').update(body).digest().readBigUInt64BE(0)) & 0xffffffffffffffffn;
      for (const row of JSON.parse(body.toString('utf8'))) {
        totals.rows++;
        const id = row.id;
        if (!Number.isInteger(id) || id < 1 || id > ROWS) totals.outOfRange++;
        else if (ids[id]++ > 0) totals.twice++;
      }
      inFlight--;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' });
      res.end('{}');
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  process.on('message', (m) => {
    if (m === 'totals') {
      let missing = 0;
      for (let id = 1; id <= ROWS; id++) if (ids[id] === 0) missing++;
      const cpu = process.cpuUsage(totals.cpu);
      process.send({ totals: { ...totals, missing, digest: totals.digest.toString(16), cpuSeconds: (cpu.user + cpu.system) / 1e6 } });
      reset();
    } else if (m === 'stop') server.close(() => process.exit(0));
  });
}

async function rawClient(url) {
  const { Pool } = await import('undici');
  const { generateRow } = await import(GENERATOR);
  const pool = new Pool(url, { connections: PARTITIONS });
  const t0 = performance.now();
  const partition = async ([start, end]) => {
    for (let from = start; from < end; from += BATCH) {
      const to = Math.min(end, from + BATCH);
      const rows = [];
      for (let id = from; id < to; id++) rows.push(generateRow(42, id));
      const res = await pool.request({
        path: '/ingest',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(rows),
      });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
    }
  };
  await Promise.all(ranges().map(partition));
  const seconds = (performance.now() - t0) / 1000;
  await pool.close();
  process.stdout.write(`${JSON.stringify({ seconds })}\n`);
}

async function main() {
  const server = fork(SELF, ['--serve', '--rows', String(ROWS)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [{ port }] = await once(server, 'message');
  const url = `http://127.0.0.1:${port}`;
  const totals = async () => {
    server.send('totals');
    const [m] = await once(server, 'message');
    return m.totals;
  };

  const contenders = {
    raw: async () => {
      const r = await measure([SELF, '--raw', url, '--rows', String(ROWS), '--batch', String(BATCH), '--partitions', String(PARTITIONS)]);
      if (r.code !== 0) throw new Error(`raw client failed: ${r.stderr}`);
      return r;
    },
    weir: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'weir-bench-http-'));
      const pipeline = join(dir, 'p.yaml');
      writeFileSync(
        pipeline,
        `pipeline: bench-http
source: { type: generator, rows: ${ROWS}, partitions: ${PARTITIONS}, seed: 42 }
sink: { type: http, url: "${url}/ingest", batch_size: ${BATCH}, format: json, connections: 1 }
checkpoint: { path: ${join(dir, 'state.db')} }
`,
      );
      const prof = args.prof ? ['--cpu-prof', '--cpu-prof-dir', resolve(args.prof)] : [];
      const r = await measure([...prof, BIN, 'run', pipeline, '--log-format', 'json', '--summary-json', join(dir, 'summary.json')]);
      if (r.code !== 0) throw new Error(`weir failed (${r.code}): ${r.stderr.slice(-2000)}`);
      rmSync(dir, { recursive: true, force: true });
      return r;
    },
  };

  const names = args.only ? [args.only] : ['raw', 'weir'];
  const results = Object.fromEntries(names.map((n) => [n, []]));
  const contents = {};
  for (let i = 0; i < Number(args.runs); i++) {
    const order = i % 2 === 0 ? names : [...names].reverse();
    const line = [];
    for (const name of order) {
      const r = await contenders[name]();
      const t = await totals();
      const content = `${t.rows} rows in ${t.bodies} bodies (${t.bytes} bytes), ${t.twice} twice, ${t.missing} missing, ${t.outOfRange} unknown, digest ${t.digest}`;
      if (t.rows !== ROWS || t.twice || t.missing || t.outOfRange) throw new Error(`${name}: the server received ${content}`);
      if (contents[name] !== undefined && contents[name] !== content) throw new Error(`${name}: content changed between runs`);
      contents[name] = content;
      results[name].push(r);
      line.push(
        `${name} ${(ROWS / r.seconds).toFixed(0)} rows/s (cpu ${r.cpuSeconds.toFixed(2)} s, server ${t.cpuSeconds.toFixed(2)} s, ${t.maxInFlight} in flight) ${r.peakMb.toFixed(0)} MB`,
      );
    }
    console.log(`round ${i + 1}: ${line.join(' · ')}`);
  }
  server.send('stop');

  const summarise = (name) => {
    const secs = results[name].map((x) => x.seconds).sort((a, b) => a - b);
    const best = secs[0];
    const cpu = results[name].map((x) => x.cpuSeconds).sort((a, b) => a - b);
    return {
      bestCpuSeconds: cpu[0],
      name,
      bestSeconds: best,
      rowsPerSecond: ROWS / best,
      medianRowsPerSecond: ROWS / secs[Math.floor(secs.length / 2)],
      spread: secs.at(-1) / best,
      peakMb: Math.max(...results[name].map((x) => x.peakMb)),
      content: contents[name],
    };
  };
  const table = names.map(summarise);
  console.log(`\n${ROWS} rows, batch ${BATCH}, ${PARTITIONS} partitions in flight, ${args.runs} alternating rounds`);
  console.log('contender   best rows/s   median rows/s   spread   peak RSS   best CPU s');
  for (const t of table)
    console.log(
      `${t.name.padEnd(10)}  ${t.rowsPerSecond.toFixed(0).padStart(11)}  ${t.medianRowsPerSecond.toFixed(0).padStart(14)}  ${`${t.spread.toFixed(2)}x`.padStart(7)}  ${t.peakMb.toFixed(0).padStart(6)} MB  ${t.bestCpuSeconds.toFixed(2).padStart(10)}`,
    );
  for (const t of table) console.log(`${t.name}: ${t.content}`);
  if (names.length < 2) return;
  const [raw, weir] = table;
  const ratio = weir.rowsPerSecond / raw.rowsPerSecond;
  const medianRatio = weir.medianRowsPerSecond / raw.medianRowsPerSecond;
  const gates = [
    [
      `weir ≥ ${GATES.weirVsRaw} × raw rows/s, best of each (${ratio.toFixed(2)}; medians ${medianRatio.toFixed(2)})`,
      ratio >= GATES.weirVsRaw,
    ],
    [`weir peak RSS < ${GATES.peakRssMb} MB (${weir.peakMb.toFixed(0)} MB)`, weir.peakMb < GATES.peakRssMb],
    ['the server received the same bodies from both', raw.content === weir.content],
  ];
  for (const [text, ok] of gates) console.log(`${ok ? 'PASS' : 'FAIL'}  ${text}`);
  if (args.json)
    writeFileSync(args.json, JSON.stringify({ rows: ROWS, batch: BATCH, partitions: PARTITIONS, table, ratio, medianRatio }, null, 2));
  process.exitCode = gates.every(([, ok]) => ok) ? 0 : 1;
}
