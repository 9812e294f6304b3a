/**
 * A reader that goes away is not a crash: `weir run … | head -1` stops the run as
 * SIGTERM does (drain, abort the partitions still open, exit 141), leaving no stage
 * table and nothing of an unfinished `replace` in the target; `weir schema | head -1`
 * ends quietly with exit 0. Needs `npm run build`.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { stageTableName } from '../../src/connectors/postgres/sink.js';
import { BIN, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';

const up = await requireService('postgres');
const table = `epipe_${randomBytes(4).toString('hex')}`;
const conn = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };

/** Runs `weir ARGS | head -1` in a shell; the exit status of weir, what head printed, weir's stderr. */
function throughHead(args: string, cwd: string) {
  const r = spawnSync('bash', ['-c', `node ${BIN} ${args} 2>stderr.txt | head -1; echo "rc=\${PIPESTATUS[0]}" >&2`], {
    cwd,
    encoding: 'utf8',
    timeout: 60_000,
  });
  const stderr = spawnSync('cat', [join(cwd, 'stderr.txt')], { encoding: 'utf8' }).stdout;
  return { code: Number(/rc=(\d+)/.exec(r.stderr)?.[1]), head: r.stdout, stderr };
}

afterAll(async () => {
  if (!up) return;
  const db = new pg.Client(conn);
  await db.connect();
  await db.query(`DROP TABLE IF EXISTS ${table}`);
  await db.end();
});

describe('a closed pipe on stdout', () => {
  it('weir schema | head -1 ends quietly', () => {
    const r = throughHead('schema', tempDir());
    expect(r.head.trim()).toBe('{');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });

  it.skipIf(!up)('weir run | head -1 stops the run cleanly: exit 141, no stage table, nothing of the replace', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'p.yaml'),
      `pipeline: ${table}
source: { type: generator, rows: 2000000, partitions: 5 }
sink: { type: postgres, host: 127.0.0.1, user: postgres, database: test, table: ${table}, mode: replace, batch_size: 1000 }
concurrency: 5
`,
    );
    // debug lines (one per batch) make the pipe close while partitions are open
    const r = throughHead('run p.yaml --log-level debug', dir);
    expect(r.head).toContain('"event":"run_start"');
    expect(r.code, r.stderr).toBe(141);
    expect(r.stderr).toContain('the reader of its output went away');
    expect(r.stderr).not.toMatch(/internal error|EPIPE/);
    const db = new pg.Client(conn);
    await db.connect();
    try {
      const runId = String((JSON.parse(r.head) as { run_id: string }).run_id);
      const stage = await db.query('SELECT to_regclass($1) AS t', [stageTableName(runId, table)]);
      expect(stage.rows[0].t).toBeNull();
      const target = await db.query('SELECT to_regclass($1) AS t', [table]);
      if (target.rows[0].t !== null) expect((await db.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(0); // a replace that did not finish publishes nothing
    } finally {
      await db.end();
    }
  });
});
