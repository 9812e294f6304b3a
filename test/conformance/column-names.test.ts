/**
 * Any column name, in every SQL sink and source (issue #9, item 4): a CSV export's
 * header with spaces, punctuation, a reserved word, mixed case and non-ASCII letters
 * loads into an existing table with those columns, into a table weir creates (names
 * kept, or `column_names: snake_case`), and reads back through the database's source,
 * partition ranges and upsert keys included. Whole runs in process (runYaml).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quoteIdentifier } from '../../src/sdk/sql.js';
import { runYaml } from '../foundation/harness.js';
import { tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';

const pgUp = await requireService('postgres');
const mysqlUp = await requireService('mysql');

const HEADER = ['id', 'Airport Name', 'Cost Total $', 'adjusted CO2', 'select', 'MixedCase', 'Größe'];
const SNAKE = ['id', 'airport_name', 'cost_total', 'adjusted_co2', 'select', 'mixedcase', 'größe'];
const ROWS = [
  ['1', 'Heathrow', '120', '35', 'a', 'x', 'groß'],
  ['2', 'Schiphol, "AMS"', '80', '20', 'b', 'y', 'klein'],
  ['3', 'Zürich', '95', '28', 'c', 'z', 'mittel'],
];

const csvField = (v: string) => (/[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);
const csvText = (header: string[], rows: string[][]) => [header, ...rows].map((r) => r.map(csvField).join(',')).join('\n') + '\n';
const yamlKey = (name: string) => JSON.stringify(name);

/** One SQL database the tests load into and read from. */
interface Target {
  sink(table: string): string;
  /** The source options reading `table`, as YAML flow-map entries. */
  source(table: string): string;
  create(table: string, columns: string[], primaryKey?: string): Promise<void>;
  columns(table: string): Promise<string[]>;
  /** The rows as text, ordered by id, reading `columns` in order. */
  rows(table: string, columns: string[]): Promise<string[][]>;
  drop(table: string): Promise<void>;
}

const unique = (prefix: string) => `${prefix}_${randomBytes(5).toString('hex')}`;

/** Writes the CSV and runs csv → sink; returns the summary. */
async function load(target: Target, table: string, header: string[], rows: string[][], sinkExtra = '') {
  const dir = tempDir('weir-names-');
  writeFileSync(join(dir, 'in.csv'), csvText(header, rows));
  const { summary } = await runYaml(
    `
pipeline: ${unique('names')}
source: { type: csv, path: in.csv }
sink: { ${target.sink(table)}${sinkExtra} }
`,
    [],
    dir,
  );
  return summary;
}

