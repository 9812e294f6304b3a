import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { logLines, runCli, tempDir } from '../helpers/cli.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');

function write(dir: string, name: string, text: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('weir validate', () => {
  it('prints all three mistakes at once, exits 2, connects to nothing', async () => {
    const dir = tempDir();
    const file = write(
      dir,
      'three.yaml',
      `pipeline: three-mistakes
source: { type: generator, rows: -5 }
sink:
  type: sqlite
  path: out.db
  tabel: events
retry: { max_attempts: 0 }
`,
    );
    const r = await runCli(['validate', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('source.rows');
    expect(r.stderr).toContain('sink.tabel');
    expect(r.stderr).toContain('did you mean "table"');
    expect(r.stderr).toContain('retry.max_attempts');
    expect(r.stderr).toMatch(/line \d+/);
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/); // no stack trace
    expect(existsSync(join(dir, 'out.db'))).toBe(false);
  });

  it('accepts a valid file', async () => {
    const dir = tempDir();
    const file = write(dir, 'ok.yaml', 'pipeline: ok\nsource: { type: generator }\nsink: { type: sqlite, path: out.db, table: t }\n');
    const r = await runCli(['validate', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('is valid');
  });

  it.each([
    ['a YAML syntax error', 'pipeline: [unclosed\nsource: {'],
    ['a binary file', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01, 0xff, 0xfe])],
    [
      'an alias bomb',
      `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n`,
    ],
    ['duplicate keys', 'pipeline: a\npipeline: b\n'],
  ])('refuses %s quickly with exit 2', async (_name, content) => {
    const dir = tempDir();
    const file = write(dir, 'bad.yaml', content);
    const started = Date.now();
    const r = await runCli(['validate', file]);
    expect(r.code).toBe(2);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.stderr).toMatch(/^error: /);
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
  });

  it.each([['validate'], ['run']])(
    'weir %s on a YAML syntax error: exit 2, the line:column, the line and a caret under the column, no stack trace',
    async (command) => {
      const dir = tempDir();
      const file = write(
        dir,
        'broken.yaml',
        'pipeline: broken\nsource: { type: generator, rows: 5\nsink: { type: sqlite, path: out.db, table: t }\n',
      );
      const r = await runCli([command, file], { cwd: dir });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/^error: .*broken\.yaml is not valid YAML:\n/);
      const m = /- line (\d+):(\d+): (.+)\n +(\d+) \| (.*)\n +\| ( *)\^/.exec(r.stderr);
      expect(m, r.stderr).not.toBeNull();
      const [, line, col, , shownLine, shown, pad] = m as unknown as string[];
      expect(shownLine).toBe(line);
      expect(shown).toBe(
        ['pipeline: broken', 'source: { type: generator, rows: 5', 'sink: { type: sqlite, path: out.db, table: t }'][Number(line) - 1],
      );
      expect((pad as string).length).toBe(Number(col) - 1);
      expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
      expect(r.stdout).not.toContain('run_start');
      expect(existsSync(join(dir, 'out.db'))).toBe(false);
    },
  );

  it('never prints a literal secret in the excerpt of a bad line', async () => {
    const dir = tempDir();
    const syntax = write(
      dir,
      'syntax.yaml',
      'pipeline: x\nsource: { type: generator }\nsink: { type: postgres, database: test, table: t, password: "hunter2XYZ }\n',
    );
    const invalid = write(
      dir,
      'invalid.yaml',
      'pipeline: x\nsource: { type: generator }\nsink:\n  type: postgres\n  database: test\n  table: t\n  password: [hunter2XYZ, other]\n',
    );
    for (const file of [syntax, invalid]) {
      const r = await runCli(['validate', file], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/\d+ \| .*password: \*\*\*REDACTED\*\*\*/);
      expect(r.stderr).not.toContain('hunter2XYZ');
    }
  });

  it('reports a missing file with exit 2', async () => {
    const r = await runCli(['validate', '/nonexistent/pipeline.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('does not exist');
  });
});

describe('weir run', () => {
  it('runs generator → sqlite and lands every row once, with JSON logs and a summary', async () => {
    const dir = tempDir();
    const file = write(
      dir,
      'p.yaml',
      'pipeline: gen-sqlite\nsource: { type: generator, rows: 20000, partitions: 4 }\nsink: { type: sqlite, path: out.db, table: events }\n',
    );
    const r = await runCli(['run', file, '--summary-json', join(dir, 'summary.json')], { cwd: dir });
    expect(r.stderr).toContain('succeeded');
    expect(r.code).toBe(0);
    const db = new Database(join(dir, 'out.db'), { readonly: true });
    expect(db.prepare('SELECT count(*) AS n, count(DISTINCT id) AS d FROM events').get()).toEqual({ n: 20000, d: 20000 });
    expect(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name LIKE '_weir_stage_%'").get()).toEqual({ n: 0 });
    db.close();
    const lines = logLines(r.stdout);
    const start = lines.find((l) => l.event === 'run_start');
    expect(start).toMatchObject({ pipeline: 'gen-sqlite', partitions: 4 });
    expect(typeof start?.run_id).toBe('string');
    const parts = lines.filter((l) => l.event === 'partition_complete');
    expect(parts).toHaveLength(4);
    for (const p of parts) {
      for (const key of [
        'run_id',
        'pipeline',
        'partition_id',
        'rows_processed',
        'rows_failed',
        'bytes_sent',
        'batches_sent',
        'retry_count',
        'duration_seconds',
        'throughput',
        'errors',
      ])
        expect(p).toHaveProperty(key);
    }
    const summary = JSON.parse((await import('node:fs')).readFileSync(join(dir, 'summary.json'), 'utf8'));
    expect(summary.totals).toMatchObject({ rows_read: 20000, rows_written: 20000, partitions_committed: 4 });
  });

  it('a partition that throws aborts the job: exit 1, nothing of the run in the target table', async () => {
    const dir = tempDir();
    const file = write(
      dir,
      'fail.yaml',
      `pipeline: failing
connectors: [${join(FIXTURES, 'failing-source.mjs')}]
concurrency: 2
source: { type: failing-source }
sink: { type: sqlite, path: out.db, table: events, batch_size: 100 }
`,
    );
    const r = await runCli(['run', file], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('upstream closed the connection');
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
    const lines = logLines(r.stdout);
    expect(lines.some((l) => l.event === 'job_abort')).toBe(true);
    expect(lines.some((l) => l.event === 'partition_failed' && l.partition_id === '3')).toBe(true);
    const db = new Database(join(dir, 'out.db'), { readonly: true });
    const tables = db
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_weir\\_c%' ESCAPE '\\' AND name NOT LIKE '\\_weir\\_r%' ESCAPE '\\'",
      )
      .all();
    expect(tables).toEqual([]); // neither the target table nor any staging table
    db.close();
  });

  it('exits 2 without a stack trace for a config error at run', async () => {
    const dir = tempDir();
    const file = write(dir, 'bad.yaml', 'pipeline: x\nsource: { type: generatr }\nsink: { type: sqlite, path: out.db, table: t }\n');
    const r = await runCli(['run', file], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('did you mean "generator"');
  });
});

describe('introspection commands', () => {
  it('lists connectors with source/sink support', async () => {
    const r = await runCli(['connectors']);
    expect(r.code).toBe(0);
    for (const name of ['generator', 'sqlite', 'csv', 'jsonl']) expect(r.stdout).toContain(name);
  });

  it('prints docs, spec and schema generated from the specs', async () => {
    const docs = await runCli(['docs', 'sqlite']);
    expect(docs.code).toBe(0);
    expect(docs.stdout).toContain('| `table`');
    const spec = await runCli(['spec', 'sqlite']);
    expect(spec.code).toBe(0);
    expect(JSON.parse(spec.stdout).properties.table).toBeDefined();
    const schema = await runCli(['schema']);
    expect(schema.code).toBe(0);
    expect(JSON.parse(schema.stdout).properties.source).toBeDefined();
  });

  it('exits 2 for an unknown connector or command', async () => {
    expect((await runCli(['spec', 'postgress'])).code).toBe(2);
    expect((await runCli(['frobnicate'])).code).toBe(2);
  });
});

describe('TLS options', () => {
  it('ssl_enabled needs ssl_ca_cert, and the file must be readable — checked by weir validate', async () => {
    const dir = tempDir();
    const missing = write(
      dir,
      'a.yaml',
      'pipeline: t\nsource: { type: generator }\nsink: { type: postgres, database: test, table: t, ssl_enabled: true }\n',
    );
    const r1 = await runCli(['validate', missing]);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toContain('ssl_ca_cert is required when ssl_enabled is true');
    const unreadable = write(
      dir,
      'b.yaml',
      'pipeline: t\nsource: { type: generator }\nsink: { type: postgres, database: test, table: t, ssl_enabled: true, ssl_ca_cert: nope.pem }\n',
    );
    const r2 = await runCli(['validate', unreadable]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('sink.ssl_ca_cert');
    expect(r2.stderr).toContain('nope.pem');
  });
});

describe('weir check', () => {
  it('passes with exit 0 and fails with exit 3, per connector and check', async () => {
    const dir = tempDir();
    const seed = write(
      dir,
      'seed.yaml',
      'pipeline: seed\nsource: { type: generator, rows: 10 }\nsink: { type: sqlite, path: in.db, table: events }\n',
    );
    expect((await runCli(['run', seed], { cwd: dir })).code).toBe(0);
    const good = write(
      dir,
      'good.yaml',
      'pipeline: chk\nsource: { type: sqlite, path: in.db, table: events }\nsink: { type: jsonl, path: out/x.jsonl }\n',
    );
    const ok = await runCli(['check', good], { cwd: dir });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/PASS\s+source \(sqlite\) table/);
    expect(ok.stdout).toMatch(/PASS\s+sink \(jsonl\) disk_space/);
    const bad = write(
      dir,
      'bad.yaml',
      'pipeline: chk\nsource: { type: sqlite, path: in.db, table: nope }\nsink: { type: jsonl, path: out/x.jsonl }\n',
    );
    const failed = await runCli(['check', bad], { cwd: dir });
    expect(failed.code).toBe(3);
    expect(failed.stdout).toMatch(/FAIL\s+source \(sqlite\) table: table nope does not exist/);
  });
});

describe('responsiveness', () => {
  it('a CPU-bound run (generator → sqlite) still answers SIGTERM promptly and drains', async () => {
    const dir = tempDir();
    const file = write(
      dir,
      'busy.yaml',
      'pipeline: busy\nsource: { type: generator, rows: 3000000, partitions: 4 }\nsink: { type: sqlite, path: out.db, table: events }\n',
    );
    let sentAt = 0;
    const r = await runCli(['run', file], {
      cwd: dir,
      onStdout: (chunk, kill) => {
        if (!sentAt && chunk.includes('run_start')) {
          sentAt = Date.now();
          setTimeout(() => kill('SIGTERM'), 300);
        }
      },
    });
    expect(r.code).toBe(143);
    expect(Date.now() - sentAt).toBeLessThan(5000);
    expect(r.stderr).toContain('stopped');
    expect(r.stderr).toContain('run the same command again to resume');
  });
});

describe('weir run --set', () => {
  it('changes the pipeline as the file would, and is validated like it', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'p.yaml'), 'pipeline: sets\nsource: { type: generator, rows: 10 }\nsink: { type: jsonl, path: out.jsonl }\n');
    const r = await runCli(['run', 'p.yaml', '--set', 'source.rows=7', '--set', 'sink.path=other.jsonl'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(dir, 'other.jsonl'), 'utf8').trim().split('\n')).toHaveLength(7);
    const bad = await runCli(['run', 'p.yaml', '--set', 'sink.batch_sise=5'], { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('sink.batch_sise');
    expect(bad.stderr).toContain('unknown option');
  });
});
