/**
 * weir's bookkeeping tables in the sink's database, which make the MySQL sink
 * exactly-once:
 *
 * - `_weir_checkpoints`: one row per committed partition of a run, inserted in
 *   the same transaction as the partition's rows.
 * - `_weir_runs`: one row per run: `running` → `committed` (job commit), or
 *   `aborted` (resumable), or `abandoned` (a newer run of the same pipeline
 *   started; its leftovers were cleaned up and it can no longer be resumed).
 */
import { createHash } from 'node:crypto';
import type mysql from 'mysql2/promise';
import type { JsonValue } from '../../sdk/types.js';
import { type Conn, q } from './db.js';

export const CHECKPOINTS = '_weir_checkpoints';
export const RUNS = '_weir_runs';

export type RunStatus = 'running' | 'swapping' | 'committed' | 'aborted' | 'abandoned';

/** Keys longer than the column are replaced by a hash (the full value stays in the message). */
export function key(value: string, max: number): string {
  return value.length <= max
    ? value
    : `sha256:${createHash('sha256')
        .update(value)
        .digest('hex')
        .slice(0, max - 7)}`;
}

export const runKey = (runId: string) => key(runId, 64);
export const partitionKey = (id: string) => key(id, 191);

/** Names derived from (pipeline, run, table): the staging table of `replace` and the table it displaces. */
export function stageNames(pipeline: string, runId: string, table: string): { stage: string; old: string } {
  const h = createHash('sha256').update(`${pipeline}\0${runId}\0${table}`).digest('hex').slice(0, 20);
  return { stage: `_weir_stage_${h}`, old: `_weir_old_${h}` };
}

export async function createMetaTables(conn: Conn): Promise<void> {
  await conn.query(
    `CREATE TABLE IF NOT EXISTS ${q(CHECKPOINTS)} (
      pipeline VARCHAR(128) NOT NULL,
      run_id VARCHAR(64) NOT NULL,
      partition_id VARCHAR(191) NOT NULL,
      target VARCHAR(64) NOT NULL,
      rows_written BIGINT NOT NULL,
      message LONGTEXT NOT NULL,
      committed_at DATETIME(6) NOT NULL,
      PRIMARY KEY (pipeline, run_id, partition_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  );
  await conn.query(
    `CREATE TABLE IF NOT EXISTS ${q(RUNS)} (
      pipeline VARCHAR(128) NOT NULL,
      run_id VARCHAR(64) NOT NULL,
      target VARCHAR(64) NOT NULL,
      mode VARCHAR(16) NOT NULL,
      stage VARCHAR(64) NULL,
      status VARCHAR(16) NOT NULL,
      started_at DATETIME(6) NOT NULL,
      updated_at DATETIME(6) NOT NULL,
      PRIMARY KEY (pipeline, run_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  );
}

export async function metaTablesExist(conn: Conn): Promise<boolean> {
  const [rows] = await conn.query<mysql.RowDataPacket[]>(
    'SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?, ?)',
    [CHECKPOINTS, RUNS],
  );
  return Number(rows[0]?.n) === 2;
}

export interface RunRow {
  run_id: string;
  target: string;
  mode: string;
  stage: string | null;
  status: RunStatus;
}

export async function getRun(conn: Conn, pipeline: string, runId: string): Promise<RunRow | undefined> {
  const [rows] = await conn.query<mysql.RowDataPacket[]>(
    `SELECT run_id, target, mode, stage, status FROM ${q(RUNS)} WHERE pipeline = ? AND run_id = ?`,
    [pipeline, runKey(runId)],
  );
  return rows[0] as RunRow | undefined;
}

export async function setRunStatus(conn: Conn, pipeline: string, runId: string, status: RunStatus): Promise<void> {
  await conn.query(`UPDATE ${q(RUNS)} SET status = ?, updated_at = NOW(6) WHERE pipeline = ? AND run_id = ?`, [
    status,
    pipeline,
    runKey(runId),
  ]);
}

/** The commit messages of the partitions of a run that committed. */
export async function checkpoints(conn: Conn, pipeline: string, runId: string): Promise<{ partition_id: string; message: JsonValue }[]> {
  const [rows] = await conn.query<mysql.RowDataPacket[]>(
    `SELECT partition_id, message FROM ${q(CHECKPOINTS)} WHERE pipeline = ? AND run_id = ? ORDER BY partition_id`,
    [pipeline, runKey(runId)],
  );
  return rows.map((r) => {
    const message = JSON.parse(String(r.message)) as JsonValue;
    const id =
      message && typeof message === 'object' && !Array.isArray(message) && typeof message.partition_id === 'string'
        ? message.partition_id
        : String(r.partition_id);
    return { partition_id: id, message };
  });
}

/**
 * `_weir_created_tables`: the tables a run created, until its job commit. MySQL's DDL
 * cannot share a transaction with this record, so the record comes first (see
 * {@link recordCreating}); a failed or abandoned run drops what it recorded.
 */
export const CREATED = '_weir_created_tables';

export async function createCreatedTable(conn: Conn): Promise<void> {
  await conn.query(
    `CREATE TABLE IF NOT EXISTS ${q(CREATED)} (
      pipeline VARCHAR(128) NOT NULL,
      run_id VARCHAR(64) NOT NULL,
      target VARCHAR(64) NOT NULL,
      created_at DATETIME(6) NOT NULL,
      PRIMARY KEY (pipeline, run_id, target)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  );
}

/** Records that this run is about to create `table`; false when the run had recorded it already. */
export async function recordCreating(conn: Conn, pipeline: string, runId: string, table: string): Promise<boolean> {
  await createCreatedTable(conn);
  const [r] = await conn.query<mysql.ResultSetHeader>(
    `INSERT IGNORE INTO ${q(CREATED)} (pipeline, run_id, target, created_at) VALUES (?, ?, ?, NOW(6))`,
    [pipeline, runKey(runId), table],
  );
  return r.affectedRows === 1;
}

/** Forgets that the run created `table` (job commit: it is the user's table now; or someone else created it first). */
export async function forgetCreated(conn: Conn, pipeline: string, runId: string, table?: string): Promise<void> {
  const [t] = await conn.query<mysql.RowDataPacket[]>(
    'SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?',
    [CREATED],
  );
  if (t.length === 0) return;
  await conn.query(
    `DELETE FROM ${q(CREATED)} WHERE pipeline = ? AND run_id = ?${table === undefined ? '' : ' AND target = ?'}`,
    table === undefined ? [pipeline, runKey(runId)] : [pipeline, runKey(runId), table],
  );
}

/** Whether the run recorded that it created `table`. */
export async function createdByRun(conn: Conn, pipeline: string, runId: string, table: string): Promise<boolean> {
  const [t] = await conn.query<mysql.RowDataPacket[]>(
    'SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?',
    [CREATED],
  );
  if (t.length === 0) return false;
  const [rows] = await conn.query<mysql.RowDataPacket[]>(`SELECT 1 FROM ${q(CREATED)} WHERE pipeline = ? AND run_id = ? AND target = ?`, [
    pipeline,
    runKey(runId),
    table,
  ]);
  return rows.length > 0;
}
