/**
 * The distributed commands and flags (BullMQ on Redis): `weir run --engine bullmq`,
 * `weir worker`, `weir status`, `weir cancel`. Thin, like the other commands: checks
 * the flags (one clear error each), reaches Redis once (unreachable: one line, exit 3),
 * and calls src/distributed and the BullMQ engine.
 */
import { Job, Queue } from 'bullmq';
import { finishDetachedJob } from '../distributed/job-commit.js';
import type { RunJobData } from '../distributed/jobs.js';
import {
  closeWithin,
  connect,
  KEEP_SECONDS,
  PREFIX,
  parseQueueName,
  parseRedisUrl,
  probeRedis,
  readRunRecord,
  runKeys,
  safeUrl,
} from '../distributed/redis.js';
import { startWorker } from '../distributed/worker.js';
import { EventBus } from '../observe/events.js';
import { createLogger, type LogFormat, type LogLevel } from '../observe/logger.js';
import type { Engine } from '../runtime/engine.js';
import { bullmqEngine } from '../runtime/engines/bullmq.js';
import type { TaskResult } from '../runtime/task-json.js';
import { WeirError } from '../sdk/errors.js';
import type { JsonValue } from '../sdk/types.js';
import { type Redactor, redactor } from '../secrets/redactor.js';
import type { EngineFlags } from './distributed-commands.js';
import { EXIT, printError } from './exit.js';

export interface RedisFlags {
  redis?: string;
  queue?: string;
  logFormat?: LogFormat;
  logLevel?: LogLevel;
}

/** Thrown when Redis cannot be reached: the CLI prints its line and exits 3. */
class Unreachable extends Error {}

async function reach(value: string | undefined, warn: (w: string) => void = (w) => process.stderr.write(`warning: ${w}\n`)): Promise<URL> {
  const url = parseRedisUrl(value);
  try {
    const { warnings } = await probeRedis(url);
    for (const w of warnings) warn(w);
  } catch (error) {
    throw new Unreachable((error as Error).message);
  }
  return url;
}

/** Runs a distributed command body; maps a bad flag to 2 and an unreachable Redis to 3, each one line. */
async function guarded(body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof Unreachable) {
      process.stderr.write(`error: ${error.message}\n`);
      return EXIT.check;
    }
    return printError(error);
  }
}

/** The BullMQ engine of `weir run --engine bullmq` (flags checked by distributed-commands.ts); a number when Redis is unreachable (the exit code). */
export async function bullmqFromFlags(flags: EngineFlags, onSubmitted: (runId: string) => void): Promise<Engine | number> {
  const queue = parseQueueName(flags.queue);
  if (!flags.redis)
    throw new WeirError('--engine bullmq needs --redis URL: the Redis server the workers share, e.g. redis://127.0.0.1:6379', {
      kind: 'config',
    });
  let url: URL;
  try {
    url = await reach(flags.redis);
  } catch (error) {
    if (error instanceof Unreachable) {
      process.stderr.write(`error: ${error.message}\n`);
      return EXIT.check;
    }
    throw error;
  }
  return bullmqEngine({ url, queue, detach: Boolean(flags.detach), onSubmitted });
}

export interface WorkerFlags extends RedisFlags {
  concurrency?: string;
  metricsPort?: number;
  lockDuration?: string;
  shutdownGrace?: string;
}

function positiveInt(flag: string, value: string | undefined, fallback: number, max = 1024): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new WeirError(`${flag} must be a whole number 1-${max}, got ${JSON.stringify(value)}`, { kind: 'config' });
  return n;
}

