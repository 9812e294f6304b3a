import { mkdirSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { WeirError } from '../../sdk/errors.js';
import type { ColumnType, Schema } from '../../sdk/types.js';
import { Decimal, stringifyJson } from '../../sdk/values.js';

export type SqliteDb = Database.Database;

export interface OpenOptions {
  path: string;
  synchronous: 'off' | 'normal' | 'full';
  busy_timeout: number;
}

export function resolveDbPath(path: string, baseDir: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

/** Opens a connection in WAL mode; `create` makes the file (and its directory) when missing. */
export function openDb(opts: OpenOptions, baseDir: string, create: boolean): SqliteDb {
  const file = resolveDbPath(opts.path, baseDir);
  try {
    if (create) mkdirSync(dirname(file), { recursive: true });
    const db = new Database(file, { fileMustExist: !create, timeout: opts.busy_timeout });
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${opts.synchronous.toUpperCase()}`);
    return db;
  } catch (error) {
    const code = (error as { code?: string }).code ?? 'SQLITE_CANTOPEN';
    throw new WeirError(
      create
        ? `cannot open or create SQLite database ${file} (${code}); check the path and permissions`
        : `SQLite database ${file} does not exist or cannot be opened (${code}); check path`,
      { code, kind: 'connector', cause: error },
    );
  }
}

export const SQLITE_TYPES: Record<ColumnType, string> = {
  integer: 'INTEGER',
  // TEXT affinity (the name holds TEXT, not INT) keeps the digits as they came; NUMERIC affinity would store
  // `1.50` as the REAL 1.5 and round beyond 15 digits. The source reads the name back as decimal.
  decimal: 'DECIMAL_TEXT',
  number: 'REAL',
  string: 'TEXT',
  boolean: 'INTEGER',
  timestamp: 'TEXT',
  json: 'TEXT',
};

export function tableExists(db: SqliteDb, table: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
}

/**
 * A read row with exact values: integers were read as bigints (`safeIntegers`) and
 * become numbers where that is exact; text in `decimals` columns becomes Decimal.
 */
export function exactRow(row: Record<string, unknown>, decimals: readonly string[]): Record<string, unknown> {
  for (const key in row) {
    const v = row[key];
    if (typeof v === 'bigint' && v >= -MAX_SAFE && v <= MAX_SAFE) row[key] = Number(v);
  }
  for (const key of decimals) {
    const v = row[key];
    if (typeof v === 'string') row[key] = Decimal.parse(v) ?? v;
    else if (typeof v === 'number') row[key] = Decimal.parse(String(v)) ?? v;
  }
  return row;
}
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Columns of a statement's result declared as weir's decimal type. */
export function decimalColumns(stmt: { columns(): { name: string; type: string | null }[] }): string[] {
  return stmt
    .columns()
    .filter((c) => c.type !== null && columnType(c.type) === 'decimal')
    .map((c) => c.name);
}

/** The columns of an existing table as declared: name, declared type, NOT NULL. */
export function declaredColumns(db: SqliteDb, table: string): { name: string; type: string; nn: number }[] {
  return db.prepare('SELECT name, type, "notnull" AS nn FROM pragma_table_info(?)').all(table) as {
    name: string;
    type: string;
    nn: number;
  }[];
}

/** The schema of an existing table, from its declared column types. */
export function tableSchema(db: SqliteDb, table: string): Schema {
  return declaredColumns(db, table).map((c) => ({ name: c.name, type: columnType(c.type), nullable: c.nn === 0 }));
}

function columnType(declared: string): ColumnType {
  const t = declared.toUpperCase();
  if (t.includes('INT')) return 'integer';
  if (t.includes('DEC') && t.includes('TEXT')) return 'decimal';
  if (t.includes('REAL') || t.includes('FLOA') || t.includes('DOUB') || t.includes('NUM') || t.includes('DEC')) return 'number';
  if (t.includes('BOOL')) return 'boolean';
  if (t.includes('DATE') || t.includes('TIME')) return 'timestamp';
  if (t.includes('JSON')) return 'json';
  return 'string';
}

/** Converts a row value to something better-sqlite3 binds. */
export function toSqlite(v: unknown): unknown {
  switch (typeof v) {
    case 'boolean':
      return v ? 1 : 0;
    case 'undefined':
      return null;
    case 'object':
      if (v === null) return null;
      if (v instanceof Date) return v.toISOString();
      if (v instanceof Uint8Array) return Buffer.from(v);
      if (Decimal.is(v)) return v.text;
      return stringifyJson(v);
    default:
      return v;
  }
}
