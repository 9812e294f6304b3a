/**
 * Epochs survive SIGKILL: an unbounded source (a queue held by this test process, with
 * sequence numbers and acknowledgements) streams into PostgreSQL exactly-once, and the
 * weir process is killed at random moments, then started again. After the last run ends
 * on `stream.stop_when_idle`, every message is in the table exactly once, and every
 * acknowledged message had been committed before its acknowledgement. Needs `npm run build`.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, runKilledThenToEnd, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';
import { QueueServer } from './queue-server.js';

const up = await requireService('postgres');
const MESSAGES = 6000;
const KILLS = 5;
const suffix = randomBytes(4).toString('hex');
const table = `stream_kill_${suffix}`;
const pipeline = `stream-kill-${suffix}`;
const failTable = `stream_fail_${suffix}`;
const failPipeline = `stream-fail-${suffix}`;
const intTable = `stream_int_${suffix}`;
const intPipeline = `stream-int-${suffix}`;
const FIXTURE = resolve(import.meta.dirname, 'fixtures/queue-source.mjs');

let admin: pg.Client;
let queue: QueueServer;

/** A queue whose acknowledgements are checked against `target`: an ack of a message not in it yet is a violation. */
const queueInto = (target: string) =>
  QueueServer.start(async (seqs) => {
    const exists = await admin.query('SELECT to_regclass($1) IS NOT NULL AS ok', [target]);
    if (!exists.rows[0]?.ok) return new Set();
    const r = await admin.query(`SELECT seq::int AS seq FROM "${target}" WHERE seq = ANY($1::bigint[])`, [seqs]);
    return new Set(r.rows.map((x) => x.seq as number));
  });

beforeAll(async () => {
  if (!up) return;
  admin = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
  await admin.connect();
  queue = await queueInto(table);
});

afterAll(async () => {
  if (!up) return;
  await queue.close();
  for (const t of [table, failTable, intTable]) await admin.query(`DROP TABLE IF EXISTS "${t}"`);
  for (const p of [pipeline, failPipeline, intPipeline]) {
    await admin.query('DELETE FROM _weir_runs WHERE pipeline = $1', [p]).catch(() => {});
    await admin.query('DELETE FROM _weir_checkpoints WHERE pipeline = $1', [p]).catch(() => {});
  }
  await admin.end();
});

