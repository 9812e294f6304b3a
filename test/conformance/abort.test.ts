/**
 * A failed run leaves nothing behind, in every sink (README: "1 run failed (aborted,
 * nothing half-committed)"). One test body: with `errors.tolerance: none`, a bad
 * line after 30,000 good rows fails `weir run` (exit 1), and the target is exactly
 * as it was before the run — no keys, no new table, no file — whether the target
 * was missing or already held rows. weir's own bookkeeping (`_weir_*` tables, the
 * `.weir` state directory) is not part of the target.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinConnectors } from '../../src/connectors/index.js';
import { dropKeysAndClose } from '../../src/connectors/redis/test-keys.js';
import { BIN, runCli, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';

const GOOD_ROWS = 30_000;
const built = existsSync(join(BIN, '..', '..', 'dist', 'cli', 'main.js'));
const up = {
  postgres: await requireService('postgres'),
  mysql: await requireService('mysql'),
  redis: await requireService('redis'),
};
const tag = `abort_${process.pid}_${Date.now().toString(36)}`;

/** What one sink needs for the shared test body. */
interface AbortTarget {
  name: string;
  skip?: boolean;
  /** The sink section of the pipeline, for target `id` in `dir`. */
  sink(id: string, dir: string): Record<string, unknown>;
  /** Puts some rows of weir's shape into the target, so it exists before the run. */
  seed(id: string, dir: string): Promise<void>;
  /** Everything the target holds, comparable with toEqual. */
  snapshot(id: string, dir: string): Promise<unknown>;
}

const SEED = [
  { id: -1, name: 'kept', amount: '1.5' },
  { id: -2, name: 'also kept', amount: '2.25' },
];

/** The files of `dir` (weir's state directory aside) with a hash of each. */
function files(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort())
    if (name !== '.weir' && name !== 'in.jsonl' && name !== 'pipeline.yaml')
      out[name] = createHash('sha256')
        .update(readFileSync(join(dir, name)))
        .digest('hex');
  return out;
}

const fileTarget = (name: string, ext: string): AbortTarget => ({
  name,
  sink: (id) => ({ type: name, path: `${id}.${ext}` }),
  seed: async (id, dir) => writeFileSync(join(dir, `${id}.${ext}`), 'what was there before the run\n'),
  snapshot: async (_id, dir) => files(dir),
});

let pgClient: pg.Client;
let my: mysql.Connection;
let redis: Redis;

const targets: AbortTarget[] = [
  fileTarget('csv', 'csv'),
  fileTarget('jsonl', 'jsonl'),
  fileTarget('parquet', 'parquet'),
  {
    name: 'sqlite',
    sink: (id) => ({ type: 'sqlite', path: 'target.db', table: id }),
    seed: async (id, dir) => {
      const db = new Database(join(dir, 'target.db'));
      db.exec(`CREATE TABLE "${id}" (id INTEGER, name TEXT, amount TEXT)`);
      const insert = db.prepare(`INSERT INTO "${id}" VALUES (?, ?, ?)`);
      for (const r of SEED) insert.run(r.id, r.name, r.amount);
      db.close();
    },
    snapshot: async (_id, dir) => {
      if (!existsSync(join(dir, 'target.db'))) return {};
      const db = new Database(join(dir, 'target.db'), { readonly: true });
      try {
        const tables = db
          .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_weir\\_%' ESCAPE '\\' ORDER BY name")
          .all() as {
          name: string;
        }[];
        return Object.fromEntries(tables.map((t) => [t.name, db.prepare(`SELECT * FROM "${t.name}" ORDER BY id`).all()]));
      } finally {
        db.close();
      }
    },
  },
  {
    name: 'postgres',
    skip: !up.postgres,
    sink: (id) => ({ type: 'postgres', host: '127.0.0.1', database: 'test', table: id }),
    seed: async (id) => {
      await pgClient.query(`CREATE TABLE "${id}" (id bigint, name text, amount numeric)`);
      for (const r of SEED) await pgClient.query(`INSERT INTO "${id}" VALUES ($1, $2, $3)`, [r.id, r.name, r.amount]);
    },
    snapshot: async (id) => {
      const t = await pgClient.query('SELECT to_regclass($1) IS NOT NULL AS ok', [`public."${id}"`]);
      if (!t.rows[0]?.ok) return { table: false };
      return { table: true, rows: (await pgClient.query(`SELECT * FROM "${id}" ORDER BY id`)).rows };
    },
  },
  {
    name: 'mysql',
    skip: !up.mysql,
    sink: (id) => ({ type: 'mysql', host: '127.0.0.1', database: 'test', table: id }),
    seed: async (id) => {
      await my.query(`CREATE TABLE \`${id}\` (id BIGINT, name TEXT, amount DECIMAL(10,2)) ENGINE=InnoDB`);
      for (const r of SEED) await my.query(`INSERT INTO \`${id}\` VALUES (?, ?, ?)`, [r.id, r.name, r.amount]);
    },
    snapshot: async (id) => {
      const [t] = await my.query<mysql.RowDataPacket[]>(
        'SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?',
        [id],
      );
      if (t.length === 0) return { table: false };
      const [rows] = await my.query(`SELECT * FROM \`${id}\` ORDER BY id`);
      return { table: true, rows };
    },
  },
  ...(['hash', 'json', 'stream'] as const).map(
    (mode): AbortTarget => ({
      name: `redis (${mode})`,
      skip: !up.redis,
      sink: (id) => (mode === 'stream' ? { type: 'redis', mode, stream: `${id}:events` } : { type: 'redis', mode, key: `${id}:{id}` }),
      seed: async (id) => {
        for (const r of SEED)
          if (mode === 'stream') await redis.xadd(`${id}:events`, '*', 'id', String(r.id), 'name', r.name);
          else if (mode === 'json') await redis.set(`${id}:${r.id}`, JSON.stringify(r));
          else await redis.hset(`${id}:${r.id}`, r);
      },
      snapshot: async (id) => {
        const keys = (await redis.keys(`${id}:*`)).sort();
        const weirStaged = await redis.keys('weir:stage:*');
        const values = await Promise.all(
          keys.map(async (k) => {
            const type = await redis.type(k);
            if (type === 'hash') return [k, await redis.hgetall(k)];
            if (type === 'stream') return [k, await redis.xrange(k, '-', '+')];
            return [k, await redis.get(k)];
          }),
        );
        return { values: Object.fromEntries(values), staged: weirStaged.filter((k) => k.includes(id)).length };
      },
    }),
  ),
];

