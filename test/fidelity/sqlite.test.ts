/**
 * weir's CSV → SQLite loads compared with the `sqlite3` shell's `.import --csv` on
 * generated hard files (generate.ts), where the two rules agree: `.import` has no
 * NULL (an empty field is ''), so the files have no unquoted empty fields, and
 * SQLite has no boolean (weir stores 1/0), so no boolean columns.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runYaml } from '../foundation/harness.js';
import { tempDir } from '../helpers/cli.js';
import { type CsvCase, csvCase, KINDS, propertyRuns } from './generate.js';

const run = promisify(execFile);
const dir = tempDir();
const kinds = KINDS.filter((k) => k !== 'boolean');

/** Every row with each value's storage class and text (`quote()`), in rid order. */
function contents(db: string, table: string): string {
  const conn = new Database(db, { readonly: true });
  try {
    const cols = (conn.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as { name: string }[]).map((c) => `quote("${c.name}")`);
    const rows = conn.prepare(`SELECT ${cols.join(" || '|' || ")} AS r FROM "${table}" ORDER BY CAST(rid AS INTEGER)`).all() as {
      r: string;
    }[];
    return rows.map((r) => r.r).join('\n');
  } finally {
    conn.close();
  }
}

async function sqliteImport(db: string, table: string, path: string): Promise<void> {
  await run('sqlite3', [db, `.import --csv --skip 1 ${path} ${table}`]);
}

async function weir(db: string, table: string, path: string): Promise<void> {
  const { summary } = await runYaml(
    `
pipeline: fidelity-sqlite-${table}
source: { type: csv, path: ${path} }
sink: { type: sqlite, path: ${db}, table: ${table} }
`,
    [],
    dir,
  );
  expect(summary.status, JSON.stringify(summary.error ?? summary)).toBe('succeeded');
}

async function caseFiles(c: CsvCase) {
  const id = randomBytes(4).toString('hex');
  const path = join(dir, `case-${id}.csv`);
  await writeFile(path, c.text);
  return { path, db: join(dir, `case-${id}.db`) };
}

describe('CSV → SQLite equals sqlite3 .import', () => {
  it('into TEXT tables: the text of every field, byte for byte', async () => {
    await fc.assert(
      fc.asyncProperty(csvCase({ nulls: false, kinds }), async (c) => {
        const { path, db } = await caseFiles(c);
        const ddl = ['rid', ...c.columns].map((col) => `"${col}" TEXT`).join(', ');
        const conn = new Database(db);
        conn.exec(`CREATE TABLE ref (${ddl}); CREATE TABLE w (${ddl});`);
        conn.close();
        await sqliteImport(db, 'ref', path);
        await weir(db, 'w', path);
        expect(contents(db, 'w'), c.text).toBe(contents(db, 'ref'));
      }),
      propertyRuns(10),
    );
  });

  it('into the table weir creates: .import into the same declared types stores the same values', async () => {
    await fc.assert(
      fc.asyncProperty(csvCase({ nulls: false, kinds }), async (c) => {
        const { path, db } = await caseFiles(c);
        await weir(db, 'w', path);
        const conn = new Database(db);
        const ddl = (conn.prepare('SELECT name, type FROM pragma_table_info(?)').all('w') as { name: string; type: string }[])
          .map((col) => `"${col.name}" ${col.type}`)
          .join(', ');
        conn.exec(`CREATE TABLE ref (${ddl})`);
        conn.close();
        await sqliteImport(db, 'ref', path);
        expect(contents(db, 'w'), c.text).toBe(contents(db, 'ref'));
      }),
      propertyRuns(10),
    );
  });
});
