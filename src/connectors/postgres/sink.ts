/**
 * The postgres sink.
 *
 * Each partition is one transaction on its own connection: every batch is one
 * `COPY … FROM STDIN` inside a savepoint (a failed batch leaves nothing and can be
 * retried or split to isolate bad rows), and `Writer.commit()` inserts the
 * partition's checkpoint into `_weir_checkpoints` and COMMITs — the rows and the
 * checkpoint become durable together, which makes the sink exactly-once per
 * partition. `recover()` reads those checkpoints back for a resumed run.
 *
 * Modes:
 * - `append`: COPY straight into the table; a partition's rows are visible at its commit.
 * - `upsert`: COPY into a temporary table, then `INSERT … SELECT … ON CONFLICT (key_columns)
 *   DO UPDATE` (the last row of a batch wins when a key repeats); the merge counts the rows
 *   it inserted and those it updated (`xmax = 0` marks a new row), reported at the commit
 *   (`rows_inserted`, `rows_updated`: a key repeated in a batch is one of them).
 * - `replace`: COPY into a staging table (`_weir_stage_…`, a plain table, so a killed
 *   run can resume); the job commit empties the table and moves the staged rows in, in
 *   one transaction with the run's `_weir_runs` mark. Readers see the old rows until
 *   then; a failed run leaves the table untouched. The price: rows are written twice,
 *   and the table is locked (ACCESS EXCLUSIVE, from TRUNCATE) while the rows move.
 *
 * CSV passthrough: in append and replace mode the sink `accepts` CSV, and a source
 * that can hand its rows over still encoded (the csv source) has them sent to
 * `COPY … FROM STDIN (FORMAT csv)` as they are (`writeEncoded`), in the same
 * savepoint-per-batch transaction; a batch the server rejects for its data (22xxx,
 * 23xxx) fails as a data error, and the runtime writes it again row by row to
 * isolate the bad rows. Upsert takes rows only.
 *
 * Each batch's savepoint is a subtransaction. Past 64 of them in one transaction
 * PostgreSQL's per-backend subtransaction cache overflows, which slows snapshots of
 * concurrent sessions while the partition is open: keep partitions under ~64 batches
 * (a larger `batch_size`, or more source partitions) on busy servers.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { CommitContext, EpochMark, PlanContext, Sink, TaskContext, Writer } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import {
  Bookkeeping,
  CHECKPOINTS_TABLE,
  CREATED_TABLE,
  checkpointKey,
  checkpointMessage,
  postgresDialect,
  RUNS_TABLE,
  runAsync,
  type Step,
} from '../../sdk/exactly-once.js';
import {
  type ColumnPlan,
  type ColumnRules,
  columnOf,
  matchColumns,
  planColumns,
  quoteIdentifier as q,
  renamedSchema,
  schemaFromRow,
  shownName,
} from '../../sdk/sql.js';
import type { EncodedRows, EncodingHints, JsonValue, Partition, Row, Schema } from '../../sdk/types.js';
import { fitsFraction, fractionError, valueText } from '../shared/columns.js';
import { byteDialectOk } from '../shared/csv-text.js';
import {
  columnTypesOf,
  connect,
  destroy,
  endQuietly,
  isConnectionLoss,
  numericScale,
  OID,
  PG_TYPES,
  pgError,
  qualified,
  tableColumns,
} from './client.js';
import { copyBuffer, copyRows } from './copy.js';
import { type PostgresOptions, sinkAccepts, sinkStreaming } from './spec.js';

export { CHECKPOINTS_TABLE, CREATED_TABLE, RUNS_TABLE };

/** Runs a bookkeeping step on `client` (inside its open transaction, if any). */
function book<T>(client: pg.Client, step: Step<T>): Promise<T> {
  return runAsync(step, async ({ sql, params }) => {
    const r = await client.query(sql, params);
    return { rows: r.rows, count: r.rowCount ?? 0 };
  });
}

