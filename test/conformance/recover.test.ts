/**
 * `Sink.recover()` of every exactly-once SQL sink, after a crash at each step of a run
 * (README: "nothing lost, nothing duplicated where exactly-once is promised — also when
 * the process is killed at any moment and run again"). One test body, three sinks:
 *
 * - a run of three partitions (mode append, and replace) crashes before the commit of partition 1, after it, before
 *   the job commit, or after it — the sink and its writers dropped without close, or the
 *   process running them killed with SIGKILL (`crash-child.mjs`, the built code);
 * - a fresh sink's `recover()` must report exactly what the target holds: the partitions
 *   committed, with the commit messages they returned, or that the job commit happened;
 * - the run resumed as the runtime resumes it (the partitions not reported, then the job
 *   commit with every message) ends with every row exactly once.
 *
 * And a target whose bookkeeping tables have the shapes weir created before issue 11
 * (the DDL below is copied from each sink as it was, commit 69b99eb) still resumes.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinConnectors } from '../../src/connectors/index.js';
import { stageTableName } from '../../src/connectors/sqlite/sink.js';
import type { AnyConnector, CommitContext, Sink, Writer } from '../../src/sdk/connector.js';
import { connectorOptions, silentLog, taskContext } from '../../src/sdk/testing.js';
import type { JsonValue, Row } from '../../src/sdk/types.js';
import { ROOT, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';
import { CONFORMANCE_SCHEMA, conformanceRows } from './harness.js';
import { oldMysqlBookkeeping } from './old-bookkeeping.js';

const up = { postgres: await requireService('postgres'), mysql: await requireService('mysql') };
const built = existsSync(join(ROOT, 'dist', 'connectors', 'index.js'));
const tag = `recover_${process.pid}_${Date.now().toString(36)}`;
const PARTITIONS = ['0', '1', '2'];
const ROWS = 20;
const rowsOf = (p: string) => conformanceRows(Number(p), ROWS);
const allIds = PARTITIONS.flatMap((p) => rowsOf(p).map((r) => Number(r.id))).sort((a, b) => a - b);

let pgAdmin: pg.Client;
let myAdmin: mysql.Connection;
const dir = tempDir('weir-recover-');
const connector = (name: string) => builtinConnectors.find((c) => c.name === name) as AnyConnector;

type OldWriter = (pipeline: string, runId: string, doneRunId: string) => Promise<JsonValue>;

/** One sink in the shared test body. */
interface RecoverTarget {
  connector: AnyConnector;
  skip: boolean;
  /** Sink options of a fresh target named `id`. */
  options(id: string): Record<string, unknown>;
  /** The ids of the rows visible in the sink's table, sorted. */
  ids(options: Record<string, unknown>): Promise<number[]>;
  /**
   * Creates the bookkeeping tables as weir created them before issue 11 (and the sink's
   * table). `writeOld` writes as that weir did: run `runId` with partition 0 committed
   * (its rows where that weir put them) and run `doneRunId` job-committed; it returns
   * partition 0's commit message.
   */
  legacy(id: string): Promise<{ options: Record<string, unknown>; writeOld: OldWriter }>;
}

const pgIds = async (schema: string, table: string) =>
  (await pgAdmin.query(`SELECT id FROM "${schema}"."${table}" ORDER BY id`)).rows.map((r) => Number(r.id));
const myIds = async (database: string, table: string) =>
  ((await myAdmin.query(`SELECT id FROM \`${database}\`.\`${table}\` ORDER BY id`))[0] as mysql.RowDataPacket[]).map((r) => Number(r.id));

