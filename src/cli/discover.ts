/**
 * `weir discover PIPELINE.yaml`: the source's columns with their exact types, its
 * estimated rows and its partitions — the source half of `weir run --dry-run`'s plan
 * (the same `planSource`), as Airbyte's `discover`. Connects to the source read-only,
 * never to the sink; writes nothing. `--json` prints the same as one JSON document.
 *
 * Exit codes as the dry run: 0 · 2 invalid file or a missing table/file/column (the
 * user's configuration, found at plan time) · 1 anything else that failed.
 */
import { createLogger, type LogLevel, toLog } from '../observe/logger.js';
import { formatSourcePlan, planSource, type SourcePlan } from '../runtime/dry-run.js';
import type { Schema } from '../sdk/types.js';
import { redactor } from '../secrets/redactor.js';
import { load } from './commands.js';
import { EXIT } from './exit.js';

export interface DiscoverFlags {
  json?: boolean;
  set?: string[];
  /** Connector log lines on stderr at this level and above (default warn). */
  logLevel?: LogLevel;
}

/** The discovered source as JSON: snake_case keys like the summary JSON; columns as declared. */
export function discoveryJson(pipeline: string, plan: SourcePlan) {
  return {
    pipeline,
    source: plan.type,
    columns: plan.schema ?? null,
    estimated_rows: plan.estimatedRows ?? null,
    partitions: plan.partitions,
  } satisfies { columns: Schema | null } & Record<string, unknown>;
}

export async function discoverCommand(path: string, flags: DiscoverFlags = {}): Promise<number> {
  const { pipeline } = await load(path, flags.set);
  // connector log lines go to stderr: stdout holds the discovery alone (pipeable JSON with --json)
  const logger = createLogger({ format: 'json', level: flags.logLevel ?? 'warn', redactor, destination: process.stderr });
  const controller = new AbortController();
  const plan = await planSource(pipeline, toLog(logger), controller.signal);
  const name = pipeline.config.pipeline;
  if (flags.json) process.stdout.write(`${redactor.scrub(JSON.stringify(discoveryJson(name, plan), null, 2))}\n`);
  else process.stdout.write(redactor.scrub(`source of ${name} (discovered read-only)\n${formatSourcePlan(plan).join('\n')}\n`));
  return EXIT.ok;
}