/** What a partition's commit returns (and `_weir_checkpoints.message` holds). */
export interface PostgresCommitMessage {
  partition_id: string;
  rows: number;
  /** Columns the partition wrote (the table's names), in COPY order. */
  columns: string[];
  [key: string]: JsonValue;
}

/** The staging table of a `replace` run: one per (run, table), in the sink's schema. Run ids are unique. */
export function stageTableName(runId: string, table: string): string {
  return `_weir_stage_${createHash('sha256').update(`${runId}\0${table}`).digest('hex').slice(0, 24)}`;
}

function createTableSql(name: string, schema: Schema, keys: readonly string[] | undefined): string {
  const cols = schema.map((c) => `${q(c.name)} ${PG_TYPES[c.type]}${c.nullable === false || keys?.includes(c.name) ? ' NOT NULL' : ''}`);
  if (keys?.length) cols.push(`PRIMARY KEY (${keys.map((k) => q(k)).join(', ')})`);
  return `CREATE TABLE IF NOT EXISTS ${name} (${cols.join(', ')})`;
}

async function inTransaction<T>(client: pg.Client, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

export function postgresSink(opts: PostgresOptions): Sink {
  const table = opts.table as string;
  const target = qualified(opts.schema, table);
  const where = `${opts.schema}.${table}`;
  const bk = new Bookkeeping(postgresDialect, { name: (t) => qualified(opts.schema, t) });
  const keys = opts.mode === 'upsert' ? (opts.key_columns ?? []).map((k) => columnOf(k, opts.column_names)) : undefined;
  const naming: ColumnRules = { dialect: 'postgres', naming: opts.column_names, where: `sink table ${where}` };

  const withClient = async <T>(ctx: PlanContext, role: string, fn: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = await connect(opts, { baseDir: ctx.baseDir, log: ctx.log, role });
    try {
      return await fn(client);
    } finally {
      await endQuietly(client);
    }
  };

  /** Serialises DDL of concurrent runs and writers on this schema (transaction-scoped). */
  const lockDdl = (client: pg.Client) => client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`weir:ddl:${opts.schema}`]);

  /** Creates weir's tables, or upgrades the shapes an older weir created. Call inside a transaction holding the DDL lock. */
  const ensureBookkeeping = (client: pg.Client) => book(client, bk.ensure());

  /**
   * Drops the target when this run created it (recorded with the CREATE TABLE, in its
   * transaction), and the run's checkpoints with it: nothing of the run stays, and a
   * resumed run redoes every partition. Only this sink's own table is ever dropped.
   * Call inside a transaction holding the DDL lock, after {@link ensureBookkeeping}.
   */
  const dropCreated = async (client: pg.Client, ctx: PlanContext) => {
    if (!(await book(client, bk.forgetCreated(ctx.pipeline, ctx.runId, where)))) return false;
    await client.query(`DROP TABLE IF EXISTS ${target}`);
    await book(client, bk.forgetCheckpoints(ctx.pipeline, ctx.runId));
    ctx.log.info('dropped the table this run created', { table: where });
    return true;
  };

  const runCommitted = async (client: pg.Client, ctx: PlanContext) =>
    (await book(client, bk.run(ctx.pipeline, ctx.runId)))?.status === 'committed';

  /** Checks that an existing table has a column for each field (by exact name) and, for upsert, a unique key on key_columns. */
  const checkExisting = async (client: pg.Client, existing: Map<string, number>, plan: ColumnPlan | undefined) => {
    if (plan) matchColumns(plan, [...existing.keys()], naming);
    if (keys) {
      const missingKeys = keys.filter((k) => !existing.has(k) || (plan && !plan.columns.includes(k)));
      if (missingKeys.length)
        throw new WeirError(
          `key_columns ${missingKeys.map(shownName).join(', ')} must be columns of both ${where} and the source rows; fix key_columns`,
          {
            kind: 'config',
            code: 'bad_key_columns',
          },
        );
      // the index's columns equal key_columns as sets (no ordering of names to agree on with the server)
      const r = await client.query(
        `SELECT 1 FROM pg_index i
          CROSS JOIN LATERAL (SELECT array_agg(a.attname::text) AS cols FROM pg_attribute a
                               WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) k
          WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL
            AND i.indnkeyatts = cardinality($2::text[]) AND k.cols @> $2::text[] AND k.cols <@ $2::text[]`,
        [target, keys],
      );
      if (r.rowCount === 0)
        throw new WeirError(
          `mode upsert needs a primary key or unique index on exactly (${keys.join(', ')}) in ${where}; create one (CREATE UNIQUE INDEX ON ${target} (${keys.map((k) => q(k)).join(', ')})) or fix key_columns`,
          { kind: 'config', code: 'no_unique_key' },
        );
    }
  };

  /**
   * Makes sure the target (and, for replace, the run's staging table) exists and
   * fits `schema`. Runs in its own short transaction under the DDL lock; idempotent.
   */
  const prepareTarget = async (client: pg.Client, ctx: PlanContext, schema: Schema | undefined) => {
    const plan = schema ? planColumns(schema, naming) : undefined;
    const strangers = plan?.columns.length ? (keys ?? []).filter((k) => !plan.columns.includes(k)) : [];
    if (strangers.length)
      throw new WeirError(
        `key_columns ${strangers.map(shownName).join(', ')} are not columns of the source rows (${plan?.columns.map(shownName).join(', ')}); fix key_columns`,
        { kind: 'config', code: 'bad_key_columns' },
      );
    await inTransaction(client, async () => {
      await lockDdl(client);
      await ensureBookkeeping(client);
      const existing = await tableColumns(client, opts.schema, table);
      if (existing) await checkExisting(client, existing, plan);
      else if (!opts.create_table)
        throw new WeirError(`sink table ${where} does not exist and create_table is false; create it, or set create_table: true`, {
          kind: 'config',
          code: 'no_such_table',
        });
      else if (schema?.length && plan) {
        await client.query(createTableSql(target, renamedSchema(schema, plan), keys));
        await book(client, bk.recordCreated(ctx.pipeline, ctx.runId, where));
        ctx.log.info('created table', { table: where, columns: schema.length });
      } else return;
      if (opts.mode === 'replace' && !(await runCommitted(client, ctx))) {
        const stage = qualified(opts.schema, stageTableName(ctx.runId, table));
        const made = await client.query('SELECT to_regclass($1) IS NULL AS missing', [stage]);
        if (made.rows[0]?.missing) {
          await client.query(`CREATE TABLE ${stage} (LIKE ${target} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`);
          // checkpoints of this run without their staging table are stale: redo those partitions
          await book(client, bk.forgetCheckpoints(ctx.pipeline, ctx.runId));
        }
      }
    });
  };

  return {
    accepts: sinkAccepts(opts),
    streaming: sinkStreaming(opts),

    async setup(ctx: CommitContext) {
      await withClient(ctx, 'setup', (client) => prepareTarget(client, ctx, ctx.schema));
    },

    async describeTarget(ctx: CommitContext) {
      return withClient(ctx, 'describe', async (client) => {
        const plan = ctx.schema ? planColumns(ctx.schema, naming) : undefined;
        const existing = await tableColumns(client, opts.schema, table);
        const then =
          opts.mode === 'upsert'
            ? `upsert into ${where} on (${(keys ?? []).join(', ')})`
            : opts.mode === 'replace'
              ? `replace ${where}: rows staged in ${stageTableName(ctx.runId, table)}, swapped in at the job commit`
              : `append to ${where}`;
        if (existing) {
          await checkExisting(client, existing, plan);
          return `${then} (the table exists with ${existing.size} columns${ctx.schema ? `; the source's ${ctx.schema.length} fit` : ''})`;
        }
        if (!opts.create_table)
          throw new WeirError(`sink table ${where} does not exist and create_table is false; create it, or set create_table: true`, {
            kind: 'config',
            code: 'no_such_table',
          });
        if (!ctx.schema?.length || !plan) return `create ${where} from the first rows' columns, then ${then}`;
        return `${createTableSql(target, renamedSchema(ctx.schema, plan), keys)}; then ${then}`;
      });
    },

    writer(partition: Partition, ctx: TaskContext): Writer {
      return new PostgresWriter(opts, partition, ctx, {
        target,
        where,
        bookkeeping: bk,
        keys,
        stage: opts.mode === 'replace' ? qualified(opts.schema, stageTableName(ctx.runId, table)) : undefined,
        naming,
        prepare: (client, schema) => prepareTarget(client, ctx, schema),
      });
    },

    async recover(ctx: CommitContext) {
      return withClient(ctx, 'recover', (client) =>
        inTransaction(client, async () => {
          await lockDdl(client);
          await ensureBookkeeping(client);
          const stage = opts.mode === 'replace' ? qualified(opts.schema, stageTableName(ctx.runId, table)) : undefined;
          // replace: checkpoints without their staging table are stale (its rows are gone)
          const staged = stage ? (await client.query('SELECT to_regclass($1) IS NOT NULL AS ok', [stage])).rows[0]?.ok === true : true;
          return book(
            client,
            bk.recover(ctx.pipeline, ctx.runId, () => staged),
          );
        }),
      );
    },

    async commit(messages: JsonValue[], ctx: CommitContext) {
      const list = messages as PostgresCommitMessage[];
      const rows = list.reduce((n, m) => n + (Number(m?.rows) || 0), 0);
      await withClient(ctx, 'commit', (client) =>
        inTransaction(client, async () => {
          await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`weir:run:${ctx.pipeline}:${ctx.runId}`]);
          await lockDdl(client);
          await ensureBookkeeping(client);
          if (await runCommitted(client, ctx)) return;
          if (opts.mode === 'replace') {
            const stage = qualified(opts.schema, stageTableName(ctx.runId, table));
            const present = await client.query('SELECT to_regclass($1) IS NOT NULL AS ok', [stage]);
            const existing = await tableColumns(client, opts.schema, table);
            if (existing) {
              const columns = ctx.schema ? planColumns(ctx.schema, naming).columns : [...new Set(list.flatMap((m) => m?.columns ?? []))];
              await client.query(`TRUNCATE ${target}`);
              if (present.rows[0]?.ok && columns.length) {
                const cols = columns.map((c) => q(c)).join(', ');
                await client.query(`INSERT INTO ${target} (${cols}) SELECT ${cols} FROM ${stage}`);
              }
            }
            if (present.rows[0]?.ok) await client.query(`DROP TABLE ${stage}`);
          }
          await book(client, bk.forgetCheckpoints(ctx.pipeline, ctx.runId));
          await book(client, bk.forgetCreated(ctx.pipeline, ctx.runId));
          await book(
            client,
            bk.markRun({
              pipeline: ctx.pipeline,
              runId: ctx.runId,
              target: where,
              status: 'committed',
              mode: opts.mode,
              partitions: list.length,
              rows,
            }),
          );
        }),
      ).catch((error: unknown) => {
        throw pgError(error, `job commit into ${where}`, opts);
      });
    },

    // only `replace` stages a table; a run that used it before the mode changed may have left one too
    async leftovers(runIds: readonly string[], ctx: CommitContext, drop: boolean) {
      return withClient(ctx, 'leftovers', async (client) => {
        const found: string[] = [];
        for (const runId of runIds) {
          const stage = qualified(opts.schema, stageTableName(runId, table));
          if ((await client.query('SELECT to_regclass($1) AS t', [stage])).rows[0]?.t == null) continue;
          if (drop) await client.query(`DROP TABLE IF EXISTS ${stage}`);
          found.push(`${opts.schema}.${stageTableName(runId, table)}`);
        }
        return found;
      }).catch((error: unknown) => {
        throw pgError(error, `deleting the staging tables of earlier runs in ${opts.schema}`, opts);
      });
    },

    async abort(messages: JsonValue[], ctx: CommitContext) {
      // nothing of the run was published: drop what it staged, and the table it created
      const dropped = await withClient(ctx, 'abort', (client) =>
        inTransaction(client, async () => {
          await lockDdl(client);
          await ensureBookkeeping(client);
          if (await runCommitted(client, ctx)) return false; // published: nothing to take back
          if (opts.mode === 'replace') {
            await client.query(`DROP TABLE IF EXISTS ${qualified(opts.schema, stageTableName(ctx.runId, table))}`);
            await book(client, bk.forgetCheckpoints(ctx.pipeline, ctx.runId));
          }
          return dropCreated(client, ctx);
        }),
      ).catch((error: unknown) => {
        throw pgError(error, `job abort of ${where}`, opts);
      });
      if (messages.length && opts.mode !== 'replace' && !dropped)
        ctx.log.warn(
          `${messages.length} partition(s) were committed to ${where} before the run failed; they stay, with their checkpoints, and a resumed run skips them`,
          { table: where, partitions: messages.length },
        );
    },
  };
}

