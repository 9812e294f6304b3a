import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '../../test/helpers/services.js';
import {
  Bookkeeping,
  type BookkeepingDialect,
  CHECKPOINTS_TABLE,
  CREATED_TABLE,
  hashedKey,
  mysqlDialect,
  postgresDialect,
  RUNS_TABLE,
  runAsync,
  runSync,
  type Statement,
  type StatementResult,
  type Step,
  sqliteDialect,
} from './exactly-once.js';
import { quoteIdentifier } from './sql.js';

const up = { postgres: await requireService('postgres'), mysql: await requireService('mysql') };
const tag = `bk_${process.pid}_${Date.now().toString(36)}`;

/** One database, with a namespace of its own (a PostgreSQL schema, a MySQL database, an in-memory SQLite file). */
interface Target {
  name: string;
  skip: boolean;
  open(): Promise<{ bk: Bookkeeping; run<T>(step: Step<T>, seen?: Statement[]): Promise<T>; close(): Promise<void> }>;
}

const recording =
  (exec: (s: Statement) => Promise<StatementResult>, seen?: Statement[]) =>
  (s: Statement): Promise<StatementResult> => {
    seen?.push(s);
    return exec(s);
  };

const targets: Target[] = [
  {
    name: 'sqlite',
    skip: false,
    open: async () => {
      const db = new Database(':memory:');
      const exec = (s: Statement): StatementResult => {
        const stmt = db.prepare(s.sql);
        return stmt.reader
          ? { rows: stmt.all(...s.params) as Record<string, unknown>[], count: 0 }
          : { rows: [], count: stmt.run(...s.params).changes };
      };
      return {
        bk: new Bookkeeping(sqliteDialect),
        run: async (step, seen) =>
          runSync(step, (s) => {
            seen?.push(s);
            return exec(s);
          }),
        close: async () => void db.close(),
      };
    },
  },
  {
    name: 'postgres',
    skip: !up.postgres,
    open: async () => {
      const client = new pg.Client({ host: '127.0.0.1', database: 'test', user: 'postgres' });
      await client.connect();
      const schema = `${tag}_${Math.random().toString(36).slice(2, 8)}`;
      await client.query(`CREATE SCHEMA ${quoteIdentifier(schema)}`);
      const exec = async (s: Statement) => {
        const r = await client.query(s.sql, s.params);
        return { rows: r.rows, count: r.rowCount ?? 0 };
      };
      return {
        bk: new Bookkeeping(postgresDialect, { name: (t) => `${quoteIdentifier(schema)}.${quoteIdentifier(t)}` }),
        run: (step, seen) => runAsync(step, recording(exec, seen)),
        close: async () => {
          await client.query(`DROP SCHEMA ${quoteIdentifier(schema)} CASCADE`);
          await client.end();
        },
      };
    },
  },
  {
    name: 'mysql',
    skip: !up.mysql,
    open: async () => {
      const database = `${tag}_${Math.random().toString(36).slice(2, 8)}`;
      const admin = await mysql.createConnection({ host: '127.0.0.1', user: 'root' });
      await admin.query(`CREATE DATABASE \`${database}\``);
      await admin.query(`USE \`${database}\``);
      const exec = async (s: Statement) => {
        const [r] = await admin.query(s.sql, s.params);
        return Array.isArray(r)
          ? { rows: r as Record<string, unknown>[], count: 0 }
          : { rows: [], count: (r as mysql.ResultSetHeader).affectedRows };
      };
      return {
        bk: new Bookkeeping(mysqlDialect),
        run: (step, seen) => runAsync(step, recording(exec, seen)),
        close: async () => {
          await admin.query(`DROP DATABASE \`${database}\``);
          await admin.end();
        },
      };
    },
  },
];

