/**
 * The MySQL/MariaDB sink, exactly-once.
 *
 * Every partition's writer holds one connection and one transaction. Each batch
 * is a multi-row INSERT (or LOAD DATA LOCAL INFILE) inside a SAVEPOINT, so a
 * failed batch leaves nothing of itself and may be retried. `Writer.commit()`
 * inserts the partition's checkpoint into `_weir_checkpoints` and COMMITs: the
 * rows and the checkpoint become durable together, and `recover()` tells a
 * resumed run which partitions are done. The job commit marks the run committed
 * in `_weir_runs`.
 *
 * - `append` / `upsert` write into the target: a partition's rows become visible
 *   when that partition commits. A failed run leaves whole partitions, never part
 *   of one; a resumed run (same run id) skips them.
 * - `replace` writes into a staging copy of the target; the job commit swaps it in
 *   with one atomic RENAME TABLE, so the target is never empty or half-loaded.
 */
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type mysql from 'mysql2/promise';
import type { CommitContext, Log, PlanContext, RecoveredState, Sink, TaskContext, Writer } from '../../sdk/connector.js';
import { errorMessage, RowError, WeirError } from '../../sdk/errors.js';
import {
  type ColumnPlan,
  type ColumnRules,
  columnOf,
  matchColumns,
  planColumns,
  renamedSchema,
  schemaFromRow,
  shownName,
} from '../../sdk/sql.js';
import type { EncodedRows, EncodingHints, JsonValue, Partition, Row, Schema } from '../../sdk/types.js';
import { byteDialectOk } from '../shared/csv-text.js';
import {
  type Conn,
  classify,
  connect,
  driverError,
  endsTransaction,
  type MysqlOptions,
  q,
  release,
  rowOfMessage,
  sqlType,
  type TableColumn,
  tableColumns,
  tableEngine,
  uniqueKeys,
  where,
} from './db.js';
import { type Encode, encoderFor, toDatetimeText } from './encode.js';
import { LoadDataEncoder, type LoadKind, loadKindOf } from './load-data.js';
import {
  book,
  bookkeeping,
  checkpoints,
  createdByRun,
  createMetaTables,
  forgetCreated,
  getRun,
  recordCreating,
  setRunStatus,
  stageNames,
} from './meta.js';

/** The commit message of one partition. */
export interface MysqlCommitMessage {
  partition_id: string;
  rows: number;
  target: string;
  [key: string]: JsonValue;
}

const TRANSACTIONAL_ENGINES = new Set(['innodb', 'rocksdb']);

function createTableSql(table: string, schema: Schema, keyColumns: readonly string[] | undefined, ifNotExists = true): string {
  const keys = new Set(keyColumns ?? []);
  const cols = schema.map(
    (c) => `${q(c.name)} ${sqlType(c, keys.has(c.name))}${c.nullable === false || keys.has(c.name) ? ' NOT NULL' : ''}`,
  );
  if (keyColumns?.length) cols.push(`PRIMARY KEY (${keyColumns.map(q).join(', ')})`);
  return `CREATE TABLE ${ifNotExists ? 'IF NOT EXISTS ' : ''}${q(table)} (${cols.join(', ')}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`;
}

/**
 * Creates the sink's own table for run `ctx` (not a staging table). The run records
 * it first (DDL cannot share a transaction with the record), so a failed or abandoned
 * run drops it — and only a table it created: when another session created the table
 * first, the record is taken back.
 */
async function createOwnTable(conn: Conn, ctx: PlanContext, table: string, sql: string): Promise<void> {
  const first = await recordCreating(conn, ctx.pipeline, ctx.runId, table);
  try {
    await conn.query(sql);
  } catch (error) {
    const exists = driverError(error).errno === 1050; // ER_TABLE_EXISTS_ERROR
    if (first) await forgetCreated(conn, ctx.pipeline, ctx.runId, table);
    if (!exists) throw error;
  }
}

/** Drops the table run `runId` created, and its checkpoints (their rows went with it). Idempotent. */
async function dropCreated(conn: Conn, log: Log, pipeline: string, runId: string, table: string): Promise<boolean> {
  if (!(await createdByRun(conn, pipeline, runId, table))) return false;
  await conn.query(`DROP TABLE IF EXISTS ${q(table)}`);
  await book(conn, bookkeeping.forgetCheckpoints(pipeline, runId));
  await forgetCreated(conn, pipeline, runId, table);
  log.info('dropped the table the run created', { table, run: runId });
  return true;
}

