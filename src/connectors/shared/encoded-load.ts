/**
 * Test helper (not shipped in a connector's path): writes a CSV file through a sink
 * writer the way the runtime does, so a fast path can be compared with the row
 * path — encoded chunks through `writeEncoded` (decoded and written as rows when
 * declined or refused for their data), or the csv source's rows in small batches.
 */
import type { Writer } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import type { TestTaskContext } from '../../sdk/testing.js';
import { collect } from '../../sdk/testing.js';
import type { EncodedRows, Row } from '../../sdk/types.js';
import csv from '../csv/index.js';
import { readCsvEncoded } from '../csv/source-encoded.js';
import type { CsvOptions } from '../csv/spec.js';

const isData = (e: unknown) => e instanceof WeirError && e.kind === 'data';

/** Writes rows, one by one where the batch fails for its data (what the runtime's isolation ends with); returns how many failed. */
export async function writeRows(writer: Writer, rows: Row[]): Promise<number> {
  try {
    await writer.write(rows);
    return 0;
  } catch (error) {
    if (!isData(error)) throw error;
  }
  let failed = 0;
  for (const row of rows)
    await (async () => writer.write([row]))().catch((error: unknown) => {
      if (!isData(error)) throw error;
      failed++;
    });
  return failed;
}

/** Batches taken by the fast path, declined by it, and rows that failed on the row path. */
export interface LoadCounts {
  passed: number;
  declined: number;
  failed: number;
}

/** Writes the csv source's partition `path` through `writer`: encoded (tiny chunks, to cross many boundaries) or as rows. */
export async function writeCsv(
  writer: Writer,
  path: string,
  opts: CsvOptions,
  ctx: TestTaskContext,
  encoded: boolean,
): Promise<LoadCounts> {
  const counts: LoadCounts = { passed: 0, declined: 0, failed: 0 };
  if (!encoded) {
    const source = csv.source?.(opts);
    if (!source) throw new Error('the csv connector has no source');
    const rows = await collect(source.read({ id: '0', path }, ctx));
    for (let i = 0; i < rows.length; i += 7) counts.failed += await writeRows(writer, rows.slice(i, i + 7));
    return counts;
  }
  const chunks = readCsvEncoded(path, opts, ctx, { chunkBytes: 64, firstChunkBytes: 16, readBytes: 17, readAhead: 2, rowModeRows: 5 });
  for await (const chunk of chunks as AsyncIterable<EncodedRows>) {
    let taken: boolean | undefined;
    try {
      taken = (await writer.writeEncoded?.(chunk)) ?? false;
    } catch (error) {
      if (!isData(error)) throw error;
    }
    if (taken) counts.passed++;
    else {
      if (taken === false) counts.declined++;
      counts.failed += await writeRows(writer, await chunk.decode(async () => {}));
    }
  }
  return counts;
}
