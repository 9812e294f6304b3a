/**
 * The redis stream source survives SIGKILL: entries are added to a Redis stream while
 * `weir run` (redis stream → PostgreSQL, exactly-once, in epochs) is killed at random
 * moments and started again. After the last run ends on `stream.stop_when_idle`, every
 * entry is in the table exactly once and none is left pending; and a watcher that keeps
 * comparing the group's pending list with the table never saw an entry acknowledged
 * before it was committed. Needs `npm run build`.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareEntryIds } from '../../src/connectors/redis/source.js';
import { runKilledThenToEnd, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';

const up = (await requireService('postgres')) && (await requireService('redis'));
const ENTRIES = 4000;
const KILLS = 4;
const suffix = randomBytes(4).toString('hex');
const table = `redis_kill_${suffix}`;
const pipeline = `redis-kill-${suffix}`;
const stream = `weirtest:kill:${suffix}`;

let db: pg.Client;
let redis: Redis;

beforeAll(async () => {
  if (!up) return;
  db = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
  await db.connect();
  redis = new Redis({ host: '127.0.0.1', lazyConnect: true });
  await redis.connect();
  await redis.call('XGROUP', 'CREATE', stream, 'weir', '0', 'MKSTREAM'); // as weir would: the watcher reads it from the start
});

afterAll(async () => {
  if (!up) return;
  await redis.unlink(stream);
  redis.disconnect();
  await db.query(`DROP TABLE IF EXISTS "${table}"`);
  await db.query('DELETE FROM _weir_runs WHERE pipeline = $1', [pipeline]).catch(() => {});
  await db.query('DELETE FROM _weir_checkpoints WHERE pipeline = $1', [pipeline]).catch(() => {});
  await db.end();
});

/**
 * Entries delivered to the group, no longer pending, and not in the table: acknowledged
 * before their commit. The pending list is read first: an entry acknowledged by then must
 * have been committed earlier, so the table read after it holds it.
 */
async function ackedBeforeCommit(): Promise<string[]> {
  const groups = (await redis.call('XINFO', 'GROUPS', stream)) as unknown[][];
  const g = groups[0] ?? [];
  const delivered = String(g[g.indexOf('last-delivered-id') + 1]);
  const pending = new Set(((await redis.call('XPENDING', stream, 'weir', '-', '+', 100_000)) as [string][]).map(([id]) => id));
  const exists = await db.query('SELECT to_regclass($1) IS NOT NULL AS ok', [table]);
  const stored = new Set<string>(
    exists.rows[0]?.ok ? (await db.query(`SELECT "_id" FROM "${table}"`)).rows.map((r) => r._id as string) : [],
  );
  const entries = await redis.xrange(stream, '-', delivered);
  return entries.map(([id]) => id).filter((id) => compareEntryIds(id, delivered) <= 0 && !pending.has(id) && !stored.has(id));
}

describe.skipIf(!up)('the redis stream source in epochs', () => {
  it(`survives ${KILLS} SIGKILLs at random moments: every entry once in PostgreSQL, none acknowledged before it was committed`, async () => {
    const dir = tempDir('weir-redis-kill-');
    const file = join(dir, 'pipeline.yaml');
    writeFileSync(
      file,
      `pipeline: ${pipeline}
source: { type: redis, mode: stream, stream: "${stream}", block: 100ms, fetch_size: 100 }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${table} }
delivery: exactly-once
stream: { epoch_rows: 300, epoch_interval: 200ms, stop_when_idle: 1500ms }
`,
    );
    let added = 0;
    const producer = setInterval(() => {
      const p = redis.pipeline();
      for (let i = 0; i < 25 && added < ENTRIES; i++) p.xadd(stream, '*', 'seq', String(++added));
      void p.exec();
    }, 20);
    const violations: string[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        violations.push(...(await ackedBeforeCommit()));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      const last = await runKilledThenToEnd(file, dir, KILLS, 600, 1200, (r) => expect(r.signal, r.stderr).toBe('SIGKILL'));
      expect(last.code, last.stderr).toBe(0);
    } finally {
      clearInterval(producer);
      watching = false;
      await watcher;
    }
    expect(added).toBe(ENTRIES);
    const runs = await db.query('SELECT count(*)::int AS n FROM _weir_runs WHERE pipeline = $1', [pipeline]);
    expect(runs.rows[0].n, 'the killed runs were resumed, not restarted').toBe(1);
    const got = await db.query(
      `SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d, min(seq::int) AS lo, max(seq::int) AS hi FROM "${table}"`,
    );
    expect(got.rows[0]).toEqual({ n: ENTRIES, d: ENTRIES, lo: 1, hi: ENTRIES });
    expect(violations).toEqual([]);
    expect(((await redis.call('XPENDING', stream, 'weir')) as [number])[0]).toBe(0);
  });
});