interface WriterPlan {
  target: string;
  where: string;
  bookkeeping: Bookkeeping;
  keys: readonly string[] | undefined;
  stage: string | undefined;
  naming: ColumnRules;
  prepare: (client: pg.Client, schema: Schema | undefined) => Promise<void>;
}

const UPSERT_TABLE = '_weir_upsert';
/** Per batch of an upsert: how many rows its merge inserted and updated (rolled back with the batch's savepoint). */
const UPSERT_COUNTS = '_weir_upsert_counts';

/** One partition's transaction (worker). */
class PostgresWriter implements Writer {
  private client: pg.Client | undefined;
  /** The rows' fields, read in COPY order. */
  private fields: readonly string[] = [];
  /** The table's column of each field. */
  private columns: readonly string[] = [];
  /** Fields whose column is `numeric(p,s)`, with s: PostgreSQL would round a value with more fraction digits. */
  private scales: readonly (readonly [field: string, scale: number])[] = [];
  /** The type OID of each of the table's columns (read once, when the transaction opens). */
  private oids: ReadonlyMap<string, number> = new Map();
  /** One batch's statements: SAVEPOINT, COPY (then, for upsert, the merge and TRUNCATE), RELEASE. */
  private batchSql = '';
  private rows = 0;
  private batches = 0;
  private busy = false;
  private broken: WeirError | undefined;
  private finished = false;
  /** COPY statements of the passthrough path, by column order and dialect. */
  private readonly csvCopySql = new Map<string, string>();

