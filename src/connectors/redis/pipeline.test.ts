/** The redis connector inside whole runs (in process): generator → redis hashes, redis stream → jsonl. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { tempDir } from '../../../test/helpers/cli.js';
import { requireService } from '../../../test/helpers/services.js';
import type { AnyConnector } from '../../sdk/connector.js';
import jsonl from '../jsonl/index.js';
import redis from './index.js';

const up = await requireService('redis');
const prefix = `weirtest:${randomBytes(4).toString('hex')}`;
const extra = [redis, jsonl] as unknown as AnyConnector[];
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

  it('redis stream → jsonl: every entry read once through the consumer group, then acknowledged', async () => {
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
    const out = join(dir, 'events.jsonl');
    const { summary } = await runYaml(
      `
pipeline: redis-stream-drain
source: { type: redis, mode: stream, stream: "${stream}", group: drain, partitions: 2, block: 200ms }
sink: { type: jsonl, path: ${out} }
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
      extra,
      dir,
    );
    expect(summary.status).toBe('succeeded');
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(3000);
    expect(new Set(lines.map((l) => l.id)).size).toBe(3000);
    expect(lines[0]).toMatchObject({ _id: expect.stringMatching(/^\d+-\d+$/), id: expect.any(String), email: expect.any(String) });
    expect(((await admin.call('XPENDING', stream, 'drain')) as unknown[])[0]).toBe(0);
  });
});
