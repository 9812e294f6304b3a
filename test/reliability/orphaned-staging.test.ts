/**
 * Orphaned staging: the staging files (`*.tmp` beside a file target) and staging tables
 * (`_weir_stage_*`) of a SIGKILLed run that no later run resumes are listed by
 * `weir state show` and deleted by the next run of the same pipeline — only that
 * pipeline's, never while a run of it is alive. Needs `npm run build`.
 *
 * A killed run is normally resumed (its staging reused) or abandoned (its staging
 * aborted); what stays behind is a run that is over without its abort having finished
 * (killed during it, or the abort failed). The tests make that state by killing a run
 * with SIGKILL and then recording it as abandoned, as an unfinished abandonment leaves it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { stageTableName } from '../../src/connectors/postgres/sink.js';
import { CheckpointStore } from '../../src/runtime/checkpoints.js';
import { type CliResult, ROOT, runCli, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';

const pgUp = await requireService('postgres');

/** Runs `weir run FILE`, SIGKILLs it once `staged()` says it staged something; returns the killed run. `onRunId`: the run's id, from its first log line. */
async function killWhenStaged(file: string, staged: () => boolean, onRunId?: (runId: string) => void): Promise<CliResult> {
  let timer: NodeJS.Timeout | undefined;
  let seen = '';
  let told = false;
  const r = await runCli(['run', file], {
    timeoutMs: 60_000,
    onStdout: (chunk) => {
      if (!onRunId || told) return;
      seen += chunk;
      const id = /"run_id":"([^"]+)"/.exec(seen)?.[1];
      if (id) {
        told = true;
        onRunId(id);
      }
    },
    onSpawn: (pid) => {
      timer = setInterval(() => {
        if (!staged()) return;
        clearInterval(timer);
        process.kill(pid, 'SIGKILL');
      }, 50);
    },
  });
  clearInterval(timer);
  expect(r.signal, r.stderr).toBe('SIGKILL');
  return r;
}

/** Whether the checkpoint store beside the pipeline holds the run (read-only: the run writes it meanwhile). */
function recorded(dir: string, runId: string): boolean {
  const file = join(dir, '.weir', 'checkpoints.db');
  if (!existsSync(file)) return false;
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT 1 FROM runs WHERE run_id = ?').get(runId) !== undefined;
  } catch {
    return false; // not created yet
  } finally {
    db.close();
  }
}

/** Records the pipeline's last run as abandoned: what an abandonment that did not finish its abort leaves. */
function markLastAbandoned(dir: string, pipeline: string): string {
  const store = CheckpointStore.open(join(dir, '.weir', 'checkpoints.db'));
  try {
    const last = store.lastRun(pipeline);
    expect(last?.status).toBe('running');
    store.setStatus(last?.run_id as string, 'abandoned');
    return last?.run_id as string;
  } finally {
    store.close();
  }
}

const slowSource = 'source: { type: generator, rows: 100000, partitions: 4 }\nrate_limit: { rows_per_second: 10000 }\nbatch: { rows: 500 }';

