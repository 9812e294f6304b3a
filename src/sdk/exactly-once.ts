/**
 * The exactly-once bookkeeping of the SQL sinks: one definition of the tables weir
 * keeps in the target database, with one small dialect per database.
 *
 * - `_weir_checkpoints`: one row per committed partition of a run, stored in the same
 *   transaction as the partition's rows ({@link Bookkeeping.storeCheckpoint}).
 * - `_weir_runs`: one row per run, with its `status` (`committed` once the job commit
 *   published it, in the same transaction where the database allows it).
 * - `_weir_created_tables`: the tables a run created, until its job commit, so a failed
 *   or abandoned run drops them.
 *
 * Each helper is a *step*: a generator that yields the statements it needs and gets
 * their rows back, so one definition runs on an async driver (pg, mysql2) with
 * {@link runAsync} and on a synchronous one inside a transaction (better-sqlite3) with
 * {@link runSync}. Tables written by an older weir (three different shapes) are
 * upgraded in place by {@link Bookkeeping.ensure}, so their runs resume: missing
 * columns are added (nullable, or with a default), and runs recorded before `status`
 * existed count as committed (only committed runs were recorded then). Nothing is
 * renamed or dropped, so an older weir still writing to the same target keeps working:
 * a column of an older shape that weir no longer writes (`rows` of PostgreSQL's runs
 * table, now `rows_written`) only loses its NOT NULL.
 */
import { createHash } from 'node:crypto';
import type { EpochMark, RecoveredState } from './connector.js';
import { quoteIdentifier } from './sql.js';
import type { JsonValue } from './types.js';

/** One SQL statement with its bound parameters (placeholders already in the dialect's syntax). */
export interface Statement {
  sql: string;
  params: unknown[];
}

/** What a statement returned: its rows (none for DDL and writes) and how many rows it changed. */
export interface StatementResult {
  rows: Record<string, unknown>[];
  count: number;
}

/** A bookkeeping step: yields statements, receives their results, returns `T`. */
export type Step<T> = Generator<Statement, T, StatementResult>;

/** Runs a step on a synchronous driver (e.g. inside a better-sqlite3 transaction). */
export function runSync<T>(step: Step<T>, exec: (s: Statement) => StatementResult): T {
  let next = step.next();
  while (!next.done) next = step.next(exec(next.value));
  return next.value;
}

/** Runs a step on an async driver, one statement after the other (on one connection, so inside its transaction). */
export async function runAsync<T>(step: Step<T>, exec: (s: Statement) => Promise<StatementResult>): Promise<T> {
  let next = step.next();
  while (!next.done) next = step.next(await exec(next.value));
  return next.value;
}

// ---------------------------------------------------------------------------
// The tables

/** Column types, mapped to each database's own by its dialect. */
type ColumnKind = 'pipeline' | 'run_id' | 'partition_id' | 'name' | 'count' | 'json' | 'time' | 'status';

interface ColumnDef {
  name: string;
  kind: ColumnKind;
  /** NOT NULL. Every column a migration may add is nullable or has a default. */
  required?: boolean;
  /** A SQL literal, for a required column an older shape lacks. */
  default?: string;
}

interface TableDef {
  name: BookkeepingTable;
  columns: readonly ColumnDef[];
  key: readonly string[];
  /** NOT NULL columns of an older shape that weir no longer writes: made nullable where found. */
  retired?: readonly string[];
}

export const CHECKPOINTS_TABLE = '_weir_checkpoints';
export const RUNS_TABLE = '_weir_runs';
export const CREATED_TABLE = '_weir_created_tables';

const CHECKPOINTS: TableDef = {
  name: CHECKPOINTS_TABLE,
  columns: [
    { name: 'pipeline', kind: 'pipeline', required: true },
    { name: 'run_id', kind: 'run_id', required: true },
    { name: 'partition_id', kind: 'partition_id', required: true },
    { name: 'target', kind: 'name', required: true },
    { name: 'stage', kind: 'name' },
    { name: 'rows_written', kind: 'count' },
    { name: 'message', kind: 'json', required: true },
    { name: 'committed_at', kind: 'time', required: true },
  ],
  key: ['pipeline', 'run_id', 'partition_id'],
};

