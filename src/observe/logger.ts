/**
 * Structured logs (pino). Every line passes through the redactor on its way out,
 * and every event of a run becomes one log line here.
 */
import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';
import { type Logger, pino } from 'pino';
import type { Log } from '../sdk/connector.js';
import type { Redactor } from '../secrets/redactor.js';
import type { EventBus, WeirEvent } from './events.js';

export type LogFormat = 'json' | 'pretty';
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  format: LogFormat;
  level: LogLevel;
  redactor: Redactor;
  /** Where lines go; stdout by default. */
  destination?: Writable;
}

const require = createRequire(import.meta.url);
/** pino-pretty is only needed on a terminal; loading it lazily keeps start-up short. */
const loadPretty = (): typeof import('pino-pretty') => require('pino-pretty');

export function createLogger(options: LoggerOptions): Logger {
  const target = options.destination ?? process.stdout;
  const out: { write(s: string): unknown } =
    options.format === 'pretty'
      ? loadPretty()({
          colorize: Boolean((target as { isTTY?: boolean }).isTTY),
          destination: target,
          sync: true,
          translateTime: 'HH:MM:ss.l',
          // a terminal is for people: one line per event; run_id and pipeline are in the summary
          singleLine: true,
          ignore: 'pid,hostname,run_id,pipeline,event',
        })
      : target;
  const r = options.redactor;
  return pino(
    {
      level: options.level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => r.scrubValue(object) as Record<string, unknown>,
      },
    },
    { write: (line: string) => out.write(r.scrub(line)) },
  );
}

/** The connector-facing logger: a narrow interface over a pino child. */
export function toLog(logger: Logger): Log {
  return {
    debug: (msg, fields) => logger.debug(fields ?? {}, msg),
    info: (msg, fields) => logger.info(fields ?? {}, msg),
    warn: (msg, fields) => logger.warn(fields ?? {}, msg),
    error: (msg, fields) => logger.error(fields ?? {}, msg),
  };
}

/** Turns each event into one log line. */
export function logEvents(bus: EventBus, root: Logger): () => void {
  let logger = root;
  return bus.subscribe((e: WeirEvent) => {
    switch (e.type) {
      case 'run_start':
        logger = root.child({ run_id: e.run_id, pipeline: e.pipeline });
        logger.info(
          { event: e.type, ...omitType(e), run_id: undefined, pipeline: undefined },
          `run started: ${e.source} → ${e.sink}, ${e.partitions} partition(s)`,
        );
        break;
      case 'partition_start':
        logger.debug({ event: e.type, partition_id: e.partition_id, attempt: e.attempt }, 'partition started');
        break;
      case 'partition_skipped':
        logger.info({ event: e.type, partition_id: e.partition_id, reason: e.reason }, 'partition skipped');
        break;
      case 'batch_written':
        logger.debug({ event: e.type, ...omitType(e) }, 'batch written');
        break;
      case 'batch_retry':
        logger.warn(
          { event: e.type, ...omitType(e) },
          `batch ${e.batch_id} failed (${e.error_type}); retry ${e.attempt} in ${e.delay_ms} ms`,
        );
        break;
      case 'rate_limit_wait':
        logger.trace({ event: e.type, ...omitType(e) }, 'rate limit wait');
        break;
      case 'row_dead_lettered':
        logger.warn({ event: e.type, ...omitType(e) }, 'row dead-lettered');
        break;
      case 'rows_read':
        break;
      case 'partition_complete':
        logger.info(
          { event: e.type, ...e.metrics },
          `partition ${e.metrics.partition_id} committed: ${e.metrics.rows_processed} rows in ${e.metrics.duration_seconds.toFixed(2)} s`,
        );
        break;
      case 'partition_failed':
        if (e.error_type === 'cancelled') {
          logger.warn(
            { event: e.type, ...e.metrics, error_type: e.error_type, error_message: e.error_message },
            `partition ${e.metrics.partition_id} interrupted (${e.error_message}); nothing of it was committed`,
          );
          break;
        }
        logger.error(
          { event: e.type, ...e.metrics, error_type: e.error_type, error_message: e.error_message },
          `partition ${e.metrics.partition_id} failed: ${e.error_message}`,
        );
        break;
      case 'partition_retry':
        logger.warn(
          { event: e.type, ...e.metrics, delay_ms: e.delay_ms, error_type: e.error_type, error_message: e.error_message },
          `partition ${e.metrics.partition_id} attempt ${e.metrics.attempt} failed (${e.error_message}); it was aborted and runs again as attempt ${e.metrics.attempt + 1} in ${e.delay_ms} ms`,
        );
        break;
      case 'job_commit':
        logger.info({ event: e.type, ...omitType(e) }, 'job committed');
        break;
      case 'job_abort':
        logger.warn({ event: e.type, ...omitType(e) }, `job aborted: ${e.reason}`);
        break;
      case 'close_error':
        logger.warn({ event: e.type, ...omitType(e) }, `closing ${e.resource} failed: ${e.error_message}`);
        break;
      case 'warning':
        logger.warn({ event: e.type, ...omitType(e) }, e.message);
        break;
      case 'shutdown_requested':
        logger.warn({ event: e.type, signal: e.signal }, `${e.signal} received: draining`);
        break;
      case 'progress':
        logger.info(
          { event: e.type, ...omitType(e) },
          `progress: ${e.rows} rows, ${e.rows_per_second} rows/s${e.percent !== undefined ? `, ${e.percent}%` : ''}`,
        );
        break;
      case 'run_complete':
        logger.info({ event: e.type, status: e.summary.status, ...e.summary.totals }, 'run complete');
        break;
      case 'run_failed':
        if (e.summary.status === 'stopped') {
          const t = e.summary.totals;
          logger.warn(
            { event: e.type, status: e.summary.status, ...t },
            t.partitions_committed < t.partitions
              ? `run stopped: ${t.partitions_committed} of ${t.partitions} partitions committed; run it again to resume, or with --fresh to start over`
              : 'run stopped',
          );
          break;
        }
        logger.error(
          { event: e.type, status: e.summary.status, ...e.summary.totals, error_type: e.error_type, error_message: e.error_message },
          `run failed: ${e.error_message}`,
        );
        break;
    }
  });
}

function omitType<T extends { type: string }>(e: T): Omit<T, 'type'> {
  const { type: _t, ...rest } = e;
  return rest;
}
