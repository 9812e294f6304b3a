import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '../../test/helpers/services.js';
import { WeirError } from './errors.js';
import { IDENTIFIER } from './options.js';
import { assertSchemaIdentifiers, quoteIdentifier } from './sql.js';
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

describe('assertSchemaIdentifiers', () => {
  it.each(PAYLOADS)('refuses the column name %j as a config error', (name) => {
    const schema: Schema = [
      { name: 'id', type: 'integer' },
      { name, type: 'string' },
    ];
    expect(() => assertSchemaIdentifiers(schema, 'sink table t')).toThrow(WeirError);
    try {
      assertSchemaIdentifiers(schema, 'sink table t');
    } catch (error) {
      expect((error as WeirError).kind).toBe('config');
      expect((error as WeirError).code).toBe('invalid_column_name');
      expect((error as WeirError).message).toContain(JSON.stringify(name));
    }
  });

  it('throws exactly when some name is not a plain identifier', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(hostileName, fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,20}$/)), { minLength: 1, maxLength: 6 }),
        (names) => {
          const schema: Schema = names.map((name) => ({ name, type: 'string' }));
          let threw = false;
          try {
            assertSchemaIdentifiers(schema, 'x');
          } catch {
            threw = true;
          }
          return threw === names.some((n) => !IDENTIFIER.test(n));
        },
      ),
      { numRuns: 1000 },
    );
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