export function mysqlSink(opts: MysqlOptions): Sink {
  const table = opts.table as string;
  const naming: ColumnRules = { dialect: 'mysql', naming: opts.column_names, where: `sink table ${table} in ${opts.database}` };
  const keyColumns = opts.mode === 'upsert' ? opts.key_columns?.map((k) => columnOf(k, opts.column_names)) : undefined;
  let planConn: Conn | undefined;
  /**
   * The planner's connection (setup, recover, job commit and abort; a few uses a run),
   * opened again when a ping finds it lost: a network cut during the partitions must
   * not fail the job commit that follows them.
   */
  const plan = async (ctx: PlanContext): Promise<Conn> => {
    if (
      planConn &&
      !(await planConn.ping().then(
        () => true,
        () => false,
      ))
    ) {
      planConn.destroy();
      planConn = undefined;
    }
    planConn ??= await connect(opts, ctx);
    return planConn;
  };
  /** The table writers insert into for a run. */
  const targetOf = (ctx: PlanContext) => (opts.mode === 'replace' ? stageNames(ctx.pipeline, ctx.runId, table).stage : table);

  const checkTarget = async (conn: Conn, planned: ColumnPlan | undefined) => {
    const engine = await tableEngine(conn, opts.database, table);
    if (engine === undefined) return false;
    if (engine === 'VIEW')
      throw new WeirError(`sink table ${table} in ${opts.database} is a view; write to a base table`, {
        kind: 'config',
        code: 'not_a_table',
      });
    if (!TRANSACTIONAL_ENGINES.has(engine.toLowerCase()))
      throw new WeirError(
        `sink table ${table} uses the ${engine} engine, which cannot roll back; weir needs a transactional engine: ALTER TABLE ${table} ENGINE=InnoDB, or write to a new table`,
        { kind: 'config', code: 'non_transactional_table' },
      );
    const existing = await tableColumns(conn, opts.database, table);
    if (planned)
      matchColumns(
        planned,
        existing.map((c) => c.name),
        naming,
      );
    if (keyColumns) await checkUniqueKey(conn, opts, keyColumns);
    return true;
  };

  return {
    // CSV records go into LOAD DATA rewritten byte by byte, without rows (MysqlWriter.writeEncoded)
    ...(opts.method === 'load_data' && opts.mode !== 'upsert' ? { accepts: ['csv'] as const } : {}),

    async setup(ctx: CommitContext) {
      const conn = await plan(ctx);
      const planned = ctx.schema ? planColumns(ctx.schema, naming) : undefined;
      if (planned && keyColumns) {
        const names = new Set(planned.columns.map((c) => c.toLowerCase()));
        const missing = keyColumns.filter((k) => !names.has(k.toLowerCase()));
        if (missing.length)
          throw new WeirError(
            `key_columns ${missing.map(shownName).join(', ')} are not columns of the source (it has ${planned.columns.map(shownName).join(', ')}); fix sink.key_columns`,
            {
              kind: 'config',
              code: 'invalid_key_columns',
            },
          );
      }
      try {
        await createMetaTables(conn);
        await startRun(conn, ctx);
        const exists = await checkTarget(conn, planned);
        if (opts.mode === 'replace') {
          const { stage } = stageNames(ctx.pipeline, ctx.runId, table);
          if (exists) await conn.query(`CREATE TABLE IF NOT EXISTS ${q(stage)} LIKE ${q(table)}`);
          else if (ctx.schema && planned) await conn.query(createTableSql(stage, renamedSchema(ctx.schema, planned), keyColumns));
        } else if (!exists && ctx.schema && planned) {
          await createOwnTable(conn, ctx, table, createTableSql(table, renamedSchema(ctx.schema, planned), keyColumns, false));
          ctx.log.info('created the sink table', { table, database: opts.database });
        }
      } catch (error) {
        throw classify(error, `preparing ${table} on ${where(opts)}`);
      }
    },

    async recover(ctx: CommitContext): Promise<RecoveredState> {
      const conn = await plan(ctx);
      try {
        await createMetaTables(conn);
        return await book(conn, bookkeeping.recover(ctx.pipeline, ctx.runId));
      } catch (error) {
        throw classify(error, `reading checkpoints on ${where(opts)}`);
      }
    },

    async writer(partition: Partition, ctx: TaskContext): Promise<Writer> {
      const conn = await connect(opts, ctx);
      return new MysqlWriter(opts, partition, ctx, conn, targetOf(ctx), keyColumns, naming);
    },

    async commit(messages: JsonValue[], ctx: CommitContext) {
      const conn = await plan(ctx);
      try {
        if (opts.mode === 'replace') await swapIn(conn, ctx, messages);
        else {
          await conn.query('START TRANSACTION');
          await markRun(conn, ctx, 'committed', messages);
          await book(conn, bookkeeping.forgetCheckpoints(ctx.pipeline, ctx.runId));
          await forgetCreated(conn, ctx.pipeline, ctx.runId);
          await conn.query('COMMIT');
        }
      } catch (error) {
        await conn.query('ROLLBACK').catch(() => {});
        throw classify(error, `committing the run into ${table} on ${where(opts)}`);
      }
      ctx.log.debug('job committed', { table, partitions: messages.length });
    },

    // the staging table of `replace` only; never `_weir_old_…` (the displaced table of a swap) nor a run caught mid-swap
    async leftovers(runIds: readonly string[], ctx: CommitContext, drop: boolean) {
      const conn = await plan(ctx);
      try {
        const found: string[] = [];
        for (const runId of runIds) {
          const { stage } = stageNames(ctx.pipeline, runId, table);
          const [rows] = await conn.query('SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?', [
            stage,
          ]);
          if (!(rows as unknown[]).length) continue;
          if ((await getRun(conn, ctx.pipeline, runId).catch(() => undefined))?.status === 'swapping') continue;
          if (drop) await conn.query(`DROP TABLE IF EXISTS ${q(stage)}`);
          found.push(stage);
        }
        return found;
      } catch (error) {
        throw classify(error, `deleting the staging tables of earlier runs on ${where(opts)}`);
      }
    },

    async abort(messages: JsonValue[], ctx: CommitContext) {
      const conn = await plan(ctx);
      let dropped = false;
      try {
        await createMetaTables(conn);
        const run = await getRun(conn, ctx.pipeline, ctx.runId);
        if (!run || run.status === 'committed' || run.status === 'swapping' || run.status === 'abandoned') return;
        await setRunStatus(conn, ctx.pipeline, ctx.runId, 'aborted');
        dropped = await dropCreated(conn, ctx.log, ctx.pipeline, ctx.runId, table);
        if (opts.mode === 'replace') {
          const done = await checkpoints(conn, ctx.pipeline, ctx.runId);
          const { stage } = stageNames(ctx.pipeline, ctx.runId, table);
          if (done.length === 0) await conn.query(`DROP TABLE IF EXISTS ${q(stage)}`);
          else
            ctx.log.info('kept the staging table of the committed partitions for a resumed run; a fresh run of the pipeline drops it', {
              stage,
              partitions: done.length,
            });
        }
      } catch (error) {
        throw classify(error, `aborting the run on ${where(opts)}`);
      }
      if (messages.length && opts.mode !== 'replace' && !dropped)
        ctx.log.info('partitions committed before the run failed stay in the table; resuming the run skips them', {
          table,
          partitions: messages.length,
        });
    },

    async close() {
      const conn = planConn;
      planConn = undefined;
      await release(conn);
    },
  };

  /** Records this run (planner, setup) and abandons older unfinished runs of the pipeline into the same table. */
  async function startRun(conn: Conn, ctx: CommitContext): Promise<void> {
    const current = await getRun(conn, ctx.pipeline, ctx.runId);
    if (current?.status === 'abandoned')
      throw new WeirError(`run ${ctx.runId} of pipeline ${ctx.pipeline} was abandoned when a newer run started; start a fresh run`, {
        kind: 'config',
        code: 'run_abandoned',
      });
    for (const r of await book(conn, bookkeeping.unfinishedRuns(ctx.pipeline, table, ctx.runId))) {
      if (r.stage) await conn.query(`DROP TABLE IF EXISTS ${q(String(r.stage))}`);
      await dropCreated(conn, ctx.log, ctx.pipeline, String(r.run_id), table);
      await book(conn, bookkeeping.forgetCheckpoints(ctx.pipeline, String(r.run_id)));
      await setRunStatus(conn, ctx.pipeline, String(r.run_id), 'abandoned');
      ctx.log.info('abandoned an unfinished earlier run of the pipeline', { run: String(r.run_id), table });
    }
    if (!current) await markRun(conn, ctx, 'running');
    else if (current.status === 'aborted') await setRunStatus(conn, ctx.pipeline, ctx.runId, 'running'); // resumed
  }

  /** Records the run's status; `committed` with the totals of the partitions' commit messages. */
  async function markRun(conn: Conn, ctx: CommitContext, status: 'running' | 'committed', messages: JsonValue[] = []): Promise<void> {
    const stage = opts.mode === 'replace' ? stageNames(ctx.pipeline, ctx.runId, table).stage : null;
    const rows = (messages as MysqlCommitMessage[]).reduce((n, m) => n + (Number(m?.rows) || 0), 0);
    await book(
      conn,
      bookkeeping.markRun({
        pipeline: ctx.pipeline,
        runId: ctx.runId,
        target: table,
        status,
        mode: opts.mode,
        stage,
        partitions: messages.length,
        rows,
      }),
    );
  }

  /**
   * The job commit of `replace` (planner). RENAME TABLE swaps the staging table in
   * atomically; it cannot share a transaction with the run's status, so the steps
   * are ordered to be idempotent: `swapping` is recorded first, and a repeated
   * commit that finds the staging table gone knows the swap happened.
   */
  async function swapIn(conn: Conn, ctx: CommitContext, messages: JsonValue[]): Promise<void> {
    const { stage, old } = stageNames(ctx.pipeline, ctx.runId, table);
    const run = await getRun(conn, ctx.pipeline, ctx.runId);
    if (run?.status === 'committed') return;
    const stageExists = (await tableEngine(conn, opts.database, stage)) !== undefined;
    const targetExists = (await tableEngine(conn, opts.database, table)) !== undefined;
    if (!stageExists && run?.status !== 'swapping') {
      if (!targetExists) {
        ctx.log.warn('replace: no rows and no schema; the target table was not created', { table });
        await markRun(conn, ctx, 'committed', messages);
        return;
      }
      await conn.query(`CREATE TABLE ${q(stage)} LIKE ${q(table)}`); // no rows at all: replace with an empty table
    }
    if (run?.status !== 'swapping') {
      await markRun(conn, ctx, 'running');
      await setRunStatus(conn, ctx.pipeline, ctx.runId, 'swapping');
    }
    if ((await tableEngine(conn, opts.database, stage)) !== undefined) {
      if (targetExists) await conn.query(`RENAME TABLE ${q(table)} TO ${q(old)}, ${q(stage)} TO ${q(table)}`);
      else await conn.query(`RENAME TABLE ${q(stage)} TO ${q(table)}`);
    }
    await conn.query('START TRANSACTION');
    await markRun(conn, ctx, 'committed', messages);
    await book(conn, bookkeeping.forgetCheckpoints(ctx.pipeline, ctx.runId));
    await forgetCreated(conn, ctx.pipeline, ctx.runId);
    await conn.query('COMMIT');
    await conn.query(`DROP TABLE IF EXISTS ${q(old)}`);
  }
}

