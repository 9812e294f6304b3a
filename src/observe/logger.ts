/**
 * Structured logs (pino). Every line passes through the redactor on its way out,
 * and every event of a run becomes one log line here (repeating ones rate-limited).
 */
import type { Writable } from 'node:stream';
import { type Logger, pino } from 'pino';
import type { Log } from '../sdk/connector.js';
import type { Redactor } from '../secrets/redactor.js';
import type { EventBus, EventType, WeirEvent } from './events.js';
import { LogLimiter, type Suppressed } from './log-limit.js';
import { humanLine, Terminal, useColor } from './terminal.js';

export type LogFormat = 'json' | 'pretty';
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  format: LogFormat;
  level: LogLevel;
  redactor: Redactor;
  /** Where lines go; stdout by default. */
  destination?: Writable;
  /** `pretty`: the terminal shared with the progress line (one is made for `destination` when absent). */
  terminal?: Terminal;
  /** `pretty`: colour the level and time; by default as NO_COLOR, FORCE_COLOR and the terminal say. */
  color?: boolean;
  /** Also append every line as JSON here (`--log-file`). */
  file?: Writable;
}

/**
 * The logger of a run. `json`: one JSON line per event on the destination. `pretty`: one
 * short human line per event on the terminal (see {@link humanLine}), drawn through the
 * {@link Terminal} so the progress line never collides with it. With `file`, every line
 * is also appended there as JSON, whatever the format.
 */
