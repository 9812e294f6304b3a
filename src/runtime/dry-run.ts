/**
 * `weir run --dry-run`: the plan of a run, found by asking the source and the sink
 * what they would do, without writing anything — the source's partitions, its columns
 * with their exact types and its estimated rows, and what the sink would do to its
 * target (`Sink.describeTarget`). A source or target that is missing, or columns that do
 * not fit the target, fail here as they would fail the run.
 */
import type { ValidatedPipeline } from '../config/pipeline.js';
import type { CommitContext, Log, Sink, Source } from '../sdk/connector.js';
import { type Column, type Partition, planIdentity, type Schema } from '../sdk/types.js';

/** What the source would give: the half of the plan `weir discover` prints. */
export interface SourcePlan {
  type: string;
  partitions: Partition[];
  schema: Schema | undefined;
  estimatedRows: number | undefined;
}

export interface RunPlan {
  pipeline: string;
  source: SourcePlan;
  sink: { type: string; action: string };
  delivery: string;
}

const planContext = (pipeline: ValidatedPipeline, log: Log, signal: AbortSignal) => ({
  runId: 'dry-run',
  pipeline: pipeline.stateId,
  log,
  signal,
  baseDir: pipeline.baseDir,
});

/** Asks the source read-only for its columns, partitions and size. Throws what the run would throw (a missing table or file). */
export async function planSource(pipeline: ValidatedPipeline, log: Log, signal: AbortSignal): Promise<SourcePlan> {
  const { config } = pipeline;
  const source = (config.source.connector.source as NonNullable<typeof config.source.connector.source>)(config.source.options) as Source;
  const ctx = planContext(pipeline, log, signal);
  try {
    const schema = (await source.schema?.(ctx)) ?? undefined;
    const partitions = (await source.partitions?.(ctx)) ?? [{ id: '0' }];
    const estimatedRows = (await source.estimate?.(ctx)) ?? undefined;
    // what the run would read: a run-only fact (a snapshot this planner exported) ends with it here
    return { type: config.source.type, partitions: partitions.map(planIdentity), schema, estimatedRows };
  } finally {
    await source.close?.();
  }
}

/** Plans the run read-only: what `weir run` would read and write. Throws what the run would throw. */
export async function planDryRun(pipeline: ValidatedPipeline, log: Log, signal: AbortSignal): Promise<RunPlan> {
  const { config } = pipeline;
  const source = await planSource(pipeline, log, signal);
  const sink = (config.sink.connector.sink as NonNullable<typeof config.sink.connector.sink>)(config.sink.options) as Sink;
  try {
    const commitCtx: CommitContext = { ...planContext(pipeline, log, signal), schema: source.schema };
    const action = sink.describeTarget ? await sink.describeTarget(commitCtx) : fallbackAction(config.sink.options);
    return { pipeline: config.pipeline, source, sink: { type: config.sink.type, action }, delivery: config.delivery };
  } finally {
    await sink.close?.();
  }
}

/** What a sink without `describeTarget` would do, from the options every sink names the same. */
function fallbackAction(options: Record<string, unknown>): string {
  const mode = typeof options.mode === 'string' ? `, mode ${options.mode}` : '';
  if (typeof options.path === 'string') return `write ${options.path}${mode}`;
  if (typeof options.table === 'string') return `write table ${options.table}${mode}`;
  return `write to the sink${mode}`;
}

const MAX_PARTITIONS_SHOWN = 10;

const n = (v: number) => v.toLocaleString('en-US');

/** A column's type as exactly as the source declared it: `decimal(12, 2)`, `string not null`. */
export const exactType = (c: Column): string =>
  `${c.type === 'decimal' && c.precision !== undefined ? `decimal(${c.precision}, ${c.scale ?? 0})` : c.type}${c.nullable === false ? ' not null' : ''}`;

/** The source's half of the plan as people read it: size, columns, partitions. */
export function formatSourcePlan(source: SourcePlan): string[] {
  const lines = [
    `  source   ${source.type}: ${source.partitions.length} partition(s)${source.estimatedRows !== undefined ? `, about ${n(source.estimatedRows)} rows` : ''}`,
  ];
  if (source.schema?.length) {
    lines.push('  columns');
    const width = Math.max(...source.schema.map((c) => c.name.length));
    for (const c of source.schema) lines.push(`    ${c.name.padEnd(width)}  ${exactType(c)}`);
  } else lines.push('  columns  known once rows are read (the source declares none)');
  lines.push('  partitions');
  for (const p of source.partitions.slice(0, MAX_PARTITIONS_SHOWN)) {
    const { id, ...rest } = p;
    const detail = Object.keys(rest).length ? `  ${JSON.stringify(rest)}` : '';
    lines.push(`    ${id}${detail.length > 120 ? `${detail.slice(0, 119)}…` : detail}`);
  }
  if (source.partitions.length > MAX_PARTITIONS_SHOWN) lines.push(`    … and ${n(source.partitions.length - MAX_PARTITIONS_SHOWN)} more`);
  return lines;
}

/** The plan as people read it. */
export function formatPlan(plan: RunPlan): string {
  const lines = [
    `plan of ${plan.pipeline} (--dry-run: nothing was written)`,
    ...formatSourcePlan(plan.source),
    `  sink     ${plan.sink.type}: ${plan.sink.action}`,
    `  delivery ${plan.delivery}`,
  ];
  return `${lines.join('\n')}\n`;
}