/** Refuses `key_columns` that are not exactly the PRIMARY KEY or a UNIQUE key of the table. */
async function checkUniqueKey(conn: Conn, opts: MysqlOptions, keyColumns: readonly string[]): Promise<void> {
  const keys = await uniqueKeys(conn, opts.database, opts.table as string);
  const wanted = [...keyColumns]
    .map((k) => k.toLowerCase())
    .sort()
    .join(',');
  for (const cols of keys.values())
    if (
      [...cols]
        .map((c) => c.toLowerCase())
        .sort()
        .join(',') === wanted
    )
      return;
  const found = [...keys.entries()].map(([name, cols]) => `${name} (${cols.join(', ')})`);
  throw new WeirError(
    `mode upsert needs a PRIMARY KEY or UNIQUE key on (${keyColumns.join(', ')}) in table ${opts.table}; ${
      found.length ? `its unique keys are ${found.join('; ')}` : 'it has none'
    }. Set key_columns to one of them, or add one: ALTER TABLE ${q(opts.table as string)} ADD UNIQUE (${keyColumns.map(q).join(', ')})`,
    { kind: 'config', code: 'no_unique_key' },
  );
}

/** One partition's writer (worker): one connection, one transaction, a SAVEPOINT per batch. */
class MysqlWriter implements Writer {
  private conn: Conn | undefined;
  private inTx = false;
  private batchesInTx = 0;
  private rows = 0;
  private broken: WeirError | undefined;
  private prepared: Prepared | undefined;
  /** The encoded fast path's transcoder for a batch's columns and dialect, or null when it declines them. */
  private loadEncoders = new Map<string, { encoder: LoadDataEncoder; sql: string } | null>();
  private maxPacket = 16 * 1024 * 1024;
  private readonly log: Log;

