/**
 * The conformance suite every connector with a sink runs (STYLE.md lesson 9): rows
 * written by several partitions become visible only at job commit, exactly once;
 * abort leaves nothing; abort and job commit are idempotent; commit messages are
 * plain JSON; a source (when there is one) reads back what the sink wrote.
 */
import { describe, expect, it } from 'vitest';
import type { AnyConnector, CommitContext, ConnectorDefinition, Sink } from '../../src/sdk/connector.js';
import type { Spec } from '../../src/sdk/options.js';
import { connectorOptions, type SourceConformanceTarget, silentLog, sourceConformance, taskContext } from '../../src/sdk/testing.js';
import type { JsonValue, Row, Schema } from '../../src/sdk/types.js';

export const CONFORMANCE_SCHEMA: Schema = [
  { name: 'id', type: 'integer' },
  { name: 'name', type: 'string' },
  { name: 'amount', type: 'number' },
  { name: 'active', type: 'boolean' },
];

export function conformanceRows(partition: number, count: number): Row[] {
  return Array.from({ length: count }, (_, i) => {
    const id = partition * 1000 + i + 1;
    return { id, name: `name ${id} "quoted", with\ttab`, amount: id / 4, active: id % 2 === 0 };
  });
}

export interface ConformanceTarget {
  /** Raw options for a fresh, empty target (called once per test). */
  options(): Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Rows visible in the target, read by the connector's own source or directly. */
  read(options: Record<string, unknown>): Promise<Row[]>;
  baseDir: string;
}

/** Reads everything a connector's own source yields for the given options. */
export async function readBack(connector: AnyConnector, raw: Record<string, unknown>, baseDir: string): Promise<Row[]> {
  const source = (connector.source as NonNullable<AnyConnector['source']>)(connectorOptions(connector, raw, 'source'));
  const plan = { runId: 'conformance-read', pipeline: 'conformance', log: silentLog, signal: new AbortController().signal, baseDir };
  const schema = await source.schema?.(plan);
  const partitions = (await source.partitions?.(plan)) ?? [{ id: '0' }];
  const rows: Row[] = [];
  for (const p of partitions)
    for await (const item of source.read(p, taskContext({ baseDir, schema, partitionId: p.id })))
      rows.push(...(Array.isArray(item) ? item : [item]));
  await source.close?.();
  return rows;
}

async function writePartitions(sink: Sink, runId: string, baseDir: string, partitions: number, rowsEach: number) {
  const messages: JsonValue[] = [];
  for (let p = 0; p < partitions; p++) {
    const ctx = taskContext({ runId, baseDir, schema: CONFORMANCE_SCHEMA, partitionId: String(p) });
    const writer = await sink.writer({ id: String(p) }, ctx);
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

const byId = (rows: Row[]) => [...rows].sort((a, b) => Number(a.id) - Number(b.id));

export function sinkConformance(connector: AnyConnector, target: ConformanceTarget): void {
  describe(`${connector.name} sink conformance`, () => {
    const ctxFor = (runId: string): CommitContext => ({
      runId,
      pipeline: 'conformance',
      log: silentLog,
      signal: new AbortController().signal,
      baseDir: target.baseDir,
      schema: CONFORMANCE_SCHEMA,
    });
    const open = async () => {
      const raw = await target.options();
      const sink = (connector.sink as NonNullable<AnyConnector['sink']>)(connectorOptions(connector, raw, 'sink'));
      return { raw, sink };
    };

    it('publishes every partition exactly once at job commit, and job commit is idempotent', async () => {
      const { raw, sink } = await open();
      const runId = `conf-${Math.random().toString(36).slice(2)}`;
      try {
        await sink.setup?.(ctxFor(runId));
        const messages = await writePartitions(sink, runId, target.baseDir, 3, 25);
        expect(JSON.parse(JSON.stringify(messages))).toEqual(messages);
        expect(await target.read(raw)).toHaveLength(0);
        await sink.commit?.(messages, ctxFor(runId));
        await sink.commit?.(messages, ctxFor(runId));
        const rows = byId(await target.read(raw));
        expect(rows.map((r) => Number(r.id))).toEqual(byId([0, 1, 2].flatMap((p) => conformanceRows(p, 25))).map((r) => Number(r.id)));
        const first = rows[0] as Row;
        expect(String(first.name)).toBe('name 1 "quoted", with\ttab');
        expect(Number(first.amount)).toBeCloseTo(0.25);
      } finally {
        await sink.close?.();
      }
    });

    it('leaves nothing after writer abort and job abort (both idempotent)', async () => {
      const { raw, sink } = await open();
      const runId = `conf-${Math.random().toString(36).slice(2)}`;
      try {
        await sink.setup?.(ctxFor(runId));
        const messages = await writePartitions(sink, runId, target.baseDir, 2, 10);
        const ctx = taskContext({ runId, baseDir: target.baseDir, schema: CONFORMANCE_SCHEMA, partitionId: '9' });
        const writer = await sink.writer({ id: '9' }, ctx);
        await writer.write(conformanceRows(9, 5));
        await writer.abort?.();
        await writer.abort?.();
        await writer.close?.();
        await sink.abort?.(messages, ctxFor(runId));
        await sink.abort?.(messages, ctxFor(runId));
        expect(await target.read(raw)).toHaveLength(0);
      } finally {
        await sink.close?.();
      }
    });
  });
}

/** Runs the kit's source conformance checks ({@link sourceConformance}) as one vitest block. */
export function describeSourceConformance<S extends Spec>(
  connector: ConnectorDefinition<S>,
  target: SourceConformanceTarget,
  label = connector.name,
  /** Checks the connector is known to fail today (name start → why): run, and expected to fail, so a fix shows. */
  known: Record<string, string> = {},
): void {
  describe(`${label} source conformance`, () => {
    for (const check of sourceConformance(connector, target)) {
      const why = Object.entries(known).find(([start]) => check.name.startsWith(start))?.[1];
      if (why) it.fails(`${check.name} [known failure: ${why}]`, check.run, 30_000);
      else it(check.name, check.run, 30_000);
    }
  });
}
