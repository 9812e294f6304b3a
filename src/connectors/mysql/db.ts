/**
 * Connections, error classification, type mapping and value conversion shared
 * by the MySQL/MariaDB source, sink and checks. Runs on the planner and on workers.
 */
import type mysql from 'mysql2/promise';
import type { Log } from '../../sdk/connector.js';
import { NETWORK_ERROR_CODES, RowError, WeirError } from '../../sdk/errors.js';
import type { OptionsOf } from '../../sdk/options.js';
import { quoteIdentifier } from '../../sdk/sql.js';
import { tlsConfig } from '../../sdk/tls.js';
import type { Column, ColumnType, Schema } from '../../sdk/types.js';
import { Decimal } from '../../sdk/values.js';
import { int64, isoDatetime } from './encode.js';
import type { mysqlOptions } from './spec.js';

export type MysqlOptions = OptionsOf<typeof mysqlOptions>;
export type Conn = mysql.Connection;

/** Backtick-quotes an identifier. */
export const q = (name: string): string => quoteIdentifier(name, '`');

/** Where the server is, for messages (never the password). */
export function where(opts: MysqlOptions): string {
  return `${opts.user}@${opts.host}:${opts.port}/${opts.database}`;
}

/** Session settings every weir connection uses: UTC, utf8mb4, strict mode. */
const SESSION_SQL =
  "SET time_zone = '+00:00', sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_TRANS_TABLES', 'NO_AUTO_VALUE_ON_ZERO', 'NO_ENGINE_SUBSTITUTION')";

/**
 * How values are read (source, and the sink's own queries): DECIMAL as an exact
 * Decimal, BIGINT as a number (bigint beyond 2^53, also BIGINT UNSIGNED's top),
 * DATETIME and TIMESTAMP as ISO-8601 text keeping every fraction digit the column
 * has (a Date would keep milliseconds only; TIMESTAMP with `Z`: the session is
 * UTC), DATE as `YYYY-MM-DD`, TINYINT(1) as boolean; the rest as mysql2 reads it.
 */
const typeCast: mysql.TypeCast = (field, next) => {
  switch (field.type) {
    case 'TINY':
      if (field.length !== 1) break;
      return nullOr(field.string(), (v) => v !== '0');
    case 'NEWDECIMAL':
    case 'DECIMAL':
      return nullOr(field.string(), (v) => Decimal.parse(v) ?? v);
    case 'LONGLONG':
      return nullOr(field.string(), int64);
    case 'DATETIME':
      return nullOr(field.string(), (v) => isoDatetime(v, false));
    case 'TIMESTAMP':
      return nullOr(field.string(), (v) => isoDatetime(v, true));
    case 'DATE':
      return field.string();
  }
  return next();
};

const nullOr = <T>(text: string | null, parse: (text: string) => T): T | null => (text === null ? null : parse(text));

/** Opens one connection (worker or planner). Dates are read and written in UTC; values are read by {@link typeCast}. */
export async function connect(opts: MysqlOptions, ctx: { baseDir: string; log?: Log }): Promise<Conn> {
  const ssl = tlsConfig(opts, ctx.baseDir, ctx.log);
  let conn: Conn;
  try {
    // the driver loads on first use: a run that does not touch MySQL does not pay for it
    const { createConnection } = (await import('mysql2/promise')).default;
    conn = await createConnection({
      host: opts.host,
      port: opts.port,
      user: opts.user,
      password: opts.password ?? '',
      database: opts.database,
      connectTimeout: opts.connect_timeout,
      charset: 'utf8mb4',
      timezone: 'Z',
      supportBigNumbers: true,
      bigNumberStrings: false,
      ...(ssl ? { ssl: ssl as mysql.SslOptions } : {}),
      typeCast,
    });
  } catch (error) {
    throw classify(error, `cannot connect to MySQL/MariaDB at ${where(opts)}`);
  }
  conn.on('error', () => {}); // a dropped idle connection must not crash the process; the next query reports it
  try {
    await conn.query(SESSION_SQL);
  } catch (error) {
    conn.destroy();
    throw classify(error, `cannot configure the session on ${where(opts)}`);
  }
  return conn;
}

/** Closes a connection politely, or destroys it when that fails. Never throws. */
export async function release(conn: Conn | undefined): Promise<void> {
  if (!conn) return;
  try {
    await Promise.race([conn.end(), new Promise((_, reject) => setTimeout(() => reject(new Error('end timed out')), 2000).unref())]);
  } catch {
    conn.destroy();
  }
}

interface MysqlDriverError {
  code?: string;
  errno?: number;
  sqlMessage?: string;
  message?: string;
  fatal?: boolean;
  sql?: string;
}