const RUNS: TableDef = {
  name: RUNS_TABLE,
  columns: [
    { name: 'pipeline', kind: 'pipeline', required: true },
    { name: 'run_id', kind: 'run_id', required: true },
    { name: 'target', kind: 'name', required: true },
    { name: 'mode', kind: 'status' },
    { name: 'stage', kind: 'name' },
    // runs recorded before this column existed (PostgreSQL) were committed ones
    { name: 'status', kind: 'status', required: true, default: "'committed'" },
    { name: 'partitions', kind: 'count' },
    { name: 'rows_written', kind: 'count' },
    { name: 'started_at', kind: 'time' },
    { name: 'updated_at', kind: 'time' },
    { name: 'committed_at', kind: 'time' },
  ],
  key: ['pipeline', 'run_id'],
  retired: ['rows'], // PostgreSQL's runs table before the shared bookkeeping
};

const CREATED: TableDef = {
  name: CREATED_TABLE,
  columns: [
    { name: 'pipeline', kind: 'pipeline', required: true },
    { name: 'run_id', kind: 'run_id', required: true },
    { name: 'target', kind: 'name', required: true },
    { name: 'created_at', kind: 'time', required: true },
  ],
  key: ['pipeline', 'run_id', 'target'],
};

const TABLES = [CHECKPOINTS, RUNS, CREATED] as const;

export type BookkeepingTable = typeof CHECKPOINTS_TABLE | typeof RUNS_TABLE | typeof CREATED_TABLE;

/** The status of a run in `_weir_runs`. `swapping`: MySQL's replace is between its RENAME and its commit mark. */
export type RunStatus = 'running' | 'swapping' | 'committed' | 'aborted' | 'abandoned';

// ---------------------------------------------------------------------------
// Dialects

/** What differs between the databases, and nothing else. */
export interface BookkeepingDialect {
  readonly types: Readonly<Record<ColumnKind, string>>;
  /** The placeholder of the `n`th parameter (1-based). */
  placeholder(n: number): string;
  quote(name: string): string;
  /** The current time, as the `time` columns hold it. */
  readonly now: string;
  /** Appended to CREATE TABLE. */
  readonly tableSuffix: string;
  /** `INSERT … VALUES (…)` plus this makes an upsert that sets `columns` from the new row. */
  upsert(key: readonly string[], columns: readonly string[]): string;
  /** Makes a column nullable; undefined where the database cannot (SQLite; no SQLite shape needs it). */
  dropNotNull(table: string, column: string): string | undefined;
  /** `INSERT INTO …` that skips a row whose key is taken (`into`: `INTO t (…) VALUES (…)`). */
  insertIgnore(into: string): string;
  /** A table's columns (none when it does not exist), as rows `{ name, nullable }`; `qualified`: quoted, with its schema. */
  columnsOf(bare: string, qualified: string): Statement;
  /** The value stored in a key column: MySQL indexes at most 191 characters, so a longer one is a hash. */
  key(value: string, kind: 'pipeline' | 'run_id' | 'partition_id'): string;
}

/** Keys longer than `max` become `sha256:<hash>` of that length (the full value stays in the message). */
export function hashedKey(value: string, max: number): string {
  return value.length <= max
    ? value
    : `sha256:${createHash('sha256')
        .update(value)
        .digest('hex')
        .slice(0, max - 7)}`;
}

const question = () => '?';

