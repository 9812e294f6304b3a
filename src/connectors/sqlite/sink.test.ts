import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/cli.js';
import type { CommitContext } from '../../sdk/connector.js';
import { silentLog, taskContext } from '../../sdk/testing.js';
import type { JsonValue, Schema } from '../../sdk/types.js';
import sqlite from './index.js';
import { CHECKPOINTS_TABLE, RUNS_TABLE, sqliteSink, stagePrefix } from './sink.js';

const SCHEMA: Schema = [
  { name: 'id', type: 'integer' },
  { name: 'v', type: 'string' },
];

function setup() {
  const dir = tempDir('weir-sqlite-');
  const opts = {
    path: 'out.db',
    table: 'events',
    mode: 'append',
    partitions: 1,
    batch_size: 100,
    synchronous: 'normal',
    busy_timeout: 5000,
  } as const;
  const ctx = (runId: string): CommitContext => ({
    runId,
    pipeline: 'p',
    log: silentLog,
    signal: new AbortController().signal,
    baseDir: dir,
    schema: SCHEMA,
  });
  const task = (runId: string, partitionId: string) => taskContext({ runId, pipeline: 'p', partitionId, baseDir: dir, schema: SCHEMA });
  const read = <T>(sql: string) => {
    const db = new Database(join(dir, 'out.db'), { readonly: true });
    try {
      return db.prepare(sql).all() as T[];
    } finally {
      db.close();
    }
  };
  return { dir, sink: () => sqliteSink(opts as never), ctx, task, read };
}

const rows = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ id: from + i, v: `v${from + i}` }));

