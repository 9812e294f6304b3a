/**
 * Connections and error classification shared by the postgres source, sink and
 * health checks. Runs on the planner and on workers; every connection opened
 * here is closed by its caller.
 */
import pg from 'pg';
import type { Log } from '../../sdk/connector.js';
import { NETWORK_ERROR_CODES, RowError, WeirError } from '../../sdk/errors.js';
import { quoteIdentifier as q } from '../../sdk/sql.js';
import { tlsConfig } from '../../sdk/tls.js';
import type { ColumnType, Schema } from '../../sdk/types.js';
import { Decimal, JsonDepthError, parseJsonExact } from '../../sdk/values.js';
import type { PostgresOptions } from './spec.js';

/** The PostgreSQL type OIDs weir maps to its column types. */
export const OID = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  varchar: 1043,
  bpchar: 1042,
  date: 1082,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
} as const;

const INTEGER_OIDS = new Set<number>([OID.int2, OID.int4, OID.int8, OID.oid]);
const NUMBER_OIDS = new Set<number>([OID.float4, OID.float8, OID.numeric]);
const FLOAT_OIDS = new Set<number>([OID.float4, OID.float8]);
const TIME_OIDS = new Set<number>([OID.date, OID.timestamp, OID.timestamptz]);

export function columnTypeOfOid(oid: number): ColumnType {
  if (INTEGER_OIDS.has(oid)) return 'integer';
  if (oid === OID.numeric) return 'decimal';
  if (FLOAT_OIDS.has(oid)) return 'number';
  if (oid === OID.bool) return 'boolean';
  if (TIME_OIDS.has(oid)) return 'timestamp';
  if (oid === OID.json || oid === OID.jsonb) return 'json';
  return 'string';
}

export type RangeKind = 'integer' | 'number' | 'time';

/** How a partition column's range is split, or undefined when its type cannot be split. */
export function rangeKindOfOid(oid: number): RangeKind | undefined {
  if (INTEGER_OIDS.has(oid)) return 'integer';
  if (NUMBER_OIDS.has(oid)) return 'number';
  if (TIME_OIDS.has(oid)) return 'time';
  return undefined;
}

/**
 * The PostgreSQL type a sink uses for a weir column type when it creates a table.
 * Decimals get an unconstrained `numeric`: it keeps every value's own scale
 * (`1.50` stays `1.50`, where `numeric(p,2)` would also turn `1.5` into `1.50`).
 */
export const PG_TYPES: Record<ColumnType, string> = {
  integer: 'bigint',
  decimal: 'numeric',
  number: 'double precision',
  string: 'text',
  boolean: 'boolean',
  timestamp: 'timestamptz',
  json: 'jsonb',
};

/** `2024-01-02 03:04:05.123456+00` → `2024-01-02T03:04:05.123456Z` (lossless, unlike a Date). */
function isoTimestamptz(text: string): string {
  const t = text.replace(' ', 'T');
  const m = /([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?$/.exec(t);
  if (!m) return t;
  const [, sign, hh, mm = '00', ss] = m;
  if (hh === '00' && mm === '00' && !ss) return `${t.slice(0, m.index)}Z`;
  return `${t.slice(0, m.index)}${sign}${hh}:${mm}${ss ? `:${ss}` : ''}`;
}

function int8(text: string): number | bigint {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : BigInt(text);
}

/** numeric as an exact Decimal; `NaN` and `±Infinity` (no decimal has them) as numbers. */
function numeric(text: string): Decimal | number {
  return Decimal.parse(text) ?? Number(text);
}

/**
 * Value parsers for rows read by the source: int8 as number (bigint beyond 2^53),
 * numeric as Decimal, json/jsonb with exact numbers, dates and timestamps as lossless ISO-8601 strings (the
 * session time zone is UTC), intervals as text; the rest as node-postgres does.
 */
export const readTypes = (maxDepth: number) =>
  ({
    getTypeParser(oid: number, format?: 'text' | 'binary') {
      if (format === 'binary') return pg.types.getTypeParser(oid, 'binary');
      switch (oid) {
        case OID.int8:
          return int8;
        case OID.numeric:
          return numeric;
        case OID.date:
          return (text: string) => text;
        case OID.timestamp:
          return (text: string) => text.replace(' ', 'T');
        case OID.timestamptz:
          return isoTimestamptz;
        case OID.interval:
          return (text: string) => text;
        case OID.json:
        case OID.jsonb:
          // a value nested too deeply comes back as its error: the source rejects that row, not the whole read
          return (text: string) => {
            try {
              return parseJsonExact(text, maxDepth);
            } catch (error) {
              if (error instanceof JsonDepthError) return error;
              throw error;
            }
          };
        default:
          return pg.types.getTypeParser(oid, 'text');
      }
    },
  }) as unknown as pg.CustomTypesConfig;

export interface ConnectOptions {
  baseDir: string;
  log?: Log;
  /** Shown in pg_stat_activity after the application name, e.g. `sink p3`. */
  role: string;
}

/** The node-postgres client configuration for the options (the password is never logged). */
export function clientConfig(opts: PostgresOptions, c: ConnectOptions): pg.ClientConfig {
  return {
    host: opts.host,
    port: opts.port,
    database: opts.database,
    user: opts.user,
    password: opts.password,
    ssl: tlsConfig(opts, c.baseDir, c.log) ?? false,
    connectionTimeoutMillis: opts.connect_timeout,
    statement_timeout: opts.statement_timeout > 0 ? opts.statement_timeout : undefined,
    application_name: `${opts.application_name} ${c.role}`.slice(0, 63),
    types: readTypes(opts.max_depth),
  };
}

/** Where a connection goes, for messages (no credentials). */
export function target(opts: PostgresOptions): string {
  return `postgres://${opts.user}@${opts.host}:${opts.port}/${opts.database}`;
}

/**
 * Opens a connection with the session in UTC (timestamps without a zone are read
 * and written as UTC). Connection failures become classified {@link WeirError}s.
 */
export async function connect(opts: PostgresOptions, c: ConnectOptions): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(opts, c));
  // an idle client whose server goes away emits 'error'; the next query reports it
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query("SET TIME ZONE 'UTC'");
    return client;
  } catch (error) {
    await client.end().catch(() => {});
    throw pgError(error, `cannot connect to ${target(opts)}`, opts);
  }
}

