/**
 * BulkInsert: every row once and in order whatever the count (below, at and past a
 * statement's rows), nothing of a failed transaction carried into the next, and wide
 * tables within SQLite's parameter bound.
 */
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { BulkInsert } from './bulk.js';

const table = (db: Database.Database, width: number) => {
  const columns = Array.from({ length: width }, (_, i) => `c${i}`);
  db.exec(`CREATE TABLE t (${columns.map((c) => `"${c}"`).join(', ')})`);
  return columns;
};

describe('BulkInsert', () => {
  it('inserts every row once, in order, for any number of rows', () => {
    for (const n of [0, 1, 63, 64, 65, 128, 200]) {
      const db = new Database(':memory:');
      const bulk = new BulkInsert(db, 't', table(db, 3));
      db.transaction(() => {
        const values: unknown[] = [0, '', null];
        for (let i = 0; i < n; i++) {
          values[0] = i;
          values[1] = `row ${i}`;
          values[2] = i % 3 === 0 ? null : i / 4;
          bulk.add(values); // the same array each time, as the callers pass it
        }
        bulk.flush();
      })();
      const got = db.prepare('SELECT c0, c1, c2 FROM t ORDER BY rowid').raw().all();
      expect(got).toEqual(Array.from({ length: n }, (_, i) => [i, `row ${i}`, i % 3 === 0 ? null : i / 4]));
      db.close();
    }
  });

  it('carries nothing of a failed transaction into the next one', () => {
    const db = new Database(':memory:');
    const bulk = new BulkInsert(db, 't', table(db, 1));
    const write = db.transaction((from: number, count: number, fail: boolean) => {
      bulk.reset();
      for (let i = from; i < from + count; i++) bulk.add([i]);
      if (fail) throw new Error('the batch failed');
      bulk.flush();
    });
    expect(() => write(1, 70, true)).toThrow('the batch failed'); // 64 inserted, 6 waiting: all rolled back
    write(100, 3, false);
    expect(db.prepare('SELECT c0 FROM t ORDER BY rowid').raw().all()).toEqual([[100], [101], [102]]);
  });

  it('keeps a wide table within the parameter bound', () => {
    const db = new Database(':memory:');
    const columns = table(db, 1000);
    const bulk = new BulkInsert(db, 't', columns);
    db.transaction(() => {
      for (let r = 0; r < 40; r++) bulk.add(columns.map((_, i) => r * 1000 + i));
      bulk.flush();
    })();
    expect(db.prepare('SELECT count(*) AS n, sum(c999) AS s FROM t').get()).toEqual({ n: 40, s: 40 * 999 + (1000 * (39 * 40)) / 2 });
  });
});