export const postgresDialect: BookkeepingDialect = {
  types: {
    pipeline: 'text',
    run_id: 'text',
    partition_id: 'text',
    name: 'text',
    count: 'bigint',
    json: 'jsonb',
    time: 'timestamptz',
    status: 'text',
  },
  placeholder: (n) => `$${n}`,
  quote: (name) => quoteIdentifier(name),
  now: 'now()',
  tableSuffix: '',
  upsert: (key, columns) => ` ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${columns.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}`,
  dropNotNull: (table, column) => `ALTER TABLE ${table} ALTER COLUMN ${column} DROP NOT NULL`,
  insertIgnore: (into) => `INSERT ${into} ON CONFLICT DO NOTHING`,
  columnsOf: (_bare, qualified) => ({
    sql: 'SELECT attname::text AS name, NOT attnotnull AS nullable FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped',
    params: [qualified],
  }),
  key: (value) => value,
};

export const mysqlDialect: BookkeepingDialect = {
  types: {
    pipeline: 'VARCHAR(128)',
    run_id: 'VARCHAR(64)',
    partition_id: 'VARCHAR(191)',
    name: 'VARCHAR(64)',
    count: 'BIGINT',
    json: 'LONGTEXT',
    time: 'DATETIME(6)',
    status: 'VARCHAR(16)',
  },
  placeholder: question,
  quote: (name) => quoteIdentifier(name, '`'),
  now: 'NOW(6)',
  tableSuffix: ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4',
  upsert: (_key, columns) => ` ON DUPLICATE KEY UPDATE ${columns.map((c) => `${c} = VALUES(${c})`).join(', ')}`,
  dropNotNull: () => undefined, // no MySQL shape has a retired column
  insertIgnore: (into) => `INSERT IGNORE ${into}`,
  columnsOf: (table) => ({
    sql: "SELECT COLUMN_NAME AS name, IS_NULLABLE = 'YES' AS nullable FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    params: [table],
  }),
  key: (value, kind) => (kind === 'run_id' ? hashedKey(value, 64) : kind === 'partition_id' ? hashedKey(value, 191) : value),
};

export const sqliteDialect: BookkeepingDialect = {
  types: {
    pipeline: 'TEXT',
    run_id: 'TEXT',
    partition_id: 'TEXT',
    name: 'TEXT',
    count: 'INTEGER',
    json: 'TEXT',
    time: 'TEXT',
    status: 'TEXT',
  },
  placeholder: question,
  quote: (name) => quoteIdentifier(name),
  now: "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
  tableSuffix: '',
  upsert: (key, columns) => ` ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${columns.map((c) => `${c} = excluded.${c}`).join(', ')}`,
  dropNotNull: () => undefined,
  insertIgnore: (into) => `INSERT ${into} ON CONFLICT DO NOTHING`,
  columnsOf: (table) => ({ sql: 'SELECT name, "notnull" = 0 AS nullable FROM pragma_table_info(?)', params: [table] }),
  key: (value) => value,
};

// ---------------------------------------------------------------------------
// The helpers

/** A checkpoint as a sink stores it: the partition's commit message and what it needs to find its rows again. */
export interface Checkpoint {
  pipeline: string;
  runId: string;
  partitionId: string;
  /** The sink's table, as the sink names it. */
  target: string;
  /** Where the partition's rows wait for the job commit (a staging table), if anywhere. */
  stage?: string | null;
  rows: number;
  message: JsonValue;
  /** An epoch of an unbounded source: stored under its own key, in place of the partition's previous epoch. */
  epoch?: EpochMark;
}

/**
 * The key of a partition's checkpoint: its id, or for an epoch of an unbounded source
 * `id#epoch`, so that two attempts committing the same epoch collide (the second one
 * finds the first) while the next epoch replaces the previous one.
 */
export function checkpointKey(partitionId: string, epoch?: Pick<EpochMark, 'epoch'>): string {
  return epoch ? `${partitionId}#${epoch.epoch}` : partitionId;
}

/** The message a checkpoint stores: the sink's, with the epoch in it when there is one (what `recover` hands back). */
export function checkpointMessage(message: JsonValue, partitionId: string, epoch?: EpochMark): JsonValue {
  if (!epoch) return message;
  const base = message && typeof message === 'object' && !Array.isArray(message) ? message : { value: message };
  return { partition_id: partitionId, ...base, epoch: { epoch: epoch.epoch, offsets: epoch.offsets } };
}

