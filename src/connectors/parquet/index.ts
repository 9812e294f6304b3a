/**
 * The `parquet` connector: reads a Parquet file row group by row group
 * (hyparquet) and writes one atomically (hyparquet-writer), merging the
 * partitions' row groups into a single file at the job commit.
 */
import { defineConnector } from '../../sdk/connector.js';
import { lazySink, lazySource } from '../../sdk/lazy.js';
import { parquetOptions, parquetRules } from './spec.js';

export default defineConnector({
  name: 'parquet',
  description:
    'Parquet files (pure JS: hyparquet, hyparquet-writer): partitions by row group, streamed reads; atomic single-file writes (overwrite or append).',
  options: parquetOptions,
  rules: parquetRules,
  // hyparquet loads only when a pipeline uses parquet
  source: lazySource(async () => (await import('./source.js')).parquetSource, true),
  // a csv source's chunks go straight into the column buffers (csv-columns.ts)
  sink: lazySink(
    async () => (await import('./sink.js')).parquetSink,
    () => ['csv'],
  ),
  transactional: true,
  check: async (opts, ctx) => (await import('./check.js')).parquetCheck(opts, ctx),
});