  /** The connection being opened since the writer was created (every writer needs one, if only to commit). */
  private connecting: Promise<pg.Client> | undefined;

  constructor(
    private readonly opts: PostgresOptions,
    private readonly partition: Partition,
    private readonly ctx: TaskContext,
    private readonly plan: WriterPlan,
  ) {
    // connect while the source reads its first batch; a failure surfaces in the first write
    this.connecting = this.connect();
    this.connecting.catch(() => {});
  }

  private connect(): Promise<pg.Client> {
    const { ctx, opts } = this;
    return connect(opts, { baseDir: ctx.baseDir, log: ctx.log, role: `sink p${this.partition.id}` });
  }

  /** Connects, prepares the target when the planner could not (no declared schema), and BEGINs. */
  private async open(first: Row | undefined): Promise<pg.Client> {
    const { ctx, plan } = this;
    const schema = ctx.schema ?? (first ? schemaFromRow(first) : undefined);
    const pending = this.connecting;
    this.connecting = undefined;
    const client = await (pending ?? this.connect());
    try {
      if (!ctx.schema && schema) await plan.prepare(client, schema);
      const columns = schema ? planColumns(schema, plan.naming) : { fields: [], columns: [] };
      this.fields = columns.fields;
      this.columns = columns.columns;
      const types = (await columnTypesOf(client, plan.stage ?? plan.target)) ?? new Map();
      this.oids = new Map([...types].map(([column, t]) => [column, t.oid]));
      this.scales = this.fields.flatMap((f, i) => {
        const scale = numericScale(types.get(this.columns[i] as string));
        return scale === undefined ? [] : [[f, scale] as const];
      });
      await client.query('BEGIN');
      const cols = this.columns.map((c) => q(c)).join(', ');
      if (plan.keys && this.columns.length) {
        await client.query(`CREATE TEMP TABLE ${UPSERT_TABLE} ON COMMIT DROP AS SELECT ${cols} FROM ${plan.target} WITH NO DATA`);
        await client.query(`ALTER TABLE ${UPSERT_TABLE} ADD COLUMN _weir_ord bigint GENERATED ALWAYS AS IDENTITY`);
        const keyList = plan.keys.map((k) => q(k)).join(', ');
        const updates = this.columns.filter((c) => !plan.keys?.includes(c)).map((c) => `${q(c)} = EXCLUDED.${q(c)}`);
        await client.query(`CREATE TEMP TABLE ${UPSERT_COUNTS} (inserted bigint, updated bigint) ON COMMIT DROP`);
        // a row the merge returns is new when its xmax is 0, else it replaced a row (ON CONFLICT … DO UPDATE)
        const merge =
          `WITH m AS (INSERT INTO ${plan.target} (${cols}) SELECT DISTINCT ON (${keyList}) ${cols} FROM ${UPSERT_TABLE} ORDER BY ${keyList}, _weir_ord DESC ` +
          `ON CONFLICT (${keyList}) DO ${updates.length ? `UPDATE SET ${updates.join(', ')}` : 'NOTHING'} RETURNING (xmax = 0) AS inserted) ` +
          `INSERT INTO ${UPSERT_COUNTS} SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM m`;
        this.batchSql = `SAVEPOINT weir_batch; COPY ${UPSERT_TABLE} (${cols}) FROM STDIN; ${merge}; TRUNCATE ${UPSERT_TABLE}; RELEASE SAVEPOINT weir_batch`;
      } else {
        this.batchSql = `SAVEPOINT weir_batch; COPY ${plan.stage ?? plan.target} (${cols}) FROM STDIN; RELEASE SAVEPOINT weir_batch`;
      }
      this.client = client;
      return client;
    } catch (error) {
      await endQuietly(client);
      throw error;
    }
  }

