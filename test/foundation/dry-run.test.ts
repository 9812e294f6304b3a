/**
 * `weir run --dry-run` connects read-only and prints the plan: partitions, the source's
 * columns with their types, the target action; it fails as the run would when the
 * source or the target is missing, and writes nothing. Needs `npm run build`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';

const up = await requireService('postgres');
const suffix = randomBytes(4).toString('hex');
const [src, dst] = [`dry_src_${suffix}`, `dry_dst_${suffix}`];
const pgConn = 'host: 127.0.0.1, user: postgres, database: test';
let db: pg.Client;

beforeAll(async () => {
  if (!up) return;
  db = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
  await db.connect();
  await db.query(`CREATE TABLE ${src} (id bigint PRIMARY KEY, email text NOT NULL, amount numeric(12,2))`);
  await db.query(`INSERT INTO ${src} SELECT g, 'e' || g, g * 1.5 FROM generate_series(1, 1000) g`);
});

afterAll(async () => {
  if (!up) return;
  await db.query(`DROP TABLE IF EXISTS ${src}, ${dst}`);
  await db.end();
});

function pipeline(dir: string, text: string, name = 'p.yaml'): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('weir run --dry-run', () => {
  it.skipIf(!up)('prints partitions, columns and the CREATE TABLE of a missing upsert target, and creates nothing', async () => {
    const dir = tempDir();
    const file = pipeline(
      dir,
      `pipeline: dry\nsource: { type: postgres, ${pgConn}, table: ${src}, partitions: 4, partition_column: id }\nsink: { type: postgres, ${pgConn}, table: ${dst}, mode: upsert, key_columns: [id] }\n`,
    );
    const r = await runCli(['run', file, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('postgres: 4 partition(s)');
    // the ranges, without the snapshot the planner exported and ended with the dry run
    expect(r.stdout).toMatch(/\n {4}0 {2}\{"lo":null,"hi":"\d+"\}\n/);
    expect(r.stdout).not.toContain('snapshot');
    expect(r.stdout).toMatch(/id\s+integer/);
    expect(r.stdout).toMatch(/email\s+string/);
    expect(r.stdout).toMatch(/amount\s+decimal/);
    expect(r.stdout).toMatch(
      new RegExp(`CREATE TABLE IF NOT EXISTS "public"."${dst}" \\(.*PRIMARY KEY \\("id"\\)\\); then upsert into public.${dst} on \\(id\\)`),
    );
    expect((await db.query('SELECT to_regclass($1) AS t', [dst])).rows[0].t).toBeNull();
    expect(existsSync(join(dir, '.weir'))).toBe(false);
  });

  it.skipIf(!up)('fails with exit 2 on a missing source table, naming it', async () => {
    const dir = tempDir();
    const file = pipeline(
      dir,
      `pipeline: dry\nsource: { type: postgres, ${pgConn}, table: no_such_${suffix} }\nsink: { type: sqlite, path: out.db, table: t }\n`,
    );
    const r = await runCli(['run', file, '--dry-run']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`no_such_${suffix} does not exist`);
    expect(existsSync(join(dir, 'out.db'))).toBe(false);
  });

  it('fails with exit 2 on a missing CSV file', async () => {
    const dir = tempDir();
    const file = pipeline(dir, 'pipeline: dry\nsource: { type: csv, path: missing.csv }\nsink: { type: sqlite, path: out.db, table: t }\n');
    const r = await runCli(['run', file, '--dry-run']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('file not found');
  });

  it('names an existing SQLite target and refuses one whose columns do not fit', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'in.csv'), 'id,name\n1,a\n2,b\n');
    const target = new Database(join(dir, 'out.db'));
    target.exec('CREATE TABLE fits (id INTEGER, name TEXT, extra TEXT); CREATE TABLE other (x INTEGER)');
    target.close();
    const fits = pipeline(
      dir,
      'pipeline: dry\nsource: { type: csv, path: in.csv }\nsink: { type: sqlite, path: out.db, table: fits }\n',
      'fits.yaml',
    );
    const ok = await runCli(['run', fits, '--dry-run']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/sqlite: in .*out\.db: append to table fits \(the table exists with 3 columns; the source's 2 fit\)/);
    const other = pipeline(
      dir,
      'pipeline: dry\nsource: { type: csv, path: in.csv }\nsink: { type: sqlite, path: out.db, table: other }\n',
      'other.yaml',
    );
    const bad = await runCli(['run', other, '--dry-run']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/other/);
    expect(bad.stderr).not.toMatch(/internal error|\n\s+at /);
    // weir check compares the same: the columns that do not fit are its failing line
    const check = await runCli(['check', other]);
    expect(check.code).toBe(3);
    expect(check.stdout).toMatch(/FAIL {2}plan \(csv → sqlite\): sink table other in out\.db has no column "id"/);
    const good = await runCli(['check', fits]);
    expect(good.code, good.stdout).toBe(0);
    expect(good.stdout).toContain('PASS  plan (csv → sqlite): in ');
  });
});
