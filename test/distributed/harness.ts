/**
 * The distributed tests' harness: a FRESH redis-server on a free port (no persistence,
 * stopped by pid), `weir worker` processes of the built CLI, and a scan of every Redis
 * key and value.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { BIN, ROOT } from '../helpers/cli.js';

export const FIXTURE = `${ROOT}/test/distributed/fixtures/connectors.mjs`;

export const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  port: number;
  url: string;
  /** Stops the server (by its pid) and starts a fresh one on the same port: every key is gone. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function waitForPing(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.ping();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      client.disconnect();
    }
  }
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  let proc: ChildProcess;
  const launch = async () => {
    proc = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--bind', '127.0.0.1'], {
      stdio: 'ignore',
    });
    await waitForPing(port);
  };
  const kill = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    process.kill(proc.pid as number, 'SIGKILL');
    await exited;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    restart: async () => {
      await kill();
      await launch();
    },
    stop: kill,
  };
}

export interface WorkerProcess {
  proc: ChildProcess;
  pid: number;
  logs: () => Record<string, unknown>[];
  /** Resolves when the worker logs a line `match` accepts. */
  waitFor(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  text: () => string;
}

export async function startWorker(
  redisUrl: string,
  args: string[] = [],
  env: Record<string, string | undefined> = {},
): Promise<WorkerProcess> {
  const proc = spawn(process.execPath, [BIN, 'worker', '--redis', redisUrl, '--log-format', 'json', '--lock-duration', '2000', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const lines: Record<string, unknown>[] = [];
  const waiters: { match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  const onLine = (line: string) => {
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      lines.push(parsed);
      for (const w of [...waiters])
        if (w.match(parsed)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
    } catch {}
  };
  let partial = '';
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) onLine(p);
  });
  proc.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const waitFor = (match: (l: Record<string, unknown>) => boolean, timeoutMs = 20_000) => {
    const seen = lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`worker ${proc.pid}: no matching log line in ${timeoutMs} ms:\n${out.slice(-3000)}`)),
        timeoutMs,
      );
      waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  };
  const worker: WorkerProcess = { proc, pid: proc.pid as number, logs: () => lines, waitFor, exited, text: () => out };
  await waitFor((l) => l.event === 'worker_ready');
  return worker;
}

export async function stopWorkers(workers: WorkerProcess[]): Promise<void> {
  await Promise.all(
    workers.map(async (w) => {
      if (w.proc.exitCode !== null || w.proc.signalCode !== null) return;
      process.kill(w.pid, 'SIGTERM');
      const timer = setTimeout(() => w.proc.exitCode === null && process.kill(w.pid, 'SIGKILL'), 10_000);
      await w.exited;
      clearTimeout(timer);
    }),
  );
}

/** Every key with its type and its whole value as text (strings, hashes, lists, sets, sorted sets, streams), and its DUMP bytes. */
export async function dumpRedis(url: string): Promise<{ keys: number; text: string }> {
  const client = new Redis(url);
  try {
    const parts: string[] = [];
    let keys = 0;
    let cursor = '0';
    do {
      const [next, batch] = await client.scan(cursor, 'COUNT', '500');
      cursor = next;
      for (const key of batch) {
        keys++;
        const type = await client.type(key);
        let value: unknown;
        if (type === 'string') value = await client.get(key);
        else if (type === 'hash') value = await client.hgetall(key);
        else if (type === 'list') value = await client.lrange(key, 0, -1);
        else if (type === 'set') value = await client.smembers(key);
        else if (type === 'zset') value = await client.zrange(key, '0', '-1', 'WITHSCORES');
        else if (type === 'stream') value = await client.xrange(key, '-', '+');
        const dump = await client.dumpBuffer(key);
        parts.push(`${key}\t${type}\t${JSON.stringify(value)}\t${dump?.toString('latin1') ?? ''}`);
      }
    } while (cursor !== '0');
    return { keys, text: parts.join('\n') };
  } finally {
    client.disconnect();
  }
}
