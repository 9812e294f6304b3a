/**
 * The SQLite source: a table split into rowid ranges, or one query.
 */
import type Database from 'better-sqlite3';
import type { Source } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import type { OptionsOf } from '../../sdk/options.js';
import { quoteIdentifier as q } from '../../sdk/sql.js';
import { type Partition, type Row, rowOf } from '../../sdk/types.js';
import { decimalColumns, exactRow, openDb, tableExists, tableSchema } from './db.js';
import type { sqliteOptions } from './spec.js';

type Options = OptionsOf<typeof sqliteOptions>;
const CHUNK = 1000;

export function sqliteSource(opts: Options): Source {
  const withDb = <T>(baseDir: string, fn: (db: ReturnType<typeof openDb>) => T): T => {
    const db = openDb(opts, baseDir, false);
    try {
      return fn(db);
    } finally {
      db.close();
    }
  };
  const checkTable = (db: ReturnType<typeof openDb>) => {
    if (opts.table && !tableExists(db, opts.table))
      throw new WeirError(`table ${opts.table} does not exist in ${opts.path}; check source.table`, {
        kind: 'config',
        code: 'no_such_table',
      });
  };
  return {
    schema: (ctx) =>
      withDb(ctx.baseDir, (db) => {
        if (!opts.table) return undefined;
        checkTable(db);
        return tableSchema(db, opts.table);
      }),
    estimate: (ctx) =>
      opts.table
        ? withDb(ctx.baseDir, (db) => (db.prepare(`SELECT count(*) AS n FROM ${q(opts.table as string)}`).get() as { n: number }).n)
        : undefined,
    partitions: (ctx): Partition[] => {
      if (!opts.table || opts.partitions === 1) return [{ id: '0' }];
      return withDb(ctx.baseDir, (db) => {
        checkTable(db);
        const r = db.prepare(`SELECT min(rowid) AS lo, max(rowid) AS hi FROM ${q(opts.table as string)}`).get() as {
          lo: number | null;
          hi: number | null;
        };
        if (r.lo === null || r.hi === null) return [{ id: '0' }];
        const span = r.hi - r.lo + 1;
        const n = Math.min(opts.partitions, span);
        const out: Partition[] = [];
        for (let i = 0; i < n; i++) {
          const from = r.lo + Math.floor((span * i) / n);
          const to = r.lo + Math.floor((span * (i + 1)) / n);
          out.push({ id: String(i), from, to });
        }
        return out;
      });
    },
    async *read(partition, ctx) {
      const db = openDb(opts, ctx.baseDir, false);
      try {
        let stmt: Database.Statement<unknown[]>;
        if (opts.query) stmt = db.prepare(opts.query);
        else {
          checkTable(db);
          const ranged = typeof partition.from === 'number';
          stmt = db.prepare(`SELECT * FROM ${q(opts.table as string)}${ranged ? ' WHERE rowid >= ? AND rowid < ?' : ''} ORDER BY rowid`);
          if (ranged) stmt.bind(partition.from, partition.to);
        }
        if (!stmt.reader) throw new WeirError('source.query must be a SELECT that returns rows', { kind: 'config', code: 'not_a_query' });
        stmt.safeIntegers(true); // integers beyond 2^53 as bigint, not rounded
        const decimals = decimalColumns(stmt);
        // rows built from arrays: better-sqlite3's own row objects lose a column named __proto__
        const names = stmt.columns().map((c) => c.name);
        stmt.raw(true);
        let chunk: Row[] = [];
        for (const values of stmt.iterate() as IterableIterator<unknown[]>) {
          chunk.push(exactRow(rowOf(names, values), decimals));
          if (chunk.length >= CHUNK) {
            yield chunk;
            chunk = [];
          }
        }
        if (chunk.length) yield chunk;
      } finally {
        db.close();
      }
    },
  };
}