/** `weir worker`: runs partitions until SIGTERM/SIGINT, then closes gracefully (exit 0). */
export function workerCommand(flags: WorkerFlags): Promise<number> {
  return guarded(async () => {
    const concurrency = positiveInt('--concurrency', flags.concurrency, 1);
    const lockMs = positiveInt('--lock-duration', flags.lockDuration, 15_000, 3_600_000);
    const graceMs = positiveInt('--shutdown-grace', flags.shutdownGrace, 30_000, 3_600_000);
    const queue = parseQueueName(flags.queue);
    const format = flags.logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json');
    const level = flags.logLevel ?? 'info';
    const logger = (r: Redactor) => createLogger({ format, level, redactor: r });
    const root = logger(redactor);
    const url = await reach(flags.redis, (w) => root.warn({ event: 'warning' }, w));
    const bus = new EventBus();
    let ready = false;
    const observe = flags.metricsPort !== undefined ? await import('../observe/metrics.js') : undefined;
    const metrics = observe?.collectMetrics(bus, redactor);
    const server =
      observe && metrics && flags.metricsPort !== undefined
        ? await observe.startHealthServer(
            {
              registry: metrics.registry,
              get state() {
                return ready ? ('running' as const) : ('starting' as const);
              },
              stop: () => metrics.stop(),
            },
            flags.metricsPort,
          )
        : undefined;
    if (server) root.info({ event: 'metrics_server', address: server.address() }, 'serving /metrics, /healthz and /readyz');
    const worker = await startWorker({ url, queue, concurrency, logger, bus, lockMs, graceMs });
    ready = true;
    root.info(
      { event: 'worker_start', redis: safeUrl(url.toString()), queue, concurrency },
      `weir worker on ${safeUrl(url.toString())}, queue ${queue}`,
    );
    await new Promise<void>((resolve) => {
      let closing = false;
      const onSignal = (signal: NodeJS.Signals) => {
        if (closing) {
          root.warn(
            { event: 'shutdown_forced', signal },
            `${signal} again: exiting now; running partitions come back through stalled-job recovery`,
          );
          process.exit(signal === 'SIGINT' ? EXIT.sigint : EXIT.sigterm);
        }
        closing = true;
        ready = false;
        root.info({ event: 'shutdown_requested', signal }, `${signal}: closing the worker`);
        void worker.close().finally(resolve);
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
    server?.close();
    metrics?.stop();
    root.info({ event: 'worker_stopped' }, 'worker closed');
    return EXIT.ok;
  });
}

interface PartitionState {
  job_id: string;
  partition_id: string;
  state: string;
  attempts: number;
  rows_written?: number;
  error?: string;
}

async function partitionStates(queue: Queue, partitions: [string, string][]): Promise<PartitionState[]> {
  const out: PartitionState[] = [];
  for (const [jobId, partitionId] of partitions) {
    const job = await Job.fromId(queue, jobId);
    if (!job) {
      out.push({ job_id: jobId, partition_id: partitionId, state: 'gone', attempts: 0 });
      continue;
    }
    const state = await job.getState();
    const result = job.returnvalue as Partial<TaskResult> | null;
    const rows = typeof result?.metrics?.rows_processed === 'number' ? result.metrics.rows_processed : undefined;
    out.push({
      job_id: jobId,
      partition_id: partitionId,
      state,
      attempts: job.attemptsStarted,
      ...(rows !== undefined ? { rows_written: rows } : {}),
      ...(state === 'failed' && job.failedReason ? { error: job.failedReason } : {}),
    });
  }
  return out;
}

/** `weir status RUN_ID`: the run's partitions, their states and counts (exit 0; 2 for an unknown run). */
export function statusCommand(runId: string, flags: RedisFlags & { json?: boolean }): Promise<number> {
  return guarded(async () => {
    const name = parseQueueName(flags.queue);
    const url = await reach(flags.redis);
    const redis = connect(url);
    const queue = new Queue(name, { connection: redis, prefix: PREFIX });
    try {
      const record = await readRunRecord(redis, name, runId);
      if (!record)
        throw new WeirError(`no run ${runId} on queue ${name} in Redis (finished runs are kept 7 days); check the run id and --queue`, {
          kind: 'config',
        });
      const parts = await partitionStates(queue, record.partitions);
      const count = (s: string) => parts.filter((p) => p.state === s).length;
      const rows = parts.reduce((a, p) => a + (p.rows_written ?? 0), 0);
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ ...record, partitions: parts, rows_written: rows }, null, 2)}\n`);
        return EXIT.ok;
      }
      process.stdout.write(
        `run ${runId} (${record.pipeline}) on queue ${name}: ${record.status}\n` +
          `  partitions: ${parts.length} · completed ${count('completed')} · active ${count('active')} · waiting ${count('waiting') + count('delayed') + count('prioritized')} · failed ${count('failed')}\n` +
          `  rows written (committed partitions): ${rows}\n`,
      );
      for (const p of parts)
        process.stdout.write(
          `  ${p.partition_id.padEnd(16)} ${p.state.padEnd(10)} attempts ${String(p.attempts).padEnd(3)}${p.rows_written !== undefined ? ` rows ${p.rows_written}` : ''}${p.error ? `  ${p.error}` : ''}\n`,
        );
      return EXIT.ok;
    } finally {
      await closeWithin(() => queue.close());
      redis.disconnect();
    }
  });
}

/**
 * `weir cancel RUN_ID`: every worker stops the run's partitions. A followed run is
 * aborted by the process that submitted it; a detached one is aborted here, once no
 * partition runs any more (this process resolves the pipeline's references itself).
 */
export function cancelCommand(runId: string, flags: RedisFlags & { wait?: string }): Promise<number> {
  return guarded(async () => {
    const name = parseQueueName(flags.queue);
    const waitMs = positiveInt('--wait', flags.wait, 60, 3600) * 1000;
    const url = await reach(flags.redis);
    const redis = connect(url);
    const queue = new Queue(name, { connection: redis, prefix: PREFIX });
    try {
      const record = await readRunRecord(redis, name, runId);
      if (!record) throw new WeirError(`no run ${runId} on queue ${name} in Redis; check the run id and --queue`, { kind: 'config' });
      if (record.status === 'succeeded') throw new WeirError(`run ${runId} already committed; nothing to cancel`, { kind: 'config' });
      const keys = runKeys(name, runId);
      await redis.set(keys.cancel, 'cancelled', 'EX', KEEP_SECONDS);
      await redis.hset(keys.record, 'status', 'cancelled');
      process.stderr.write(`run ${runId}: cancelled; workers stop its partitions\n`);
      if (record.commit_by !== 'worker') return EXIT.ok;
      const deadline = Date.now() + waitMs;
      let parts = await partitionStates(queue, record.partitions);
      while (parts.some((p) => p.state === 'active') && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        parts = await partitionStates(queue, record.partitions);
      }
      if (parts.some((p) => p.state === 'active'))
        throw new WeirError(`partitions of run ${runId} still run after ${waitMs / 1000} s; run weir cancel again to abort the job`, {
          kind: 'connector',
        });
      const parent = await Job.fromId(queue, runId);
      const messages: JsonValue[] = [];
      for (const [jobId] of record.partitions) {
        const job = await Job.fromId(queue, jobId);
        const result = job?.returnvalue as Partial<TaskResult> | null;
        if (result?.ok) messages.push((result.message ?? null) as JsonValue);
      }
      if (parent)
        await finishDetachedJob('abort', parent.data as RunJobData, messages, (r) =>
          createLogger({ format: 'json', level: 'warn', redactor: r }),
        );
      process.stderr.write(`run ${runId}: job aborted (${messages.length} committed partition(s) taken back)\n`);
      return EXIT.ok;
    } finally {
      await closeWithin(() => queue.close());
      redis.disconnect();
    }
  });
}
