/**
 * The SQLite sink. SQLite allows one writer at a time, so partitions cannot each
 * hold a transaction open; instead every partition writes into its own staging
 * table (one short transaction per batch), and the job commit moves every staged
 * partition into the target table in ONE transaction. Until then nothing is
 * visible; a job abort drops the staging tables.
 */
import { createHash } from 'node:crypto';
import type { CommitContext, Sink, TaskContext, Writer } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import type { OptionsOf } from '../../sdk/options.js';
import { assertSchemaIdentifiers, quoteIdentifier as q, schemaFromRow } from '../../sdk/sql.js';
import type { JsonValue, Partition, Row, Schema } from '../../sdk/types.js';
import { SQLITE_TYPES, type SqliteDb, openDb, tableExists, tableSchema, toSqlite } from './db.js';
import type { sqliteOptions } from './spec.js';

type Options = OptionsOf<typeof sqliteOptions>;

export interface SqliteCommitMessage {
  partition_id: string;
  stage: string;
  rows: number;
  [key: string]: JsonValue;
}

export function stageTableName(runId: string, partitionId: string): string {
  return `_weir_stage_${createHash('sha256').update(`${runId}\0${partitionId}`).digest('hex').slice(0, 20)}`;
}

function createTableSql(table: string, schema: Schema): string {
  return `CREATE TABLE IF NOT EXISTS ${q(table)} (${schema.map((c) => `${q(c.name)} ${SQLITE_TYPES[c.type]}`).join(', ')})`;
}

export function sqliteSink(opts: Options): Sink {
  const table = opts.table as string;
  let jobDb: SqliteDb | undefined;
  const job = (ctx: { baseDir: string }) => {
    jobDb ??= openDb(opts, ctx.baseDir, true);
    return jobDb;
  };

  return {
    setup(ctx) {
      const db = job(ctx);
      if (ctx.schema) assertSchemaIdentifiers(ctx.schema, `sink table ${table}`);
      if (ctx.schema && tableExists(db, table)) {
        const existing = new Set(tableSchema(db, table).map((c) => c.name));
        const missing = ctx.schema.filter((c) => !existing.has(c.name)).map((c) => c.name);
        if (missing.length)
          throw new WeirError(`table ${table} in ${opts.path} has no column(s) ${missing.join(', ')} that the source produces; add them or write to a new table`, {
            kind: 'config',
            code: 'schema_mismatch',
          });
      }
    },

    writer(partition: Partition, ctx: TaskContext): Writer {
      const db = openDb(opts, ctx.baseDir, true);
      const stage = stageTableName(ctx.runId, partition.id);
      let rows = 0;
      let insert: ((batch: Row[]) => void) | undefined;
      const prepare = (schema: Schema) => {
        assertSchemaIdentifiers(schema, `sink table ${table}`);
        db.exec(`DROP TABLE IF EXISTS ${q(stage)}`);
        db.exec(createTableSql(stage, schema));
        const names = schema.map((c) => c.name);
        const stmt = db.prepare(`INSERT INTO ${q(stage)} (${names.map((n) => q(n)).join(', ')}) VALUES (${names.map(() => '?').join(', ')})`);
        const values: unknown[] = new Array(names.length);
        return db.transaction((batch: Row[]) => {
          for (const row of batch) {
            for (let i = 0; i < names.length; i++) values[i] = toSqlite(row[names[i] as string]);
            stmt.run(values);
          }
        });
      };
      return {
        write(batch) {
          if (batch.length === 0) return;
          insert ??= prepare(ctx.schema ?? schemaFromRow(batch[0] as Row));
          try {
            insert(batch);
          } catch (error) {
            const code = (error as { code?: string }).code ?? 'SQLITE_ERROR';
            const retryable = code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
            throw new WeirError(`insert into ${table} failed: ${(error as Error).message}`, { code, retryable, kind: retryable ? 'connector' : 'data', cause: error });
          }
          rows += batch.length;
        },
        commit(): SqliteCommitMessage {
          if (!insert) prepare(ctx.schema ?? []);
          return { partition_id: partition.id, stage, rows };
        },
        abort() {
          db.exec(`DROP TABLE IF EXISTS ${q(stage)}`);
        },
        close() {
          db.close();
        },
      };
    },

    commit(messages: JsonValue[], ctx: CommitContext) {
      const db = job(ctx);
      const staged = (messages as SqliteCommitMessage[]).filter((m) => tableExists(db, m.stage));
      db.transaction(() => {
        const first = staged.find((m) => tableSchema(db, m.stage).length > 0);
        const schema = ctx.schema ?? (first ? tableSchema(db, first.stage) : []);
        if (schema.length) db.exec(createTableSql(table, schema));
        if (opts.mode === 'replace' && tableExists(db, table)) db.exec(`DELETE FROM ${q(table)}`);
        for (const m of staged) {
          const cols = tableSchema(db, m.stage).map((c) => q(c.name));
          if (cols.length) db.exec(`INSERT INTO ${q(table)} (${cols.join(', ')}) SELECT ${cols.join(', ')} FROM ${q(m.stage)}`);
          db.exec(`DROP TABLE ${q(m.stage)}`);
        }
      }).immediate();
    },

    abort(messages: JsonValue[], ctx: CommitContext) {
      const db = job(ctx);
      for (const m of messages as SqliteCommitMessage[]) db.exec(`DROP TABLE IF EXISTS ${q(m.stage)}`);
    },

    close() {
      jobDb?.close();
      jobDb = undefined;
    },
  };
}
