/**
 * The vitest side of the kit's conformance suites (src/sdk/conformance.ts and
 * sink-conformance.ts): each check of `sourceConformance` / `sinkConformance` as a
 * test, and `readBack`, a target's rows read by the connector's own source.
 */
import { describe, it } from 'vitest';
import type { AnyConnector, ConnectorDefinition } from '../../src/sdk/connector.js';
import type { Spec } from '../../src/sdk/options.js';
import {
  connectorOptions,
  sinkConformance as kitSinkConformance,
  type SinkConformanceTarget,
  type SourceConformanceTarget,
  silentLog,
  sourceConformance,
  taskContext,
} from '../../src/sdk/testing.js';
import type { Row } from '../../src/sdk/types.js';

export { CONFORMANCE_SCHEMA, conformanceRows } from '../../src/sdk/testing.js';

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

/** Runs the kit's sink conformance checks (`sinkConformance` of weir/testing) as one vitest block. */
export function sinkConformance<S extends Spec>(connector: ConnectorDefinition<S>, target: SinkConformanceTarget): void {
  describe(`${connector.name} sink conformance`, () => {
    for (const check of kitSinkConformance(connector, target)) it(check.name, check.run, 30_000);
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