/** Server errors that only one row (or one batch's values) causes: dead-letter candidates. */
const DATA_ERRNOS = new Set([
  1048, // ER_BAD_NULL_ERROR
  1062, // ER_DUP_ENTRY
  1263, // ER_WARN_NULL_TO_NOTNULL
  1264, // ER_WARN_DATA_OUT_OF_RANGE
  1265, // WARN_DATA_TRUNCATED
  1292, // ER_TRUNCATED_WRONG_VALUE
  1364, // ER_NO_DEFAULT_FOR_FIELD
  1365, // ER_DIVISION_BY_ZERO
  1366, // ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
  1367, // ER_ILLEGAL_VALUE_FOR_TYPE
  1406, // ER_DATA_TOO_LONG
  1451, // ER_ROW_IS_REFERENCED_2
  1452, // ER_NO_REFERENCED_ROW_2
  1586, // ER_DUP_ENTRY_WITH_KEY_NAME
  3140, // ER_INVALID_JSON_TEXT (MySQL)
  3819, // ER_CHECK_CONSTRAINT_VIOLATED (MySQL)
  4025, // ER_CONSTRAINT_FAILED (MariaDB: CHECK, e.g. json_valid)
]);

/** Statement-level errors worth retrying: the transaction is still open. */
const RETRYABLE_STATEMENT = new Set([1205]); // ER_LOCK_WAIT_TIMEOUT
/** Errors that end the transaction (InnoDB rolls it back) but may succeed when tried again. */
const RETRYABLE_TRANSACTION = new Set([
  1213, // ER_LOCK_DEADLOCK
  1040, // ER_CON_COUNT_ERROR
  1053, // ER_SERVER_SHUTDOWN
  1927, // ER_CONNECTION_KILLED (MariaDB)
  2006, // CR_SERVER_GONE_ERROR
  2013, // CR_SERVER_LOST
]);
const RETRYABLE_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  ...NETWORK_ERROR_CODES,
  'ER_LOCK_DEADLOCK',
  'ER_LOCK_WAIT_TIMEOUT',
]);
const AUTH_ERRNOS = new Set([1045, 1698, 1251]); // access denied, plugin auth denied, auth method unsupported

export function driverError(error: unknown): MysqlDriverError {
  return error && typeof error === 'object' ? (error as MysqlDriverError) : {};
}

/** Whether the error ended the connection or the transaction (its earlier statements are gone). */
export function endsTransaction(error: unknown): boolean {
  const e = driverError(error);
  if (e.fatal) return true;
  if (e.errno !== undefined && RETRYABLE_TRANSACTION.has(e.errno)) return true;
  return typeof e.code === 'string' && RETRYABLE_CODES.has(e.code) && e.code !== 'ER_LOCK_WAIT_TIMEOUT';
}

export function isAuthError(error: unknown): boolean {
  const e = driverError(error);
  return e.errno !== undefined && AUTH_ERRNOS.has(e.errno);
}

/** The row a server message names (`… at row 3`), 0-based in the statement, or undefined. */
export function rowOfMessage(message: string): number | undefined {
  const n = /\bat row (\d+)\b/.exec(message)?.[1];
  return n === undefined ? undefined : Number(n) - 1;
}

/**
 * Turns a mysql2 error into a {@link WeirError}: data errors become `kind: 'data'`,
 * deadlocks, lock waits and lost connections are retryable. The driver's `sql`
 * property (which holds a whole batch of values) is dropped. With `firstRow` (the
 * index in the batch of the statement's first row), a data error that names its row
 * (`at row N`) says which row of the batch it is (`rowIndex`).
 */
export function classify(error: unknown, context: string, firstRow?: number): WeirError {
  if (error instanceof WeirError) return error;
  const e = driverError(error);
  if (e.sql !== undefined) delete e.sql;
  const detail = e.sqlMessage ?? e.message ?? String(error);
  const code = e.code ?? (e.errno !== undefined ? `ER_${e.errno}` : 'mysql_error');
  if (e.errno !== undefined && DATA_ERRNOS.has(e.errno)) {
    const inStatement = rowOfMessage(detail);
    const rowIndex = firstRow === undefined || inStatement === undefined ? undefined : firstRow + inStatement;
    return new RowError(`${context}: ${detail}`, { code, cause: error, ...(rowIndex !== undefined ? { rowIndex } : {}) });
  }
  if (isAuthError(error)) return new WeirError(`${context}: ${detail}; check user and password`, { code, kind: 'connector', cause: error });
  if (e.errno === 1049)
    return new WeirError(`${context}: ${detail}; create the database or fix the database option`, { code, kind: 'config', cause: error });
  const retryable =
    (e.errno !== undefined && (RETRYABLE_STATEMENT.has(e.errno) || RETRYABLE_TRANSACTION.has(e.errno))) ||
    (typeof e.code === 'string' && RETRYABLE_CODES.has(e.code)) ||
    Boolean(e.fatal);
  return new WeirError(`${context}: ${detail}`, { code, kind: 'connector', retryable, cause: error });
}

// ---------------------------------------------------------------------------
// Types

/** MySQL's DECIMAL limits (MariaDB allows a scale of 38; 30 works on both). */
export const DECIMAL_MAX_PRECISION = 65;
export const DECIMAL_MAX_SCALE = 30;

/**
 * The column type weir creates for a schema column. Integers are BIGINT (a value
 * beyond 64 bits is a row error, never truncated); a decimal is DECIMAL(p,s) wide
 * enough for its precision and scale, DECIMAL(65,30) when they are unknown, and
 * text when it needs more than MySQL's DECIMAL(65,30) (its value then arrives
 * exactly, as its digits).
 */
