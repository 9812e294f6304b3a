/**
 * The MySQL sink's use of weir's exactly-once bookkeeping (the tables are defined once,
 * for every SQL sink, in `sdk/exactly-once.ts`):
 *
 * - `_weir_checkpoints`: one row per committed partition of a run, inserted in
 *   the same transaction as the partition's rows.
 * - `_weir_runs`: one row per run: `running` → `committed` (job commit), or
 *   `aborted` (resumable), or `abandoned` (a newer run of the same pipeline
 *   started; its leftovers were cleaned up and it can no longer be resumed).
 * - `_weir_created_tables`: the tables a run created, until its job commit. MySQL's DDL
 *   cannot share a transaction with this record, so the record comes first (see
 *   {@link recordCreating}); a failed or abandoned run drops what it recorded.
 *
 * Keys longer than MySQL can index (run ids over 64, partition ids over 191
 * characters) are stored as their hash; the full value stays in the message.
 */
import { createHash } from 'node:crypto';
import { Bookkeeping, mysqlDialect, type RunStatus, runAsync, type Step } from '../../sdk/exactly-once.js';
import type { JsonValue } from '../../sdk/types.js';
import type { Conn } from './db.js';

export { CHECKPOINTS_TABLE as CHECKPOINTS, CREATED_TABLE as CREATED, RUNS_TABLE as RUNS, type RunStatus } from '../../sdk/exactly-once.js';

export const bookkeeping = new Bookkeeping(mysqlDialect);

/** Runs a bookkeeping step on `conn` (inside its open transaction, if any). */
export async function book<T>(conn: Conn, step: Step<T>): Promise<T> {
  return runAsync(step, async ({ sql, params }) => {
    const [result] = await conn.query(sql, params);
    return Array.isArray(result)
      ? { rows: result as Record<string, unknown>[], count: 0 }
      : { rows: [], count: (result as { affectedRows?: number }).affectedRows ?? 0 };
  });
}

export const runKey = (runId: string) => mysqlDialect.key(runId, 'run_id');

/** Names derived from (pipeline, run, table): the staging table of `replace` and the table it displaces. */
export function stageNames(pipeline: string, runId: string, table: string): { stage: string; old: string } {
  const h = createHash('sha256').update(`${pipeline}\0${runId}\0${table}`).digest('hex').slice(0, 20);
  return { stage: `_weir_stage_${h}`, old: `_weir_old_${h}` };
}

/**
 * Creates the bookkeeping tables, or upgrades the shapes an older weir created. Runs of
 * other pipelines may open the same database at once: a named lock per database lets
 * one of them upgrade it (MySQL has no ADD COLUMN IF NOT EXISTS).
 */
export async function createMetaTables(conn: Conn): Promise<void> {
  await conn.query("SELECT GET_LOCK(CONCAT('weir:bookkeeping:', DATABASE()), ?)", [DDL_LOCK_SECONDS]);
  try {
    await book(conn, bookkeeping.ensure());
  } finally {
    await conn.query("SELECT RELEASE_LOCK(CONCAT('weir:bookkeeping:', DATABASE()))");
  }
}

/** How long a run waits for another to finish creating or upgrading the tables (they take milliseconds). */
const DDL_LOCK_SECONDS = 30;

/** The commit messages of the partitions of a run that committed. */
export async function checkpoints(conn: Conn, pipeline: string, runId: string): Promise<{ partition_id: string; message: JsonValue }[]> {
  return (await book(conn, bookkeeping.checkpoints(pipeline, runId))).map((c) => ({ partition_id: c.partition_id, message: c.message }));
}

/** Records that this run is about to create `table`; false when the run had recorded it already. */
export const recordCreating = (conn: Conn, pipeline: string, runId: string, table: string) =>
  book(conn, bookkeeping.recordCreated(pipeline, runId, table));

/** Forgets that the run created `table` (job commit: it is the user's table now; or someone else created it first). */
export const forgetCreated = (conn: Conn, pipeline: string, runId: string, table?: string) =>
  book(conn, bookkeeping.forgetCreated(pipeline, runId, table));

/** Whether the run recorded that it created `table`. */
export const createdByRun = (conn: Conn, pipeline: string, runId: string, table: string) =>
  book(conn, bookkeeping.created(pipeline, runId, table));

export const getRun = (conn: Conn, pipeline: string, runId: string) => book(conn, bookkeeping.run(pipeline, runId));

export const setRunStatus = (conn: Conn, pipeline: string, runId: string, status: RunStatus) =>
  book(conn, bookkeeping.setRunStatus(pipeline, runId, status));
