import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '../../test/helpers/services.js';
import { WeirError } from './errors.js';
import { type ColumnNaming, type ColumnRules, matchColumns, planColumns, quoteIdentifier, type SqlDialect, snakeCase } from './sql.js';
import type { Schema } from './types.js';

const PAYLOADS = [
  'users; DROP TABLE x',
  'a"b',
  "x' OR '1'='1",
  'a`b',
  '"; DROP TABLE t; --',
  '`; DROP TABLE t; --',
  'a\\',
  'x"',
  '"',
  '``',
  'Robert"); DROP TABLE students;--',
];

/** Any name a database can hold: no NUL, at most 60 characters. */
const anyName = fc.string({ minLength: 1, maxLength: 60, unit: 'grapheme-ascii' }).filter((s) => !s.includes('\0'));
const hostileName = fc.oneof(anyName, fc.constantFrom(...PAYLOADS), fc.stringMatching(/^[a-z"`'; \-()=*]{1,30}$/));

describe('quoteIdentifier', () => {
  it('wraps in the quote and doubles quotes inside', () => {
    expect(quoteIdentifier('events')).toBe('"events"');
    expect(quoteIdentifier('a"b')).toBe('"a""b"');
    expect(quoteIdentifier('a`b', '`')).toBe('`a``b`');
    expect(quoteIdentifier('users; DROP TABLE x')).toBe('"users; DROP TABLE x"');
  });

  it('yields one token: the quote never appears un-doubled inside', () => {
    fc.assert(
      fc.property(hostileName, fc.constantFrom('"' as const, '`' as const), (name, q) => {
        const quoted = quoteIdentifier(name, q);
        const inner = quoted.slice(1, -1);
        return (
          quoted.startsWith(q) &&
          quoted.endsWith(q) &&
          inner
            .split(q + q)
            .join('')
            .indexOf(q) === -1
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips any name through SQLite: the table and column created have exactly that name, nothing else runs', () => {
    const db = new Database(':memory:');
    try {
      db.exec('CREATE TABLE sentinel (x INTEGER)');
      fc.assert(
        fc.property(hostileName, hostileName, (table, column) => {
          // names SQLite itself reserves or that the sentinel already holds (case-insensitively)
          fc.pre(table.toLowerCase() !== 'sentinel' && !table.toLowerCase().startsWith('sqlite_'));
          const t = quoteIdentifier(table);
          const c = quoteIdentifier(column);
          db.exec(`CREATE TABLE ${t} (${c} TEXT)`);
          db.prepare(`INSERT INTO ${t} (${c}) VALUES (?)`).run("v' OR '1'='1");
          const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map(
            (r) => r.name,
          );
          const cols = (db.prepare('SELECT name FROM pragma_table_info(?)').all(table) as { name: string }[]).map((r) => r.name);
          const rows = db.prepare(`SELECT ${c} AS v FROM ${t}`).all() as { v: string }[];
          db.exec(`DROP TABLE ${t}`);
          return (
            tables.includes(table) &&
            tables.includes('sentinel') &&
            tables.length === 2 &&
            cols.length === 1 &&
            cols[0] === column &&
            rows.length === 1 &&
            rows[0]?.v === "v' OR '1'='1"
          );
        }),
        { numRuns: 500 },
      );
    } finally {
      db.close();
    }
  });
});

const schemaOf = (...names: string[]): Schema => names.map((name) => ({ name, type: 'string' }));
const rules = (dialect: SqlDialect, naming: ColumnNaming = 'keep'): ColumnRules => ({ dialect, naming, where: 'sink table t' });

function configError(fn: () => unknown): WeirError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(WeirError);
    expect((error as WeirError).kind).toBe('config');
    return error as WeirError;
  }
  return expect.unreachable('no error was thrown');
}

describe('snakeCase', () => {
  it.each([
    ['Airport Name', 'airport_name'],
    ['Cost Total $', 'cost_total'],
    ['adjusted CO2', 'adjusted_co2'],
    ['select', 'select'],
    ['CamelCase', 'camelcase'],
    ['Größe', 'größe'],
    ['2nd Try', '_2nd_try'],
    ['__a--b__', 'a_b'],
    ['a"b; DROP TABLE x', 'a_b_drop_table_x'],
    ['$$', ''],
  ])('%j → %j', (name, expected) => {
    expect(snakeCase(name)).toBe(expected);
  });

  it('is idempotent and yields only lower-case letters, digits and single inner underscores', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (name) => {
        const s = snakeCase(name);
        return (
          snakeCase(s) === s && !/^_(?!\p{N})|_$|__/u.test(s) && /^[\p{Ll}\p{Lo}\p{Lm}\p{N}_]*$/u.test(s.replace(/\p{Lt}|\p{Lu}/gu, 'x'))
        );
      }),
      { numRuns: 1000 },
    );
  });
});

describe('planColumns', () => {
  it.each(PAYLOADS)('accepts the column name %j as it is, in every dialect', (name) => {
    for (const dialect of ['postgres', 'sqlite'] as const)
      expect(planColumns(schemaOf('id', name), rules(dialect))).toEqual({ fields: ['id', name], columns: ['id', name] });
    if (!name.endsWith(' ')) expect(planColumns(schemaOf(name), rules('mysql')).columns).toEqual([name]);
  });

  it('accepts spaces, punctuation, reserved words, mixed case and non-ASCII letters', () => {
    const names = ['Airport Name', 'Cost Total $', 'adjusted CO2', 'select', 'MixedCase', 'Größe'];
    for (const dialect of ['postgres', 'mysql', 'sqlite'] as const)
      expect(planColumns(schemaOf(...names), rules(dialect)).columns).toEqual(names);
    expect(planColumns(schemaOf(...names), rules('postgres', 'snake_case')).columns).toEqual([
      'airport_name',
      'cost_total',
      'adjusted_co2',
      'select',
      'mixedcase',
      'größe',
    ]);
  });

  it('refuses an empty name and a NUL byte, naming the column and the fix', () => {
    expect(configError(() => planColumns(schemaOf('id', ''), rules('postgres'))).message).toMatch(/empty name.*rename it in the source/);
    const nul = configError(() => planColumns(schemaOf('a\0b'), rules('sqlite')));
    expect(nul.message).toContain('"a\\u0000b" contains a NUL byte');
    expect(nul.code).toBe('invalid_column_name');
    expect(configError(() => planColumns(schemaOf('$ %'), rules('postgres', 'snake_case'))).message).toMatch(
      /field "\$ %" has no letter or digit, so snake_case leaves nothing of it/,
    );
  });

  it('refuses names PostgreSQL would cut short: more than 63 bytes (not characters)', () => {
    expect(planColumns(schemaOf('x'.repeat(63)), rules('postgres')).columns).toEqual(['x'.repeat(63)]);
    const long = 'ä'.repeat(32); // 32 characters, 64 bytes
    const e = configError(() => planColumns(schemaOf('id', long), rules('postgres')));
    expect(e.message).toContain(`column "${long}" is 64 bytes long in UTF-8; PostgreSQL names are at most 63 bytes`);
    expect(e.message).toContain('silently cut');
    expect(e.message).toContain('rename it in the source');
    expect(planColumns(schemaOf(long), rules('mysql')).columns).toEqual([long]);
    expect(planColumns(schemaOf('y'.repeat(5000)), rules('sqlite')).columns).toEqual(['y'.repeat(5000)]);
  });

  it('suggests snake_case when it would make a name fit', () => {
    const name = `${'Total Cost / '.repeat(5)}$`; // 66 characters, 54 in snake_case
    expect(configError(() => planColumns(schemaOf(name), rules('mysql'))).message).toMatch(
      /is 66 characters long; MySQL\/MariaDB names are at most 64 characters: .*or set column_names: snake_case$/,
    );
  });

  it('refuses MySQL names over 64 characters and names ending in a space', () => {
    expect(planColumns(schemaOf('z'.repeat(64)), rules('mysql')).columns).toHaveLength(1);
    expect(configError(() => planColumns(schemaOf('z'.repeat(65)), rules('mysql'))).message).toContain('at most 64 characters');
    const e = configError(() => planColumns(schemaOf('Name '), rules('mysql')));
    expect(e.message).toContain('column "Name " ends with a space, which MySQL/MariaDB refuses');
    expect(e.message).toContain('column_names: snake_case');
    expect(planColumns(schemaOf('Name '), rules('mysql', 'snake_case')).columns).toEqual(['name']);
    expect(planColumns(schemaOf('Name '), rules('postgres')).columns).toEqual(['Name ']);
  });

  it('refuses two fields that get the same column, naming both', () => {
    const e = configError(() => planColumns(schemaOf('id', 'Airport Name', 'airport_name'), rules('postgres', 'snake_case')));
    expect(e.message).toContain('fields "Airport Name" and "airport_name" would both be written to column "airport_name"');
    expect(planColumns(schemaOf('Name', 'name'), rules('postgres')).columns).toEqual(['Name', 'name']);
    // MySQL and SQLite take names that differ only in case for one column
    expect(configError(() => planColumns(schemaOf('Name', 'name'), rules('mysql'))).message).toContain('"Name" and "name"');
    expect(configError(() => planColumns(schemaOf('Name', 'name'), rules('sqlite'))).message).toContain('"Name" and "name"');
  });
});

describe('matchColumns', () => {
  const plan = (dialect: SqlDialect, ...names: string[]) => planColumns(schemaOf(...names), rules(dialect));

  it('maps each field to the column of exactly its name', () => {
    const existing = ['Größe', 'select', 'Airport Name', 'extra'];
    expect(matchColumns(plan('postgres', 'Airport Name', 'Größe', 'select'), existing, rules('postgres')).columns).toEqual([
      'Airport Name',
      'Größe',
      'select',
    ]);
  });

  it('names the missing column and the nearest existing one', () => {
    const e = configError(() => matchColumns(plan('postgres', 'id', 'Airport Nme'), ['id', 'Airport Name', 'cost'], rules('postgres')));
    expect(e.code).toBe('schema_mismatch');
    expect(e.message).toContain('sink table t has no column "Airport Nme"');
    expect(e.message).toContain('did you mean "Airport Name"?');
    expect(e.message).toContain('"id", "Airport Name", "cost"');
  });

  it('in PostgreSQL, a column that differs in case is another column (suggested)', () => {
    const e = configError(() => matchColumns(plan('postgres', 'Name'), ['name'], rules('postgres')));
    expect(e.message).toContain('no column "Name"');
    expect(e.message).toContain('did you mean "name"?');
  });

  it('in MySQL and SQLite, whose column names ignore case, the table spelling of the same name', () => {
    expect(matchColumns(plan('mysql', 'NAME', 'Größe'), ['name', 'GRÖSSE', 'größe'], rules('mysql')).columns).toEqual(['name', 'größe']);
    expect(matchColumns(plan('sqlite', 'NAME'), ['name'], rules('sqlite')).columns).toEqual(['name']);
  });

  it('with snake_case, names the normalised column and the field it comes from', () => {
    const p = planColumns(schemaOf('Cost Total $'), rules('postgres', 'snake_case'));
    const e = configError(() => matchColumns(p, ['cost'], rules('postgres', 'snake_case')));
    expect(e.message).toContain('no column "cost_total" (field "Cost Total $" in snake_case)');
  });
});

const suffix = () => randomBytes(4).toString('hex');

const pgUp = await requireService('postgres');
describe.skipIf(!pgUp)('quoteIdentifier against PostgreSQL', () => {
  let client: pg.Client;
  beforeAll(async () => {
    client = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
  });

  it('creates exactly the named temporary table and column, whatever the name', async () => {
    const tag = suffix();
    await fc.assert(
      fc.asyncProperty(hostileName, hostileName, async (table, column) => {
        const name = `${table.slice(0, 40)}${tag}`;
        await client.query(`CREATE TEMP TABLE ${quoteIdentifier(name)} (${quoteIdentifier(column)} text)`);
        try {
          const found = await client.query('SELECT count(*)::int AS n FROM pg_class WHERE relname = $1 AND relpersistence = $2', [
            name,
            't',
          ]);
          const r = await client.query(`SELECT * FROM ${quoteIdentifier(name)} LIMIT 0`);
          return found.rows[0].n === 1 && r.fields.length === 1 && r.fields[0]?.name === column;
        } finally {
          await client.query(`DROP TABLE ${quoteIdentifier(name)}`);
        }
      }),
      { numRuns: 40 },
    );
  });
});

const mysqlUp = await requireService('mysql');
describe.skipIf(!mysqlUp)('quoteIdentifier against MariaDB', () => {
  let conn: mysql.Connection;
  beforeAll(async () => {
    conn = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', password: '', database: 'test' });
  });
  afterAll(async () => {
    await conn?.end();
  });

  it('creates exactly the named column, whatever the name', async () => {
    const table = `weir_q_${suffix()}`;
    // MariaDB refuses names ending in a space
    const mysqlName = hostileName.filter((s) => !s.endsWith(' '));
    await fc.assert(
      fc.asyncProperty(mysqlName, async (column) => {
        await conn.query(`CREATE TEMPORARY TABLE ${quoteIdentifier(table, '`')} (${quoteIdentifier(column, '`')} TEXT)`);
        try {
          const [, fields] = await conn.query(`SELECT * FROM ${quoteIdentifier(table, '`')} LIMIT 0`);
          return fields.length === 1 && fields[0]?.name === column;
        } finally {
          await conn.query(`DROP TEMPORARY TABLE ${quoteIdentifier(table, '`')}`);
        }
      }),
      { numRuns: 40 },
    );
  });
});