const targets: RecoverTarget[] = [
  {
    connector: connector('sqlite'),
    skip: false,
    options: (id) => ({ path: `${id}.db`, table: 'events' }),
    ids: async (options) => {
      const db = new Database(join(dir, String(options.path)), { readonly: true });
      try {
        return (db.prepare(`SELECT id FROM "${String(options.table)}" ORDER BY id`).all() as { id: number }[]).map((r) => r.id);
      } finally {
        db.close();
      }
    },
    legacy: async (id) => {
      const file = join(dir, `${id}.db`);
      const db = new Database(file);
      // sqlite/sink.ts at 69b99eb, createMetaTables
      db.exec(`
        CREATE TABLE IF NOT EXISTS "_weir_checkpoints" (
          pipeline TEXT NOT NULL,
          run_id TEXT NOT NULL,
          partition_id TEXT NOT NULL,
          target TEXT NOT NULL,
          stage TEXT,
          rows_written INTEGER NOT NULL,
          message TEXT NOT NULL,
          committed_at TEXT NOT NULL,
          PRIMARY KEY (pipeline, run_id, partition_id)
        );
        CREATE TABLE IF NOT EXISTS "_weir_runs" (
          pipeline TEXT NOT NULL,
          run_id TEXT NOT NULL,
          target TEXT NOT NULL,
          status TEXT NOT NULL,
          partitions INTEGER NOT NULL,
          rows_written INTEGER NOT NULL,
          committed_at TEXT NOT NULL,
          PRIMARY KEY (pipeline, run_id)
        );
      `);
      db.close();
      const writeOld: OldWriter = async (pipeline, runId, doneRunId) => {
        const db = new Database(file);
        const stage = stageTableName(pipeline, runId, '0');
        db.exec(`CREATE TABLE "${stage}" ("id" INTEGER, "name" TEXT, "amount" REAL, "active" INTEGER)`);
        const insert = db.prepare(`INSERT INTO "${stage}" VALUES (?, ?, ?, ?)`);
        for (const r of rowsOf('0')) insert.run(r.id, r.name, r.amount, r.active ? 1 : 0);
        const message = { partition_id: '0', stage, rows: ROWS };
        const now = new Date().toISOString();
        db.prepare(
          'INSERT OR REPLACE INTO "_weir_checkpoints" (pipeline, run_id, partition_id, target, stage, rows_written, message, committed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        ).run(pipeline, runId, '0', 'events', stage, ROWS, JSON.stringify(message), now);
        db.prepare(
          `INSERT OR REPLACE INTO "_weir_runs" (pipeline, run_id, target, status, partitions, rows_written, committed_at) VALUES (?, ?, ?, 'committed', ?, ?, ?)`,
        ).run(pipeline, doneRunId, 'events', 3, 60, now);
        db.close();
        return message;
      };
      return { options: { path: `${id}.db`, table: 'events' }, writeOld };
    },
  },
  {
    connector: connector('postgres'),
    skip: !up.postgres,
    options: (id) => ({ host: '127.0.0.1', database: 'test', user: 'postgres', table: id }),
    ids: (options) => pgIds(String(options.schema ?? 'public'), String(options.table)),
    legacy: async (id) => {
      // a schema of its own: the bookkeeping tables in it have exactly the old shapes
      const schema = id;
      const t = (name: string) => `"${schema}"."${name}"`;
      await pgAdmin.query(`CREATE SCHEMA "${schema}"`);
      // postgres/sink.ts at 69b99eb, ensureBookkeeping
      await pgAdmin.query(
        `CREATE TABLE IF NOT EXISTS ${t('_weir_checkpoints')} (
         pipeline text NOT NULL, run_id text NOT NULL, partition_id text NOT NULL,
         target text NOT NULL, message jsonb NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (pipeline, run_id, partition_id))`,
      );
      await pgAdmin.query(
        `CREATE TABLE IF NOT EXISTS ${t('_weir_runs')} (
         pipeline text NOT NULL, run_id text NOT NULL, target text NOT NULL,
         partitions integer NOT NULL, rows bigint NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (pipeline, run_id))`,
      );
      await pgAdmin.query(
        `CREATE TABLE IF NOT EXISTS ${t('_weir_created_tables')} (
         pipeline text NOT NULL, run_id text NOT NULL, target text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (pipeline, run_id, target))`,
      );
      await pgAdmin.query(`CREATE TABLE ${t('events')} (id bigint, name text, amount double precision, active boolean)`);
      const writeOld: OldWriter = async (pipeline, runId, doneRunId) => {
        for (const r of rowsOf('0'))
          await pgAdmin.query(`INSERT INTO ${t('events')} VALUES ($1, $2, $3, $4)`, [r.id, r.name, r.amount, r.active]);
        const where = `${schema}.events`;
        const message = { partition_id: '0', rows: ROWS, columns: ['id', 'name', 'amount', 'active'], batches: 2 };
        await pgAdmin.query(
          `INSERT INTO ${t('_weir_checkpoints')} (pipeline, run_id, partition_id, target, message) VALUES ($1, $2, $3, $4, $5)`,
          [pipeline, runId, '0', where, JSON.stringify(message)],
        );
        await pgAdmin.query(`INSERT INTO ${t('_weir_runs')} (pipeline, run_id, target, partitions, rows) VALUES ($1, $2, $3, $4, $5)`, [
          pipeline,
          doneRunId,
          where,
          3,
          60,
        ]);
        return message;
      };
      return { options: { host: '127.0.0.1', database: 'test', user: 'postgres', schema, table: 'events' }, writeOld };
    },
  },
  {
    connector: connector('mysql'),
    skip: !up.mysql,
    options: (id) => ({ host: '127.0.0.1', user: 'root', database: 'test', table: id }),
    ids: (options) => myIds(String(options.database), String(options.table)),
    legacy: async (id) => {
      // a database of its own: the bookkeeping tables in it have exactly the old shapes
      const database = id;
      const t = (name: string) => `\`${database}\`.\`${name}\``;
      await myAdmin.query(`CREATE DATABASE \`${database}\``);
      const old = oldMysqlBookkeeping(t);
      for (const sql of Object.values(old)) await myAdmin.query(sql);
      await myAdmin.query(`CREATE TABLE ${t('events')} (id BIGINT, name TEXT, amount DOUBLE, active BOOLEAN) ENGINE=InnoDB`);
      const writeOld: OldWriter = async (pipeline, runId, doneRunId) => {
        for (const r of rowsOf('0'))
          await myAdmin.query(`INSERT INTO ${t('events')} VALUES (?, ?, ?, ?)`, [r.id, r.name, r.amount, r.active]);
        const message = { partition_id: '0', rows: ROWS, target: 'events' };
        await myAdmin.query(
          `INSERT INTO ${t('_weir_checkpoints')} (pipeline, run_id, partition_id, target, rows_written, message, committed_at) VALUES (?, ?, ?, ?, ?, ?, NOW(6))`,
          [pipeline, runId, '0', 'events', ROWS, JSON.stringify(message)],
        );
        for (const [run, status] of [
          [runId, 'aborted'],
          [doneRunId, 'committed'],
        ])
          await myAdmin.query(
            `INSERT INTO ${t('_weir_runs')} (pipeline, run_id, target, mode, stage, status, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, NOW(6), NOW(6))`,
            [pipeline, run, 'events', 'append', null, status],
          );
        return message;
      };
      return { options: { host: '127.0.0.1', user: 'root', database, table: 'events' }, writeOld };
    },
  },
];

// ---------------------------------------------------------------------------
// Driving a sink in this process, or in a child process that can be killed

/** The steps of a run, as a sink sees them. */
interface Driver {
  setup(): Promise<void>;
  write(partition: string, rows: Row[]): Promise<void>;
  commit(partition: string): Promise<JsonValue>;
  job(messages: JsonValue[]): Promise<void>;
  /** Ends the run at once: nothing is closed, rolled back or cleaned up. */
  crash(): Promise<void>;
  /**
   * What the database does once a crashed process is gone: its connections close and
   * their open transactions roll back (at once after SIGKILL; for a dropped sink, here).
   * Until then an open transaction of the dead run holds its locks, and a resumed
   * `replace` waits for them, as it would for a zombie process.
   */
  reap(): Promise<void>;
}

const contextFor = (pipeline: string, runId: string): CommitContext => ({
  runId,
  pipeline,
  log: silentLog,
  signal: new AbortController().signal,
  baseDir: dir,
  schema: CONFORMANCE_SCHEMA,
});

const sinkOf = (connector: AnyConnector, options: Record<string, unknown>): Sink =>
  (connector.sink as NonNullable<AnyConnector['sink']>)(connectorOptions(connector, options, 'sink'));

/** Sinks and writers a test dropped without closing, as a crash would; released by `reap()`, else after the tests. */
const dropped: { close?(): Promise<void> | void }[] = [];
const release = async (items: { close?(): Promise<void> | void }[]) => {
  for (const item of items) await Promise.resolve(item.close?.()).catch(() => {});
};

function inProcess(connector: AnyConnector, options: Record<string, unknown>, pipeline: string, runId: string): Driver {
  const sink = sinkOf(connector, options);
  const ctx = contextFor(pipeline, runId);
  const writers = new Map<string, Writer>();
  const writer = async (partition: string) => {
    let w = writers.get(partition);
    if (!w) {
      w = await sink.writer(
        { id: partition },
        taskContext({ runId, pipeline, baseDir: dir, schema: CONFORMANCE_SCHEMA, partitionId: partition }),
      );
      writers.set(partition, w);
    }
    return w;
  };
  return {
    setup: async () => sink.setup?.(ctx),
    write: async (partition, rows) => (await writer(partition)).write(rows),
    commit: async (partition) => ((await (await writer(partition)).commit?.()) ?? null) as JsonValue,
    job: async (messages) => sink.commit?.(messages, ctx),
    crash: async () => {
      dropped.push(...writers.values(), sink);
    },
    reap: async () => release(dropped.splice(0, dropped.length)),
  };
}

function inChild(connector: AnyConnector, options: Record<string, unknown>, pipeline: string, runId: string): Driver {
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    [
      join(import.meta.dirname, 'crash-child.mjs'),
      JSON.stringify({ type: connector.name, options, pipeline, runId, baseDir: dir, schema: CONFORMANCE_SCHEMA }),
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const answers = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const send = async (command: Record<string, unknown>): Promise<JsonValue> => {
    child.stdin.write(`${JSON.stringify(command)}\n`);
    const next = await answers.next();
    if (next.done) throw new Error(`the child process ended: ${stderr}`);
    const answer = JSON.parse(next.value) as { ok: boolean; result?: JsonValue; error?: string };
    if (!answer.ok) throw new Error(`${String(command.op)} failed in the child: ${answer.error}`);
    return answer.result ?? null;
  };
  return {
    setup: async () => void (await send({ op: 'setup' })),
    write: async (partition, rows) => void (await send({ op: 'write', partition, rows })),
    commit: (partition) => send({ op: 'commit', partition }),
    job: async (messages) => void (await send({ op: 'job', messages })),
    crash: async () => {
      child.kill('SIGKILL');
      await exited;
    },
    reap: async () => {},
  };
}

const STEPS = ['before a partition commit', 'after a partition commit', 'before the job commit', 'after the job commit'] as const;
type CrashStep = (typeof STEPS)[number];

/** Runs partitions 0, 1, 2 and the job commit, up to the crash; returns the commit messages returned so far. */
async function runUntil(driver: Driver, step: CrashStep): Promise<JsonValue[]> {
  const messages: JsonValue[] = [];
  await driver.setup();
  for (const p of PARTITIONS) {
    const rows = rowsOf(p);
    await driver.write(p, rows.slice(0, ROWS / 2));
    await driver.write(p, rows.slice(ROWS / 2));
    if (p === '1' && step === 'before a partition commit') return messages;
    messages.push(await driver.commit(p));
    if (p === '1' && step === 'after a partition commit') return messages;
  }
  if (step === 'before the job commit') return messages;
  await driver.job(messages);
  return messages;
}

/** Resumes the run as the runtime does: the partitions recover() did not report, then the job commit with every message. */
async function resume(sink: Sink, ctx: CommitContext, recovered: { partition_id: string; message: JsonValue }[]): Promise<void> {
  const messages = recovered.map((p) => p.message);
  const done = new Set(recovered.map((p) => p.partition_id));
  for (const p of PARTITIONS.filter((id) => !done.has(id))) {
    const writer = await sink.writer({ id: p }, taskContext({ ...ctx, schema: CONFORMANCE_SCHEMA, partitionId: p }));
    try {
      await writer.write(rowsOf(p));
      messages.push(((await writer.commit?.()) ?? null) as JsonValue);
    } finally {
      await writer.close?.();
    }
  }
  await sink.commit?.(messages, ctx);
}

const byPartition = (a: { partition_id: string }, b: { partition_id: string }) => a.partition_id.localeCompare(b.partition_id);

describe('recover() after a crash, in every exactly-once SQL sink', () => {
  beforeAll(async () => {
    if (up.postgres) {
      pgAdmin = new pg.Client({ host: '127.0.0.1', database: 'test', user: 'postgres' });
      await pgAdmin.connect();
    }
    if (up.mysql) myAdmin = await mysql.createConnection({ host: '127.0.0.1', user: 'root', database: 'test' });
  });
  afterAll(async () => {
    await release(dropped);
    if (up.postgres) {
      const tables = await pgAdmin.query<{ t: string }>(
        "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE $1",
        [`${tag}%`],
      );
      for (const { t } of tables.rows) await pgAdmin.query(`DROP TABLE IF EXISTS "${t}"`);
      const schemas = await pgAdmin.query<{ s: string }>('SELECT nspname AS s FROM pg_namespace WHERE nspname LIKE $1', [`${tag}%`]);
      for (const { s } of schemas.rows) await pgAdmin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
      await pgAdmin.query('DELETE FROM _weir_checkpoints WHERE pipeline LIKE $1', [`${tag}%`]).catch(() => {});
      await pgAdmin.query('DELETE FROM _weir_runs WHERE pipeline LIKE $1', [`${tag}%`]).catch(() => {});
      await pgAdmin.end();
    }
    if (up.mysql) {
      const [tables] = await myAdmin.query<mysql.RowDataPacket[]>(
        'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE ?',
        [`${tag}%`],
      );
      for (const { t } of tables) await myAdmin.query(`DROP TABLE IF EXISTS \`${t}\``);
      const [dbs] = await myAdmin.query<mysql.RowDataPacket[]>(
        'SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?',
        [`${tag}%`],
      );
      for (const { s } of dbs) await myAdmin.query(`DROP DATABASE IF EXISTS \`${s}\``);
      await myAdmin.query('DELETE FROM _weir_checkpoints WHERE pipeline LIKE ?', [`${tag}%`]).catch(() => {});
      await myAdmin.query('DELETE FROM _weir_runs WHERE pipeline LIKE ?', [`${tag}%`]).catch(() => {});
      await myAdmin.end();
    }
  });

  let n = 0;
  for (const target of targets)
    for (const mode of ['append', 'replace'] as const)
      for (const crash of ['dropped', 'SIGKILL'] as const)
        for (const step of STEPS)
          it.skipIf(target.skip || (crash === 'SIGKILL' && !built))(
            `${target.connector.name} (${mode}): ${crash === 'dropped' ? 'sink dropped without close' : 'process killed (SIGKILL)'} ${step}`,
            async () => {
              const id = `${tag}_${++n}`;
              const options = { ...target.options(id), mode };
              const pipeline = `${tag}-${n}`;
              const runId = `run-${n}`;
              const driver = (crash === 'dropped' ? inProcess : inChild)(target.connector, options, pipeline, runId);
              const messages = await runUntil(driver, step);
              await driver.crash();

              const sink = sinkOf(target.connector, options);
              const ctx = contextFor(pipeline, runId);
              try {
                await sink.setup?.(ctx); // the runtime sets the sink up before it asks what it holds
                const state = await sink.recover?.(ctx);
                if (step === 'after the job commit') expect(state).toEqual({ jobCommitted: true, partitions: [] });
                else {
                  // exactly the partitions that committed, with the messages their commits returned
                  const held = messages.map((m) => ({ partition_id: String((m as { partition_id: string }).partition_id), message: m }));
                  expect(state?.jobCommitted).toBe(false);
                  expect([...(state?.partitions ?? [])].sort(byPartition)).toEqual(held.sort(byPartition));
                  await driver.reap();
                  await resume(sink, ctx, state?.partitions ?? []);
                }
                expect(await target.ids(options)).toEqual(allIds);
                // resuming once more changes nothing: the run is committed
                expect(await sink.recover?.(ctx)).toEqual({ jobCommitted: true, partitions: [] });
              } finally {
                await sink.close?.();
              }
            },
            30_000,
          );

  for (const target of targets)
    it.skipIf(target.skip)(
      `${target.connector.name}: a target whose bookkeeping tables have the shapes before issue 11 resumes from their checkpoints`,
      async () => {
        const id = `${tag}_legacy_${++n}`;
        const pipeline = `${tag}-${n}`;
        const { options, writeOld } = await target.legacy(id);
        const message = await writeOld(pipeline, 'old-run', 'old-done');
        const sink = sinkOf(target.connector, options);
        try {
          const ctx = contextFor(pipeline, 'old-run');
          await sink.setup?.(ctx); // upgrades the tables
          expect(await sink.recover?.(contextFor(pipeline, 'old-done'))).toEqual({ jobCommitted: true, partitions: [] });
          const state = await sink.recover?.(ctx);
          expect(state).toEqual({ jobCommitted: false, partitions: [{ partition_id: '0', message }] });
          await resume(sink, ctx, state?.partitions ?? []);
          expect(await target.ids(options)).toEqual(allIds);
          expect(await sink.recover?.(ctx)).toEqual({ jobCommitted: true, partitions: [] });
          // the upgrade only added columns: an older weir still writing to this target keeps working
          const older = await writeOld(`${pipeline}-older`, 'older-run', 'older-done');
          expect(await sink.recover?.(contextFor(`${pipeline}-older`, 'older-done'))).toEqual({ jobCommitted: true, partitions: [] });
          expect(await sink.recover?.(contextFor(`${pipeline}-older`, 'older-run'))).toEqual({
            jobCommitted: false,
            partitions: [{ partition_id: '0', message: older }],
          });
        } finally {
          await sink.close?.();
        }
      },
      30_000,
    );
});
