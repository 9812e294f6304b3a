/**
 * Test helpers for connector authors and for the runtime: a task context, a
 * scripted source and a recording sink whose every call can be inspected.
 * The runtime is tested with these, without any real connector.
 */
import { appendFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CommitContext,
  type ConnectorDefinition,
  defineConnector,
  type Log,
  type PlanContext,
  type Sink,
  type TaskContext,
  validateConnectorOptions,
  type Writer,
} from './connector.js';
import { type RowLocation, WeirError } from './errors.js';
import { type OptionsOf, o, type Spec } from './options.js';
import type { JsonValue, Partition, Row, Schema } from './types.js';

/** A connector's validated options in a role, for tests; throws every issue when they are invalid. */
export function connectorOptions<S extends Spec>(connector: ConnectorDefinition<S>, input: unknown, role: 'source' | 'sink'): OptionsOf<S> {
  const r = validateConnectorOptions(connector, input, role);
  if (!r.value)
    throw new Error(`invalid ${role} options for ${connector.name}:\n${r.issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`);
  return r.value;
}

export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };

/** A row the source handed to `ctx.reject`. */
export interface Rejected {
  record: unknown;
  error: unknown;
  /** Where the source said the row is (`ctx.reject`'s `at`), when it said. */
  at?: RowLocation;
}

/** A PlanContext for calling a connector's planner side (`partitions`, `schema`, `check`) in a test. */
export function planContext(overrides: Partial<PlanContext> = {}): PlanContext {
  return {
    runId: 'test-run',
    pipeline: 'test',
    log: silentLog,
    signal: new AbortController().signal,
    baseDir: process.cwd(),
    ...overrides,
  };
}

/** A CommitContext for a sink's `setup`, `commit`, `abort` and `recover` in a test. */
export function commitContext(overrides: Partial<CommitContext> = {}): CommitContext {
  return { ...planContext(overrides), schema: overrides.schema };
}

/** The message of a rejected row's error ('' when there is none). */
export function messageOf(rejected: Rejected | undefined): string {
  const error = rejected?.error;
  return error instanceof Error ? error.message : '';
}

/** A fresh directory under the OS temp directory. */
export function tempDir(prefix = 'weir-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Drains a source's `read()` into a flat list of rows. */
export async function collect<T>(iterable: AsyncIterable<T | T[]>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) {
    if (Array.isArray(item)) out.push(...item);
    else out.push(item);
  }
  return out;
}

export interface TestTaskContext extends TaskContext {
  /** Every `reject` call, in order. */
  rejected: Rejected[];
  /** Sum of `count('bytes_sent', n)`. */
  bytes: number;
  /** The last value the source set with `setState`, if any. */
  state: JsonValue | undefined;
  /** Callbacks registered with `onCommit`; a test runs them to simulate the partition commit. */
  commitCallbacks: (() => Promise<void> | void)[];
}

/** A TaskContext for calling a connector's reader or writer directly in a test. */
export function taskContext(overrides: Partial<TaskContext> = {}): TestTaskContext {
  const rejected: Rejected[] = [];
  const ctx: TestTaskContext = {
    runId: 'test-run',
    pipeline: 'test',
    partitionId: '0',
    attempt: 1,
    schema: undefined,
    baseDir: process.cwd(),
    log: silentLog,
    signal: new AbortController().signal,
    rejected,
    bytes: 0,
    async reject(record, error, at) {
      rejected.push(at ? { record, error, at } : { record, error });
    },
    count(metric, value) {
      if (metric === 'bytes_sent') ctx.bytes += value;
    },
    onCommit(callback) {
      ctx.commitCallbacks.push(callback);
    },
    commitCallbacks: [],
    state: undefined,
    setState(value) {
      ctx.state = value;
    },
    ...overrides,
  };
  return ctx;
}

export const TEST_SCHEMA: Schema = [
  { name: 'id', type: 'integer' },
  { name: 'value', type: 'string' },
];