  /** The partition's transaction: the open one, or a new one (`first`: a row to take the schema from when none was declared). */
  private async transaction(first: Row | undefined): Promise<pg.Client> {
    if (this.client) return this.client;
    try {
      return await this.open(first);
    } catch (error) {
      throw pgError(error, `opening a transaction on ${this.plan.where}`, this.opts);
    }
  }

  /**
   * A batch failed inside its savepoint: rolls back to it, so the transaction keeps
   * the earlier batches, and throws the server's error (`what` says what was being
   * done). A lost connection, here or during the rollback, loses the transaction.
   */
  private async batchFailed(client: pg.Client, error: unknown, what: string): Promise<never> {
    if (isConnectionLoss(error)) throw this.lost(error);
    try {
      await client.query('ROLLBACK TO SAVEPOINT weir_batch');
      await client.query('RELEASE SAVEPOINT weir_batch');
    } catch (rollbackError) {
      throw this.lost(rollbackError);
    }
    throw pgError(error, what, this.opts);
  }

  /** The connection is gone, and with it the open transaction. */
  private lost(error: unknown): WeirError {
    destroy(this.client);
    this.client = undefined;
    if (this.rows === 0) return pgError(error, `writing to ${this.plan.where}`, this.opts); // nothing lost yet: retry reconnects
    // not retryable batch by batch; the classified cause (retryable) lets the runtime redo the partition
    const cause = pgError(error, 'cause', this.opts);
    this.broken = new WeirError(
      `connection to ${this.plan.where} lost after ${this.rows} row(s) of partition ${this.partition.id} were written in its transaction; the server rolled them back and the partition must be redone: ${cause.message}`,
      { kind: 'connector', code: 'connection_lost', retryable: false, cause },
    );
    return this.broken;
  }

