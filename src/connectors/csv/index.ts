/**
 * The `csv` connector: reads a CSV file with typed (declared or inferred)
 * columns, and writes one atomically through temporary files.
 */
import { defineConnector } from '../../sdk/connector.js';
import { fileChecks, resolvePath } from '../shared/files.js';
import { csvSink } from './sink.js';
import { csvSource } from './source.js';
import { csvOptions, csvRules, csvSourceRules } from './spec.js';

export default defineConnector({
  name: 'csv',
  description: 'CSV files: streamed reads with typed or inferred columns; atomic writes (overwrite or append).',
  options: csvOptions,
  rules: csvRules,
  sourceRules: csvSourceRules,
  source: csvSource,
  sink: csvSink,
  transactional: true,
  check: (opts, ctx) => fileChecks(resolvePath(ctx.baseDir, opts.path), ctx.role),
});
