/**
 * Health checks for `weir check` (planner): a source's database file and table
 * must exist and be readable; a sink's directory must be writable (the file and
 * table are created); and disk space where the file lives.
 */
import type { CheckContext, CheckResult } from '../../sdk/connector.js';
import { errorMessage } from '../../sdk/errors.js';
import type { OptionsOf } from '../../sdk/options.js';
import { fileChecks } from '../shared/files.js';
import { openDb, resolveDbPath, tableExists } from './db.js';
import type { sqliteOptions } from './spec.js';

export async function sqliteCheck(opts: OptionsOf<typeof sqliteOptions>, ctx: CheckContext): Promise<CheckResult[]> {
  const results = await fileChecks(resolveDbPath(opts.path, ctx.baseDir), ctx.role);
  if (ctx.role !== 'source' || !results[0]?.ok || !opts.table) return results;
  try {
    const db = openDb(opts, ctx.baseDir, false);
    try {
      results.push(
        tableExists(db, opts.table)
          ? { name: 'table', ok: true, message: `table ${opts.table} exists` }
          : { name: 'table', ok: false, message: `table ${opts.table} does not exist in ${opts.path}; check source.table` },
      );
    } finally {
      db.close();
    }
  } catch (error) {
    results.push({ name: 'connection', ok: false, message: errorMessage(error) });
  }
  return results;
}
