/**
 * Reads a Parquet file through the parquet source, every partition in turn, and
 * prints one JSON line: rows, seconds, rows per second and the process's peak
 * resident set (MiB). Not part of the connector: the memory test bundles it and
 * runs it in a child process, so the peak is the source's alone.
 *
 * Usage: node read-probe.mjs FILE [partition_rows]
 */
import { validateOptions } from '../../sdk/options.js';
import { planContext, taskContext } from '../../sdk/testing.js';
import { parquetSource } from './source.js';
import { parquetOptions, parquetRules } from './spec.js';

const [path, partitionRows = '1000000000'] = process.argv.slice(2);
const parsed = validateOptions(parquetOptions, { path, partition_rows: Number(partitionRows) }, 'source', parquetRules);
if (!parsed.value) throw new Error(parsed.issues.map((i) => i.message).join('; '));
const source = parquetSource(parsed.value);
const partitions = (await source.partitions?.(planContext({ baseDir: process.cwd() }))) ?? [{ id: '0' }];
const started = performance.now();
let rows = 0;
let chunks = 0;
const peak = { heapTotal: 0, external: 0 };
for (const partition of partitions)
  for await (const chunk of source.read(partition, taskContext({ baseDir: process.cwd() }))) {
    rows += (chunk as unknown[]).length;
    if (chunks++ % 50 === 0) {
      const m = process.memoryUsage();
      peak.heapTotal = Math.max(peak.heapTotal, m.heapTotal / 2 ** 20);
      peak.external = Math.max(peak.external, m.external / 2 ** 20);
    }
  }
const seconds = (performance.now() - started) / 1000;
const peakRssMiB = process.resourceUsage().maxRSS / 1024;
process.stdout.write(
  `${JSON.stringify({ rows, seconds, rowsPerSecond: Math.round(rows / seconds), peakRssMiB, peakHeapMiB: peak.heapTotal, peakExternalMiB: peak.external })}\n`,
);
