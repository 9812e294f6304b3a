/**
 * The `csv` connector: reads a CSV file with typed (declared or inferred)
 * columns, and writes one atomically through temporary files.
 */
import { defineConnector, type Source } from '../../sdk/connector.js';
import { fileChecks, resolvePath } from '../shared/files.js';
import { csvSink } from './sink.js';
import { csvSource } from './source.js';
import { type CsvOptions, csvOptions, csvRules, csvSourceRules } from './spec.js';

/**
 * The csv source's chunks read as the row path's values but are not canonical
 * (quoting as in the file): a writer that asks for canonical CSV (the csv sink,
 * `EncodingHints.dialect`) would decode every chunk, so it gets the rows instead.
 */
function source(opts: CsvOptions): Source {
  const inner = csvSource(opts);
  const readEncoded = inner.readEncoded;
  if (!readEncoded) return inner;
  return {
    ...inner,
    readEncoded: (partition, ctx, format, hints) => (hints?.dialect ? undefined : readEncoded(partition, ctx, format, hints)),
  };
}

export default defineConnector({
  name: 'csv',
  description: 'CSV files: streamed reads with typed or inferred columns; atomic writes (overwrite or append).',
  options: csvOptions,
  rules: csvRules,
  sourceRules: csvSourceRules,
  source,
  sink: csvSink,
  transactional: true,
  check: (opts, ctx) => fileChecks(resolvePath(ctx.baseDir, opts.path), ctx.role),
});