/** A checkpoint read back: the partition's id and commit message, and its staging table. */
export interface StoredCheckpoint {
  partition_id: string;
  message: JsonValue;
  stage: string | null;
}

/** A run as `_weir_runs` holds it. */
export interface RunRecord {
  run_id: string;
  target: string;
  mode: string | null;
  stage: string | null;
  status: RunStatus;
}

/** A run's mark: its status, and for the job commit the totals. */
export interface RunMark {
  pipeline: string;
  runId: string;
  target: string;
  status: RunStatus;
  mode?: string;
  stage?: string | null;
  partitions?: number;
  rows?: number;
}

/**
 * The bookkeeping of one target database (planner or worker; no I/O of its own: its
 * steps yield statements the sink runs on its connection, in its transaction).
 *
 * @example
 * const bk = new Bookkeeping(postgresDialect, { name: (t) => qualified(schema, t) });
 * await runAsync(bk.ensure(), (s) => client.query(s.sql, s.params).then((r) => ({ rows: r.rows, count: r.rowCount ?? 0 })));
 */
export class Bookkeeping {
  private readonly tableName: (name: BookkeepingTable) => string;
  private readonly tables: readonly TableDef[];

  constructor(
    readonly dialect: BookkeepingDialect,
    options: {
      /** A table's name in statements (quoted, and qualified by a schema where the sink has one). */
      name?: (name: BookkeepingTable) => string;
      /** The tables the sink uses (default: all three); {@link ensure} creates only these. */
      tables?: readonly BookkeepingTable[];
    } = {},
  ) {
    this.tableName = options.name ?? dialect.quote;
    this.tables = TABLES.filter((t) => !options.tables || options.tables.includes(t.name));
  }

  /** The quoted, qualified name of `_weir_checkpoints`, `_weir_runs` or `_weir_created_tables`. */
  table(name: BookkeepingTable): string {
    return this.tableName(name);
  }

  /** Creates the tables, or upgrades the shapes older weir versions created. Idempotent; run it where the sink serialises its DDL. */
  *ensure(): Step<void> {
    for (const def of this.tables) {
      const table = this.table(def.name);
      const found = (yield this.dialect.columnsOf(def.name, table)).rows;
      if (found.length === 0) {
        yield { sql: this.createSql(def), params: [] };
        continue;
      }
      const present = new Set(found.map((r) => String(r.name)));
      for (const column of def.columns)
        if (!present.has(column.name)) yield { sql: `ALTER TABLE ${table} ADD COLUMN ${this.columnSql(column)}`, params: [] };
      for (const r of found) {
        const sql = def.retired?.includes(String(r.name)) && !r.nullable ? this.dialect.dropNotNull(table, String(r.name)) : undefined;
        if (sql) yield { sql, params: [] };
      }
    }
  }

  /**
   * Stores a partition's checkpoint (worker, inside the transaction that holds its
   * rows). Fails on a duplicate key: another attempt committed. An epoch replaces the
   * partition's previous epoch, so a stream keeps one checkpoint per partition.
   */
  *storeCheckpoint(c: Checkpoint): Step<void> {
    const d = this.dialect;
    const values = [
      d.key(c.pipeline, 'pipeline'),
      d.key(c.runId, 'run_id'),
      d.key(checkpointKey(c.partitionId, c.epoch), 'partition_id'),
      c.target,
      c.stage ?? null,
      c.rows,
      JSON.stringify(checkpointMessage(c.message, c.partitionId, c.epoch)),
    ];
    if (c.epoch && c.epoch.epoch > 1)
      yield* this.forgetCheckpoints(c.pipeline, c.runId, checkpointKey(c.partitionId, { epoch: c.epoch.epoch - 1 }));
    yield {
      sql: `INSERT INTO ${this.table(CHECKPOINTS_TABLE)} (pipeline, run_id, partition_id, target, stage, rows_written, message, committed_at) VALUES (${this.placeholders(values.length)}, ${d.now})`,
      params: values,
    };
  }