  constructor(
    private readonly opts: MysqlOptions,
    private readonly partition: Partition,
    private readonly ctx: TaskContext,
    conn: Conn,
    private readonly target: string,
    private readonly keyColumns: readonly string[] | undefined,
    private readonly naming: ColumnRules,
  ) {
    this.conn = conn;
    this.log = ctx.log;
  }

  private async connection(): Promise<Conn> {
    this.conn ??= await connect(this.opts, this.ctx);
    return this.conn;
  }

  async write(batch: Row[]): Promise<void> {
    if (this.broken) throw this.broken;
    if (batch.length === 0) return;
    const conn = await this.connection();
    try {
      this.prepared ??= await this.prepare(conn, batch[0] as Row);
    } catch (error) {
      throw endsTransaction(error) ? this.lost(error) : classify(error, `preparing to write to ${this.target}`);
    }
    const p = this.prepared;
    let at = 0;
    let values: unknown[][];
    try {
      values = batch.map((row, k) => {
        at = k;
        return p.names.map((name, i) => (p.convert[i] as Encode)(row[name]));
      });
    } catch (error) {
      // which row of the batch: the runtime names its source location
      throw error instanceof RowError ? new RowError(error.message, { code: error.code, cause: error.cause, rowIndex: at }) : error;
    }
    await this.inSavepoint(conn, batch.length, () =>
      this.opts.method === 'load_data' ? this.loadData(conn, p, values) : this.insert(conn, p, values, 0, batch.length),
    );
  }

