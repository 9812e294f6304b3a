/** The parquet connector inside real runs (in-process runtime, built-in connectors). */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parquetMetadata } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import type { AnyConnector } from '../../sdk/connector.js';
import { testSource } from '../../sdk/testing.js';
import { tempDir } from '../shared/test-context.js';

describe('parquet in a pipeline', () => {
  it('generator → parquet (4 partitions) → sqlite: every row exactly once, read by row group', async () => {
    const dir = await tempDir('weir-parquet-run-');
    const write = await runYaml(
      `pipeline: to-parquet
source: { type: generator, rows: 30000, partitions: 4 }
sink: { type: parquet, path: out/events.parquet, row_group_size: 4000 }
`,
      [],
      dir,
    );
    expect(write.summary.status, JSON.stringify(write.summary.error)).toBe('succeeded');
    expect(await readdir(join(dir, 'out'))).toEqual(['events.parquet']);
    const meta = parquetMetadata((await readFile(join(dir, 'out/events.parquet'))).buffer as ArrayBuffer);
    expect(Number(meta.num_rows)).toBe(30000);
    expect(meta.row_groups).toHaveLength(8); // 7500 rows per partition: 4000 + 3500

    const read = await runYaml(
      `pipeline: from-parquet
source: { type: parquet, path: out/events.parquet, partition_rows: 1 }
sink: { type: sqlite, path: out/app.db, table: events }
`,
      [],
      dir,
    );
    expect(read.summary.status, JSON.stringify(read.summary.error)).toBe('succeeded');
    expect(read.summary.totals).toMatchObject({ rows_read: 30000, rows_written: 30000, partitions_committed: 8 });
    const db = new Database(join(dir, 'out/app.db'), { readonly: true });
    const counts = db.prepare('SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM events').get();
    const sample = db.prepare('SELECT * FROM events WHERE id = 1234').get() as Record<string, unknown>;
    db.close();
    expect(counts).toEqual({ n: 30000, d: 30000, lo: 1, hi: 30000 });
    expect(sample.created_at).toMatch(/^2024-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
  });

  it('a failed run aborts the job and leaves no file behind', async () => {
    const dir = await tempDir('weir-parquet-run-');
    const { summary } = await runYaml(
      `pipeline: fails
source: { type: test-source, rows: 500, partitions: 4, fail_partition: "2", fail_after: 10 }
sink: { type: parquet, path: out/x.parquet, row_group_size: 50 }
`,
      [testSource as unknown as AnyConnector],
      dir,
    );
    expect(summary.status).toBe('failed');
    expect(await readdir(join(dir, 'out'))).toEqual([]);
  });
});
