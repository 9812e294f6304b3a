/**
 * The connectors a run can use: the built-ins plus modules named in a pipeline's
 * `connectors:` list or installed as `weir-connector-*` packages.
 */
import { existsSync, readdirSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AnyConnector } from '../sdk/connector.js';
import { type AnyTransform, isTransform } from '../sdk/transform.js';
import { builtinTransforms } from '../transforms/index.js';

export class Registry {
  private readonly connectors = new Map<string, { connector: AnyConnector; origin: string }>();

  private readonly transformDefs = new Map<string, { transform: AnyTransform; origin: string }>();

  constructor(builtins: readonly AnyConnector[] = []) {
    for (const c of builtins) this.add(c, 'built-in');
    for (const t of builtinTransforms) this.transformDefs.set(t.name, { transform: t, origin: 'built-in' });
  }

  /** Adds a transform step (`defineTransform`); a built-in one cannot be replaced. */
  addTransform(transform: AnyTransform, origin: string): void {
    if (this.transformDefs.get(transform.name)?.origin === 'built-in' && origin !== 'built-in')
      throw new Error(`transform "${transform.name}" from ${origin} would replace a built-in transform; rename it`);
    this.transformDefs.set(transform.name, { transform, origin });
  }

  /** The transform steps a pipeline can use, built-in ones first. */
  transforms(): AnyTransform[] {
    return [...this.transformDefs.values()].map((t) => t.transform);
  }

  /** Transform steps with where they come from, for `weir connectors` and docs. */
  listTransforms(): { transform: AnyTransform; origin: string }[] {
    return [...this.transformDefs.values()];
  }

  add(connector: AnyConnector, origin: string): void {
    if (this.connectors.has(connector.name) && origin !== 'built-in') {
      const existing = this.connectors.get(connector.name);
      if (existing?.origin === 'built-in')
        throw new Error(`connector "${connector.name}" from ${origin} would replace a built-in connector; rename it`);
    }
    this.connectors.set(connector.name, { connector, origin });
  }

  get(name: string): AnyConnector | undefined {
    return this.connectors.get(name)?.connector;
  }

  names(role?: 'source' | 'sink'): string[] {
    return [...this.connectors.values()]
      .filter(({ connector }) => !role || Boolean(connector[role]))
      .map(({ connector }) => connector.name)
      .sort();
  }

  list(): { connector: AnyConnector; origin: string }[] {
    return [...this.connectors.values()].sort((a, b) => a.connector.name.localeCompare(b.connector.name));
  }

  /** Loads a connector module (its default export, or every export made with defineConnector or defineTransform). */
  async load(specifier: string, baseDir: string): Promise<void> {
    const target = specifier.startsWith('.') || isAbsolute(specifier) ? pathToFileURL(resolve(baseDir, specifier)).href : specifier;
    const mod = (await import(target)) as Record<string, unknown>;
    const found = Object.values(mod).filter(isConnector);
    const transforms = Object.values(mod).filter(isTransform);
    if (found.length === 0 && transforms.length === 0)
      throw new Error(
        `module ${specifier} exports no connector or transform; export default defineConnector({...}) or defineTransform({...})`,
      );
    for (const c of new Set(found)) this.add(c, specifier);
    for (const t of new Set(transforms)) this.addTransform(t, specifier);
  }

  /** Loads installed `weir-connector-*` packages from node_modules under `dir`. */
  async loadInstalled(dir: string): Promise<void> {
    const nm = join(dir, 'node_modules');
    if (!existsSync(nm)) return;
    for (const name of readdirSync(nm)) {
      if (name.startsWith('weir-connector-')) await this.load(name, dir);
    }
  }
}

function isConnector(v: unknown): v is AnyConnector {
  return (
    !isTransform(v) &&
    typeof v === 'object' &&
    v !== null &&
    typeof (v as AnyConnector).name === 'string' &&
    typeof (v as AnyConnector).options === 'object' &&
    ('source' in v || 'sink' in v)
  );
}