  /**
   * Runs one batch's statements in a SAVEPOINT of the partition's transaction (started
   * on the first batch): a failure rolls back to it, so the batch leaves nothing.
   */
  private async inSavepoint(conn: Conn, rows: number, send: () => Promise<void>): Promise<void> {
    try {
      if (!this.inTx) {
        await conn.query('START TRANSACTION');
        this.inTx = true;
      }
      await conn.query('SAVEPOINT weir_batch');
    } catch (error) {
      throw this.lost(error);
    }
    try {
      await send();
    } catch (error) {
      if (endsTransaction(error)) throw this.lost(error);
      try {
        await conn.query('ROLLBACK TO SAVEPOINT weir_batch');
      } catch (rollbackError) {
        throw this.lost(rollbackError);
      }
      throw classify(error, `writing ${rows} row(s) to ${this.target}`);
    }
    this.batchesInTx++;
    this.rows += rows;
  }

  /**
   * Batches of 1 MiB (the csv source's are 4): each is held three times here — the
   * CSV, its LOAD DATA rewrite, and mysql2's copy of every slice into a packet, which
   * waits for a collection. The 1M-row bench: 4 MiB peaked at 204–227 MB of RSS, 2 MiB
   * at 177–205, 1 MiB at 146–160, about 3% slower than 4 MiB.
   */
  encodingHints(): EncodingHints {
    return this.opts.method === 'load_data' ? { batchBytes: LOAD_BATCH_BYTES } : {};
  }

  /**
   * The encoded fast path (worker, once per batch; may be retried with the same
   * batch): CSV records rewritten into LOAD DATA's text format ({@link LoadDataEncoder})
   * and streamed from memory into LOAD DATA LOCAL INFILE, in the batch's savepoint of
   * the partition's transaction. Declines (false) without a declared schema, when the
   * batch's columns are not exactly the schema's, for a CSV dialect or a column the
   * transcoder cannot carry as the row path would ({@link loadKindOf}); then the
   * runtime writes the decoded rows. A warning fails the batch as a data error, and
   * the runtime isolates the bad rows on the row path.
   */
  async writeEncoded(batch: EncodedRows): Promise<boolean> {
    if (this.broken) throw this.broken;
    const schema = this.ctx.schema;
    if (this.opts.method !== 'load_data' || !schema?.length || batch.format !== 'csv') return false;
    const conn = await this.connection();
    try {
      this.prepared ??= await this.prepare(conn, {});
    } catch (error) {
      throw endsTransaction(error) ? this.lost(error) : classify(error, `preparing to write to ${this.target}`);
    }
    const load = this.loadEncoderFor(this.prepared, schema, batch);
    if (!load) return false;
    if (batch.rows === 0) return true;
    const payload = load.encoder.encode(batch.data);
    await this.inSavepoint(conn, batch.rows, async () => {
      await this.loadPayload(conn, load.sql, payload, batch.rows);
      this.ctx.count('bytes_sent', payload.length);
    });
    return true;
  }

