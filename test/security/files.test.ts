/**
 * Files and state as an attacker who can write into the output directory sees them:
 * symlinks planted at every name weir writes to, a tampered checkpoint store, file
 * modes of what may hold rejected rows, and no resolved reference kept in state.
 */
import { lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { newCanary, newScenario, removeScenarios, type Scenario, writePipeline } from './harness.js';

afterAll(removeScenarios);

const VICTIM_TEXT = 'root:x:0:0:victim file, must stay as it is\n';

/** A file outside the output directory that nothing may read, write or delete. */
function plantVictim(s: Scenario, name = 'victim.txt'): string {
  const path = join(s.root, name);
  writeFileSync(path, VICTIM_TEXT);
  return path;
}

const mode = (path: string) => statSync(path).mode & 0o777;
const run = (s: Scenario, args: string[], env: Record<string, string> = {}) =>
  runCli(args, { cwd: s.work, env: { WEIR_DEBUG: undefined, ...env } });

/** A CSV whose second row is bad (dead-lettered with tolerance: all). */
function badRowCsv(s: Scenario): string {
  const path = join(s.work, 'in.csv');
  writeFileSync(path, 'n,name\n1,a\nnot-a-number,b\n3,c\n');
  return path;
}

describe('staging files never follow a planted symlink', () => {
  for (const type of ['csv', 'jsonl', 'parquet'] as const) {
    for (const mode of ['overwrite', 'append'] as const) {
      it(`${type} sink, ${mode}: links at the staging and commit names change nothing and the run works`, async () => {
        const s = newScenario();
        const victim = plantVictim(s);
        const target = join(s.work, 'out', `data.${type}`);
        const file = writePipeline(s, {
          pipeline: `links-${type}-${mode}`,
          source: { type: 'generator', rows: 40, partitions: 2 },
          sink: { type, path: `work/out/data.${type}`, mode },
        });
        if (mode === 'append') expect((await run(s, ['run', file])).code).toBe(0);
        const before = mode === 'append' ? readFileSync(target) : undefined;
        for (const suffix of ['.weir-tmp', '.weir-commit']) symlinkSync(victim, `${target}${suffix}`);
        const r = await run(s, ['run', file]);
        expect(r.stderr).not.toMatch(/error|warn/i);
        expect(r.code).toBe(0);
        expect(readFileSync(victim, 'utf8')).toBe(VICTIM_TEXT);
        expect(lstatSync(target).isFile()).toBe(true);
        if (before && type !== 'parquet') expect(readFileSync(target).subarray(0, before.length).equals(before)).toBe(true);
        expect(readFileSync(target).length).toBeGreaterThan(before?.length ?? 0);
      });
    }
  }

  it('the jsonl dead-letter sink: links at its staging and commit names change nothing', async () => {
    const s = newScenario();
    const victim = plantVictim(s);
    badRowCsv(s);
    const file = writePipeline(s, {
      pipeline: 'links-dead-letter',
      source: { type: 'csv', path: 'work/in.csv', columns: { n: 'integer' } },
      sink: { type: 'jsonl', path: 'work/out/good.jsonl' },
      errors: { tolerance: 'all', dead_letter: { type: 'jsonl', path: 'work/out/rejected.jsonl' } },
    });
    const dl = join(s.work, 'out', 'rejected.jsonl');
    for (const suffix of ['.weir-tmp', '.weir-commit']) symlinkSync(victim, `${dl}${suffix}`);
    const r = await run(s, ['run', file]);
    expect(r.code).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe(VICTIM_TEXT);
    expect(readFileSync(dl, 'utf8')).toContain('not-a-number');
  });

  it('--summary-json: a link at the summary path is replaced, not followed', async () => {
    const s = newScenario();
    const victim = plantVictim(s);
    const file = writePipeline(s, {
      pipeline: 'links-summary',
      source: { type: 'generator', rows: 5 },
      sink: { type: 'jsonl', path: 'work/out/x.jsonl' },
    });
    symlinkSync(victim, join(s.work, 'out', 'summary.json'));
    const r = await run(s, ['run', file, '--summary-json', 'out/summary.json']);
    expect(r.code).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe(VICTIM_TEXT);
    expect(JSON.parse(readFileSync(join(s.work, 'out', 'summary.json'), 'utf8'))).toMatchObject({ status: 'succeeded' });
  });

  it('the checkpoint store: a link at .weir/checkpoints.db is refused clearly, nothing written', async () => {
    const s = newScenario();
    const victim = join(s.root, 'empty-victim.db');
    writeFileSync(victim, '');
    mkdirSync(join(s.root, '.weir'));
    symlinkSync(victim, join(s.root, '.weir', 'checkpoints.db'));
    const file = writePipeline(s, {
      pipeline: 'links-state',
      source: { type: 'generator', rows: 5 },
      sink: { type: 'jsonl', path: 'work/out/x.jsonl' },
    });
    const r = await run(s, ['run', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/checkpoint store .*checkpoints\.db is a symbolic link/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(statSync(victim).size).toBe(0);
    expect(readdirSync(join(s.work, 'out'))).toEqual([]);
  });
});

/** Runs a pipeline once (succeeding), then rewrites its checkpoint rows so the next run resumes it with `tamper`. */
async function tamperedResume(
  s: Scenario,
  pipeline: Record<string, unknown>,
  tamper: (db: Database.Database, runId: string) => void,
): Promise<{ file: string }> {
  const file = writePipeline(s, pipeline);
  const first = await run(s, ['run', file]);
  expect(first.code).toBe(0);
  const db = new Database(join(s.root, '.weir', 'checkpoints.db'));
  try {
    const { run_id } = db.prepare('SELECT run_id FROM runs ORDER BY rowid DESC LIMIT 1').get() as { run_id: string };
    db.prepare("UPDATE runs SET status = 'stopped', finished_at = NULL WHERE run_id = ?").run(run_id);
    tamper(db, run_id);
  } finally {
    db.close();
  }
  return { file };
}

const staged = (tmp: string) => JSON.stringify({ partition: '0', tmp, rows: 1, bytes: VICTIM_TEXT.length });

describe('the checkpoint store is untrusted input', () => {
  const pipeline = (name: string, extra: Record<string, unknown> = {}) => ({
    pipeline: name,
    source: { type: 'generator', rows: 10 },
    sink: { type: 'jsonl', path: 'work/out/x.jsonl' },
    ...extra,
  });

  for (const [what, where] of [
    ['a file outside the output directory', (s: Scenario) => plantVictim(s)],
    ['a file in the output directory without weir’s staging name', (s: Scenario) => plantVictim(s, 'work/out/notes.txt')],
    ['a staging name of another target', (s: Scenario) => plantVictim(s, 'work/out/y.jsonl.0.0a1b2c3d-0011223344556677.tmp')],
  ] as const) {
    it(`a committed partition naming ${what}: exit 1, the file neither read nor deleted`, async () => {
      const s = newScenario();
      const victim = where(s);
      const { file } = await tamperedResume(s, pipeline('tamper-commit'), (db, runId) => {
        db.prepare('UPDATE partitions SET message = ? WHERE run_id = ?').run(staged(victim), runId);
      });
      const r = await run(s, ['run', file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/not a staging file of .*x\.jsonl/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(readFileSync(victim, 'utf8')).toBe(VICTIM_TEXT);
      expect(readFileSync(join(s.work, 'out', 'x.jsonl'), 'utf8')).not.toContain('victim file');
    });
  }

  it('an abandoned run whose message names a victim: the abort deletes nothing', async () => {
    const s = newScenario();
    const victim = plantVictim(s);
    const { file } = await tamperedResume(s, pipeline('tamper-abort'), (db, runId) => {
      db.prepare('UPDATE partitions SET message = ? WHERE run_id = ?').run(staged(victim), runId);
      db.prepare("UPDATE runs SET plan_hash = 'other' WHERE run_id = ?").run(runId);
    });
    const r = await run(s, ['run', file]);
    expect(r.stderr).toMatch(/not a staging file of .*x\.jsonl/);
    expect(r.code).toBe(1);
    expect(readFileSync(victim, 'utf8')).toBe(VICTIM_TEXT);
  });

  it('a dead-letter message naming a victim: not read into the dead letters, not deleted', async () => {
    const s = newScenario();
    const victim = plantVictim(s);
    badRowCsv(s);
    const { file } = await tamperedResume(
      s,
      {
        pipeline: 'tamper-dead-letter',
        source: { type: 'csv', path: 'work/in.csv', columns: { n: 'integer' } },
        sink: { type: 'jsonl', path: 'work/out/good.jsonl' },
        errors: { tolerance: 'all', dead_letter: { type: 'jsonl', path: 'work/out/rejected.jsonl' } },
      },
      (db, runId) => {
        db.prepare('INSERT OR REPLACE INTO dead_letters (run_id, partition_id, message) VALUES (?, ?, ?)').run(runId, '0', staged(victim));
      },
    );
    const r = await run(s, ['run', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not a staging file of .*rejected\.jsonl/);
    expect(readFileSync(victim, 'utf8')).toBe(VICTIM_TEXT);
    expect(readFileSync(join(s.work, 'out', 'rejected.jsonl'), 'utf8')).not.toContain('victim file');
  });

  it('a damaged row (not JSON, wrong shape) is a clear error, never a stack trace', async () => {
    const s = newScenario();
    const { file } = await tamperedResume(s, pipeline('tamper-shape'), (db, runId) => {
      db.prepare('UPDATE runs SET partitions = ? WHERE run_id = ?').run('{"id": 1', runId);
    });
    const r = await run(s, ['run', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/checkpoint store .*checkpoints\.db is damaged: .*partitions/);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  });
});

describe('state and rejected rows are private', () => {
  it('the state directory is 0700; the checkpoint store, dead letters and summary 0600', async () => {
    const s = newScenario();
    badRowCsv(s);
    const file = writePipeline(s, {
      pipeline: 'modes',
      source: { type: 'csv', path: 'work/in.csv', columns: { n: 'integer' } },
      sink: { type: 'jsonl', path: 'work/out/good.jsonl' },
      errors: { tolerance: 'all', dead_letter: { type: 'jsonl', path: 'work/out/rejected.jsonl' } },
    });
    const r = await run(s, ['run', file, '--summary-json', 'out/summary.json']);
    expect(r.code).toBe(0);
    expect(mode(join(s.root, '.weir'))).toBe(0o700);
    for (const f of readdirSync(join(s.root, '.weir'))) expect([f, mode(join(s.root, '.weir', f))]).toEqual([f, 0o600]);
    expect(mode(join(s.work, 'out', 'rejected.jsonl'))).toBe(0o600);
    expect(mode(join(s.work, 'out', 'summary.json'))).toBe(0o600);
    // the output itself keeps the usual mode (umask)
    expect(mode(join(s.work, 'out', 'good.jsonl'))).toBe(0o666 & ~process.umask());
  });
});

describe('no resolved reference in state', () => {
  it('pipeline: ${env:NAME} — the canary is nowhere in .weir (bytes), also with an exactly-once sqlite sink', async () => {
    const c = newCanary(true);
    const s = newScenario();
    badRowCsv(s);
    const file = writePipeline(s, {
      pipeline: '${env:WEIR_TEST_PIPELINE_NAME}',
      source: { type: 'csv', path: 'work/in.csv', columns: { n: 'integer' } },
      sink: { type: 'sqlite', path: '.weir/target.db', table: 'rows' },
      delivery: 'exactly-once',
      errors: { tolerance: 'all', dead_letter: { type: 'jsonl', path: '.weir/rejected.jsonl' } },
    });
    const r = await run(s, ['run', file], { WEIR_TEST_PIPELINE_NAME: c.value });
    expect(r.code).toBe(0);
    const files = readdirSync(join(s.root, '.weir'));
    expect(files).toContain('checkpoints.db');
    for (const f of files) expect([f, readFileSync(join(s.root, '.weir', f)).includes(c.core)]).toEqual([f, false]);
    // the same name resumes the same state; another value is another pipeline
    const again = await run(s, ['run', file], { WEIR_TEST_PIPELINE_NAME: c.value });
    expect(again.code).toBe(0);
    const db = new Database(join(s.root, '.weir', 'checkpoints.db'), { readonly: true });
    try {
      const names = db.prepare('SELECT DISTINCT pipeline FROM runs').all() as { pipeline: string }[];
      expect(names).toHaveLength(1);
      expect(names[0]?.pipeline).toMatch(/^\$\{env:WEIR_TEST_PIPELINE_NAME\}@[0-9a-f]{16}$/);
    } finally {
      db.close();
    }
  });
});