describe.skipIf(!up)('an unbounded source in epochs', () => {
  it(`survives ${KILLS} SIGKILLs at random moments: every message once in PostgreSQL, none acknowledged before it was committed`, async () => {
    const dir = tempDir('weir-stream-kill-');
    const file = join(dir, 'pipeline.yaml');
    writeFileSync(
      file,
      `pipeline: ${pipeline}
connectors: [${JSON.stringify(FIXTURE)}]
source: { type: test-queue, url: "${queue.url}", batch: 100 }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${table} }
delivery: exactly-once
stream: { epoch_rows: 400, epoch_interval: 200ms, stop_when_idle: 1500ms }
`,
    );
    queue.ackDelayMs = 150;
    // messages arrive while weir runs and is killed: 25 every 20 ms, over about 5 s
    const producer = setInterval(() => {
      if (queue.messagesCount < MESSAGES) queue.publish(Math.min(25, MESSAGES - queue.messagesCount));
    }, 20);
    try {
      const last = await runKilledThenToEnd(file, dir, KILLS, 500, 1200, (r) => expect(r.signal, r.stderr).toBe('SIGKILL'));
      expect(last.code, last.stderr).toBe(0);
    } finally {
      clearInterval(producer);
    }
    const runs = await admin.query('SELECT count(*)::int AS n FROM _weir_runs WHERE pipeline = $1', [pipeline]);
    expect(runs.rows[0].n, 'the killed runs were resumed, not restarted').toBe(1);
    const got = await admin.query(
      `SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d, min(seq)::int AS lo, max(seq)::int AS hi FROM "${table}"`,
    );
    expect(got.rows[0]).toEqual({ n: MESSAGES, d: MESSAGES, lo: 1, hi: MESSAGES });
    expect(queue.violations).toEqual([]);
    expect(queue.ackedCount).toBe(MESSAGES);
  });

  it('a stream that fails keeps the epochs it committed (they were acknowledged), and the next run continues it', async () => {
    const q = await queueInto(failTable);
    try {
      const dir = tempDir('weir-stream-fail-');
      const file = join(dir, 'pipeline.yaml');
      writeFileSync(
        file,
        `pipeline: ${failPipeline}
connectors: [${JSON.stringify(FIXTURE)}]
source: { type: test-queue, url: "${q.url}", batch: 50 }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${failTable} }
delivery: exactly-once
stream: { epoch_rows: 100, epoch_interval: 100ms, stop_when_idle: 3s }
`,
      );
      q.publish(1000);
      q.failPullsAfter = 8; // 400 messages, then the queue breaks
      const failed = await runCli(['run', file], { cwd: dir });
      expect(failed.code, failed.stderr).toBe(1);
      expect(failed.stderr).toContain('queue answered 500');
      const kept = await admin.query(`SELECT count(*)::int AS n FROM "${failTable}"`);
      expect(kept.rows[0].n).toBeGreaterThanOrEqual(300);
      expect(q.ackedCount).toBeLessThanOrEqual(kept.rows[0].n);
      q.failPullsAfter = undefined;
      const again = await runCli(['run', file], { cwd: dir });
      expect(again.code, again.stderr).toBe(0);
      const got = await admin.query(`SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d FROM "${failTable}"`);
      expect(got.rows[0]).toEqual({ n: 1000, d: 1000 });
      expect(q.violations).toEqual([]);
      expect(q.ackedCount).toBe(1000);
    } finally {
      await q.close();
    }
  });

  it('SIGINT drains: the open epoch is committed and acknowledged, exit 130, and the next run continues', async () => {
    const q = await queueInto(intTable);
    const producer = setInterval(() => {
      if (q.messagesCount < 3000) q.publish(10);
    }, 10);
    try {
      const dir = tempDir('weir-stream-int-');
      const file = join(dir, 'pipeline.yaml');
      writeFileSync(
        file,
        `pipeline: ${intPipeline}
connectors: [${JSON.stringify(FIXTURE)}]
source: { type: test-queue, url: "${q.url}", batch: 50 }
sink: { type: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: test, table: ${intTable} }
delivery: exactly-once
stream: { epoch_rows: 100000, epoch_interval: 1h, stop_when_idle: 1s }
`,
      );
      // one epoch stays open the whole run (1 h, 100k rows): only the drain commits it
      let poll: NodeJS.Timeout | undefined;
      const stopped = await runCli(['run', file], {
        cwd: dir,
        // the signal once weir reads (its handlers are in place), however slow its start-up on a loaded machine
        onSpawn: (pid) => {
          poll = setInterval(() => {
            if (q.deliveredCount < 200) return;
            clearInterval(poll);
            process.kill(pid, 'SIGINT');
          }, 20);
        },
      }).finally(() => clearInterval(poll));
      expect(stopped.code, stopped.stderr).toBe(130);
      const kept = await admin.query(`SELECT count(*)::int AS n FROM "${intTable}"`);
      expect(kept.rows[0].n).toBeGreaterThan(0);
      expect(q.ackedCount).toBe(kept.rows[0].n);
      await new Promise((r) => setTimeout(r, 1000));
      clearInterval(producer);
      q.publish(3000 - q.messagesCount);
      const again = await runCli(['run', file], { cwd: dir });
      expect(again.code, again.stderr).toBe(0);
      const got = await admin.query(`SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d FROM "${intTable}"`);
      expect(got.rows[0]).toEqual({ n: 3000, d: 3000 });
      expect(q.violations).toEqual([]);
    } finally {
      clearInterval(producer);
      await q.close();
    }
  });
});
