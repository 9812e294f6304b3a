/** The generated reference files under docs/ (`npm run docs` writes them; a test checks they are current). */
import { builtinConnectors } from '../connectors/index.js';
import { metricsDocs } from '../observe/metrics.js';
import { TRANSFORMS_INTRO } from '../transforms/docs.js';
import { FUNCTION_USAGE } from '../transforms/index.js';
import { connectorDocs, pipelineDocs, transformsDocs } from './docs.js';
import { Registry } from './registry.js';

export async function generatedDocs(): Promise<Record<string, string>> {
  const registry = new Registry(builtinConnectors);
  const files: Record<string, string> = {
    'pipeline.md': pipelineDocs(registry),
    'metrics.md': await metricsDocs(),
    'transforms.md': transformsDocs(registry, TRANSFORMS_INTRO, FUNCTION_USAGE),
  };
  for (const { connector } of registry.list()) files[`connectors/${connector.name}.md`] = connectorDocs(connector);
  return files;
}