/** Ends a client, ignoring errors (the server may already be gone). */
export async function endQuietly(client: pg.Client | undefined): Promise<void> {
  if (!client) return;
  try {
    await client.end();
  } catch {
    // already closed
  }
}

/** Closes the socket at once: the server rolls back whatever transaction was open. */
export function destroy(client: pg.Client | undefined): void {
  const socket = (client as unknown as { connection?: { stream?: { destroy(): void } } } | undefined)?.connection?.stream;
  socket?.destroy();
}

const NETWORK_CODES = new Set([...NETWORK_ERROR_CODES, 'ECONNABORTED', 'ENOTFOUND']);

/** SQLSTATEs worth retrying: the same statement may succeed a moment later. */
const RETRYABLE_SQLSTATES = new Set(['40001', '40P01', '55P03', '57014', '57P01', '57P02', '57P03', '53300', '53400', '58000', '58030']);

interface PgErrorFields {
  code?: string;
  message?: string;
  detail?: string;
  hint?: string;
  where?: string;
  column?: string;
}

/** Whether the error means the connection is gone (the open transaction is lost with it). */
export function isConnectionLoss(error: unknown): boolean {
  const e = error as PgErrorFields | undefined;
  const code = e?.code;
  if (
    typeof code === 'string' &&
    (NETWORK_CODES.has(code) || code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03')
  )
    return true;
  const message = e?.message ?? '';
  return /Connection terminated|connection is closed|Client has encountered a connection error|not queryable|timeout expired/i.test(
    message,
  );
}

/**
 * Classifies a node-postgres or network error:
 * - retryable: network errors, serialization failures and deadlocks (40001/40P01),
 *   lock timeouts, statement timeouts, admin shutdown (57P01), too many connections (53300)
 * - `data` (a bad row; dead-letter candidate): data exceptions (22xxx), integrity violations (23xxx)
 * - `config`: missing database, schema, table or column, SQL syntax errors in `query`
 * - `connector` otherwise.
 * The message names the server's reason, its detail and where (the COPY line), never the password.
 */
export function pgError(error: unknown, doing: string, opts?: PostgresOptions): WeirError {
  if (error instanceof WeirError) return error;
  const e = (error ?? {}) as PgErrorFields;
  const code = typeof e.code === 'string' ? e.code : 'pg_error';
  let reason = e.message || String(error);
  if (e.detail) reason += ` (${e.detail})`;
  if (e.where && /COPY/.test(e.where)) reason += ` [${e.where}]`;
  if (e.hint) reason += `; hint: ${e.hint}`;

  if (code === '28P01')
    return new WeirError(`${doing}: authentication failed for user "${opts?.user ?? '?'}" (28P01: wrong password); check password`, {
      code,
      kind: 'connector',
      cause: error,
    });
  if (code === '28000')
    return new WeirError(
      `${doing}: the server refused user "${opts?.user ?? '?'}" (28000: ${reason}); check user, or the server's pg_hba.conf`,
      {
        code,
        kind: 'connector',
        cause: error,
      },
    );
  if (code === '3D000') return new WeirError(`${doing}: ${reason}; check database`, { code, kind: 'config', cause: error });
  if (code === '42P01' || code === '42703' || code === '42601' || code === '3F000')
    return new WeirError(`${doing}: ${reason}; check table, schema, query and column names`, { code, kind: 'config', cause: error });
  if (code === 'ENOTFOUND')
    return new WeirError(`${doing}: host ${opts?.host ?? '?'} not found; check host`, { code, kind: 'connector', cause: error });
  if (code.startsWith('22') || code.startsWith('23')) {
    // COPY's line N is the batch's row N (a quoted line break does not start a line there)
    const line = typeof e.where === 'string' ? /^COPY [^,]+, line (\d+)/.exec(e.where)?.[1] : undefined;
    return new RowError(`${doing}: ${reason}`, { code, cause: error, ...(line ? { rowIndex: Number(line) - 1 } : {}) });
  }
  const retryable = RETRYABLE_SQLSTATES.has(code) || NETWORK_CODES.has(code) || code.startsWith('08') || isConnectionLoss(error);
  return new WeirError(`${doing}: ${reason}`, { code, kind: 'connector', retryable, cause: error });
}

/** `"schema"."table"` */
export function qualified(schema: string, table: string): string {
  return `${q(schema)}.${q(table)}`;
}

/** Columns of a table (name → PostgreSQL type OID), or undefined when the table does not exist. */
export async function tableColumns(client: pg.Client, schema: string, table: string): Promise<Map<string, number> | undefined> {
  return columnsOf(client, qualified(schema, table));
}

/** A column's PostgreSQL type: its OID and type modifier (`numeric(p,s)`'s precision and scale; -1 for none). */
export interface PgColumnType {
  oid: number;
  typmod: number;
}

/** The column types of a table named by its quoted, qualified name, or undefined when the table does not exist. */
export async function columnTypesOf(client: pg.Client, name: string): Promise<Map<string, PgColumnType> | undefined> {
  const r = await client.query<{ name: string } & PgColumnType>(
    `SELECT a.attname AS name, a.atttypid::int AS oid, a.atttypmod AS typmod
       FROM pg_attribute a
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [name],
  );
  if (r.rows.length === 0) {
    const exists = await client.query('SELECT to_regclass($1) IS NOT NULL AS ok', [name]);
    if (!exists.rows[0]?.ok) return undefined;
  }
  return new Map(r.rows.map((c) => [c.name, { oid: c.oid, typmod: c.typmod }]));
}

/** {@link tableColumns} of a table named by its quoted, qualified name. */
export async function columnsOf(client: pg.Client, name: string): Promise<Map<string, number> | undefined> {
  const types = await columnTypesOf(client, name);
  return types && new Map([...types].map(([column, t]) => [column, t.oid]));
}

/** Digits after the point a column keeps: `numeric(p,s)`'s s; undefined for any other type, plain `numeric` included. */
export function numericScale(t: PgColumnType | undefined): number | undefined {
  return t?.oid === OID.numeric ? numericTypmod(t.typmod).scale : undefined;
}

/** The schema of a query's result, from its field descriptions (runs it with LIMIT 0). Arrays are `json`. */
export async function querySchema(client: pg.Client, sql: string): Promise<Schema> {
  const r = await client.query(`SELECT * FROM (${sql}) AS _weir_q LIMIT 0`);
  const oids = [...new Set(r.fields.map((f) => f.dataTypeID))];
  const arrays = await client.query<{ oid: number }>(
    "SELECT oid::int AS oid FROM pg_type WHERE oid = ANY($1::oid[]) AND typcategory = 'A'",
    [oids],
  );
  const isArray = new Set(arrays.rows.map((x) => x.oid));
  return r.fields.map((f) => ({
    name: f.name,
    type: isArray.has(f.dataTypeID) ? 'json' : columnTypeOfOid(f.dataTypeID),
    nullable: true,
    ...(f.dataTypeID === OID.numeric ? numericTypmod(f.dataTypeModifier) : {}),
  }));
}

/** Precision and scale of `numeric(p,s)` from its type modifier (`((p << 16) | s) + 4`); none for plain `numeric`. */
export function numericTypmod(typmod: number): { precision?: number; scale?: number } {
  if (typmod < 4) return {};
  const m = typmod - 4;
  return { precision: (m >> 16) & 0xffff, scale: m & 0xffff };
}