/** The columns every SQL sink's bookkeeping tables have (docs/exactly-once.md). */
const COLUMNS = {
  [CHECKPOINTS_TABLE]: ['pipeline', 'run_id', 'partition_id', 'target', 'stage', 'rows_written', 'message', 'committed_at'],
  [RUNS_TABLE]: [
    'pipeline',
    'run_id',
    'target',
    'mode',
    'stage',
    'status',
    'partitions',
    'rows_written',
    'started_at',
    'updated_at',
    'committed_at',
  ],
  [CREATED_TABLE]: ['pipeline', 'run_id', 'target', 'created_at'],
} as const;

const columnsOf = (d: BookkeepingDialect, bk: Bookkeeping, table: typeof CHECKPOINTS_TABLE | typeof RUNS_TABLE | typeof CREATED_TABLE) =>
  d.columnsOf(table, bk.table(table));

describe('exactly-once bookkeeping', () => {
  for (const target of targets)
    describe.skipIf(target.skip)(target.name, () => {
      let db: Awaited<ReturnType<Target['open']>>;
      beforeAll(async () => {
        db = await target.open();
      });
      afterAll(async () => db?.close());

      it('creates the three tables with every column, and a second ensure() issues no DDL', async () => {
        await db.run(db.bk.ensure());
        for (const [table, expected] of Object.entries(COLUMNS) as [keyof typeof COLUMNS, readonly string[]][]) {
          const columns = await db.run(
            (function* () {
              return (yield columnsOf(db.bk.dialect, db.bk, table)).rows.map((r) => String(r.name));
            })(),
          );
          expect(columns.sort(), table).toEqual([...expected].sort());
        }
        const seen: Statement[] = [];
        await db.run(db.bk.ensure(), seen);
        expect(seen.map((s) => s.sql).filter((sql) => !/^SELECT/i.test(sql))).toEqual([]);
      });

      it('stores checkpoints and reads them back with the full partition id, a run mark and a created-table record', async () => {
        const longId = `p-${'x'.repeat(300)}`;
        const runId = `run-${'r'.repeat(80)}`;
        for (const partitionId of ['0', longId])
          await db.run(
            db.bk.storeCheckpoint({
              pipeline: 'p',
              runId,
              partitionId,
              target: 't',
              rows: 2,
              message: { partition_id: partitionId, rows: 2 },
            }),
          );
        await expect(
          db.run(db.bk.storeCheckpoint({ pipeline: 'p', runId, partitionId: '0', target: 't', rows: 2, message: { partition_id: '0' } })),
        ).rejects.toThrow(); // another attempt's checkpoint is never overwritten
        const found = await db.run(db.bk.recover('p', runId));
        expect(found.jobCommitted).toBe(false);
        expect(found.partitions.map((p) => p.partition_id).sort()).toEqual(['0', longId].sort());
        expect(await db.run(db.bk.recordCreated('p', runId, 't'))).toBe(true);
        expect(await db.run(db.bk.recordCreated('p', runId, 't'))).toBe(false);
        expect(await db.run(db.bk.created('p', runId, 't'))).toBe(true);
        await db.run(db.bk.markRun({ pipeline: 'p', runId, target: 't', status: 'running', mode: 'append' }));
        expect((await db.run(db.bk.run('p', runId)))?.status).toBe('running');
        await db.run(db.bk.markRun({ pipeline: 'p', runId, target: 't', status: 'committed', partitions: 2, rows: 4 }));
        expect(await db.run(db.bk.forgetCheckpoints('p', runId))).toBe(2);
        expect(await db.run(db.bk.forgetCreated('p', runId))).toBe(1);
        expect(await db.run(db.bk.recover('p', runId))).toEqual({ jobCommitted: true, partitions: [] });
      });
    });

  it('MySQL stores keys longer than its index allows as a hash of the same length', () => {
    expect(hashedKey('short', 64)).toBe('short');
    const long = hashedKey('r'.repeat(100), 64);
    expect(long).toMatch(/^sha256:[0-9a-f]{57}$/);
    expect(mysqlDialect.key('p'.repeat(200), 'partition_id')).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(mysqlDialect.key('p'.repeat(191), 'partition_id')).toBe('p'.repeat(191));
    expect(postgresDialect.key('p'.repeat(200), 'partition_id')).toHaveLength(200);
  });
});
