/** In-process pipeline runs for runtime tests: test connectors, captured events, no subprocess. */
import { Writable } from 'node:stream';
import { parsePipelineText } from '../../src/config/load.js';
import { validatePipeline } from '../../src/config/pipeline.js';
import { Registry } from '../../src/config/registry.js';
import { builtinConnectors } from '../../src/connectors/index.js';
import { EventBus, type RunSummary, type WeirEvent } from '../../src/observe/events.js';
import { createLogger } from '../../src/observe/logger.js';
import { runPipeline } from '../../src/runtime/run.js';
import type { AnyConnector } from '../../src/sdk/connector.js';
import { Redactor } from '../../src/secrets/redactor.js';
import { tempDir } from '../helpers/cli.js';

export interface HarnessRun {
  summary: RunSummary;
  events: WeirEvent[];
  logs: string;
}

export async function runYaml(yaml: string, extra: AnyConnector[] = [], dir = tempDir()): Promise<HarnessRun> {
  const registry = new Registry([...builtinConnectors, ...extra]);
  const redactor = new Redactor();
  const pipeline = validatePipeline(parsePipelineText(yaml, 'test.yaml'), registry, redactor, dir);
  let logs = '';
  const destination = new Writable({
    write(chunk, _enc, cb) {
      logs += chunk.toString();
      cb();
    },
  });
  const logger = createLogger({ format: 'json', level: 'debug', redactor, destination });
  const bus = new EventBus();
  const events: WeirEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const summary = await runPipeline(pipeline, { bus, logger, redactor, cwd: dir });
  return { summary, events, logs };
}
