/**
 * The conformance suite every sink runs, built-in or custom: rows written by several
 * partitions become visible only at the job commit, exactly once; the job commit is
 * idempotent; commit messages are plain JSON (they cross processes); writer abort and
 * job abort leave nothing, and are idempotent; a secret of the options (the canary)
 * is in no commit message. Like {@link sourceConformance}, named checks for any test
 * runner.
 *
 * @example
 * for (const check of sinkConformance(mySink, { options: () => ({ path: freshPath() }), read: readTarget }))
 *   it(check.name, check.run);
 */
import { deepStrictEqual, ok } from 'node:assert/strict';
import type { ConformanceCheck } from './conformance.js';
import type { AnyConnector, CommitContext, ConnectorDefinition, Log, Sink, TaskContext } from './connector.js';
import { validateConnectorOptions } from './connector.js';
import type { Spec } from './options.js';
import type { JsonValue, Row, Schema } from './types.js';

export const CONFORMANCE_SCHEMA: Schema = [
  { name: 'id', type: 'integer' },
  { name: 'name', type: 'string' },
  { name: 'amount', type: 'number' },
  { name: 'active', type: 'boolean' },
];

/** The rows partition `partition` writes: ids `partition * 1000 + 1…`, text with quotes, a comma and a tab. */
export function conformanceRows(partition: number, count: number): Row[] {
  return Array.from({ length: count }, (_, i) => {
    const id = partition * 1000 + i + 1;
    return { id, name: `name ${id} "quoted", with\ttab`, amount: id / 4, active: id % 2 === 0 };
  });
}

export interface SinkConformanceTarget {
  /** Raw options for a fresh, empty target (called once per check). */
  options(): Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Rows visible in the target, read by the connector's own source or directly. */
  read(options: Record<string, unknown>): Promise<Row[]>;
  baseDir: string;
  /** A secret that is part of the options: it must be in no commit message. */
  secret?: string;
}

const silent: Log = { debug() {}, info() {}, warn() {}, error() {} };
const byId = (rows: Row[]) => rows.map((r) => Number(r.id)).sort((a, b) => a - b);

class SinkSuite {
  constructor(
    private readonly connector: AnyConnector,
    private readonly target: SinkConformanceTarget,
  ) {}

  private context(runId: string): CommitContext {
    return {
      runId,
      pipeline: 'conformance',
      log: silent,
      signal: new AbortController().signal,
      baseDir: this.target.baseDir,
      schema: CONFORMANCE_SCHEMA,
    };
  }

  private taskContext(runId: string, partitionId: string): TaskContext {
    return {
      ...this.context(runId),
      partitionId,
      attempt: 1,
      async reject() {},
      count() {},
      onCommit() {},
    };
  }

  private async open(): Promise<{ raw: Record<string, unknown>; sink: Sink; runId: string }> {
    const raw = await this.target.options();
    const r = validateConnectorOptions(this.connector, raw, 'sink');
    ok(r.value, `the target's options are invalid: ${r.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    const sink = (this.connector.sink as NonNullable<AnyConnector['sink']>)(r.value);
    return { raw, sink, runId: `conf-${Math.random().toString(36).slice(2)}` };
  }

  /** Writes `partitions` partitions of `rowsEach` rows, in two batches each, and commits every writer. */
  private async writePartitions(sink: Sink, runId: string, partitions: number, rowsEach: number): Promise<JsonValue[]> {
    const messages: JsonValue[] = [];
    for (let p = 0; p < partitions; p++) {
      const writer = await sink.writer({ id: String(p) }, this.taskContext(runId, String(p)));
      try {
        const rows = conformanceRows(p, rowsEach);
        await writer.write(rows.slice(0, Math.ceil(rowsEach / 2)));
        await writer.write(rows.slice(Math.ceil(rowsEach / 2)));
        messages.push((await writer.commit?.()) ?? { partition_id: String(p) });
      } finally {
        await writer.close?.();
      }
    }
    return messages;
  }

  async commit(): Promise<void> {
    const { raw, sink, runId } = await this.open();
    try {
      await sink.setup?.(this.context(runId));
      const messages = await this.writePartitions(sink, runId, 3, 25);
      deepStrictEqual(JSON.parse(JSON.stringify(messages)), messages, 'commit messages survive a JSON round trip');
      if (this.target.secret) ok(!JSON.stringify(messages).includes(this.target.secret), 'the secret canary appears in a commit message');
      deepStrictEqual((await this.target.read(raw)).length, 0, 'rows are visible before the job commit');
      await sink.commit?.(messages, this.context(runId));
      await sink.commit?.(messages, this.context(runId));
      const rows = await this.target.read(raw);
      deepStrictEqual(
        byId(rows),
        byId([0, 1, 2].flatMap((p) => conformanceRows(p, 25))),
        'every row of every partition, once, after the job commit (twice)',
      );
      const first = rows.find((r) => Number(r.id) === 1) as Row;
      deepStrictEqual(String(first.name), 'name 1 "quoted", with\ttab', 'text arrives as it was');
      ok(Math.abs(Number(first.amount) - 0.25) < 1e-9, `a number arrives as it was: ${String(first.amount)}`);
    } finally {
      await sink.close?.();
    }
  }

  async abort(): Promise<void> {
    const { raw, sink, runId } = await this.open();
    try {
      await sink.setup?.(this.context(runId));
      const messages = await this.writePartitions(sink, runId, 2, 10);
      const writer = await sink.writer({ id: '9' }, this.taskContext(runId, '9'));
      await writer.write(conformanceRows(9, 5));
      await writer.abort?.();
      await writer.abort?.();
      await writer.close?.();
      await sink.abort?.(messages, this.context(runId));
      await sink.abort?.(messages, this.context(runId));
      deepStrictEqual(await this.target.read(raw), [], 'writer abort and job abort (each twice) leave nothing');
    } finally {
      await sink.close?.();
    }
  }
}

/** Checks a sink against the commit protocol; see the module's documentation. */
export function sinkConformance<S extends Spec>(connector: ConnectorDefinition<S>, target: SinkConformanceTarget): ConformanceCheck[] {
  ok(connector.sink, `connector ${connector.name} has no sink`);
  const suite = new SinkSuite(connector as unknown as AnyConnector, target);
  return [
    { name: 'publishes every partition exactly once at job commit, and job commit is idempotent', run: () => suite.commit() },
    { name: 'leaves nothing after writer abort and job abort (both idempotent)', run: () => suite.abort() },
  ];
}
