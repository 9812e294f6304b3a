/** In-process runs for the reliability suite: test connectors, captured events, a private checkpoint store per test. */
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parsePipelineText } from '../../src/config/load.js';
import { validatePipeline } from '../../src/config/pipeline.js';
import { Registry } from '../../src/config/registry.js';
import { builtinConnectors } from '../../src/connectors/index.js';
import { EventBus, type RunSummary, type WeirEvent } from '../../src/observe/events.js';
import { createLogger, logEvents } from '../../src/observe/logger.js';
import { type RunEnv, runPipeline } from '../../src/runtime/run.js';
import type { AnyConnector } from '../../src/sdk/connector.js';
import { Redactor } from '../../src/secrets/redactor.js';
import { tempDir } from '../helpers/cli.js';

export interface HarnessRun {
  summary: RunSummary;
  events: WeirEvent[];
  logs: string;
}

export interface HarnessOptions extends Partial<Pick<RunEnv, 'signal' | 'fresh' | 'keepCommitted' | 'closers'>> {
  connectors?: unknown[];
  /** Pipeline file directory, also the working directory of the checkpoint store. */
  dir?: string;
  /** Called with each event as it happens (e.g. to stop the run after some batches). */
  onEvent?: (e: WeirEvent) => void;
}

export async function runYaml(yaml: string, options: HarnessOptions = {}): Promise<HarnessRun> {
  const dir = options.dir ?? tempDir('weir-rel-');
  const registry = new Registry([...builtinConnectors, ...((options.connectors ?? []) as AnyConnector[])]);
  const redactor = new Redactor();
  const pipeline = validatePipeline(parsePipelineText(yaml, join(dir, 'test.yaml')), registry, redactor, dir);
  let logs = '';
  const destination = new Writable({
    write(chunk, _enc, cb) {
      logs += chunk.toString();
      cb();
    },
  });
  const logger = createLogger({ format: 'json', level: 'debug', redactor, destination });
  const bus = new EventBus();
  logEvents(bus, logger);
  const events: WeirEvent[] = [];
  bus.subscribe((e) => {
    events.push(e);
    options.onEvent?.(e);
  });
  const summary = await runPipeline(pipeline, {
    bus,
    logger,
    redactor,
    cwd: dir,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.fresh ? { fresh: true } : {}),
    ...(options.keepCommitted ? { keepCommitted: true } : {}),
    ...(options.closers ? { closers: options.closers } : {}),
  });
  return { summary, events, logs };
}

export function ofType<T extends WeirEvent['type']>(events: WeirEvent[], type: T): Extract<WeirEvent, { type: T }>[] {
  return events.filter((e): e is Extract<WeirEvent, { type: T }> => e.type === type);
}