/** Writes the input: GOOD_ROWS good lines, then one that is not JSON. */
function writeInput(dir: string): void {
  const lines: string[] = [];
  for (let i = 1; i <= GOOD_ROWS; i++) lines.push(JSON.stringify({ id: i, name: `row ${i}`, amount: (i / 4).toFixed(2) }));
  lines.push('{"id": 30001, "name": "broken');
  writeFileSync(join(dir, 'in.jsonl'), `${lines.join('\n')}\n`);
}

describe.skipIf(!built)('a failed run leaves every sink as it was', () => {
  beforeAll(async () => {
    if (up.postgres) {
      pgClient = new pg.Client({ host: '127.0.0.1', database: 'test', user: 'postgres' });
      await pgClient.connect();
    }
    if (up.mysql) my = await mysql.createConnection({ host: '127.0.0.1', user: 'root', database: 'test' });
    if (up.redis) redis = new Redis({ host: '127.0.0.1' });
  });
  afterAll(async () => {
    if (up.postgres) {
      const r = await pgClient.query<{ t: string }>('SELECT tablename AS t FROM pg_tables WHERE tablename LIKE $1', [`${tag}%`]);
      for (const { t } of r.rows) await pgClient.query(`DROP TABLE IF EXISTS "${t}"`);
      await pgClient.end();
    }
    if (up.mysql) {
      const [rows] = await my.query<mysql.RowDataPacket[]>(
        'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE ?',
        [`${tag}%`],
      );
      for (const { t } of rows) await my.query(`DROP TABLE IF EXISTS \`${t}\``);
      await my.end();
    }
    if (up.redis) await dropKeysAndClose(redis, tag);
  });

  let n = 0;
  for (const target of targets)
    for (const existing of [false, true])
      it.skipIf(target.skip)(
        `${target.name}, ${existing ? 'into a target that holds rows' : 'into a missing target'}`,
        async () => {
          const id = `${tag}_${++n}`;
          const dir = tempDir('weir-abort-');
          mkdirSync(dir, { recursive: true });
          writeInput(dir);
          if (existing) await target.seed(id, dir);
          const before = await target.snapshot(id, dir);
          const pipeline = {
            pipeline: `abort-${id}`,
            source: { type: 'jsonl', path: 'in.jsonl' },
            sink: target.sink(id, dir),
            errors: { tolerance: 'none' },
            batch: { rows: 1000 },
          };
          writeFileSync(join(dir, 'pipeline.yaml'), JSON.stringify(pipeline));
          const r = await runCli(['run', 'pipeline.yaml', '--log-format', 'json'], { cwd: dir });
          expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(1);
          expect(r.stdout).toContain('in.jsonl:30001: the line is not valid JSON');
          expect(await target.snapshot(id, dir)).toEqual(before);
          // the summary marks a sink that is not transactional
          const connector = builtinConnectors.find((c) => c.name === String(pipeline.sink.type));
          expect(r.stderr.includes('not transactional'), r.stderr).toBe(!connector?.transactional);
        },
        60_000,
      );

  it("weir connectors and weir docs show each sink's transactional capability", async () => {
    const list = await runCli(['connectors']);
    expect(list.code).toBe(0);
    const lines = list.stdout.split('\n');
    const column = (lines[0] as string).indexOf('transactional');
    expect(column).toBeGreaterThan(0);
    for (const c of builtinConnectors) {
      const line = lines.find((l) => l.startsWith(`${c.name} `)) as string;
      expect(line.slice(column).split(/\s+/)[0], c.name).toBe(c.sink ? (c.transactional ? 'yes' : 'no') : '-');
    }
    for (const name of ['postgres', 'redis']) {
      const docs = await runCli(['docs', name]);
      const c = builtinConnectors.find((x) => x.name === name);
      expect(docs.stdout).toContain(`Transactional: ${c?.transactional ? 'yes' : 'no'}`);
    }
  });
});
