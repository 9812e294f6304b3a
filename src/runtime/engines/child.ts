/**
 * The child-process engine: every attempt of a partition runs in a child process of
 * its own, started with nothing but the task's JSON on stdin (child-main.ts). The
 * child rebuilds the pipeline, connectors, secrets, logger and policies itself and
 * reports events and a plain-JSON result over the IPC channel; this process keeps
 * what is shared — the checkpoint store, the dead-letter ledger, the retry decision.
 * It proves that a task crosses a process boundary and isolates connector code from
 * the planner (a crash of the child is a retryable attempt failure, `worker_lost`).
 * Rate limits and the circuit breaker hold per child here.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { WeirEvent } from '../../observe/events.js';
import { WeirError } from '../../sdk/errors.js';
import type { JsonValue, Partition } from '../../sdk/types.js';
import type { Engine, ExecuteJob, ExecuteResult } from '../engine.js';
import { runAll, runPartition } from '../partition.js';
import { epochOf } from '../stream.js';
import type { PartitionOutcome } from '../task.js';
import { emptyMetrics, fromTaskError, parseTaskResult, type TaskResult, type TaskSpec } from '../task-json.js';

/** The compiled child entry: beside this module, or under dist/ when this module runs from its TypeScript source (tests). */
function childEntry(): string {
  const here = fileURLToPath(new URL('./child-main.js', import.meta.url));
  if (existsSync(here)) return here;
  const built = here.replace(/([\\/])src([\\/]runtime[\\/]engines[\\/])/, '$1dist$2');
  if (existsSync(built)) return built;
  throw new WeirError(`the child-process engine needs the compiled worker ${built}; run npm run build`, { kind: 'internal' });
}

const LEVELS: Record<number, 'debug' | 'info' | 'warn' | 'error'> = {
  10: 'debug',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'error',
};

export interface ChildProcessEngineOptions {
  /** The children's environment (default: this process's): where they resolve `\${env:…}` references. */
  env?: NodeJS.ProcessEnv;
  /** Sees each task's JSON exactly as it is sent (tests, tracing). */
  onTask?: (json: string) => void;
}

export function childProcessEngine(options: ChildProcessEngineOptions = {}): Engine {
  return {
    name: 'child-process',
    execute(job: ExecuteJob): Promise<ExecuteResult> {
      const entry = childEntry();
      const { stop } = job;
      // a failed attempt's committed dead letters, until the partition runs again (dropped) or fails for good (published)
      const pendingDeadLetters = new Map<string, JsonValue>();
      const attemptOnce = async (partition: Partition, attempt: number): Promise<PartitionOutcome> => {
        const progress = job.progress();
        const spec: TaskSpec = {
          pipeline: job.pipeline.document,
          run_id: job.runId,
          state_id: job.stateId,
          partition,
          attempt,
          schema: job.schema ?? null,
          limits: job.limits,
          run_rows_read: progress.rowsRead,
          run_rows_rejected: progress.rowsRejected,
        };
        const resume = job.stream?.progress.last(partition.id);
        if (resume) spec.resume_from = resume;
        const result = await runChild(entry, spec, job, options);
        if (result.dead_letters !== undefined) {
          if (result.ok) job.deadLetters.record(partition.id, result.dead_letters);
          else pendingDeadLetters.set(partition.id, result.dead_letters);
        }
        if (!result.ok)
          return { partition, ok: false, metrics: result.metrics, error: fromTaskError(result.error ?? lost(partition, 'no error')) };
        job.checkpoints?.commitPartition(partition.id, result.message ?? null, result.state);
        return { partition, ok: true, message: result.message ?? null, metrics: result.metrics };
      };
      const run = {
        bus: job.bus,
        signal: stop.abort,
        drain: stop.drain,
        // the retried attempt's dead letters are never published (their staged output goes with the run's leftovers)
        discardAttempt: async (o: PartitionOutcome) => {
          pendingDeadLetters.delete(o.partition.id);
        },
      };
      return runAll(
        job.partitions,
        async (p) => {
          const outcome = await runPartition((attempt) => attemptOnce(p, attempt), job.retry, run);
          const message = pendingDeadLetters.get(p.id);
          pendingDeadLetters.delete(p.id);
          // the partition failed for good: its rejected rows explain it, and are published with the run's
          if (message !== undefined) job.deadLetters.record(p.id, message);
          return outcome;
        },
        job,
      );
    },
  };
}