  async write(batch: Row[]): Promise<void> {
    if (this.broken) throw this.broken;
    if (batch.length === 0) return;
    this.busy = true;
    try {
      const client = await this.transaction(batch[0]);
      this.checkScales(batch);
      let bytes: number;
      try {
        // savepoint, COPY (and the upsert's merge) and release in one simple query: one round trip per batch
        bytes = await copyRows(client, this.batchSql, batch, this.fields);
      } catch (error) {
        return await this.batchFailed(client, error, `writing a batch of ${batch.length} row(s) to ${this.plan.where}`);
      }
      this.rows += batch.length;
      this.batches++;
      this.ctx.count('bytes_sent', bytes);
    } finally {
      this.busy = false;
    }
  }

  /** Refuses (as a row error) a value that `numeric(p,s)` would round: PostgreSQL does so without a word. */
  private checkScales(batch: readonly Row[]): void {
    for (const [field, scale] of this.scales)
      for (let i = 0; i < batch.length; i++) {
        const v = (batch[i] as Row)[field];
        if (v !== null && v !== undefined && !fitsFraction(v, scale)) throw fractionError(field, valueText(v), scale, i);
      }
  }

  /**
   * Sends CSV records as they are through `COPY … (FORMAT csv)` (worker, once per
   * batch; may be retried with the same batch). Declines (false) in upsert mode,
   * without a declared schema, and when the batch's columns are not exactly the
   * schema's; then the runtime writes the decoded rows.
   */
  async writeEncoded(batch: EncodedRows): Promise<boolean> {
    if (this.broken) throw this.broken;
    const { ctx, plan } = this;
    if (plan.keys || !ctx.schema?.length || batch.format !== 'csv' || !sameColumns(batch.columns, ctx.schema)) return false;
    if (!byteDialectOk(batch)) return false; // what COPY (FORMAT csv) takes: one-byte delimiter and quote, a null text apart from them
    if (batch.rows === 0) return true;
    this.busy = true;
    try {
      const client = await this.transaction(undefined);
      // savepoint, COPY and release in one simple query: one round trip per batch
      const sql = `SAVEPOINT weir_batch; ${this.csvCopySqlFor(client, batch)}; RELEASE SAVEPOINT weir_batch`;
      try {
        await copyBuffer(client, sql, batch.data);
      } catch (error) {
        return await this.batchFailed(client, error, `writing a batch of ${batch.rows} CSV record(s) to ${plan.where}`);
      }
      this.rows += batch.rows;
      this.batches++;
      ctx.count('bytes_sent', batch.data.length);
      return true;
    } finally {
      this.busy = false;
    }
  }