  /** The transcoder and LOAD DATA statement for a batch's columns and dialect (cached), or undefined when the fast path declines them. */
  private loadEncoderFor(p: Prepared, schema: Schema, batch: EncodedRows) {
    const key = JSON.stringify([batch.columns, batch.delimiter, batch.quote, batch.nullText]);
    let entry = this.loadEncoders.get(key);
    if (entry === undefined) {
      entry = null;
      const types = new Map(schema.map((c) => [c.name, c.type]));
      const kinds: LoadKind[] = [];
      const columns: string[] = [];
      if (byteDialectOk(batch) && batch.columns.length === schema.length && new Set(batch.columns).size === schema.length)
        for (const field of batch.columns) {
          const at = p.names.indexOf(field);
          const type = types.get(field);
          const kind = at < 0 || !type ? undefined : loadKindOf(type, p.targets[at] as TableColumn);
          if (!kind) break;
          kinds.push(kind);
          columns.push(p.columns[at] as string);
        }
      if (kinds.length === batch.columns.length)
        entry = { encoder: new LoadDataEncoder(batch, kinds), sql: loadDataSql(this.target, columns) };
      this.loadEncoders.set(key, entry);
    }
    return entry ?? undefined;
  }

  /** Multi-row INSERTs, each below max_allowed_packet; `values` are the batch's rows from `first` on, of `total`. */
  private async insert(conn: Conn, p: Prepared, values: unknown[][], first: number, total: number): Promise<void> {
    const body = conn.format('?', [values]);
    const sql = p.insertPrefix + body + p.insertSuffix;
    const limit = this.maxPacket - 1024;
    const bytes = Buffer.byteLength(sql);
    if (bytes > limit) {
      if (values.length === 1)
        throw new RowError(
          `a row of ${bytes} bytes is larger than the server's max_allowed_packet (${this.maxPacket}); raise max_allowed_packet or shrink the row`,
          {
            code: 'row_too_large',
          },
        );
      const mid = Math.ceil(values.length / 2);
      await this.insert(conn, p, values.slice(0, mid), first, total);
      await this.insert(conn, p, values.slice(mid), first + mid, total);
      return;
    }
    try {
      await conn.query(sql);
    } catch (error) {
      // a row error names its row in this statement: classified here, where the statement's first row is known
      const classified = endsTransaction(error) ? undefined : classify(error, `writing ${total} row(s) to ${this.target}`, first);
      throw classified?.kind === 'data' ? classified : error;
    }
    this.ctx.count('bytes_sent', bytes);
  }

  /** LOAD DATA LOCAL INFILE of one batch of rows. */
  private async loadData(conn: Conn, p: Prepared, values: unknown[][]): Promise<void> {
    const text = values.map((row) => row.map(tsvField).join('\t')).join('\n');
    const payload = Buffer.from(`${text}\n`);
    await this.loadPayload(conn, p.loadSql, payload, values.length);
    this.ctx.count('bytes_sent', payload.length);
  }

  /** Streams `payload` (LOAD DATA's text format) from memory into `sql`. LOCAL turns row errors into warnings: any warning fails the batch. */
  private async loadPayload(conn: Conn, sql: string, payload: Buffer, rows: number): Promise<void> {
    const [result] = await conn.query<mysql.ResultSetHeader>({
      sql,
      infileStreamFactory: () => payloadStream(payload, (conn as unknown as { connection?: { stream?: Socket } }).connection?.stream),
    });
    if (result.warningStatus > 0 || result.affectedRows !== rows) {
      const [warnings] = await conn.query<mysql.RowDataPacket[]>('SHOW WARNINGS LIMIT 1');
      const w = warnings[0];
      const row = w ? rowOfMessage(String(w.Message)) : undefined;
      throw new RowError(
        `LOAD DATA into ${this.target} rejected a row: ${w ? `${w.Message} (${w.Code})` : `${rows - result.affectedRows} row(s) skipped`}`,
        { code: w ? `ER_${w.Code}` : 'load_data_warning', ...(row !== undefined ? { rowIndex: row } : {}) },
      );
    }
  }

