/**
 * `weir discover`: the source's columns and exact types alone, from the dry run's planning,
 * as text or JSON; the sink is never contacted; a missing table or file exits 2 as the dry
 * run does. Needs `npm run build`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../test/helpers/cli.js';
import { requireService } from '../../test/helpers/services.js';

const up = await requireService('postgres');
const table = `disc_src_${randomBytes(4).toString('hex')}`;
const pgConn = 'host: 127.0.0.1, user: postgres, database: test';
let db: pg.Client;

beforeAll(async () => {
  if (!up) return;
  db = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
  await db.connect();
  await db.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, email text NOT NULL, amount numeric(12,2), seen timestamptz)`);
  await db.query(`INSERT INTO ${table} SELECT g, 'e' || g, g * 1.5, now() FROM generate_series(1, 100) g`);
});

afterAll(async () => {
  if (!up) return;
  await db.query(`DROP TABLE IF EXISTS ${table}`);
  await db.end();
});

function pipelineFile(text: string): { dir: string; file: string } {
  const dir = tempDir();
  const file = join(dir, 'p.yaml');
  writeFileSync(file, text);
  return { dir, file };
}

// a sink nobody listens on: discover must not need it
const deadSink = 'sink: { type: postgres, host: 127.0.0.1, port: 1, user: postgres, database: test, table: never }';

describe('weir discover', () => {
  it.skipIf(!up)("prints a table's columns with their exact types, and never contacts the sink", async () => {
    const { file } = pipelineFile(
      `pipeline: disc\nsource: { type: postgres, ${pgConn}, table: ${table}, partitions: 2, partition_column: id }\n${deadSink}\n`,
    );
    const r = await runCli(['discover', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/id\s+integer/);
    expect(r.stdout).toMatch(/email\s+string/);
    expect(r.stdout).toMatch(/amount\s+decimal\(12, 2\)\n/);
    expect(r.stdout).toMatch(/seen\s+timestamp\n/);
    expect(r.stdout).toContain('postgres: 2 partition(s)');
    expect(r.stdout).not.toContain('sink');
  });

  it.skipIf(!up)('--json prints the columns as declared, with precision and scale', async () => {
    const { file } = pipelineFile(`pipeline: disc\nsource: { type: postgres, ${pgConn}, table: ${table} }\n${deadSink}\n`);
    const r = await runCli(['discover', file, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { pipeline: string; source: string; columns: unknown[]; partitions: unknown[] };
    expect(doc.pipeline).toBe('disc');
    expect(doc.source).toBe('postgres');
    expect(doc.columns).toEqual([
      expect.objectContaining({ name: 'id', type: 'integer' }),
      expect.objectContaining({ name: 'email', type: 'string' }),
      expect.objectContaining({ name: 'amount', type: 'decimal', precision: 12, scale: 2 }),
      expect.objectContaining({ name: 'seen', type: 'timestamp' }),
    ]);
    expect(doc.partitions.length).toBeGreaterThan(0);
  });

  it.skipIf(!up)('exits 2 on a missing source table, naming it', async () => {
    const { file } = pipelineFile(`pipeline: disc\nsource: { type: postgres, ${pgConn}, table: ${table}_missing }\n${deadSink}\n`);
    const r = await runCli(['discover', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${table}_missing does not exist`);
  });

  it('exits 2 on a missing CSV file and writes nothing', async () => {
    const { dir, file } = pipelineFile(
      'pipeline: disc\nsource: { type: csv, path: missing.csv }\nsink: { type: sqlite, path: out.db, table: t }\n',
    );
    const r = await runCli(['discover', file, '--json']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('file not found');
    expect(existsSync(join(dir, 'out.db'))).toBe(false);
    expect(existsSync(join(dir, '.weir'))).toBe(false);
  });

  it("a CSV's columns as inferred, as JSON on stdout alone", async () => {
    const { dir, file } = pipelineFile(
      'pipeline: disc\nsource: { type: csv, path: in.csv }\nsink: { type: sqlite, path: out.db, table: t }\n',
    );
    writeFileSync(join(dir, 'in.csv'), 'id,name\n1,a\n2,b\n');
    const r = await runCli(['discover', file, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { columns: { name: string; type: string }[]; estimated_rows: number | null };
    expect(doc.columns.map((c) => [c.name, c.type])).toEqual([
      ['id', 'integer'],
      ['name', 'string'],
    ]);
    expect(existsSync(join(dir, 'out.db'))).toBe(false);
  });
});