  /** The checkpoints of a run, in partition order (one partition, with `partitionId`). */
  *checkpoints(pipeline: string, runId: string, partitionId?: string): Step<StoredCheckpoint[]> {
    const { sql, params } = this.matching(pipeline, runId, partitionId);
    const r = yield {
      sql: `SELECT partition_id, stage, message FROM ${this.table(CHECKPOINTS_TABLE)} WHERE ${sql} ORDER BY partition_id`,
      params,
    };
    return r.rows.map((row) => {
      const message = (typeof row.message === 'string' ? JSON.parse(row.message) : row.message) as JsonValue;
      // a long id is stored as its hash (MySQL): the message holds the id itself
      const id =
        message && typeof message === 'object' && !Array.isArray(message) && typeof message.partition_id === 'string'
          ? message.partition_id
          : String(row.partition_id);
      return { partition_id: id, message, stage: row.stage === null || row.stage === undefined ? null : String(row.stage) };
    });
  }

  /** Forgets a run's checkpoints (or one partition's); returns how many there were. */
  *forgetCheckpoints(pipeline: string, runId: string, partitionId?: string): Step<number> {
    const { sql, params } = this.matching(pipeline, runId, partitionId);
    return (yield { sql: `DELETE FROM ${this.table(CHECKPOINTS_TABLE)} WHERE ${sql}`, params }).count;
  }

  /** The run's record, if any. */
  *run(pipeline: string, runId: string): Step<RunRecord | undefined> {
    const { sql, params } = this.matching(pipeline, runId);
    const r = yield { sql: `SELECT run_id, target, mode, stage, status FROM ${this.table(RUNS_TABLE)} WHERE ${sql}`, params };
    return r.rows[0] as RunRecord | undefined;
  }

  /** Records the run's status (inserting its row or updating it); `committed` also stores the totals and the time. */
  *markRun(m: RunMark): Step<void> {
    const d = this.dialect;
    const committed = m.status === 'committed';
    const values = [
      d.key(m.pipeline, 'pipeline'),
      d.key(m.runId, 'run_id'),
      m.target,
      m.mode ?? null,
      m.stage ?? null,
      m.status,
      m.partitions ?? 0,
      m.rows ?? 0,
    ];
    const updated = ['status', 'updated_at', ...(committed ? ['partitions', 'rows_written', 'committed_at'] : [])];
    yield {
      sql:
        `INSERT INTO ${this.table(RUNS_TABLE)} (pipeline, run_id, target, mode, stage, status, partitions, rows_written, started_at, updated_at, committed_at) ` +
        `VALUES (${this.placeholders(values.length)}, ${d.now}, ${d.now}, ${committed ? d.now : 'NULL'})${d.upsert(RUNS.key, updated)}`,
      params: values,
    };
  }

  /** Sets the status of a recorded run (no row is inserted). */
  *setRunStatus(pipeline: string, runId: string, status: RunStatus): Step<void> {
    const { sql, params } = this.matching(pipeline, runId, undefined, 2);
    yield {
      sql: `UPDATE ${this.table(RUNS_TABLE)} SET status = ${this.dialect.placeholder(1)}, updated_at = ${this.dialect.now} WHERE ${sql}`,
      params: [status, ...params],
    };
  }

  /** The other runs of the pipeline into `target` that neither committed nor were abandoned (their run ids as stored). */
  *unfinishedRuns(pipeline: string, target: string, exceptRunId: string): Step<RunRecord[]> {
    const d = this.dialect;
    const r = yield {
      sql: `SELECT run_id, target, mode, stage, status FROM ${this.table(RUNS_TABLE)} WHERE pipeline = ${d.placeholder(1)} AND target = ${d.placeholder(2)} AND run_id <> ${d.placeholder(3)} AND status IN ('running', 'aborted')`,
      params: [d.key(pipeline, 'pipeline'), target, d.key(exceptRunId, 'run_id')],
    };
    return r.rows as unknown as RunRecord[];
  }

