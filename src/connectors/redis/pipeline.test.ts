/** The redis connector inside whole runs (in process): generator → redis hashes, redis stream → postgres in epochs. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { tempDir } from '../../../test/helpers/cli.js';
import { requireService } from '../../../test/helpers/services.js';
import { parsePipelineText } from '../../config/load.js';
import { validatePipeline } from '../../config/pipeline.js';
import { Registry } from '../../config/registry.js';
import type { AnyConnector } from '../../sdk/connector.js';
import { Redactor } from '../../secrets/redactor.js';
import { builtinConnectors } from '../index.js';
import redis from './index.js';

const up = await requireService('redis');
const pgUp = await requireService('postgres');
const prefix = `weirtest:${randomBytes(4).toString('hex')}`;
const extra = [redis] as unknown as AnyConnector[];
let admin: Redis;

async function keysOf(pattern: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    out.push(...keys);
  } while (cursor !== '0');
  return out;
}

describe.skipIf(!up)('redis in a run', () => {
  beforeAll(async () => {
    admin = new Redis({ host: '127.0.0.1', lazyConnect: true });
    await admin.connect();
  });
  afterAll(async () => {
    const keys = await keysOf(`${prefix}*`);
    for (let i = 0; i < keys.length; i += 1000) await admin.unlink(...keys.slice(i, i + 1000));
    admin.disconnect();
  });

  it('generator → redis hashes: every row one hash, the summary counts them', async () => {
    const dir = tempDir('weir-redis-run-');
    const { summary } = await runYaml(
      `
pipeline: redis-hashes
source: { type: generator, rows: 5000, partitions: 3 }
sink: { type: redis, mode: hash, key: "${prefix}:u:{id}", batch_size: 700, pipeline_depth: 100 }
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
      extra,
      dir,
    );
    expect(summary.status).toBe('succeeded');
    expect(summary.totals.rows_written).toBe(5000);
    expect((await keysOf(`${prefix}:u:*`)).length).toBe(5000);
    expect(await admin.hget(`${prefix}:u:42`, 'email')).toMatch(/\.42@example\.com$/);
  });

  // a stream is unbounded: its sink must make each epoch's rows visible at the epoch commit (postgres append)
  it.skipIf(!pgUp)(
    'redis stream → postgres: every entry once, committed in epochs, acknowledged, the run ends on stop_when_idle',
    async () => {
      const stream = `${prefix}:events`;
      const dir = tempDir('weir-redis-run-');
      await runYaml(
        `
pipeline: redis-stream-fill
source: { type: generator, rows: 3000 }
sink: { type: redis, mode: stream, stream: "${stream}" }
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
        extra,
        dir,
      );
      expect(await admin.xlen(stream)).toBe(3000);
      const table = `redis_drain_${randomBytes(4).toString('hex')}`;
      const db = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
      await db.connect();
      try {
        const { summary, events } = await runYaml(
          `
pipeline: redis-stream-drain
source: { type: redis, mode: stream, stream: "${stream}", group: drain, partitions: 2, block: 100ms, fetch_size: 200 }
sink: { type: postgres, host: 127.0.0.1, user: postgres, database: test, table: ${table} }
delivery: exactly-once
stream: { epoch_rows: 500, stop_when_idle: 500ms }
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
          extra,
          dir,
        );
        expect(summary.status).toBe('succeeded');
        expect(summary.totals.rows_written).toBe(3000);
        // epochs are cut between reads of 200 entries once they hold 500 rows: 3000 rows are at least 4 epochs
        expect(events.filter((e) => e.type === 'epoch_commit').length).toBeGreaterThanOrEqual(4);
        const got = await db.query(
          `SELECT count(*)::int AS n, count(DISTINCT id)::int AS d, count(DISTINCT "_id")::int AS e FROM "${table}"`,
        );
        expect(got.rows[0]).toEqual({ n: 3000, d: 3000, e: 3000 });
        const one = await db.query(`SELECT "_id", email FROM "${table}" LIMIT 1`);
        expect(one.rows[0]).toMatchObject({ _id: expect.stringMatching(/^\d+-\d+$/), email: expect.any(String) });
        expect(((await admin.call('XPENDING', stream, 'drain')) as unknown[])[0]).toBe(0);
      } finally {
        await db.query(`DROP TABLE IF EXISTS "${table}"`);
        await db.query('DELETE FROM _weir_runs WHERE pipeline = $1', ['redis-stream-drain']).catch(() => {});
        await db.query('DELETE FROM _weir_checkpoints WHERE pipeline = $1', ['redis-stream-drain']).catch(() => {});
        await db.end();
      }
    },
  );
});

describe('redis stream source, sinks', () => {
  it('a sink that publishes only at the end of the run is refused, with the reason, before anything connects', async () => {
    const dir = tempDir('weir-redis-run-');
    const { summary } = await runYaml(
      `
pipeline: redis-stream-to-jsonl
source: { type: redis, mode: stream, stream: s, port: 1 }
sink: { type: jsonl, path: ${join(dir, 'out.jsonl')} }
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
      extra,
      dir,
    );
    expect(summary.status).toBe('failed');
    // port 1 would refuse a connection: the message says the sink cannot stream, not ECONNREFUSED
    expect(summary.error?.error_message).toMatch(/the jsonl sink cannot take an unbounded source \(redis\)/);
  });

  it('the README example is a valid pipeline', () => {
    const readme = readFileSync(join(import.meta.dirname, '../../../README.md'), 'utf8');
    const at = readme.indexOf('**A Redis stream is read until stopped.**');
    const block = /```yaml\n([\s\S]*?)```/.exec(readme.slice(at))?.[1];
    expect(at).toBeGreaterThan(0);
    expect(block).toContain('mode: stream');
    const valid = validatePipeline(
      parsePipelineText(`pipeline: readme-stream\n${block}`, 'README.md'),
      new Registry(builtinConnectors),
      new Redactor(),
      '.',
    );
    expect(valid.config.source.type).toBe('redis');
    expect(valid.config.stream.stop_when_idle).toBe(30_000);
  });
});
