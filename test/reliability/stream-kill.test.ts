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
import { runKilledThenToEnd, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';
import { QueueServer } from './queue-server.js';

const up = await requireService('postgres');
const MESSAGES = 6000;
const KILLS = 5;
const suffix = randomBytes(4).toString('hex');
const table = `stream_kill_${suffix}`;
const pipeline = `stream-kill-${suffix}`;
const FIXTURE = resolve(import.meta.dirname, 'fixtures/queue-source.mjs');

let admin: pg.Client;
let queue: QueueServer;

beforeAll(async () => {
  if (!up) return;
  admin = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
  await admin.connect();
  queue = await QueueServer.start(async (seqs) => {
    const exists = await admin.query('SELECT to_regclass($1) IS NOT NULL AS ok', [table]);
    if (!exists.rows[0]?.ok) return new Set();
    const r = await admin.query(`SELECT seq::int AS seq FROM "${table}" WHERE seq = ANY($1::bigint[])`, [seqs]);
    return new Set(r.rows.map((x) => x.seq as number));
  });
});

afterAll(async () => {
  if (!up) return;
  await queue.close();
  await admin.query(`DROP TABLE IF EXISTS "${table}"`);
  await admin.query('DELETE FROM _weir_runs WHERE pipeline = $1', [pipeline]).catch(() => {});
  await admin.query('DELETE FROM _weir_checkpoints WHERE pipeline = $1', [pipeline]).catch(() => {});
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
});