/** Runs the database's source → jsonl and returns the records. */
async function readBack(target: Target, table: string, sourceExtra = '') {
  const dir = tempDir('weir-names-read-');
  const { summary } = await runYaml(
    `
pipeline: ${unique('names-read')}
source: { ${target.source(table)}${sourceExtra} }
sink: { type: jsonl, path: out.jsonl }
`,
    [],
    dir,
  );
  expect(summary.error?.error_message).toBeUndefined();
  return readFileSync(join(dir, 'out.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .sort((a, b) => Number(a.id) - Number(b.id));
}

function suite(name: string, target: () => Target, features: { upsert: boolean; partitions: boolean }) {
  describe(name, () => {
    const made: string[] = [];
    const table = (prefix = 't') => {
      const t = unique(prefix);
      made.push(t);
      return t;
    };
    afterAll(async () => {
      for (const t of made) await target().drop(t);
    });

    it('loads the header into an existing table with exactly those columns', async () => {
      const t = table();
      await target().create(t, HEADER);
      const summary = await load(target(), t, HEADER, ROWS);
      expect(summary.error?.error_message).toBeUndefined();
      expect(summary.totals.rows_written).toBe(3);
      expect(await target().rows(t, HEADER)).toEqual(ROWS);
    });

    it('creates the table with the header names as they are (column_names: keep, the default)', async () => {
      const t = table();
      const summary = await load(target(), t, HEADER, ROWS);
      expect(summary.error?.error_message).toBeUndefined();
      expect(await target().columns(t)).toEqual(HEADER);
      expect(await target().rows(t, HEADER)).toEqual(ROWS);
      // and reads them back under the same names
      const back = await readBack(target(), t);
      expect(back.map((r) => Object.keys(r))).toEqual(ROWS.map(() => HEADER));
      expect(back.map((r) => HEADER.map((h) => String(r[h])))).toEqual(ROWS);
    });

    it('creates the table with snake_case names and writes each field to its normalised column', async () => {
      const t = table();
      const summary = await load(target(), t, HEADER, ROWS, ', column_names: snake_case');
      expect(summary.error?.error_message).toBeUndefined();
      expect(await target().columns(t)).toEqual(SNAKE);
      expect(await target().rows(t, SNAKE)).toEqual(ROWS);
    });

    it('with snake_case, maps the fields onto an existing table by the normalised names', async () => {
      const t = table();
      await target().create(t, [...SNAKE, 'untouched']);
      const summary = await load(target(), t, HEADER, ROWS, ', column_names: snake_case');
      expect(summary.error?.error_message).toBeUndefined();
      expect(await target().rows(t, SNAKE)).toEqual(ROWS);
    });

    it('a field the existing table has no column for is a config error naming it and the nearest column', async () => {
      const t = table();
      await target().create(t, HEADER);
      const typo = HEADER.map((h) => (h === 'Airport Name' ? 'Airport Nme' : h));
      const summary = await load(target(), t, typo, ROWS);
      expect(summary.status).not.toBe('succeeded');
      expect(summary.error?.kind).toBe('config');
      expect(summary.error?.error_message).toContain('has no column "Airport Nme"');
      expect(summary.error?.error_message).toContain('did you mean "Airport Name"?');
      expect(await target().rows(t, HEADER)).toEqual([]);
    });

    it('two fields that snake_case gives the same name are a config error naming both', async () => {
      const t = table();
      const summary = await load(target(), t, ['id', 'Airport Name', 'airport_name'], [['1', 'a', 'b']], ', column_names: snake_case');
      expect(summary.error?.kind).toBe('config');
      expect(summary.error?.error_message).toContain(
        'fields "Airport Name" and "airport_name" would both be written to column "airport_name"',
      );
      expect(await target().columns(t)).toEqual([]);
    });

    it.skipIf(!features.upsert)('upserts by a key column whose name has a space, also in snake_case', async () => {
      const t = table();
      await target().create(t, HEADER, 'Airport Name');
      const first = await load(target(), t, HEADER, ROWS, `, mode: upsert, key_columns: [${yamlKey('Airport Name')}]`);
      expect(first.error?.error_message).toBeUndefined();
      const changed = ROWS.map((r) => (r[1] === 'Zürich' ? [...r.slice(0, 4), 'changed', ...r.slice(5)] : r));
      await load(target(), t, HEADER, changed.slice(2), `, mode: upsert, key_columns: [${yamlKey('Airport Name')}]`);
      expect(await target().rows(t, HEADER)).toEqual(changed);

      const s = table();
      const created = await load(
        target(),
        s,
        HEADER,
        ROWS,
        `, mode: upsert, column_names: snake_case, key_columns: [${yamlKey('Airport Name')}]`,
      );
      expect(created.error?.error_message).toBeUndefined();
      await load(target(), s, HEADER, changed.slice(2), `, mode: upsert, column_names: snake_case, key_columns: [airport_name]`);
      expect(await target().rows(s, SNAKE)).toEqual(changed);
    });

    it('replaces the rows of a table with such names (staging table and swap)', async () => {
      const t = table();
      await load(target(), t, HEADER, ROWS, ', column_names: snake_case');
      const summary = await load(target(), t, HEADER, ROWS.slice(1), ', mode: replace, column_names: snake_case');
      expect(summary.error?.error_message).toBeUndefined();
      expect(await target().rows(t, SNAKE)).toEqual(ROWS.slice(1));
    });

    it.skipIf(!features.partitions)('reads a table split into ranges of a partition column with such a name', async () => {
      const t = table();
      const header = ['Row Id', ...HEADER.slice(1)];
      await load(target(), t, header, ROWS);
      const back = await readBack(target(), t, `, partition_column: ${yamlKey('Row Id')}, partitions: 3`);
      expect(back.map((r) => header.map((h) => String(r[h])))).toEqual(ROWS);
    });
  });
}

// ---------------------------------------------------------------------------

describe.skipIf(!pgUp)('postgres', () => {
  let admin: pg.Client;
  const q = (n: string) => quoteIdentifier(n);
  beforeAll(async () => {
    admin = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
  });
  suite(
    'sink and source',
    () => ({
      sink: (table) => `type: postgres, host: 127.0.0.1, user: postgres, database: test, table: ${table}`,
      source: (table) => `type: postgres, host: 127.0.0.1, user: postgres, database: test, table: ${table}`,
      async create(table, columns, key) {
        await admin.query(`CREATE TABLE ${q(table)} (${columns.map((c) => `${q(c)} text${c === key ? ' PRIMARY KEY' : ''}`).join(', ')})`);
      },
      async columns(table) {
        const r = await admin.query('SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 ORDER BY attnum', [
          q(table),
        ]);
        return r.rows.map((x) => x.attname as string);
      },
      async rows(table, columns) {
        const r = await admin.query({
          text: `SELECT ${columns.map((c) => `${q(c)}::text`).join(', ')} FROM ${q(table)} ORDER BY ${q(columns[0] as string)}::bigint`,
          rowMode: 'array',
        });
        return r.rows as string[][];
      },
      async drop(table) {
        await admin.query(`DROP TABLE IF EXISTS ${q(table)}`);
      },
    }),
    { upsert: true, partitions: true },
  );

  it('refuses a name over 63 bytes, which PostgreSQL would cut short', async () => {
    const dir = tempDir('weir-names-');
    const long = `Größe ${'der Fläche '.repeat(5)}`; // 62 characters, 69 bytes
    writeFileSync(join(dir, 'in.csv'), `id,${long}\n1,x\n`);
    const table = unique('long');
    const { summary } = await runYaml(
      `pipeline: ${unique('names')}\nsource: { type: csv, path: in.csv }\nsink: { type: postgres, user: postgres, database: test, table: ${table} }\n`,
      [],
      dir,
    );
    expect(summary.error?.kind).toBe('config');
    expect(summary.error?.error_message).toContain('bytes long in UTF-8; PostgreSQL names are at most 63 bytes');
    expect((await admin.query('SELECT to_regclass($1) AS t', [table])).rows[0].t).toBeNull();
  });
});

describe.skipIf(!mysqlUp)('mariadb', () => {
  let admin: mysql.Connection;
  const q = (n: string) => quoteIdentifier(n, '`');
  beforeAll(async () => {
    admin = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', password: '', database: 'test' });
  });
  afterAll(async () => {
    await admin?.end();
  });
  suite(
    'sink and source',
    () => ({
      sink: (table) => `type: mysql, host: 127.0.0.1, user: root, database: test, table: ${table}`,
      source: (table) => `type: mysql, host: 127.0.0.1, user: root, database: test, table: ${table}`,
      async create(table, columns, key) {
        await admin.query(
          `CREATE TABLE ${q(table)} (${columns.map((c) => `${q(c)} ${c === key ? 'VARCHAR(255) PRIMARY KEY' : 'TEXT'}`).join(', ')}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
        );
      },
      async columns(table) {
        const [rows] = await admin.query(
          'SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
          ['test', table],
        );
        return (rows as { c: string }[]).map((r) => r.c);
      },
      async rows(table, columns) {
        const [rows] = await admin.query({
          sql: `SELECT ${columns.map((c) => `CAST(${q(c)} AS CHAR)`).join(', ')} FROM ${q(table)} ORDER BY CAST(${q(columns[0] as string)} AS SIGNED)`,
          rowsAsArray: true,
        });
        return rows as string[][];
      },
      async drop(table) {
        await admin.query(`DROP TABLE IF EXISTS ${q(table)}`);
      },
    }),
    { upsert: true, partitions: true },
  );

  it('refuses a name ending in a space, which MariaDB refuses; snake_case trims it', async () => {
    const dir = tempDir('weir-names-');
    // a JSON key keeps its trailing space (a CSV header is trimmed by the csv source)
    writeFileSync(join(dir, 'in.jsonl'), '{"id":1,"Name ":"x"}\n');
    const table = unique('space');
    const run = (extra: string) =>
      runYaml(
        `pipeline: ${unique('names')}\nsource: { type: jsonl, path: in.jsonl }\nsink: { type: mysql, user: root, database: test, table: ${table}${extra} }\n`,
        [],
        dir,
      );
    const refused = (await run('')).summary;
    expect(refused.error?.kind).toBe('config');
    expect(refused.error?.error_message).toContain('column "Name " ends with a space');
    expect((await run(', column_names: snake_case')).summary.error?.error_message).toBeUndefined();
    const [rows] = await admin.query(`SELECT name FROM ${q(table)}`);
    expect(rows).toEqual([{ name: 'x' }]);
    await admin.query(`DROP TABLE ${q(table)}`);
  });
});

describe('sqlite', () => {
  const dir = tempDir('weir-names-sqlite-');
  const file = join(dir, 'db.sqlite');
  const q = (n: string) => quoteIdentifier(n);
  const withDb = <T>(fn: (db: Database.Database) => T): T => {
    const db = new Database(file);
    try {
      return fn(db);
    } finally {
      db.close();
    }
  };
  suite(
    'sink and source',
    () => ({
      sink: (table) => `type: sqlite, path: ${file}, table: ${table}`,
      source: (table) => `type: sqlite, path: ${file}, table: ${table}`,
      async create(table, columns) {
        withDb((db) => db.exec(`CREATE TABLE ${q(table)} (${columns.map((c) => `${q(c)} TEXT`).join(', ')})`));
      },
      async columns(table) {
        return withDb((db) => (db.prepare('SELECT name FROM pragma_table_info(?)').all(table) as { name: string }[]).map((c) => c.name));
      },
      async rows(table, columns) {
        return withDb(
          (db) =>
            db
              .prepare(
                `SELECT ${columns.map((c) => `CAST(${q(c)} AS TEXT)`).join(', ')} FROM ${q(table)} ORDER BY CAST(${q(columns[0] as string)} AS INTEGER)`,
              )
              .raw()
              .all() as string[][],
        );
      },
      async drop(table) {
        withDb((db) => db.exec(`DROP TABLE IF EXISTS ${q(table)}`));
      },
    }),
    { upsert: false, partitions: false },
  );
});
