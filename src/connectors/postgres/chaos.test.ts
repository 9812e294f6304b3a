/**
 * Chaos: the built CLI is killed with SIGKILL at random points of a run, several
 * times, then run to completion. Exactly-once must hold: every row once, none
 * lost, none duplicated; `replace` never shows anything but the old or the new rows.
 * Needs `npm run build` (npm test does it).
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logLines, runCli, tempDir } from '../../../test/helpers/cli.js';
import { requireService } from '../../../test/helpers/services.js';
import { stageTableName } from './sink.js';

const up = await requireService('postgres');
const BASE = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };
const ROWS = 60_000;
/** The csv case: enough records that a kill lands mid-run even on a loaded machine (~6 MB, ~60 partitions). */
const CSV_ROWS = 150_000;
const KILLS = 4;

let admin: pg.Client;
const tables: string[] = [];
const pipelines: string[] = [];

beforeAll(async () => {
  if (!up) return;
  admin = new pg.Client(BASE);
  await admin.connect();
});
afterAll(async () => {
  if (!up) return;
  for (const t of tables) await admin.query(`DROP TABLE IF EXISTS "${t}"`);
  await admin.query('DELETE FROM _weir_runs WHERE pipeline = ANY($1)', [pipelines]).catch(() => {});
  await admin.query('DELETE FROM _weir_checkpoints WHERE pipeline = ANY($1)', [pipelines]).catch(() => {});
  await admin.end();
});

const stats = async (table: string) =>
  (
    await admin.query(
      `SELECT count(*)::int AS n, count(DISTINCT id)::int AS d, coalesce(min(id), 0)::int AS lo, coalesce(max(id), 0)::int AS hi FROM "${table}"`,
    )
  ).rows[0] as {
    n: number;
    d: number;
    lo: number;
    hi: number;
  };

/** A CSV of the ids 1000001.. with quoted line breaks and quotes in every 7th record, for the passthrough path. */
function csvFile(dir: string, rows: number): string {
  const path = join(dir, 'data.csv');
  const lines = ['id,name,amount,active,note'];
  for (let i = 1; i <= rows; i++)
    lines.push(`${1_000_000 + i},user ${i},${(i * 1.25).toFixed(2)},${i % 2 === 0},${i % 7 === 0 ? `"two\nlines, ""${i}"""` : `n${i}`}`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

async function chaos(mode: 'append' | 'replace', from: 'generator' | 'csv' = 'generator') {
  const rows = from === 'csv' ? CSV_ROWS : ROWS;
  const suffix = randomBytes(4).toString('hex');
  const table = `chaos_${mode}_${suffix}`;
  const pipeline = `chaos-${mode}-${suffix}`;
  tables.push(table);
  pipelines.push(pipeline);
  const dir = tempDir('weir-pg-chaos-');
  const file = join(dir, 'pipeline.yaml');
  // the csv file is cut into byte-range partitions of 100 KB (one COPY batch each), loaded through COPY as it is
  const source =
    from === 'generator'
      ? `{ type: generator, rows: ${ROWS}, partitions: 12, start_id: 1000001 }`
      : `{ type: csv, path: ${csvFile(dir, rows)}, split_bytes: 100KB, columns: { id: integer, name: string, amount: number, active: boolean, note: string } }`;
  writeFileSync(
    file,
    `pipeline: ${pipeline}
source: ${source}
sink: { type: postgres, database: test, table: ${table}, mode: ${mode}, batch_size: 1000 }
delivery: exactly-once
concurrency: 3
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
  );
  if (mode === 'replace') {
    // the old contents: ids 1..500; a reader must only ever see these or the full new set
    await admin.query(
      `CREATE TABLE "${table}" (id bigint PRIMARY KEY, name text, email text, category text, amount float8, quantity bigint, active boolean, created_at timestamptz)`,
    );
    await admin.query(`INSERT INTO "${table}" (id) SELECT generate_series(1, 500)`);
  }

  const killedAfter: number[] = [];
  let completed: Awaited<ReturnType<typeof runCli>> | undefined;
  for (let k = 0; k < KILLS; k++) {
    const after = 1 + Math.floor(Math.random() * (from === 'csv' ? 20 : 30)); // batches written before the kill
    let written = 0;
    const r = await runCli(['run', file, '--log-level', 'debug', '--log-format', 'json'], {
      cwd: dir,
      onStdout: (chunk, kill) => {
        written += chunk.split('"batch_written"').length - 1;
        if (written >= after) kill('SIGKILL');
      },
    });
    if (r.signal !== 'SIGKILL') {
      expect(r.code, r.stderr).toBe(0); // finished before the kill landed: that was the last run
      completed = r;
      break;
    }
    killedAfter.push(after);
    const s = await stats(table).catch(() => undefined);
    if (s && mode === 'append') expect(s.n).toBe(s.d); // never a duplicate, at any moment
    if (s && mode === 'replace') expect([500, rows]).toContain(s.n);
  }

  const final = completed ?? (await runCli(['run', file, '--log-level', 'info', '--log-format', 'json'], { cwd: dir }));
  expect(final.code, final.stderr + final.stdout.slice(-2000)).toBe(0);
  const start = logLines(final.stdout).find((l) => l.event === 'run_start');
  if (killedAfter.length) expect(start?.resumed).toBe(true);
  expect(await stats(table)).toEqual({ n: rows, d: rows, lo: 1_000_001, hi: 1_000_000 + rows });
  const runs = await admin.query('SELECT rows_written::int AS rows FROM _weir_runs WHERE pipeline = $1', [pipeline]);
  expect(runs.rows).toEqual([{ rows }]);
  const left = await admin.query('SELECT count(*)::int AS n FROM _weir_checkpoints WHERE pipeline = $1', [pipeline]);
  expect(left.rows[0]?.n).toBe(0);
  const stage = await admin.query('SELECT to_regclass($1) AS r', [stageTableName(String(start?.run_id), table)]);
  expect(stage.rows[0]?.r).toBeNull();
  return killedAfter;
}

describe.skipIf(!up)('postgres exactly-once under SIGKILL', () => {
  it('append: killed mid-run several times, then resumed: every row exactly once', async () => {
    const kills = await chaos('append');
    expect(kills.length).toBeGreaterThan(0);
  }, 120_000);

  it('append from a csv file cut into partitions (passthrough COPY): killed and resumed, every row exactly once', async () => {
    const kills = await chaos('append', 'csv');
    expect(kills.length).toBeGreaterThan(0);
  }, 120_000);

  it('replace: killed mid-run several times: readers see the old rows or all new rows, never a mix', async () => {
    const kills = await chaos('replace');
    expect(kills.length).toBeGreaterThan(0);
  }, 120_000);
});
