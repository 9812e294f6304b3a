/**
 * `weir docs`: the Markdown reference generated from the option specs — of the
 * pipeline file, of every connector, or of one — and of the connectors in a module
 * of your own (`--connector ./my-api.mjs`, or the module's path as the argument),
 * which get the same page as the built-ins.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { allDocs, connectorDocs, pipelineDocs, undocumentedOptions } from '../config/docs.js';
import { createRegistry } from '../config/open.js';
import type { Registry } from '../config/registry.js';
import type { AnyConnector } from '../sdk/connector.js';
import { errorMessage } from '../sdk/errors.js';
import { unknownConnector } from './commands.js';
import { EXIT } from './exit.js';

export interface DocsFlags {
  /** Modules whose connectors are documented too (paths relative to the current directory, or package names). */
  connector?: string[];
}

/** Whether a `weir docs` argument names a module rather than a connector. */
export function isModulePath(arg: string): boolean {
  return arg.startsWith('.') || arg.startsWith('/') || /\.(c|m)?js$/.test(arg);
}

/** A module argument as the registry loads it: a file that exists is a path (`./x.mjs`), anything else a package name. */
function specifier(module: string): string {
  return !module.startsWith('.') && !isAbsolute(module) && existsSync(resolve(module)) ? `./${module}` : module;
}

interface Loaded {
  connector: AnyConnector;
  module: string;
}

/** Loads each module into the registry; the connectors each one added, or the line that says why one cannot be loaded. */
async function loadModules(registry: Registry, modules: string[]): Promise<Loaded[] | string> {
  const loaded: Loaded[] = [];
  for (const module of modules.map(specifier)) {
    try {
      await registry.load(module, process.cwd());
    } catch (error) {
      return `error: cannot load connector module ${JSON.stringify(module)}: ${errorMessage(error).split('\n')[0]}; give the path (relative to the current directory) of a module that exports defineConnector({...})`;
    }
    for (const e of registry.list()) if (e.origin === module) loaded.push({ connector: e.connector, module });
  }
  return loaded;
}

/** A custom connector's options without a description: documented as empty, so said on stderr with the fix. */
function warnUndocumented(connector: AnyConnector): void {
  for (const path of undocumentedOptions(connector.options))
    process.stderr.write(`warning: connector ${connector.name}: option ${path} has no description; add .describe('…') to its spec\n`);
}

export async function docsCommand(name?: string, flags: DocsFlags = {}): Promise<number> {
  const registry = await createRegistry();
  const asModule = name !== undefined && isModulePath(name);
  const modules = [...(flags.connector ?? []), ...(asModule ? [name] : [])];
  const target = asModule ? undefined : name;
  const loaded = await loadModules(registry, modules);
  if (typeof loaded === 'string') {
    process.stderr.write(`${loaded}\n`);
    return EXIT.usage;
  }
  for (const { connector } of loaded) warnUndocumented(connector);
  const page = (connector: AnyConnector) => connectorDocs(connector, { module: loaded.find((l) => l.connector === connector)?.module });
  if (target === 'pipeline') process.stdout.write(pipelineDocs(registry));
  else if (target !== undefined) {
    const connector = registry.get(target);
    if (!connector) return unknownConnector(target, registry);
    process.stdout.write(page(connector));
  } else if (modules.length > 0) process.stdout.write(loaded.map((l) => page(l.connector)).join('\n'));
  else process.stdout.write(allDocs(registry));
  return EXIT.ok;
}
