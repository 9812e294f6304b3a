/**
 * Contexts for connector unit tests: a {@link PlanContext}, {@link TaskContext}
 * or {@link CommitContext} with no-op logging and rejected rows collected in an
 * array. Not used by the runtime.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommitContext, Log, PlanContext, TaskContext } from '../../sdk/connector.js';
import type { Schema } from '../../sdk/types.js';

const noop = () => {};
export const silentLog: Log = { debug: noop, info: noop, warn: noop, error: noop };

/** A row the source handed to `ctx.reject`. */
export interface Rejected {
  record: unknown;
  error: unknown;
}

export interface TestTaskContext extends TaskContext {
  /** Every `reject` call, in order. */
  readonly rejected: Rejected[];
  /** Sum of `count('bytes_sent', n)`. */
  readonly bytesSent: number;
}

export interface TestContextOptions {
  baseDir: string;
  runId?: string;
  partitionId?: string;
  schema?: Schema;
}

export function planContext(o: TestContextOptions): PlanContext {
  return {
    runId: o.runId ?? 'test-run',
    pipeline: 'test',
    log: silentLog,
    signal: new AbortController().signal,
    baseDir: o.baseDir,
  };
}

export function commitContext(o: TestContextOptions): CommitContext {
  return { ...planContext(o), schema: o.schema };
}

export function taskContext(o: TestContextOptions): TestTaskContext {
  const rejected: Rejected[] = [];
  let bytesSent = 0;
  return {
    ...planContext(o),
    partitionId: o.partitionId ?? '0',
    attempt: 1,
    schema: o.schema,
    rejected,
    get bytesSent() {
      return bytesSent;
    },
    async reject(record, error) {
      rejected.push({ record, error });
    },
    count(_metric, value) {
      bytesSent += value;
    },
    onCommit() {},
  };
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