describe('sqlite sink, exactly-once', () => {
  it('declares exactly-once', () => {
    expect(sqlite.exactlyOnce).toBe(true);
  });

  it("writer.commit records the partition's checkpoint in the target; recover returns it; nothing is visible before the job commit", async () => {
    const t = setup();
    const sink = t.sink();
    await sink.setup?.(t.ctx('r1'));
    const w = await sink.writer({ id: 'a' }, t.task('r1', 'a'));
    await w.write(rows(1, 10));
    const message = await w.commit?.();
    await w.close?.();
    expect(message).toMatchObject({ partition_id: 'a', rows: 10 });
    expect(t.read(`SELECT partition_id, rows_written FROM ${CHECKPOINTS_TABLE}`)).toEqual([{ partition_id: 'a', rows_written: 10 }]);
    expect(await sink.recover?.(t.ctx('r1'))).toEqual({ jobCommitted: false, partitions: [{ partition_id: 'a', message }] });
    expect(await sink.recover?.(t.ctx('other-run'))).toEqual({ jobCommitted: false, partitions: [] });
    expect(t.read("SELECT name FROM sqlite_master WHERE name = 'events'")).toEqual([]);
    await sink.close?.();
  });

  it('a partition killed half-way has no checkpoint; the job commit publishes every partition and marks the run in one transaction, idempotently', async () => {
    const t = setup();
    const first = t.sink();
    await first.setup?.(t.ctx('r1'));
    const a = await first.writer({ id: 'a' }, t.task('r1', 'a'));
    await a.write(rows(1, 5));
    const ma = (await a.commit?.()) as JsonValue;
    const b = await first.writer({ id: 'b' }, t.task('r1', 'b'));
    await b.write(rows(100, 7)); // "killed" before commit: no close, no abort
    await first.close?.();

    const second = t.sink(); // a new process resumes run r1
    await second.setup?.(t.ctx('r1'));
    const state = await second.recover?.(t.ctx('r1'));
    expect(state?.partitions.map((p) => p.partition_id)).toEqual(['a']);
    const b2 = await second.writer({ id: 'b' }, t.task('r1', 'b'));
    await b2.write(rows(6, 5));
    const mb = (await b2.commit?.()) as JsonValue;
    await b2.close?.();
    await a.close?.();
    await b.close?.();
    await second.commit?.([ma, mb], t.ctx('r1'));
    await second.commit?.([ma, mb], t.ctx('r1')); // idempotent
    expect(t.read<{ id: number }>('SELECT id FROM events ORDER BY id').map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(t.read(`SELECT run_id, status, partitions, rows_written FROM ${RUNS_TABLE}`)).toEqual([
      { run_id: 'r1', status: 'committed', partitions: 2, rows_written: 10 },
    ]);
    expect(t.read(`SELECT * FROM ${CHECKPOINTS_TABLE}`)).toEqual([]);
    expect(t.read(`SELECT name FROM sqlite_master WHERE name LIKE '_weir_stage_%'`)).toEqual([]);
    expect(await second.recover?.(t.ctx('r1'))).toEqual({ jobCommitted: true, partitions: [] });
    await second.close?.();
  });

  it('abort drops every stage of the run (also partial ones) and its checkpoints, and leaves other runs alone', async () => {
    const t = setup();
    const sink = t.sink();
    await sink.setup?.(t.ctx('r1'));
    const a = await sink.writer({ id: 'a' }, t.task('r1', 'a'));
    await a.write(rows(1, 3));
    const ma = (await a.commit?.()) as JsonValue;
    const b = await sink.writer({ id: 'b' }, t.task('r1', 'b'));
    await b.write(rows(10, 3));
    const other = await sink.writer({ id: 'a' }, t.task('r2', 'a'));
    await other.write(rows(50, 2));
    await other.commit?.();
    await sink.abort?.([ma], t.ctx('r1'));
    for (const w of [a, b, other]) await w.close?.();
    const stages = t.read<{ name: string }>(`SELECT name FROM sqlite_master WHERE name LIKE '_weir_stage_%'`).map((r) => r.name);
    expect(stages).toHaveLength(1);
    expect(stages[0]?.startsWith(stagePrefix('p', 'r2'))).toBe(true);
    expect(t.read(`SELECT run_id FROM ${CHECKPOINTS_TABLE}`)).toEqual([{ run_id: 'r2' }]);
    await sink.close?.();
  });

  it('writer.abort removes its stage and its checkpoint', async () => {
    const t = setup();
    const sink = t.sink();
    await sink.setup?.(t.ctx('r1'));
    const a = await sink.writer({ id: 'a' }, t.task('r1', 'a'));
    await a.write(rows(1, 3));
    await a.commit?.();
    await a.abort?.();
    await a.abort?.();
    await a.close?.();
    expect(await sink.recover?.(t.ctx('r1'))).toEqual({ jobCommitted: false, partitions: [] });
    expect(t.read(`SELECT name FROM sqlite_master WHERE name LIKE '_weir_stage_%'`)).toEqual([]);
    await sink.close?.();
  });

  it("the job commit moves stages into an existing table by column name, and the table's constraints still hold", async () => {
    const t = setup();
    const load = async (ddl: string | null, runId: string, from = 1) => {
      const db = new Database(join(t.dir, 'out.db'));
      db.exec('DROP TABLE IF EXISTS events');
      if (ddl) db.exec(ddl);
      db.close();
      const sink = t.sink();
      await sink.setup?.(t.ctx(runId));
      const messages: JsonValue[] = [];
      for (const [i, p] of ['a', 'b'].entries()) {
        const w = await sink.writer({ id: p }, t.task(runId, p));
        await w.write(rows(from + i * 50, 50));
        messages.push((await w.commit?.()) as JsonValue);
        await w.close?.();
      }
      try {
        await sink.commit?.(messages, t.ctx(runId));
      } finally {
        await sink.close?.();
      }
      return t.read<Record<string, unknown>>('SELECT * FROM events ORDER BY rowid');
    };
    const expected = rows(1, 100);
    // a table the run creates: the first stage renamed, the second moved after it
    expect(await load(null, 'fresh')).toEqual(expected);
    expect(t.read("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_weir\\_%' ESCAPE '\\'")).toEqual([
      { name: 'events', sql: 'CREATE TABLE "events" ("id" INTEGER, "v" TEXT)' },
    ]);
    expect(t.read("SELECT name FROM sqlite_master WHERE name LIKE '\\_weir\\_stage%' ESCAPE '\\'")).toEqual([]);
    // the target's own columns in the stage's order (the whole-record copy) and in another order with one more
    expect(await load('CREATE TABLE events (id INTEGER, v TEXT)', 'same')).toEqual(expected);
    expect(await load("CREATE TABLE events (v TEXT, extra TEXT DEFAULT 'x', id INTEGER)", 'other')).toEqual(
      expected.map((r) => ({ v: r.v, extra: 'x', id: r.id })),
    );
    // constraints the stage lacks: SQLite copies row by row and enforces them; nothing is published
    await expect(load('CREATE TABLE events (id INTEGER CHECK (id < 60), v TEXT)', 'check')).rejects.toThrow(/CHECK constraint failed/);
    expect(t.read('SELECT count(*) AS n FROM events')).toEqual([{ n: 0 }]);
    await expect(load('CREATE TABLE events (id INTEGER NOT NULL, v TEXT NOT NULL)', 'notnull')).resolves.toHaveLength(100);
    const db = new Database(join(t.dir, 'out.db'));
    db.exec("DROP TABLE events; CREATE TABLE events (id INTEGER UNIQUE, v TEXT); INSERT INTO events VALUES (70, 'old')");
    db.close();
    const sink = t.sink();
    await sink.setup?.(t.ctx('unique'));
    const w = await sink.writer({ id: 'a' }, t.task('unique', 'a'));
    await w.write(rows(1, 100));
    const message = (await w.commit?.()) as JsonValue;
    await w.close?.();
    await expect((async () => sink.commit?.([message], t.ctx('unique')))()).rejects.toThrow(/UNIQUE constraint failed/);
    await sink.close?.();
    expect(t.read('SELECT * FROM events')).toEqual([{ id: 70, v: 'old' }]);
  });

  it('an empty partition without a schema commits nothing and does not break the job commit', async () => {
    const t = setup();
    const sink = t.sink();
    const ctx = { ...t.ctx('r1'), schema: undefined };
    await sink.setup?.(ctx);
    const w = await sink.writer({ id: 'empty' }, taskContext({ runId: 'r1', pipeline: 'p', partitionId: 'empty', baseDir: ctx.baseDir }));
    const m = (await w.commit?.()) as JsonValue;
    await w.close?.();
    expect(m).toMatchObject({ stage: null, rows: 0 });
    const w2 = await sink.writer({ id: 'full' }, taskContext({ runId: 'r1', pipeline: 'p', partitionId: 'full', baseDir: ctx.baseDir }));
    await w2.write(rows(1, 2));
    const m2 = (await w2.commit?.()) as JsonValue;
    await w2.close?.();
    await sink.commit?.([m, m2], ctx);
    expect(t.read('SELECT count(*) AS n FROM events')).toEqual([{ n: 2 }]);
    await sink.close?.();
  });
});