describe('orphaned staging of a SIGKILLed run', () => {
  it('files: state show lists the *.tmp files, the next run deletes them and leaves another pipeline’s alone', async () => {
    const dir = tempDir();
    const file = join(dir, 'p.yaml');
    const other = join(dir, 'other.yaml');
    writeFileSync(file, `pipeline: orphans\n${slowSource}\nsink: { type: jsonl, path: out/o.jsonl }\n`);
    writeFileSync(other, `pipeline: others\n${slowSource}\nsink: { type: jsonl, path: out/other.jsonl }\n`);
    const tmps = (prefix: string) => readdirSync(join(dir, 'out')).filter((f) => f.startsWith(prefix) && f.endsWith('.tmp'));
    const staged = (prefix: string) => () => existsSync(join(dir, 'out')) && tmps(prefix).length >= 4;

    await killWhenStaged(file, staged('o.jsonl.'));
    await killWhenStaged(other, staged('other.jsonl.'));
    const left = tmps('o.jsonl.');
    const othersLeft = tmps('other.jsonl.');
    markLastAbandoned(dir, 'orphans');

    const shown = await runCli(['state', 'show', file]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('staging left by 1 earlier run(s) that ended without cleaning up (the next weir run deletes them):');
    for (const f of left) expect(shown.stdout).toContain(join(dir, 'out', f));
    for (const f of othersLeft) expect(shown.stdout).not.toContain(f);

    const next = await runCli(['run', file, '--set', 'rate_limit.rows_per_second=1000000']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stdout).toContain(`deleted ${left.length} staging file(s) or table(s) left by earlier run(s)`);
    expect(tmps('o.jsonl.')).toEqual([]);
    expect(tmps('other.jsonl.').sort()).toEqual(othersLeft.sort());
    expect(
      readFileSync(join(dir, 'out', 'o.jsonl'), 'utf8')
        .trimEnd()
        .split('\n'),
    ).toHaveLength(100_000);
    const after = await runCli(['state', 'show', file]);
    expect(after.stdout).not.toContain('staging left by');
  });

  it('sqlite: the _weir_stage_* tables of the killed run are dropped by the next run', async () => {
    const dir = tempDir();
    const file = join(dir, 'p.yaml');
    const dbFile = join(dir, 'out.db');
    writeFileSync(file, `pipeline: orphans-sqlite\n${slowSource}\nsink: { type: sqlite, path: out.db, table: t }\n`);
    const stages = () => {
      if (!existsSync(dbFile)) return [];
      const db = new Database(dbFile, { readonly: true, fileMustExist: true });
      try {
        return (
          db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '\\_weir\\_stage\\_%' ESCAPE '\\'").all() as {
            name: string;
          }[]
        ).map((r) => r.name);
      } catch {
        return [];
      } finally {
        db.close();
      }
    };
    await killWhenStaged(file, () => stages().length > 0);
    const left = stages();
    expect(left.length).toBeGreaterThan(0);
    markLastAbandoned(dir, 'orphans-sqlite');

    const shown = await runCli(['state', 'show', file]);
    for (const t of left) expect(shown.stdout).toContain(`  ${t}`);
    const next = await runCli(['run', file, '--set', 'rate_limit.rows_per_second=1000000']);
    expect(next.code, next.stderr).toBe(0);
    expect(stages()).toEqual([]);
    const db = new Database(dbFile, { readonly: true });
    expect((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(100_000);
    db.close();
  });

  it('a run killed between the sink’s setup and its record: its staging is found through the reserved run id and deleted by the next run', async () => {
    const dir = tempDir();
    const file = join(dir, 'p.yaml');
    const fixture = join(ROOT, 'test', 'reliability', 'fixtures', 'staging-sink.mjs');
    writeFileSync(
      file,
      `pipeline: orphans-setup\nconnectors: [${JSON.stringify(fixture)}]\nsource: { type: generator, rows: 10 }\nsink: { type: staging-sink, dir: stage, die_in_setup: true }\n`,
    );
    const killed = await runCli(['run', file]);
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    const staged = readdirSync(join(dir, 'stage'));
    expect(staged).toHaveLength(1);
    const runId = (staged[0] as string).slice('stage-'.length);
    expect(recorded(dir, runId)).toBe(false); // killed before the run was recorded: only its reservation names it

    const shown = await runCli(['state', 'show', file]);
    expect(shown.stdout).toContain(join(dir, 'stage', `stage-${runId}`));
    const next = await runCli(['run', file, '--set', 'sink.die_in_setup=false']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stdout).toContain(`deleted 1 staging file(s) or table(s) left by earlier run(s) ${runId}`);
    expect(readdirSync(join(dir, 'stage'))).toEqual([]);
  });

  it.skipIf(!pgUp)('postgres replace: the killed run’s _weir_stage_* table is dropped by the next run', async () => {
    const dir = tempDir();
    const file = join(dir, 'p.yaml');
    const table = `orphan_${randomBytes(4).toString('hex')}`;
    writeFileSync(
      file,
      `pipeline: orphans-pg-${table}\n${slowSource}\nsink: { type: postgres, host: 127.0.0.1, user: postgres, database: test, table: ${table}, mode: replace }\n`,
    );
    const db = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
    await db.connect();
    try {
      // this run's stage table (its name is derived from the run id: other tests' runs stage tables at the same
      // time), once the run is recorded too (markLastAbandoned needs the run; a kill before the record is the test above)
      let runId: string | undefined;
      let stage: string | undefined;
      const poll = setInterval(() => {
        if (runId === undefined || !recorded(dir, runId)) return;
        const name = stageTableName(runId, table);
        void db.query('SELECT to_regclass($1) IS NOT NULL AS ok', [`public.${name}`]).then((r) => {
          if (r.rows[0]?.ok) stage = name;
        });
      }, 50);
      await killWhenStaged(
        file,
        () => stage !== undefined,
        (id) => {
          runId = id;
        },
      );
      clearInterval(poll);
      markLastAbandoned(dir, `orphans-pg-${table}`);
      const shown = await runCli(['state', 'show', file]);
      expect(shown.stdout).toContain(`public.${stage}`);
      const next = await runCli(['run', file, '--set', 'rate_limit.rows_per_second=1000000']);
      expect(next.code, next.stderr).toBe(0);
      expect((await db.query('SELECT to_regclass($1) AS t', [`public.${stage}`])).rows[0].t).toBeNull();
      expect(Number((await db.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n)).toBe(100_000);
    } finally {
      await db.query(`DROP TABLE IF EXISTS ${table}`);
      await db.end();
    }
  });
});
