/**
 * The `jsonl` connector: reads JSON Lines (one object per line) with optional
 * typed fields, and writes them atomically through temporary files. It is also
 * the usual dead-letter sink.
 */
import { defineConnector } from '../../sdk/connector.js';
import { fileChecks, resolvePath } from '../shared/files.js';
import { jsonlSink } from './sink.js';
import { jsonlSource } from './source.js';
import { jsonlOptions } from './spec.js';

export default defineConnector({
  name: 'jsonl',
  description: 'JSON Lines files: streamed reads with optional typed fields; atomic writes (overwrite or append).',
  options: jsonlOptions,
  source: jsonlSource,
  sink: jsonlSink,
  transactional: true,
  check: (opts, ctx) => fileChecks(resolvePath(ctx.baseDir, opts.path), ctx.role),
});