export function sqlType(column: Pick<Column, 'type' | 'precision' | 'scale'>, key: boolean): string {
  switch (column.type) {
    case 'integer':
      return 'BIGINT';
    case 'decimal': {
      if (column.precision === undefined && column.scale === undefined) return `DECIMAL(${DECIMAL_MAX_PRECISION},${DECIMAL_MAX_SCALE})`;
      const scale = column.scale ?? 0;
      const precision = Math.max(column.precision ?? DECIMAL_MAX_PRECISION, scale, 1);
      if (precision > DECIMAL_MAX_PRECISION || scale > DECIMAL_MAX_SCALE) return key ? 'VARCHAR(255)' : 'LONGTEXT';
      return `DECIMAL(${precision},${scale})`;
    }
    case 'number':
      return 'DOUBLE';
    case 'boolean':
      return 'BOOLEAN';
    case 'timestamp':
      return 'DATETIME(6)';
    case 'json':
      return 'JSON';
    default:
      return key ? 'VARCHAR(255)' : 'TEXT';
  }
}

export interface TableColumn {
  name: string;
  dataType: string;
  columnType: string;
  nullable: boolean;
  json: boolean;
  /** DECIMAL only: digits in all, and after the point (information_schema NUMERIC_PRECISION, NUMERIC_SCALE). */
  precision?: number;
  scale?: number;
}

/** Columns of a table in ordinal order; empty when the table does not exist. */
export async function tableColumns(conn: Conn, database: string, table: string): Promise<TableColumn[]> {
  const [rows] = await conn.query<mysql.RowDataPacket[]>(
    'SELECT COLUMN_NAME AS name, DATA_TYPE AS dataType, COLUMN_TYPE AS columnType, IS_NULLABLE AS nullable, NUMERIC_PRECISION AS `precision`, NUMERIC_SCALE AS scale FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
    [database, table],
  );
  const jsonChecked = await jsonCheckedColumns(conn, database, table);
  return rows.map((r) => {
    const dataType = String(r.dataType).toLowerCase();
    return {
      name: String(r.name),
      dataType,
      columnType: String(r.columnType).toLowerCase(),
      nullable: r.nullable === 'YES',
      json: dataType === 'json' || jsonChecked.has(String(r.name)),
      ...(DECIMAL_TYPES.has(dataType) ? { precision: Number(r.precision), scale: Number(r.scale) } : {}),
    };
  });
}

/** MariaDB stores JSON as LONGTEXT with a `json_valid()` CHECK constraint: find those columns. */
async function jsonCheckedColumns(conn: Conn, database: string, table: string): Promise<Set<string>> {
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>(
      'SELECT CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?',
      [database, table],
    );
    const out = new Set<string>();
    for (const r of rows) {
      const m = /^json_valid\(`([^`]+)`\)$/i.exec(String(r.clause).trim());
      if (m?.[1]) out.add(m[1]);
    }
    return out;
  } catch {
    return new Set(); // MySQL before 8.0.16 has no CHECK_CONSTRAINTS view
  }
}

const DECIMAL_TYPES = new Set(['decimal', 'numeric']);

export function columnType(c: TableColumn): ColumnType {
  if (c.json) return 'json';
  if (c.columnType.startsWith('tinyint(1)') || c.dataType === 'bool' || c.dataType === 'boolean') return 'boolean';
  if (['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint', 'year', 'bit'].includes(c.dataType)) return 'integer';
  if (DECIMAL_TYPES.has(c.dataType)) return 'decimal';
  if (['float', 'double', 'real'].includes(c.dataType)) return 'number';
  if (['datetime', 'timestamp'].includes(c.dataType)) return 'timestamp';
  return 'string'; // date (as YYYY-MM-DD), time, char, text, enum, blob…
}

export function schemaOf(columns: TableColumn[]): Schema {
  return columns.map((c) => ({
    name: c.name,
    type: columnType(c),
    nullable: c.nullable,
    ...(c.precision !== undefined ? { precision: c.precision, scale: c.scale ?? 0 } : {}),
  }));
}

export async function tableEngine(conn: Conn, database: string, table: string): Promise<string | undefined> {
  const [rows] = await conn.query<mysql.RowDataPacket[]>(
    'SELECT ENGINE AS engine, TABLE_TYPE AS type FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
    [database, table],
  );
  const r = rows[0];
  if (!r) return undefined;
  return r.type === 'VIEW' ? 'VIEW' : String(r.engine ?? '');
}

/** The PRIMARY KEY and UNIQUE keys of a table: index name → its columns in order. */
export async function uniqueKeys(conn: Conn, database: string, table: string): Promise<Map<string, string[]>> {
  const [rows] = await conn.query<mysql.RowDataPacket[]>(
    'SELECT INDEX_NAME AS idx, COLUMN_NAME AS col FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX',
    [database, table],
  );
  const keys = new Map<string, string[]>();
  for (const r of rows) {
    const list = keys.get(String(r.idx)) ?? [];
    list.push(String(r.col));
    keys.set(String(r.idx), list);
  }
  return keys;
}