  /**
   * Columns whose type reads any text of the row path's value as that value: boolean
   * columns fed booleans (`true` = `t`), real and double precision fed numbers
   * (`1.50` = `1.5`). Integer and numeric columns are left out (`5.0` is no bigint;
   * an unconstrained numeric keeps the scale it is given).
   */
  async encodingHints(format: EncodedRows['format']): Promise<EncodingHints> {
    const { ctx, plan } = this;
    if (format !== 'csv' || plan.keys || !ctx.schema?.length) return {};
    await this.transaction(undefined); // reads the column types
    const valueColumns = ctx.schema
      .filter((c, i) => {
        const oid = this.oids.get(this.columns[i] as string);
        return (c.type === 'boolean' && oid === OID.bool) || (c.type === 'number' && (oid === OID.float4 || oid === OID.float8));
      })
      .map((c) => c.name);
    return { valueColumns, ...(this.scales.length ? { fractionDigits: Object.fromEntries(this.scales) } : {}) };
  }

  /** `COPY target (columns) FROM STDIN (FORMAT csv, …)` for the batch's columns and dialect; option values are escaped literals. */
  private csvCopySqlFor(client: pg.Client, batch: EncodedRows): string {
    const key = JSON.stringify([batch.columns, batch.delimiter, batch.quote, batch.nullText]);
    let sql = this.csvCopySql.get(key);
    if (!sql) {
      const { fields, columns } = planColumns(this.ctx.schema ?? [], this.plan.naming);
      const cols = batch.columns.map((c) => q(columns[fields.indexOf(c)] ?? c)).join(', ');
      const lit = (v: string) => client.escapeLiteral(v);
      sql = `COPY ${this.plan.stage ?? this.plan.target} (${cols}) FROM STDIN WITH (FORMAT csv, DELIMITER ${lit(batch.delimiter)}, QUOTE ${lit(batch.quote)}, ESCAPE ${lit(batch.quote)}, NULL ${lit(batch.nullText)})`;
      this.csvCopySql.set(key, sql);
    }
    return sql;
  }

