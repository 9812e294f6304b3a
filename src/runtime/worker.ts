/**
 * The worker side of a task that crosses a process: from a {@link TaskSpec} alone it
 * rebuilds the pipeline (the file's text, its references resolved from this
 * process's own environment and files), the connectors, the redactor, the logger
 * and the task's policies, runs one attempt of the partition, and returns a
 * {@link TaskResult}. What is shared across processes stays with the planner: it
 * records the checkpoint and publishes (or takes back) the dead letters the result
 * names. Policies here are this process's own: the rate limit and circuit breaker
 * hold per worker process until an engine gives shared ones.
 */
import type { Logger } from 'pino';
import { parsePipelineText } from '../config/load.js';
import { createRegistry, openPipeline } from '../config/open.js';
import type { ValidatedPipeline } from '../config/pipeline.js';
import type { WeirEvent } from '../observe/events.js';
import type { EpochMark } from '../sdk/connector.js';
import type { JsonValue } from '../sdk/types.js';
import { Redactor } from '../secrets/redactor.js';
import { DeadLetterStager, deadLetterContext } from './dead-letter.js';
import { type CircuitGate, createRetrier, RateLimiter, type RunRateLimiter, SharedPause } from './policies.js';
import { runAttempt, streamSettings } from './stream.js';
import type { TaskDeps } from './task.js';
import { emptyMetrics, type TaskResult, type TaskSpec, taskError } from './task-json.js';

export interface WorkerHost {
  /** Sends a task's event to the planner. */
  emit(event: WeirEvent): void;
  /** The worker's logger, redacting with the task's redactor. */
  logger(redactor: Redactor): Logger;
  /** Aborted when the task must stop now. */
  signal: AbortSignal;
  /** Aborted when the task should stop reading and let its last batch finish. */
  drain?: AbortSignal;
  /** Unbounded sources: tells the planner an epoch committed (where a retry continues). */
  epochCommitted?(partitionId: string, mark: EpochMark): void;
  /** The task's rate limiter and circuit breaker when they are shared with other processes (a distributed worker's, in Redis); this process's own by default. */
  policies?(config: ValidatedPipeline['config']): { rateLimiter?: RunRateLimiter; breaker?: CircuitGate };
}

/**
 * Runs one attempt of one partition from its JSON (worker, once per task). Never
 * throws: a pipeline that does not open here (a reference this worker cannot
 * resolve) is the result's config error, naming the reference.
 */
export async function runTaskJson(spec: TaskSpec, host: WorkerHost): Promise<TaskResult> {
  const redactor = new Redactor();
  const partitionId = spec.partition.id;
  let pipeline: ValidatedPipeline;
  try {
    const file = parsePipelineText(spec.pipeline.text, spec.pipeline.path);
    pipeline = await openPipeline(file, spec.pipeline.base_dir, await createRegistry(), redactor);
  } catch (error) {
    return {
      partition_id: partitionId,
      attempt: spec.attempt,
      ok: false,
      metrics: emptyMetrics(partitionId, spec.attempt),
      error: taskError(error, redactor),
    };
  }
  const { config } = pipeline;
  const logger = host.logger(redactor).child({ run_id: spec.run_id, pipeline: config.pipeline });
  const source = (config.source.connector.source as NonNullable<typeof config.source.connector.source>)(config.source.options);
  const sink = (config.sink.connector.sink as NonNullable<typeof config.sink.connector.sink>)(config.sink.options);
  const dl = config.errors.dead_letter;
  const deadLetterSink = dl ? dl.connector.sink?.(dl.options) : undefined;
  const shared = host.policies?.(config) ?? {};
  let rowsRead = 0;
  let last = spec.resume_from;
  let deadLetters: JsonValue | undefined;
  const stager = new DeadLetterStager(
    {
      options: config.errors,
      pipeline: config.pipeline,
      redactor,
      rowsRead: () => spec.run_rows_read + rowsRead,
      failedBefore: spec.run_rows_rejected,
    },
    deadLetterSink,
    deadLetterContext({ runId: spec.run_id, pipeline: spec.state_id, baseDir: pipeline.baseDir, logger, signal: host.signal }),
    async (_id, message) => {
      deadLetters = message;
    },
  );
  const deps: TaskDeps = {
    runId: spec.run_id,
    pipeline: spec.state_id,
    baseDir: pipeline.baseDir,
    source,
    sink,
    schema: spec.schema ?? undefined,
    bus: {
      emit: (event) => {
        if (event.type === 'rows_read') rowsRead += event.rows;
        host.emit(event);
      },
    },
    logger,
    limits: spec.limits,
    retrier: createRetrier(config.retry, { pause: new SharedPause(), ...(shared.breaker ? { breaker: shared.breaker } : {}) }),
    rateLimiter: shared.rateLimiter ?? new RateLimiter(config.rate_limit),
    rowErrors: stager,
    signal: host.signal,
    ...(host.drain ? { drain: host.drain } : {}),
    ...(config.transforms ? { transforms: config.transforms } : {}),
    ...(source.unbounded
      ? {
          stream: {
            settings: streamSettings(config.stream),
            progress: {
              last: () => last,
              committed: (id: string, mark: EpochMark) => {
                last = mark;
                host.epochCommitted?.(id, mark);
              },
            },
          },
        }
      : {}),
  };
  let result: TaskResult;
  try {
    const outcome = await runAttempt(spec.partition, spec.attempt, deps);
    // a failed attempt's dead letters are committed too: the planner publishes them or takes them back
    if (!outcome.ok) await stager.finish(true);
    result = {
      partition_id: partitionId,
      attempt: spec.attempt,
      ok: outcome.ok,
      metrics: outcome.metrics,
      ...(outcome.ok ? { message: outcome.message ?? null } : { error: taskError(outcome.error, redactor) }),
      ...(outcome.ok && outcome.state !== undefined ? { state: outcome.state } : {}),
      ...(deadLetters !== undefined ? { dead_letters: deadLetters } : {}),
    };
  } catch (error) {
    result = {
      partition_id: partitionId,
      attempt: spec.attempt,
      ok: false,
      metrics: emptyMetrics(partitionId, spec.attempt),
      error: taskError(error, redactor),
    };
  }
  for (const close of [() => source.close?.(), () => sink.close?.(), () => deadLetterSink?.close?.()]) {
    try {
      await close();
    } catch (error) {
      logger.warn({ event: 'close_error', error: taskError(error, redactor).message }, 'closing a connector failed');
    }
  }
  return result;
}