  /**
   * What the target holds for the run (planner, `Sink.recover`): committed when the
   * run's job commit happened; otherwise its checkpoints, those `stillThere` accepts
   * (a checkpoint whose staged rows are gone is no committed partition). An abandoned
   * run holds nothing: its leftovers were cleaned up.
   */
  *recover(pipeline: string, runId: string, stillThere: (c: StoredCheckpoint) => boolean = () => true): Step<RecoveredState> {
    const run = yield* this.run(pipeline, runId);
    if (run?.status === 'committed') return { jobCommitted: true, partitions: [] };
    if (run?.status === 'abandoned') return { jobCommitted: false, partitions: [] };
    const found = yield* this.checkpoints(pipeline, runId);
    return {
      jobCommitted: false,
      partitions: found.filter(stillThere).map((c) => ({ partition_id: c.partition_id, message: c.message })),
    };
  }

  /** Records that the run created (or is about to create) `target`; false when it had recorded it already. */
  *recordCreated(pipeline: string, runId: string, target: string): Step<boolean> {
    const d = this.dialect;
    const values = [d.key(pipeline, 'pipeline'), d.key(runId, 'run_id'), target];
    const r = yield {
      sql: d.insertIgnore(
        `INTO ${this.table(CREATED_TABLE)} (pipeline, run_id, target, created_at) VALUES (${this.placeholders(3)}, ${d.now})`,
      ),
      params: values,
    };
    return r.count === 1;
  }

  /** Whether the run recorded that it created `target`. */
  *created(pipeline: string, runId: string, target: string): Step<boolean> {
    const { sql, params } = this.matching(pipeline, runId);
    const r = yield {
      sql: `SELECT 1 AS ok FROM ${this.table(CREATED_TABLE)} WHERE ${sql} AND target = ${this.dialect.placeholder(params.length + 1)}`,
      params: [...params, target],
    };
    return r.rows.length > 0;
  }

  /** Forgets the tables the run created (all, or `target`): at its job commit they are the user's. Returns how many. */
  *forgetCreated(pipeline: string, runId: string, target?: string): Step<number> {
    const { sql, params } = this.matching(pipeline, runId);
    const one = target === undefined ? '' : ` AND target = ${this.dialect.placeholder(params.length + 1)}`;
    const r = yield {
      sql: `DELETE FROM ${this.table(CREATED_TABLE)} WHERE ${sql}${one}`,
      params: target === undefined ? params : [...params, target],
    };
    return r.count;
  }

  /** `pipeline = … AND run_id = …` (and the partition's); `first`: the number of its first placeholder. */
  private matching(pipeline: string, runId: string, partitionId?: string, first = 1): Statement {
    const d = this.dialect;
    const params = [d.key(pipeline, 'pipeline'), d.key(runId, 'run_id')];
    let sql = `pipeline = ${d.placeholder(first)} AND run_id = ${d.placeholder(first + 1)}`;
    if (partitionId !== undefined) {
      params.push(d.key(partitionId, 'partition_id'));
      sql += ` AND partition_id = ${d.placeholder(first + 2)}`;
    }
    return { sql, params };
  }

  private placeholders(count: number): string {
    return Array.from({ length: count }, (_, i) => this.dialect.placeholder(i + 1)).join(', ');
  }

  private columnSql(c: ColumnDef): string {
    return `${c.name} ${this.dialect.types[c.kind]}${c.required ? ' NOT NULL' : ' NULL'}${c.default ? ` DEFAULT ${c.default}` : ''}`;
  }

  private createSql(def: TableDef): string {
    const columns = def.columns.map((c) => this.columnSql(c));
    return `CREATE TABLE IF NOT EXISTS ${this.table(def.name)} (${columns.join(', ')}, PRIMARY KEY (${def.key.join(', ')}))${this.dialect.tableSuffix}`;
  }
}
