/**
 * The checkpoint store: one SQLite file (better-sqlite3; `.weir/checkpoints.db`
 * beside the pipeline file by default, `checkpoint.path` in the pipeline file)
 * recording each pipeline run and the partitions it committed, so that `weir run`
 * after an interrupted run resumes it: committed partitions are skipped, the rest
 * redone, then the job commit publishes all of them.
 *
 * Opened once per run by the planner. Writes are synchronous and durable
 * (`synchronous = FULL`): a partition is recorded right after its writer
 * committed, before the task reports success.
 *
 * The store may hold what rejected rows' commit messages say, so its directory is
 * created 0700 and the file 0600 (SQLite gives its -wal and -shm files the same
 * mode); a symlink at its path is refused. What is read back is untrusted: every
 * row is checked for its shape here (a damaged row is a clear error), and the
 * commit messages in it by the sink that wrote them, before it uses them.
 */
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, mkdirSync, openSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { WeirError } from '../sdk/errors.js';
import { type JsonValue, type Partition, planIdentity } from '../sdk/types.js';

/** `running` and `stopped` runs are resumable; the others are finished. */
export type StoredRunStatus = 'running' | 'stopped' | 'succeeded' | 'failed' | 'abandoned';

export interface StoredRun {
  run_id: string;
  pipeline: string;
  status: StoredRunStatus;
  plan_hash: string;
  partitions: Partition[];
  started_at: string;
  finished_at: string | null;
  /** `host:pid` of the process that last ran it. */
  owner: string | null;
}

export interface StoredPartition {
  partition_id: string;
  message: JsonValue;
}

export const DEFAULT_CHECKPOINT_PATH = '.weir/checkpoints.db';

const OWNER = `${hostname()}:${process.pid}`;

/**
 * Whether a `running` run is still being run by another live process on this
 * machine (two overlapping `weir run`s of one pipeline must not share a run).
 * A process on another host cannot be checked and is assumed gone.
 */