  async commit(epoch?: EpochMark): Promise<JsonValue> {
    if (this.broken) throw this.broken;
    const { ctx, plan } = this;
    const message: PostgresCommitMessage = {
      partition_id: this.partition.id,
      rows: this.rows,
      columns: [...this.columns],
      batches: this.batches,
    };
    let client = this.client;
    this.busy = true;
    try {
      if (!client) client = await this.open(undefined);
      const upserted = plan.keys && this.columns.length ? await upsertCounts(client) : undefined;
      try {
        await book(
          client,
          plan.bookkeeping.storeCheckpoint({
            pipeline: ctx.pipeline,
            runId: ctx.runId,
            partitionId: this.partition.id,
            target: plan.where,
            stage: plan.stage ?? null,
            rows: this.rows,
            message,
            ...(epoch ? { epoch } : {}),
          }),
        );
      } catch (error) {
        if ((error as { code?: string }).code !== '23505') throw error;
        // another attempt of this partition already committed: keep its rows, drop ours
        await client.query('ROLLBACK');
        this.finished = true;
        const [earlier] = await book(
          client,
          plan.bookkeeping.checkpoints(ctx.pipeline, ctx.runId, checkpointKey(this.partition.id, epoch)),
        );
        ctx.log.warn('partition was already committed by an earlier attempt; this attempt was rolled back', {
          partition_id: this.partition.id,
        });
        return earlier?.message ?? message;
      }
      await client.query('COMMIT');
      this.finished = true;
      if (upserted) {
        ctx.count('rows_inserted', upserted.inserted);
        ctx.count('rows_updated', upserted.updated);
      }
      return checkpointMessage(message, this.partition.id, epoch);
    } catch (error) {
      if (isConnectionLoss(error)) {
        destroy(this.client);
        this.client = undefined;
      }
      throw pgError(error, `committing partition ${this.partition.id} to ${plan.where}`, this.opts);
    } finally {
      this.busy = false;
    }
  }

  async abort(): Promise<void> {
    const client = this.client;
    if (!client || this.finished) return;
    this.finished = true;
    if (this.busy) {
      destroy(client); // a statement is in flight: closing the socket makes the server roll back at once
      this.client = undefined;
      return;
    }
    await client.query('ROLLBACK').catch(() => destroy(client));
  }

  async close(): Promise<void> {
    const pending = this.connecting;
    this.connecting = undefined;
    if (pending) await pending.then(endQuietly, () => {}); // opened early, never used
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    if (this.finished) await endQuietly(client);
    else destroy(client); // never committed nor rolled back: the server rolls back when the socket closes
  }
}

/** What the transaction's upsert batches inserted and updated so far. */
async function upsertCounts(client: pg.Client): Promise<{ inserted: number; updated: number }> {
  const r = await client.query(
    `SELECT coalesce(sum(inserted), 0)::float8 AS inserted, coalesce(sum(updated), 0)::float8 AS updated FROM ${UPSERT_COUNTS}`,
  );
  const row = r.rows[0] as { inserted: number; updated: number } | undefined;
  return { inserted: row?.inserted ?? 0, updated: row?.updated ?? 0 };
}

/** The batch names exactly the schema's columns (in any order). */
function sameColumns(columns: readonly string[], schema: Schema): boolean {
  if (columns.length !== schema.length) return false;
  const names = new Set(schema.map((c) => c.name));
  return names.size === columns.length && columns.every((c) => names.has(c));
}