/** Options of the `test-source` connector: N rows over P partitions, optionally failing. */
export const testSourceOptions = {
  rows: o.int({ min: 0 }).describe('Rows in total.').default(100),
  partitions: o.int({ min: 1 }).describe('Partitions (contiguous id ranges).').default(1),
  fail_partition: o.string().describe('Partition id whose reader throws after `fail_after` rows.'),
  fail_after: o.int({ min: 0 }).describe('Rows the failing partition yields before it throws.').default(0),
  delay_ms: o.int({ min: 0 }).describe('Delay between rows, to make runs slow enough to interrupt.').default(0),
  bad_every: o.int({ min: 0 }).describe('Every Nth row has value "BAD" (0: none).').default(0),
  reject_every: o.int({ min: 0 }).describe('Every Nth row is unreadable: handed to ctx.reject instead of yielded (0: none).').default(0),
};

export const testSource = defineConnector({
  name: 'test-source',
  description: 'Scripted rows for runtime tests.',
  options: testSourceOptions,
  source: (opts) => ({
    schema: () => TEST_SCHEMA,
    estimate: () => opts.rows,
    partitions: (): Partition[] => {
      const out: Partition[] = [];
      const size = Math.ceil(opts.rows / opts.partitions);
      for (let i = 0; i < opts.partitions; i++) out.push({ id: String(i), start: i * size, end: Math.min(opts.rows, (i + 1) * size) });
      return out;
    },
    async *read(partition, ctx) {
      for (let id = partition.start as number; id < (partition.end as number); id++) {
        if (partition.id === opts.fail_partition && id - (partition.start as number) >= opts.fail_after)
          throw new WeirError(`partition ${partition.id} failed on purpose`, { code: 'test_failure' });
        if (opts.delay_ms) await new Promise((r) => setTimeout(r, opts.delay_ms));
        if (opts.reject_every && id % opts.reject_every === 0) {
          await ctx.reject(
            { line: id, raw: `#${id}` },
            new WeirError(`row ${id} is unreadable on purpose`, { code: 'unreadable', kind: 'data' }),
          );
          continue;
        }
        yield { id, value: opts.bad_every && id % opts.bad_every === 0 ? 'BAD' : `v${id}` } satisfies Row;
      }
    },
  }),
});

/** Everything a {@link recordingSink} saw. */
export interface SinkRecord {
  writersOpened: string[];
  writersClosed: string[];
  writersAborted: string[];
  /** Rows per partition, as written (including retried and aborted ones). */
  written: Map<string, Row[]>;
  /** Rows visible after the job commit. */
  committed: Row[];
  jobCommits: JsonValue[][];
  jobAborts: JsonValue[][];
  writeCalls: number;
  writeTimes: number[];
}

export interface RecordingSinkOptions {
  /** Throw a retryable error on the first N write calls (then succeed). */
  failFirstWrites?: number;
  /** `retryAfterMs` carried by those errors. */
  retryAfterMs?: number;
  /** Rows whose `value` equals this are refused with a non-retryable data error. */
  rejectValue?: string;
  /** Throw from close() (to test that close errors never hide the real error). */
  failOnClose?: boolean;
  /** Delay each write by this many ms. */
  writeDelayMs?: number;
  /** Append `open <partition>` / `close <partition>` lines to this file (for subprocess tests). */
  closeLog?: string;
}