export function ownerAlive(run: StoredRun): boolean {
  if (run.status !== 'running' || !run.owner || run.owner === OWNER) return false;
  const at = run.owner.lastIndexOf(':');
  if (run.owner.slice(0, at) !== hostname()) return false;
  const pid = Number(run.owner.slice(at + 1));
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/** The checkpoint file for `path`, relative to the working directory. */
export function checkpointFile(path: string | undefined, cwd = process.cwd()): string {
  const p = path ?? DEFAULT_CHECKPOINT_PATH;
  return isAbsolute(p) ? p : resolve(cwd, p);
}

/**
 * What identifies "the same work": the source and sink types and the exact
 * partitions, less their run-only facts ({@link planIdentity}). A run is resumed
 * only when its plan hash matches.
 */
export function planHash(source: string, sink: string, partitions: Partition[]): string {
  const work = partitions.map(planIdentity);
  return createHash('sha256')
    .update(JSON.stringify({ source, sink, partitions: work }))
    .digest('hex')
    .slice(0, 32);
}

const STATUSES: readonly StoredRunStatus[] = ['running', 'stopped', 'succeeded', 'failed', 'abandoned'];
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Makes the store's directory (0700) and an empty store file (0600) when missing,
 * never following a symlink at the file's path (SQLite would write through it).
 */
function createPrivately(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let isLink: boolean;
  try {
    isLink = lstatSync(file).isSymbolicLink();
  } catch (error) {
    if ((error as { code?: string }).code !== 'ENOENT') throw error;
    try {
      closeSync(openSync(file, 'wx', 0o600)); // an empty file is an empty SQLite database
    } catch (raced) {
      if ((raced as { code?: string }).code !== 'EEXIST') throw raced;
    }
    isLink = lstatSync(file).isSymbolicLink();
  }
  if (isLink)
    throw new WeirError(
      `the checkpoint store ${file} is a symbolic link; weir never follows one for its state. Remove the link, or set checkpoint.path to a file`,
      { kind: 'config', code: 'checkpoint_store' },
    );
}

export class CheckpointStore {
  private readonly db: Database.Database;

  private constructor(readonly file: string) {
    try {
      createPrivately(file);
      this.db = new Database(file, { timeout: 10_000 });
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS runs (
          run_id TEXT PRIMARY KEY,
          pipeline TEXT NOT NULL,
          status TEXT NOT NULL,
          plan_hash TEXT NOT NULL,
          partitions TEXT NOT NULL,
          started_at TEXT NOT NULL,
          finished_at TEXT,
          owner TEXT
        );
        CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, started_at);
        CREATE TABLE IF NOT EXISTS partitions (
          run_id TEXT NOT NULL,
          partition_id TEXT NOT NULL,
          message TEXT NOT NULL,
          committed_at TEXT NOT NULL,
          PRIMARY KEY (run_id, partition_id)
        );
        CREATE TABLE IF NOT EXISTS source_state (
          pipeline TEXT PRIMARY KEY,
          run_id TEXT NOT NULL,
          state TEXT NOT NULL,
          saved_at TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS dead_letters (
          run_id TEXT NOT NULL,
          partition_id TEXT NOT NULL,
          message TEXT NOT NULL,
          PRIMARY KEY (run_id, partition_id)
        );
        CREATE TABLE IF NOT EXISTS cleaned_runs (
          run_id TEXT PRIMARY KEY,
          cleaned_at TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS reserved_runs (
          run_id TEXT PRIMARY KEY,
          pipeline TEXT NOT NULL,
          started_at TEXT NOT NULL,
          owner TEXT
        );
      `);
      const columns = (this.db.prepare('SELECT name FROM pragma_table_info(?)').all('runs') as { name: string }[]).map((c) => c.name);
      if (!columns.includes('owner')) this.db.exec('ALTER TABLE runs ADD COLUMN owner TEXT');
      const partitionColumns = (this.db.prepare('SELECT name FROM pragma_table_info(?)').all('partitions') as { name: string }[]).map(
        (c) => c.name,
      );
      if (!partitionColumns.includes('state')) this.db.exec('ALTER TABLE partitions ADD COLUMN state TEXT');
    } catch (error) {
      if (error instanceof WeirError) throw error;
      const code = (error as { code?: string }).code ?? 'SQLITE_CANTOPEN';
      throw new WeirError(`cannot open the checkpoint store ${file} (${code}); check checkpoint.path and its permissions`, {
        kind: 'config',
        code: 'checkpoint_store',
        cause: error,
      });
    }
  }

  /** Opens (creating when missing) the store at `file`. */
  static open(file: string): CheckpointStore {
    return new CheckpointStore(file);
  }

  /** The most recent run of `pipeline`, if any. */
  lastRun(pipeline: string): StoredRun | undefined {
    const row = this.db.prepare('SELECT * FROM runs WHERE pipeline = ? ORDER BY started_at DESC, rowid DESC LIMIT 1').get(pipeline) as
      | Record<string, unknown>
      | undefined;
    return row ? this.checkRun(row) : undefined;
  }

  /**
   * Records a run id before the sink may stage anything under it (its setup): a process
   * killed between the sink's setup and {@link startRun} leaves staging that only this
   * record names, and the next run's {@link leftoverRuns} finds it. Not a run: `lastRun`
   * and `runs` never see it.
   */
  reserveRun(runId: string, pipeline: string): void {
    this.db
      .prepare('INSERT OR REPLACE INTO reserved_runs (run_id, pipeline, started_at, owner) VALUES (?, ?, ?, ?)')
      .run(runId, pipeline, new Date().toISOString(), OWNER);
  }

  /** Forgets a reservation whose staging is gone (the sink's abort of a run that failed in planning succeeded). */
  dropReservation(runId: string): void {
    this.db.prepare('DELETE FROM reserved_runs WHERE run_id = ?').run(runId);
  }

  /** Records a run (its reservation, if any, becomes the run). */
  startRun(run: { run_id: string; pipeline: string; plan_hash: string; partitions: Partition[] }): void {
    this.db.transaction(() => {
      this.db
        .prepare(
          "INSERT INTO runs (run_id, pipeline, status, plan_hash, partitions, started_at, owner) VALUES (?, ?, 'running', ?, ?, ?, ?)",
        )
        .run(run.run_id, run.pipeline, run.plan_hash, JSON.stringify(run.partitions), new Date().toISOString(), OWNER);
      this.dropReservation(run.run_id);
    })();
  }

  /** Takes over a run (resume): this process now owns it. */
  claim(runId: string): void {
    this.db.prepare("UPDATE runs SET status = 'running', finished_at = NULL, owner = ? WHERE run_id = ?").run(OWNER, runId);
  }

  setStatus(runId: string, status: StoredRunStatus): void {
    const finished = status === 'running' || status === 'stopped' ? null : new Date().toISOString();
    this.db.prepare('UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?').run(status, finished, runId);
  }

  /**
   * Records one committed partition (idempotent: a later commit of the same partition
   * replaces it), with the source's incremental state for it when it set one.
   */
  commitPartition(runId: string, partitionId: string, message: JsonValue, state?: JsonValue): void {
    this.db
      .prepare('INSERT OR REPLACE INTO partitions (run_id, partition_id, message, committed_at, state) VALUES (?, ?, ?, ?, ?)')
      .run(
        runId,
        partitionId,
        JSON.stringify(message ?? null),
        new Date().toISOString(),
        state === undefined ? null : JSON.stringify(state),
      );
  }

  /**
   * After a run's job commit: the incremental state its partitions set becomes the
   * pipeline's (what the next run's planner reads). A run whose partitions set none
   * leaves the pipeline's state as it was.
   */
  saveSourceState(pipeline: string, runId: string): void {
    const rows = this.db
      .prepare('SELECT partition_id, state FROM partitions WHERE run_id = ? AND state IS NOT NULL ORDER BY rowid')
      .all(runId) as { partition_id: string; state: string }[];
    if (!rows.length) return;
    const state: Record<string, JsonValue> = {};
    for (const r of rows) state[r.partition_id] = this.json(r.state, `partitions.state of run ${runId}`);
    this.db
      .prepare('INSERT OR REPLACE INTO source_state (pipeline, run_id, state, saved_at) VALUES (?, ?, ?, ?)')
      .run(pipeline, runId, JSON.stringify(state), new Date().toISOString());
  }

  /** The incremental state of `pipeline`'s last succeeded run that set one (by partition id), if any. Shape only: the source checks the values. */
  sourceState(pipeline: string): Record<string, JsonValue> | undefined {
    const row = this.db.prepare('SELECT state FROM source_state WHERE pipeline = ?').get(pipeline) as { state: unknown } | undefined;
    if (!row) return undefined;
    const state = this.json(row.state, `the source_state of pipeline ${JSON.stringify(pipeline)}`);
    if (!isObject(state)) throw this.damaged(`the source_state of pipeline ${JSON.stringify(pipeline)} is not an object`);
    return Object.assign(Object.create(null), state) as Record<string, JsonValue>;
  }

  /** Replaces the committed partitions of a run with what the target says (exactly-once sinks). */
  replacePartitions(runId: string, partitions: StoredPartition[]): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM partitions WHERE run_id = ?').run(runId);
      for (const p of partitions) this.commitPartition(runId, p.partition_id, p.message);
    })();
  }

  committedPartitions(runId: string): StoredPartition[] {
    const rows = this.db.prepare('SELECT partition_id, message FROM partitions WHERE run_id = ? ORDER BY rowid').all(runId) as {
      partition_id: string;
      message: string;
    }[];
    return rows.map((r) => ({ partition_id: r.partition_id, message: this.json(r.message, `partitions.message of run ${runId}`) }));
  }

  /**
   * Records the dead-letter sink's commit message for a partition's dead letters
   * (undefined: forget it); returns the message it replaces, whose staged output the
   * caller discards. Kept until the run's dead letters are published, so a partition
   * committed before a crash keeps its dead letters on resume.
   */
  saveDeadLetters(runId: string, partitionId: string, message: JsonValue | undefined): JsonValue | undefined {
    return this.db.transaction(() => {
      const old = this.db.prepare('SELECT message FROM dead_letters WHERE run_id = ? AND partition_id = ?').get(runId, partitionId) as
        | { message: string }
        | undefined;
      // nothing to forget is the common case (a partition without dead letters): no write, no fsync
      if (message === undefined) {
        if (old) this.db.prepare('DELETE FROM dead_letters WHERE run_id = ? AND partition_id = ?').run(runId, partitionId);
      } else
        this.db
          .prepare('INSERT OR REPLACE INTO dead_letters (run_id, partition_id, message) VALUES (?, ?, ?)')
          .run(runId, partitionId, JSON.stringify(message));
      return old ? this.json(old.message, `dead_letters.message of run ${runId}`) : undefined;
    })();
  }

  /** The dead-letter commit messages of a run, by partition. */
  deadLetters(runId: string): Map<string, JsonValue> {
    const rows = this.db.prepare('SELECT partition_id, message FROM dead_letters WHERE run_id = ? ORDER BY rowid').all(runId) as {
      partition_id: string;
      message: string;
    }[];
    return new Map(rows.map((r) => [r.partition_id, this.json(r.message, `dead_letters.message of run ${runId}`)]));
  }

  /** Forgets a run's dead-letter messages (after they were published). */
  clearDeadLetters(runId: string): void {
    this.db.prepare('DELETE FROM dead_letters WHERE run_id = ?').run(runId);
  }

  /** Forgets finished runs of `pipeline` beyond the newest `keep`. */
  prune(pipeline: string, keep = 20): void {
    const old = this.db
      .prepare(
        "SELECT run_id FROM runs WHERE pipeline = ? AND status IN ('succeeded', 'failed', 'abandoned') ORDER BY started_at DESC, rowid DESC LIMIT -1 OFFSET ?",
      )
      .all(pipeline, keep) as { run_id: string }[];
    if (!old.length) return;
    this.db.transaction(() => {
      for (const { run_id } of old) {
        this.db.prepare('DELETE FROM partitions WHERE run_id = ?').run(run_id);
        this.db.prepare('DELETE FROM dead_letters WHERE run_id = ?').run(run_id);
        this.db.prepare('DELETE FROM cleaned_runs WHERE run_id = ?').run(run_id);
        this.db.prepare('DELETE FROM runs WHERE run_id = ?').run(run_id);
      }
    })();
  }

  /** Every pipeline the store knows, with its number of runs (`weir state list`). */
  pipelines(): { pipeline: string; runs: number; last: StoredRun }[] {
    const rows = this.db.prepare('SELECT pipeline, count(*) AS runs FROM runs GROUP BY pipeline ORDER BY pipeline').all() as {
      pipeline: unknown;
      runs: number;
    }[];
    return rows.map((r) => {
      if (typeof r.pipeline !== 'string') throw this.damaged('a runs row has no text pipeline');
      return { pipeline: r.pipeline, runs: r.runs, last: this.lastRun(r.pipeline) as StoredRun };
    });
  }

  /** The most recent runs of `pipeline`, newest first (`weir state show`). */
  runs(pipeline: string, limit = 10): StoredRun[] {
    const rows = this.db
      .prepare('SELECT * FROM runs WHERE pipeline = ? ORDER BY started_at DESC, rowid DESC LIMIT ?')
      .all(pipeline, limit) as Record<string, unknown>[];
    return rows.map((row) => this.checkRun(row));
  }

  /**
   * The runs of `pipeline` that ended without a job commit (killed, stopped, failed,
   * abandoned), other than `except`, whose staging no later run has cleaned up yet; and the
   * reserved ids that never became runs (see {@link reserveRun}), as `running` runs of their owner.
   */
  leftoverRuns(pipeline: string, except?: string): StoredRun[] {
    const rows = this.db
      .prepare(
        "SELECT * FROM runs WHERE pipeline = ? AND status != 'succeeded' AND run_id != ? AND run_id NOT IN (SELECT run_id FROM cleaned_runs) ORDER BY started_at DESC, rowid DESC",
      )
      .all(pipeline, except ?? '') as Record<string, unknown>[];
    // reserved ids that never became runs: killed (or failed) between the sink's setup and the run's record
    const reserved = this.db
      .prepare(
        'SELECT * FROM reserved_runs WHERE pipeline = ? AND run_id != ? AND run_id NOT IN (SELECT run_id FROM runs) ORDER BY started_at DESC',
      )
      .all(pipeline, except ?? '') as Record<string, unknown>[];
    return [
      ...rows.map((row) => this.checkRun(row)),
      ...reserved.map((row) => this.checkRun({ ...row, status: 'running', plan_hash: '', partitions: '[]', finished_at: null })),
    ];
  }

  /** Records that the staging of these runs was cleaned up. */
  markCleaned(runIds: readonly string[]): void {
    const now = new Date().toISOString();
    const insert = this.db.prepare('INSERT OR REPLACE INTO cleaned_runs (run_id, cleaned_at) VALUES (?, ?)');
    this.db.transaction(() => {
      for (const id of runIds) {
        insert.run(id, now);
        this.dropReservation(id);
      }
    })();
  }

  /** Forgets everything recorded for `pipeline` (`weir state reset`); returns the number of runs forgotten. */
  forget(pipeline: string): number {
    return this.db.transaction(() => {
      const ids = this.db.prepare('SELECT run_id FROM runs WHERE pipeline = ?').all(pipeline) as { run_id: string }[];
      for (const { run_id } of ids) {
        this.db.prepare('DELETE FROM partitions WHERE run_id = ?').run(run_id);
        this.db.prepare('DELETE FROM dead_letters WHERE run_id = ?').run(run_id);
        this.db.prepare('DELETE FROM cleaned_runs WHERE run_id = ?').run(run_id);
      }
      this.db.prepare('DELETE FROM runs WHERE pipeline = ?').run(pipeline);
      this.db.prepare('DELETE FROM reserved_runs WHERE pipeline = ?').run(pipeline);
      return ids.length;
    })();
  }

  /** A run row as read back, checked for its shape. */
  private checkRun(row: Record<string, unknown>): StoredRun {
    const where = `the runs row of run ${JSON.stringify(row.run_id)}`;
    for (const key of ['run_id', 'pipeline', 'plan_hash', 'started_at'] as const)
      if (typeof row[key] !== 'string') throw this.damaged(`${where} has no text ${key}`);
    for (const key of ['finished_at', 'owner'] as const)
      if (row[key] !== null && typeof row[key] !== 'string') throw this.damaged(`${where} has a ${key} that is not text`);
    if (!STATUSES.includes(row.status as StoredRunStatus))
      throw this.damaged(`${where} has an unknown status ${JSON.stringify(row.status)}`);
    const partitions = this.json(row.partitions, `the partitions of ${where}`);
    if (!Array.isArray(partitions) || !partitions.every((p) => isObject(p) && typeof p.id === 'string'))
      throw this.damaged(`the partitions of ${where} are not a list of partitions with text ids`);
    return { ...(row as unknown as StoredRun), partitions: partitions as unknown as Partition[] };
  }

  /** A JSON column as read back. */
  private json(text: unknown, what: string): JsonValue {
    if (typeof text !== 'string') throw this.damaged(`${what} is not text`);
    try {
      return JSON.parse(text) as JsonValue;
    } catch {
      throw this.damaged(`${what} is not JSON`);
    }
  }

  private damaged(what: string): WeirError {
    return new WeirError(
      `the checkpoint store ${this.file} is damaged: ${what}; it was changed outside weir. Nothing was read from it: inspect it, or delete it (or set checkpoint.path) to start over`,
      { kind: 'connector', code: 'checkpoint_store_damaged' },
    );
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