  /** Forgets a connection or transaction the server ended. Retryable only when no earlier batch is lost with it. */
  private lost(error: unknown): WeirError {
    const e = classify(error, `writing to ${this.target}`);
    const d = driverError(error);
    const connectionUsable = !d.fatal && d.errno === 1213; // a deadlock ends the transaction, not the connection
    if (!connectionUsable) {
      this.conn?.destroy();
      this.conn = undefined;
    }
    const hadBatches = this.batchesInTx > 0;
    this.inTx = false;
    this.batchesInTx = 0;
    if (!hadBatches) return e;
    this.broken = new WeirError(
      `the transaction of partition ${this.partition.id} was ended by the server (${e.message}); its earlier batches were rolled back with it, so the partition fails and nothing of it is committed. Run the pipeline again to resume it`,
      { code: 'transaction_lost', kind: 'connector', retryable: false, cause: e },
    );
    return this.broken;
  }

  private async prepare(conn: Conn, first: Row): Promise<Prepared> {
    const [[packet]] = await conn.query<mysql.RowDataPacket[]>('SELECT @@max_allowed_packet AS p');
    this.maxPacket = Number(packet?.p) || this.maxPacket;
    await conn.query(`SET SESSION innodb_lock_wait_timeout = ${Math.max(1, Math.round(this.opts.lock_wait_timeout / 1000))}`);
    const schema = this.ctx.schema ?? schemaFromRow(first);
    const planned = planColumns(schema, this.naming);
    let columns = await tableColumns(conn, this.opts.database, this.target);
    if (columns.length === 0) {
      // no schema at planning time: the first batch decides (DDL before the transaction starts)
      const sql = createTableSql(this.target, renamedSchema(schema, planned), this.keyColumns, this.target !== this.opts.table);
      if (this.target === this.opts.table) await createOwnTable(conn, this.ctx, this.target, sql);
      else await conn.query(sql);
      columns = await tableColumns(conn, this.opts.database, this.target);
      if (this.keyColumns && this.target === this.opts.table) await checkUniqueKey(conn, this.opts, this.keyColumns);
    }
    const byName = new Map<string, TableColumn>(columns.map((c) => [c.name.toLowerCase(), c]));
    // the table's own spelling of each field's column
    const plan = matchColumns(
      planned,
      columns.map((c) => c.name),
      this.naming,
    );
    const names = plan.columns;
    const cols = names.map(q).join(', ');
    const keys = new Set(this.keyColumns?.map((k) => k.toLowerCase()));
    const updates = names.filter((n) => !keys.has(n.toLowerCase()));
    return {
      names: [...plan.fields],
      columns: [...names],
      targets: names.map((n) => byName.get(n.toLowerCase()) as TableColumn),
      convert: names.map((n) => encoderFor(n, byName.get(n.toLowerCase()) as TableColumn)),
      insertPrefix: `INSERT INTO ${q(this.target)} (${cols}) VALUES `,
      insertSuffix: this.keyColumns
        ? ` ON DUPLICATE KEY UPDATE ${(updates.length ? updates : [this.keyColumns[0] as string]).map((n) => `${q(n)} = VALUES(${q(n)})`).join(', ')}`
        : '',
      loadSql: loadDataSql(this.target, names),
    };
  }

