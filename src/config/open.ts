/**
 * Opens a pipeline for a run: its connector modules loaded, its references resolved
 * (every secret registered with the redactor before a connector module runs code
 * that could print one), and validated. The one way the CLI and a task's worker
 * (another process, from the task's JSON) turn a pipeline file into a run's config.
 */
import { builtinConnectors } from '../connectors/index.js';
import { ConfigError, errorMessage } from '../sdk/errors.js';
import { isPlainObject } from '../sdk/options.js';
import type { Redactor } from '../secrets/redactor.js';
import type { LoadedFile } from './load.js';
import { type ValidatedPipeline, validatePipeline } from './pipeline.js';
import { Registry } from './registry.js';
import { resolveReferences } from './resolve.js';

/** The built-in connectors and those installed beside the working directory (`weir-connector-*` packages). */
export async function createRegistry(cwd = process.cwd()): Promise<Registry> {
  const registry = new Registry(builtinConnectors);
  await registry.loadInstalled(cwd);
  return registry;
}

/**
 * resolve → load the file's `connectors:` modules → validate. Throws one
 * {@link ConfigError} with every issue.
 *
 * @example
 * const pipeline = await openPipeline(loadPipelineFile(path), dirname(resolve(path)), await createRegistry(), redactor);
 */
export async function openPipeline(file: LoadedFile, baseDir: string, registry: Registry, redactor: Redactor): Promise<ValidatedPipeline> {
  const resolved = resolveReferences(file.data, baseDir, redactor);
  if (isPlainObject(file.data) && Array.isArray(file.data.connectors)) {
    const issues = [];
    for (const [i, spec] of file.data.connectors.entries()) {
      try {
        await registry.load(String(spec), baseDir);
      } catch (error) {
        issues.push({
          path: `connectors[${i}]`,
          message: `cannot load connector module ${JSON.stringify(spec)}: ${errorMessage(error).split('\n')[0]}`,
        });
      }
    }
    if (issues.length) throw new ConfigError(issues, `${file.path}: connector modules failed to load`);
  }
  return validatePipeline(file, registry, redactor, baseDir, resolved);
}