/** A sink that records every call: rows become `committed` only on job commit. */
export function recordingSink(options: RecordingSinkOptions = {}): { record: SinkRecord; sink: () => Sink } {
  const record: SinkRecord = {
    writersOpened: [],
    writersClosed: [],
    writersAborted: [],
    written: new Map(),
    committed: [],
    jobCommits: [],
    jobAborts: [],
    writeCalls: 0,
    writeTimes: [],
  };
  const staged = new Map<string, Row[]>();
  const sink = (): Sink => ({
    writer(partition: Partition): Writer {
      record.writersOpened.push(partition.id);
      if (options.closeLog) appendFileSync(options.closeLog, `open ${partition.id}\n`);
      const rows: Row[] = [];
      return {
        async write(batch) {
          record.writeCalls++;
          record.writeTimes.push(performance.now());
          if (options.writeDelayMs) await new Promise((r) => setTimeout(r, options.writeDelayMs));
          if (options.failFirstWrites && record.writeCalls <= options.failFirstWrites)
            throw new WeirError('HTTP 503 from test sink', { code: 'http_503', retryable: true, retryAfterMs: options.retryAfterMs });
          if (options.rejectValue !== undefined && batch.some((r) => r.value === options.rejectValue))
            throw new WeirError(`value ${options.rejectValue} refused`, { code: 'bad_value', kind: 'data' });
          rows.push(...batch);
          const all = record.written.get(partition.id) ?? [];
          all.push(...batch);
          record.written.set(partition.id, all);
        },
        commit() {
          staged.set(partition.id, rows);
          return { partition_id: partition.id, rows: rows.length };
        },
        abort() {
          record.writersAborted.push(partition.id);
        },
        close() {
          record.writersClosed.push(partition.id);
          if (options.closeLog) appendFileSync(options.closeLog, `close ${partition.id}\n`);
          if (options.failOnClose) throw new Error('close failed on purpose');
        },
      };
    },
    commit(messages) {
      record.jobCommits.push(messages);
      for (const m of messages) record.committed.push(...(staged.get((m as { partition_id: string }).partition_id) ?? []));
    },
    abort(messages) {
      record.jobAborts.push(messages);
    },
  });
  return { record, sink };
}

/** Wraps a recording sink as a connector (`test-sink`, or `name`) usable in pipelines. */
export function recordingSinkConnector(options: RecordingSinkOptions = {}, name = 'test-sink') {
  const { record, sink } = recordingSink(options);
  const connector = defineConnector({
    name,
    description: 'Records every call, for runtime tests.',
    options: {},
    // what it records is published only at the job commit: an abort takes back every partition
    transactional: true,
    sink: () => sink(),
  });
  return { record, connector };
}

/**
 * A recording sink configured from the pipeline file, for CLI subprocess tests:
 * load it with `connectors: [./fixture.mjs]` where the fixture re-exports it from
 * the built `dist/sdk/testing.js`. Flaky on purpose when asked (fails the first N
 * writes with a retryable 503, optionally carrying Retry-After).
 */
export const testSink = defineConnector({
  name: 'test-sink',
  description: 'Records writes in memory; optionally flaky, slow, or logging writer open/close to a file.',
  options: {
    fail_first_writes: o.int({ min: 0 }).describe('Fail the first N write calls of the process with a retryable HTTP 503.').default(0),
    retry_after_ms: o.int({ min: 0 }).describe('Retry-After (ms) carried by those failures.'),
    write_delay_ms: o.int({ min: 0 }).describe('Delay of each write call.').default(0),
    reject_value: o.string().describe('Rows whose `value` equals this are refused with a data error.'),
    close_log: o.string().describe('File that gets an `open ID` / `close ID` line per writer.'),
  },
  sink: (opts) =>
    recordingSink({
      failFirstWrites: opts.fail_first_writes,
      ...(opts.retry_after_ms !== undefined ? { retryAfterMs: opts.retry_after_ms } : {}),
      writeDelayMs: opts.write_delay_ms,
      ...(opts.reject_value !== undefined ? { rejectValue: opts.reject_value } : {}),
      ...(opts.close_log !== undefined ? { closeLog: opts.close_log } : {}),
    }).sink(),
});

export { type ConformanceCheck, canonicalValue, type SourceConformanceTarget, sourceConformance } from './conformance.js';
export { CONFORMANCE_SCHEMA, conformanceRows, type SinkConformanceTarget, sinkConformance } from './sink-conformance.js';
