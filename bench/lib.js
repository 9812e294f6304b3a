/**
 * What the benchmarks share: the bench CSV (generated once into bench/.data/), a
 * process runner that measures wall time and peak RSS, and small helpers.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = join(ROOT, 'bin', 'weir.js');
const DATA = join(ROOT, 'bench', '.data');

// ---------------------------------------------------------------------------
// data

/** Writes the CSV once (deterministic content; reused while its row count matches). */
export async function ensureCsv(rows) {
  mkdirSync(DATA, { recursive: true });
  const file = join(DATA, `bench-v2-${rows}.csv`);
  const marker = `${file}.done`;
  if (existsSync(file) && existsSync(marker)) return file;
  process.stdout.write(`generating ${file} (${rows.toLocaleString('en-US')} rows)… `);
  const out = createWriteStream(file);
  out.write('id,name,amount,active,created_at,note,price\n');
  const base = Date.UTC(2024, 0, 1);
  let chunk = '';
  for (let i = 1; i <= rows; i++) {
    const note =
      i % 10 === 0
        ? '"said ""hi"", then left"'
        : i % 17 === 0
          ? ''
          : i % 19 === 0
            ? '""'
            : i % 29 === 0
              ? '"multi\nline"'
              : `note ${i % 997}`;
    // 28 significant digits (beyond any double), trailing zeros kept: a decimal must arrive as it left
    const price = i % 23 === 0 ? '' : `${String(i * 7919).padStart(18, '1')}.${String(i % 100_000).padStart(10, '0')}`;
    chunk += `${i},user_${i % 50_000},${((i * 7.31) % 10_000).toFixed(2)},${i % 3 === 0},${new Date(base + i * 1000).toISOString()},${note},${price}\n`;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.end(chunk);
  await once(out, 'finish');
  writeFileSync(marker, new Date().toISOString());
  process.stdout.write(`${(statSync(file).size / 1e6).toFixed(1)} MB\n`);
  return file;
}

// ---------------------------------------------------------------------------
// processes: wall time and peak RSS

const GNU_TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

/**
 * Runs a command; resolves with its wall time, peak RSS (GNU time's max RSS, else
 * /proc polling of VmHWM; none with `rss: false`) and output. `onStdout` may kill it.
 */
export function measure(cmd, argv, { env = {}, cwd = ROOT, onStdout, rss = true } = {}) {
  return new Promise((resolvePromise, reject) => {
    const rssFile = join(tmpdir(), `weir-bench-rss-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const timed = rss && GNU_TIME;
    const [file, fileArgs] = timed ? [GNU_TIME, ['-f', '%M', '-o', rssFile, cmd, ...argv]] : [cmd, argv];
    const t0 = performance.now();
    const child = spawn(file, fileArgs, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let polledKb = 0;
    const poll =
      timed || !rss
        ? undefined
        : setInterval(() => {
            try {
              const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
              if (m) polledKb = Math.max(polledKb, Number(m[1]));
            } catch {}
          }, 20);
    const kill = (signal) => child.kill(signal);
    child.stdout.on('data', (d) => {
      const text = d.toString();
      if (stdout.length < 1 << 20) stdout += text;
      onStdout?.(text, kill);
    });
    child.stderr.on('data', (d) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const seconds = (performance.now() - t0) / 1000;
      if (poll) clearInterval(poll);
      let rssKb = polledKb;
      if (timed) {
        try {
          rssKb = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop()) || 0;
          rmSync(rssFile, { force: true });
        } catch {}
      }
      resolvePromise({ code, signal, seconds, rssMb: rssKb / 1024, stdout, stderr });
    });
  });
}

export function freePort() {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
