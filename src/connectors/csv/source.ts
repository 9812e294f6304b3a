/**
 * The csv source: one partition per file, or per byte range of a large one
 * (ranges.ts), read the row path's way (source-rows.ts) or, for sinks that take
 * CSV as it is, passed through encoded (source-encoded.ts). This module puts the
 * roles together; the constants they share are in limits.ts.
 */
import type { Source, TaskContext } from '../../sdk/connector.js';
import type { Partition } from '../../sdk/types.js';
import { resolvePath, singleFileSource } from '../shared/files.js';
import { rangeOf, splitFile } from './ranges.js';
import { ENCODED_TUNING, encodable, readCsvEncoded } from './source-encoded.js';
import { readCsv, readRange, takeSample } from './source-rows.js';
import type { CsvOptions } from './spec.js';

export { INFER_ROWS, MAX_PARTITIONS } from './limits.js';
export { quotedFields } from './parse.js';
export type { CsvRange } from './ranges.js';
export { ENCODED_TUNING, type EncodedTuning, encodable, readCsvEncoded } from './source-encoded.js';

/**
 * Creates the csv source for validated options. No I/O: runs on the planner and on
 * every worker. A large file becomes several partitions, each a byte range of
 * whole records (`split_bytes`), read the row path's way or passed through as it is.
 */
export function csvSource(opts: CsvOptions): Source {
  const source = singleFileSource(opts, takeSample, readCsv);
  const pathOf = (partition: Partition, ctx: TaskContext) =>
    typeof partition.path === 'string' ? partition.path : resolvePath(ctx.baseDir, opts.path);
  return {
    ...source,
    async partitions(ctx) {
      const path = resolvePath(ctx.baseDir, opts.path);
      const ranges = await splitFile(path, opts);
      return ranges.map((r, k) => ({
        id: String(k),
        path,
        ...r.start,
        ...(r.end !== undefined ? { end: r.end } : {}),
        ...(r.file ? { size: r.file.size, mtime_ms: r.file.mtimeMs } : {}),
      }));
    },
    read(partition, ctx) {
      return readRange(pathOf(partition, ctx), opts, ctx, rangeOf(partition));
    },
    readEncoded(partition, ctx, format, hints) {
      if (format !== 'csv' || !encodable(opts)) return undefined;
      return readCsvEncoded(pathOf(partition, ctx), opts, ctx, ENCODED_TUNING, rangeOf(partition), hints);
    },
  };
}