function lost(partition: Partition, why: string) {
  return {
    code: 'worker_lost',
    message: `the worker process of partition ${partition.id} ended without a result (${why}); the partition runs again`,
    kind: 'connector' as const,
    retryable: true,
  };
}

/** Runs one task in a child process; resolves with its result, or a retryable `worker_lost` failure when the child died first. */
function runChild(entry: string, spec: TaskSpec, job: ExecuteJob, options: ChildProcessEngineOptions): Promise<TaskResult> {
  const { partition, attempt } = spec;
  return new Promise((resolve) => {
    const child: ChildProcess = spawn(process.execPath, [entry], {
      stdio: ['pipe', 'ignore', 'pipe', 'ipc'],
      env: options.env ?? process.env,
    });
    let result: TaskResult | undefined;
    let malformed: string | undefined;
    const kill = (signal: NodeJS.Signals) => () => {
      if (child.exitCode === null) child.kill(signal);
    };
    const onAbort = kill('SIGTERM');
    const onDrain = kill('SIGINT');
    job.stop.abort.addEventListener('abort', onAbort, { once: true });
    job.stop.drain.addEventListener('abort', onDrain, { once: true });
    const unregister = job.closers.register(`worker process of partition ${partition.id}`, () => {
      kill('SIGKILL')();
    });
    child.on('message', (m: unknown) => {
      const message = m as { event?: WeirEvent; result?: unknown; epoch?: { partition_id?: unknown; mark?: unknown } } | null;
      if (typeof message !== 'object' || message === null) return;
      const mark = message.epoch?.partition_id === partition.id ? epochOf({ epoch: message.epoch.mark as JsonValue }) : undefined;
      if (mark) job.stream?.progress.committed(partition.id, mark);
      else if (message.event && typeof message.event === 'object' && typeof message.event.type === 'string') job.bus.emit(message.event);
      else if (message.result !== undefined) {
        try {
          result = parseTaskResult(message.result, { partition_id: partition.id, attempt });
        } catch (error) {
          malformed = (error as Error).message;
        }
      }
    });
    if (child.stderr) {
      const logger = job.logger.child({ partition_id: partition.id, attempt, worker_pid: child.pid });
      createInterface({ input: child.stderr }).on('line', (line) => relayLog(logger, line));
    }
    child.stdin?.on('error', () => {}); // a child that dies at once: its exit says so
    const json = JSON.stringify(spec);
    options.onTask?.(json);
    child.stdin?.end(json);
    child.on('error', (error) => {
      malformed ??= error.message;
    });
    child.on('close', (code, signal) => {
      job.stop.abort.removeEventListener('abort', onAbort);
      job.stop.drain.removeEventListener('abort', onDrain);
      unregister();
      if (result) return resolve(result);
      const why = malformed ?? (signal ? `killed by ${signal}` : `exit code ${code}`);
      const error = job.stop.abort.aborted
        ? { code: 'cancelled', message: 'run stopped', kind: 'cancelled' as const, retryable: false }
        : lost(partition, why);
      resolve({
        partition_id: partition.id,
        attempt,
        ok: false,
        metrics: emptyMetrics(partition.id, attempt),
        error,
      });
    });
  });
}

/** A JSON log line of the child, logged here with its fields (the parent's redactor applies again). */
function relayLog(logger: ExecuteJob['logger'], line: string): void {
  try {
    const { level, msg, time: _time, pid: _pid, hostname: _host, ...fields } = JSON.parse(line) as Record<string, unknown>;
    logger[LEVELS[Number(level)] ?? 'info'](fields, typeof msg === 'string' ? msg : '');
  } catch {
    if (line.trim()) logger.warn({ event: 'worker_output' }, line);
  }
}