  async commit(): Promise<MysqlCommitMessage> {
    if (this.broken) throw this.broken;
    const message: MysqlCommitMessage = { partition_id: this.partition.id, rows: this.rows, target: this.opts.table as string };
    const conn = await this.connection();
    try {
      if (!this.inTx) {
        await conn.query('START TRANSACTION');
        this.inTx = true;
      }
      await book(
        conn,
        bookkeeping.storeCheckpoint({
          pipeline: this.ctx.pipeline,
          runId: this.ctx.runId,
          partitionId: this.partition.id,
          target: this.opts.table as string,
          stage: this.target === this.opts.table ? null : this.target,
          rows: this.rows,
          message,
        }),
      );
    } catch (error) {
      if (driverError(error).errno === 1062) {
        await conn.query('ROLLBACK').catch(() => {});
        this.inTx = false;
        const done = (await checkpoints(conn, this.ctx.pipeline, this.ctx.runId)).find((c) => c.partition_id === this.partition.id);
        this.log.warn("partition was already committed by another attempt; this attempt's rows were rolled back", {
          partition_id: this.partition.id,
        });
        return (done?.message as MysqlCommitMessage | undefined) ?? message;
      }
      throw endsTransaction(error) ? this.lost(error) : classify(error, `recording the checkpoint of partition ${this.partition.id}`);
    }
    try {
      await conn.query('COMMIT');
      this.inTx = false;
    } catch (error) {
      // the COMMIT may or may not have happened: the checkpoint says which
      this.inTx = false;
      this.conn?.destroy();
      this.conn = undefined;
      const check = await connect(this.opts, this.ctx).catch(() => undefined);
      try {
        const done =
          check && (await checkpoints(check, this.ctx.pipeline, this.ctx.runId)).some((c) => c.partition_id === this.partition.id);
        if (done) return message;
      } finally {
        await release(check);
      }
      throw new WeirError(
        `COMMIT of partition ${this.partition.id} into ${this.target} failed: ${errorMessage(error)}; nothing of the partition was committed`,
        {
          code: driverError(error).code ?? 'commit_failed',
          kind: 'connector',
          retryable: false,
          cause: error,
        },
      );
    }
    return message;
  }

  async abort(): Promise<void> {
    if (!this.conn || !this.inTx) return;
    this.inTx = false;
    this.batchesInTx = 0;
    try {
      await this.conn.query('ROLLBACK');
    } catch {
      this.conn.destroy(); // the server rolls back a transaction whose connection is gone
      this.conn = undefined;
    }
  }

  async close(): Promise<void> {
    const conn = this.conn;
    this.conn = undefined;
    if (conn && this.inTx) {
      this.inTx = false;
      conn.destroy();
      return;
    }
    await release(conn);
  }
}

interface Prepared {
  /** The rows' fields, in column order. */
  names: string[];
  /** The table's spelling of each field's column, and its type. */
  columns: string[];
  targets: TableColumn[];
  /** Per column, from the target's type: checks a value fits exactly and gives what mysql2 escapes ({@link encoderFor}). */
  convert: Encode[];
  insertPrefix: string;
  insertSuffix: string;
  loadSql: string;
}

const SLICE = 64 * 1024;
/** The encoded batch size the writer asks for ({@link MysqlWriter.encodingHints}). */
const LOAD_BATCH_BYTES = 1024 * 1024;
const SOCKET_HIGH = 256 * 1024;

/**
 * `payload` as a stream of slices that waits while the connection's socket holds more
 * than a MiB unsent: mysql2 copies each piece it reads into a packet and writes it at
 * once, so one whole payload would sit in the socket's queue as a second copy.
 */
function payloadStream(payload: Buffer, socket: Socket | undefined): Readable {
  let at = 0;
  let waiting = false;
  const stream = new Readable({
    read() {
      if (waiting) return;
      while (at < payload.length) {
        const end = Math.min(at + SLICE, payload.length);
        const more = stream.push(payload.subarray(at, end));
        at = end;
        if (socket && socket.writableLength > SOCKET_HIGH) {
          waiting = true;
          socket.once('drain', () => {
            waiting = false;
            stream.read(0);
          });
          return;
        }
        if (!more) return;
      }
      stream.push(null);
    },
  });
  return stream;
}

/** LOAD DATA LOCAL of the default text format (tab-separated, backslash escapes, \\N for NULL) into `columns` of `table`. */
function loadDataSql(table: string, columns: readonly string[]): string {
  return `LOAD DATA LOCAL INFILE 'weir-batch.tsv' INTO TABLE ${q(table)} CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (${columns.map(q).join(', ')})`;
}

/** One field of LOAD DATA's default text format (tab-separated, backslash escapes, \N for NULL). */
function tsvField(v: unknown): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'boolean') return v ? '1' : '0';
  if (typeof v === 'number') return String(v);
  if (v instanceof Date) return toDatetimeText(v.toISOString());
  if (Buffer.isBuffer(v)) throw new RowError('method load_data cannot send binary values; use method insert', { code: 'binary_value' });
  const s = String(v);
  return /[\\\t\n\r\0]/.test(s)
    ? s.replace(/[\\\t\n\r\0]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\0'))
    : s;
}
