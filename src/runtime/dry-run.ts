/**
 * `weir run --dry-run`: the plan of a run, found by asking the source and the sink
 * what they would do, without writing anything — the source's partitions, its columns
 * with their exact types and its estimated rows, and what the sink would do to its
 * target (`Sink.describeTarget`). A source or target that is missing, or columns that do
 * not fit the target, fail here as they would fail the run.
 */
import type { ValidatedPipeline } from '../config/pipeline.js';
import type { CommitContext, Log, Sink, Source } from '../sdk/connector.js';
import type { Partition, Schema } from '../sdk/types.js';

export interface RunPlan {
  pipeline: string;
  source: { type: string; partitions: Partition[]; schema: Schema | undefined; estimatedRows: number | undefined };
  sink: { type: string; action: string };
  delivery: string;
}

/** Plans the run read-only: what `weir run` would read and write. Throws what the run would throw. */
export async function planDryRun(pipeline: ValidatedPipeline, log: Log, signal: AbortSignal): Promise<RunPlan> {
  const { config } = pipeline;
  const source = (config.source.connector.source as NonNullable<typeof config.source.connector.source>)(config.source.options) as Source;
  const sink = (config.sink.connector.sink as NonNullable<typeof config.sink.connector.sink>)(config.sink.options) as Sink;
  const ctx = { runId: 'dry-run', pipeline: pipeline.stateId, log, signal, baseDir: pipeline.baseDir };
  try {
    const schema = (await source.schema?.(ctx)) ?? undefined;
    const partitions = (await source.partitions?.(ctx)) ?? [{ id: '0' }];
    const estimatedRows = (await source.estimate?.(ctx)) ?? undefined;
    const commitCtx: CommitContext = { ...ctx, schema };
    const action = sink.describeTarget ? await sink.describeTarget(commitCtx) : fallbackAction(config.sink.options);
    return {
      pipeline: config.pipeline,
      source: { type: config.source.type, partitions, schema, estimatedRows },
      sink: { type: config.sink.type, action },
      delivery: config.delivery,
    };
  } finally {
    await source.close?.();
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

/** The plan as people read it. */
export function formatPlan(plan: RunPlan): string {
  const n = (v: number) => v.toLocaleString('en-US');
  const lines = [
    `plan of ${plan.pipeline} (--dry-run: nothing was written)`,
    `  source   ${plan.source.type}: ${plan.source.partitions.length} partition(s)${plan.source.estimatedRows !== undefined ? `, about ${n(plan.source.estimatedRows)} rows` : ''}`,
  ];
  if (plan.source.schema?.length) {
    lines.push('  columns');
    const width = Math.max(...plan.source.schema.map((c) => c.name.length));
    for (const c of plan.source.schema) {
      const exact = c.type === 'decimal' && c.precision !== undefined ? `decimal(${c.precision}, ${c.scale ?? 0})` : c.type;
      lines.push(`    ${c.name.padEnd(width)}  ${exact}${c.nullable === false ? ' not null' : ''}`);
    }
  } else lines.push('  columns  known once rows are read (the source declares none)');
  lines.push('  partitions');
  for (const p of plan.source.partitions.slice(0, MAX_PARTITIONS_SHOWN)) {
    const { id, ...rest } = p;
    const detail = Object.keys(rest).length ? `  ${JSON.stringify(rest)}` : '';
    lines.push(`    ${id}${detail.length > 120 ? `${detail.slice(0, 119)}…` : detail}`);
  }
  if (plan.source.partitions.length > MAX_PARTITIONS_SHOWN)
    lines.push(`    … and ${n(plan.source.partitions.length - MAX_PARTITIONS_SHOWN)} more`);
  lines.push(`  sink     ${plan.sink.type}: ${plan.sink.action}`, `  delivery ${plan.delivery}`);
  return `${lines.join('\n')}\n`;
}
