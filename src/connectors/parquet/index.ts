/**
 * The `parquet` connector: reads a Parquet file row group by row group
 * (hyparquet) and writes one atomically (hyparquet-writer), merging the
 * partitions' row groups into a single file at the job commit.
 */
import { defineConnector } from '../../sdk/connector.js';
import { parquetCheck } from './check.js';
import { parquetSink } from './sink.js';
import { parquetSource } from './source.js';
import { parquetOptions, parquetRules } from './spec.js';

export default defineConnector({
  name: 'parquet',
  description:
    'Parquet files (pure JS: hyparquet, hyparquet-writer): partitions by row group, streamed reads; atomic single-file writes (overwrite or append).',
  options: parquetOptions,
  rules: parquetRules,
  source: parquetSource,
  sink: parquetSink,
  check: parquetCheck,
});