export function createLogger(options: LoggerOptions): Logger {
  const target = options.destination ?? process.stdout;
  const r = options.redactor;
  let out: (line: string) => void;
  if (options.format === 'pretty') {
    const terminal = options.terminal ?? new Terminal({ out: target as NodeJS.WriteStream });
    const color = options.color ?? useColor(target as { isTTY?: boolean });
    out = (line) => terminal.line(humanLine(line, color, terminal.width));
  } else out = (line) => target.write(line);
  const file = options.file;
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
    {
      write: (line: string) => {
        const scrubbed = r.scrub(line);
        file?.write(scrubbed);
        out(scrubbed);
      },
    },
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

type LineLevel = Exclude<LogLevel, 'fatal' | 'silent'>;

/** One log line: what `logEvents` writes for an event. */
interface Line {
  level: LineLevel;
  fields: Record<string, unknown>;
  msg: string;
}

/**
 * The events that can repeat per row or per batch, with the level of their line. Their lines
 * go through the {@link LogLimiter}; every other event is rare (per run or per partition) and
 * always logged.
 */
const REPEATING = {
  batch_written: 'debug',
  batch_retry: 'warn',
  rate_limit_wait: 'trace',
  row_dead_lettered: 'warn',
} as const satisfies Partial<Record<EventType, LineLevel>>;

type RepeatingType = keyof typeof REPEATING;
const isRepeating = (e: WeirEvent): e is Extract<WeirEvent, { type: RepeatingType }> => Object.hasOwn(REPEATING, e.type);

export interface LogEventsOptions {
  /** Decides which repeating lines are printed; by default 5 per event type and partition, then one per 5 s. */
  limiter?: LogLimiter;
}

/**
 * Turns each event into one log line: the one place where events become log lines.
 * Lines of repeating events are rate-limited per event type and partition; what is held back
 * is counted on the next line of that kind, or else in a `log_suppressed` line ("N more
 * row_dead_lettered lines suppressed") once that kind was quiet for an interval, at partition
 * end and at run end. Metrics and the summary subscribe to the bus themselves and still count
 * every event.
 */
export function logEvents(bus: EventBus, root: Logger, options: LogEventsOptions = {}): () => void {
  const limiter = options.limiter ?? new LogLimiter();
  let logger = root;
  const write = (line: Line) => logger[line.level](line.fields, line.msg);
  const reportSuppressed = (held: Suppressed[]) => {
    for (const s of held) write(suppressedLine(s));
  };
  return bus.subscribe((e: WeirEvent) => {
    if (e.type === 'run_start') logger = root.child({ run_id: e.run_id, pipeline: e.pipeline });
    if (e.type === 'partition_complete' || e.type === 'partition_failed') reportSuppressed(limiter.drain(e.metrics.partition_id));
    if (e.type === 'run_complete' || e.type === 'run_failed') reportSuppressed(limiter.drainAll());
    if (isRepeating(e)) writeRepeating(e);
    else {
      const line = lineOf(e);
      if (line) write(line);
    }
    reportSuppressed(limiter.due());
  });

  /** Asks the limiter before the line is built: most of these events print nothing. */
  function writeRepeating(e: Extract<WeirEvent, { type: RepeatingType }>): void {
    if (!logger.isLevelEnabled(REPEATING[e.type])) return;
    const decision = limiter.admit(e.type, e.partition_id);
    if (!decision.print) return;
    const line = lineOf(e);
    if (!line) return;
    write(decision.suppressed > 0 ? withSuppressed(line, e.type, decision.suppressed) : line);
  }
}

function withSuppressed(line: Line, type: RepeatingType, suppressed: number): Line {
  return {
    ...line,
    fields: { ...line.fields, suppressed },
    msg: `${line.msg} (${suppressed} more ${type} lines suppressed before this one)`,
  };
}

function suppressedLine(s: Suppressed): Line {
  return {
    level: REPEATING[s.type as RepeatingType] ?? 'info',
    fields: { event: 'log_suppressed', suppressed_event: s.type, partition_id: s.partition_id, suppressed: s.suppressed },
    msg: `${s.suppressed} more ${s.type} lines suppressed`,
  };
}

const line = (level: LineLevel, fields: Record<string, unknown>, msg: string): Line => ({ level, fields, msg });

/** The log line of one event, or undefined for events that are not logged. */
function lineOf(e: WeirEvent): Line | undefined {
  switch (e.type) {
    case 'run_start':
      return line(
        'info',
        { event: e.type, ...omitType(e), run_id: undefined, pipeline: undefined },
        `run started: ${e.source} → ${e.sink}, ${e.partitions} partition(s)`,
      );
    case 'partition_start':
      return line('debug', { event: e.type, partition_id: e.partition_id, attempt: e.attempt }, 'partition started');
    case 'partition_skipped':
      return line('info', { event: e.type, partition_id: e.partition_id, reason: e.reason }, 'partition skipped');
    case 'batch_written':
      return line(REPEATING[e.type], { event: e.type, ...omitType(e) }, 'batch written');
    case 'batch_retry':
      return line(
        REPEATING[e.type],
        { event: e.type, ...omitType(e) },
        `batch ${e.batch_id} failed (${e.error_type}); retry ${e.attempt} in ${e.delay_ms} ms`,
      );
    case 'rate_limit_wait':
      return line(REPEATING[e.type], { event: e.type, ...omitType(e) }, 'rate limit wait');
    case 'row_dead_lettered':
      return line(REPEATING[e.type], { event: e.type, ...omitType(e) }, 'row dead-lettered');
    case 'rows_read':
    case 'rows_transformed':
    case 'source_lag':
      return undefined;
    case 'partition_complete':
      return line(
        'info',
        { event: e.type, ...e.metrics },
        `partition ${e.metrics.partition_id} committed: ${e.metrics.rows_processed} rows in ${e.metrics.duration_seconds.toFixed(2)} s`,
      );
    case 'partition_failed': {
      const fields = { event: e.type, ...e.metrics, error_type: e.error_type, error_message: e.error_message };
      if (e.error_type === 'cancelled')
        return line('warn', fields, `partition ${e.metrics.partition_id} interrupted (${e.error_message}); nothing of it was committed`);
      return line('error', fields, `partition ${e.metrics.partition_id} failed: ${e.error_message}`);
    }
    case 'partition_retry':
      return line(
        'warn',
        { event: e.type, ...e.metrics, delay_ms: e.delay_ms, error_type: e.error_type, error_message: e.error_message },
        `partition ${e.metrics.partition_id} attempt ${e.metrics.attempt} failed (${e.error_message}); it was aborted and runs again as attempt ${e.metrics.attempt + 1} in ${e.delay_ms} ms`,
      );
    case 'epoch_commit':
      return line('debug', { event: e.type, ...omitType(e) }, `partition ${e.partition_id} epoch ${e.epoch} committed (${e.rows} rows)`);
    case 'job_committing':
      return line('debug', { event: e.type, ...omitType(e) }, `committing the job (${e.partitions} partitions)`);
    case 'job_commit':
      return line('info', { event: e.type, ...omitType(e) }, 'job committed');
    case 'job_abort':
      return line('warn', { event: e.type, ...omitType(e) }, `job aborted: ${e.reason}`);
    case 'close_error':
      return line('warn', { event: e.type, ...omitType(e) }, `closing ${e.resource} failed: ${e.error_message}`);
    case 'warning':
      return line('warn', { event: e.type, ...omitType(e) }, e.message);
    case 'shutdown_requested':
      return line('warn', { event: e.type, signal: e.signal }, `${e.signal} received: draining`);
    case 'progress':
      return line(
        'info',
        { event: e.type, ...omitType(e) },
        `progress: ${e.rows} rows, ${e.rows_per_second} rows/s${e.percent !== undefined ? `, ${e.percent}%` : ''}`,
      );
    case 'run_complete':
      return line('info', { event: e.type, status: e.summary.status, ...e.summary.totals }, 'run complete');
    case 'run_failed': {
      const t = e.summary.totals;
      if (e.summary.status === 'stopped')
        return line(
          'warn',
          { event: e.type, status: e.summary.status, ...t },
          t.partitions_committed < t.partitions
            ? `run stopped: ${t.partitions_committed} of ${t.partitions} partitions committed; run it again to resume, or with --fresh to start over`
            : 'run stopped',
        );
      return line(
        'error',
        { event: e.type, status: e.summary.status, ...t, error_type: e.error_type, error_message: e.error_message },
        `run failed: ${e.error_message}`,
      );
    }
  }
}

function omitType<T extends { type: string }>(e: T): Omit<T, 'type'> {
  const { type: _t, ...rest } = e;
  return rest;
}
