/** The generated reference files under docs/ (`npm run docs` writes them; a test checks they are current). */
import { builtinConnectors } from '../connectors/index.js';
import { metricsDocs } from '../observe/metrics.js';
import { connectorDocs, pipelineDocs } from './docs.js';
import { Registry } from './registry.js';

export async function generatedDocs(): Promise<Record<string, string>> {
  const registry = new Registry(builtinConnectors);
  const files: Record<string, string> = { 'pipeline.md': pipelineDocs(registry), 'metrics.md': await metricsDocs() };
  for (const { connector } of registry.list()) files[`connectors/${connector.name}.md`] = connectorDocs(connector);
  return files;
}
