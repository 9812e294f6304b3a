/**
 * Health checks for `weir check` (planner, once per command):
 * - `target`: an existing file must be a readable Parquet file whose columns and
 *   codecs weir can read; a missing file fails for a source and passes for a sink
 *   when its directory can be created or written.
 * - `disk_space`: free space where the file lives (or would be created).
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CheckContext, CheckResult } from '../../sdk/connector.js';
import { errorMessage } from '../../sdk/errors.js';
import { diskCheck, existingAncestor, isNotFound, resolvePath } from '../shared/files.js';
import { openParquet } from './file.js';
import { selectColumns } from './source.js';
import type { ParquetOptions } from './spec.js';

async function targetCheck(path: string, opts: ParquetOptions, role: 'source' | 'sink'): Promise<CheckResult> {
  try {
    await stat(path);
  } catch (error) {
    if (!isNotFound(error)) return { name: 'target', ok: false, message: errorMessage(error) };
    if (role === 'source') return { name: 'target', ok: false, message: `${path} does not exist; check the path option` };
    const dir = await existingAncestor(dirname(path));
    try {
      await access(dir, constants.W_OK);
      return {
        name: 'target',
        ok: true,
        message: `${path} does not exist yet; ${dir} is writable, so the sink can create it`,
      };
    } catch {
      return { name: 'target', ok: false, message: `${path} does not exist and ${dir} is not writable` };
    }
  }
  try {
    const pq = await openParquet(path, 'parquet');
    try {
      const columns = selectColumns(pq.metadata, opts, path);
      return {
        name: 'target',
        ok: true,
        message: `${path}: Parquet, ${pq.metadata.num_rows} rows in ${pq.metadata.row_groups.length} row group(s), ${columns.length} column(s) readable`,
      };
    } finally {
      await pq.close();
    }
  } catch (error) {
    return { name: 'target', ok: false, message: errorMessage(error) };
  }
}

/** The connector's health checks. */
export async function parquetCheck(opts: ParquetOptions, ctx: CheckContext): Promise<CheckResult[]> {
  const path = resolvePath(ctx.baseDir, opts.path);
  return Promise.all([targetCheck(path, opts, ctx.role), diskCheck(path)]);
}
