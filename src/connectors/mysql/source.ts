/**
 * The MySQL/MariaDB source: a table or a query, split into key ranges of an
 * integer column and streamed (the driver pauses the socket while the pipeline
 * is busy, so memory stays flat whatever the table size).
 */
import type { Connection as CoreConnection } from 'mysql2';
import type mysql from 'mysql2/promise';
import type { PlanContext, Source, TaskContext } from '../../sdk/connector.js';
import { keyText, RowError, type RowLocation, WeirError } from '../../sdk/errors.js';
import { type Column, type ColumnType, type Partition, type Row, rowOf, type Schema } from '../../sdk/types.js';
import { JsonDepthError, parseJsonExact } from '../../sdk/values.js';
import { type Conn, classify, connect, type MysqlOptions, q, release, schemaOf, tableColumns, uniqueKeys, where } from './db.js';

/** mysql2 field type codes (protocol column types). */
const FIELD_TYPES: Record<number, ColumnType> = {
  1: 'integer', // TINY (boolean when its length is 1)
  2: 'integer', // SHORT
  3: 'integer', // LONG
  8: 'integer', // LONGLONG
  9: 'integer', // INT24
  13: 'integer', // YEAR
  16: 'integer', // BIT
  0: 'decimal', // DECIMAL (before MySQL 5.0.3)
  246: 'decimal', // NEWDECIMAL
  4: 'number', // FLOAT
  5: 'number', // DOUBLE
  7: 'timestamp', // TIMESTAMP
  12: 'timestamp', // DATETIME
  245: 'json', // JSON (MySQL)
};

function fieldType(f: mysql.FieldPacket): ColumnType {
  const t = f.columnType ?? f.type ?? 0;
  if (t === 1 && f.columnLength === 1) return 'boolean';
  if (f.extendedFormat === 'json') return 'json';
  return FIELD_TYPES[t] ?? 'string';
}

const UNSIGNED_FLAG = 32;

/** A result column as a schema column; a DECIMAL's precision from its display length (digits, point, sign). */
function fieldColumn(f: mysql.FieldPacket): Column {
  const type = fieldType(f);
  if (type !== 'decimal') return { name: f.name, type };
  const scale = f.decimals ?? 0;
  const unsigned = typeof f.flags === 'number' ? (f.flags & UNSIGNED_FLAG) !== 0 : (f.flags ?? []).includes('UNSIGNED');
  const precision = (f.columnLength ?? 0) - (scale > 0 ? 1 : 0) - (unsigned ? 0 : 1);
  return precision > 0 ? { name: f.name, type, precision, scale } : { name: f.name, type };
}

interface RangePartition extends Partition {
  column: string;
  from: string;
  to: string;
  nulls: boolean;
}

export function mysqlSource(opts: MysqlOptions): Source {
  let planConn: Conn | undefined;
  const plan = async (ctx: PlanContext): Promise<Conn> => {
    planConn ??= await connect(opts, ctx);
    return planConn;
  };
  /** What a partition reads from: the table, or the query as a derived table. */
  const from = () => (opts.table ? q(opts.table) : `(${opts.query as string}) AS _weir_q`);

  const tableInfo = async (conn: Conn) => {
    const columns = await tableColumns(conn, opts.database, opts.table as string);
    if (columns.length === 0)
      throw new WeirError(
        `table ${opts.table} does not exist in database ${opts.database} (or the user cannot see it); check source.table`,
        {
          kind: 'config',
          code: 'no_such_table',
        },
      );
    return columns;
  };

  const queryFields = async (conn: Conn): Promise<mysql.FieldPacket[]> => (await conn.query(`SELECT * FROM ${from()} LIMIT 0`))[1] ?? [];
  const querySchema = async (conn: Conn): Promise<Schema> => (await queryFields(conn)).map(fieldColumn);
  /**
   * JSON columns that arrive as text: MariaDB's JSON is LONGTEXT with a json_valid() CHECK;
   * mysql2 parses it only when the server sends extended metadata (MariaDB 10.5+), and
   * MySQL's native JSON type always. The others are parsed while reading.
   */
  const jsonTextColumns = async (conn: Conn): Promise<string[]> => {
    if (!opts.table) return [];
    const declared = new Set((await tableInfo(conn)).filter((c) => c.json).map((c) => c.name));
    if (declared.size === 0) return [];
    return (await queryFields(conn))
      .filter((f) => declared.has(f.name) && f.extendedFormat !== 'json' && (f.columnType ?? f.type) !== 245)
      .map((f) => f.name);
  };

  /** Where a row is: the table, and its value of the partition's key column (the option, else the primary key). */
  const rowAt = (row: Row, partition: Partition): RowLocation => {
    const column = (partition as RangePartition).column;
    const key = typeof column === 'string' ? keyText(row, [column]) : undefined;
    return { ...(opts.table ? { table: opts.table } : {}), ...(key ? { key } : {}) };
  };

  /** The partition column: the option, else the table's single-column integer primary key. */
  const partitionColumn = async (conn: Conn, schema: Schema): Promise<string | undefined> => {
    if (opts.partition_column) {
      const col = schema.find((c) => c.name.toLowerCase() === opts.partition_column?.toLowerCase());
      if (!col)
        throw new WeirError(
          `partition_column ${opts.partition_column} is not a column of ${opts.table ?? 'the query'} (it has ${schema.map((c) => c.name).join(', ')})`,
          {
            kind: 'config',
            code: 'invalid_partition_column',
          },
        );
      if (col.type !== 'integer')
        throw new WeirError(`partition_column ${opts.partition_column} is a ${col.type} column; key ranges need an integer column`, {
          kind: 'config',
          code: 'invalid_partition_column',
        });
      return col.name;
    }
    if (!opts.table) return undefined;
    const pk = (await uniqueKeys(conn, opts.database, opts.table)).get('PRIMARY');
    const only = pk?.length === 1 ? schema.find((c) => c.name === pk[0]) : undefined;
    return only?.type === 'integer' ? only.name : undefined;
  };

  return {
    async schema(ctx) {
      const conn = await plan(ctx);
      try {
        return opts.table ? schemaOf(await tableInfo(conn)) : await querySchema(conn);
      } catch (error) {
        throw classify(error, `reading the schema of ${opts.table ?? 'the query'} on ${where(opts)}`);
      }
    },

    async estimate(ctx) {
      if (!opts.table) return undefined;
      const conn = await plan(ctx);
      try {
        const [rows] = await conn.query<mysql.RowDataPacket[]>(
          'SELECT TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
          [opts.database, opts.table],
        );
        const approx = Number(rows[0]?.n ?? 0);
        if (approx > 2_000_000) return approx; // COUNT(*) would scan the table
        const [exact] = await conn.query<mysql.RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${q(opts.table)}`);
        return Number(exact[0]?.n ?? 0);
      } catch {
        return undefined;
      }
    },

    async partitions(ctx): Promise<Partition[]> {
      if (opts.partitions === 1 && !opts.partition_column) return [{ id: '0' }];
      const conn = await plan(ctx);
      try {
        const schema = opts.table ? schemaOf(await tableInfo(conn)) : await querySchema(conn);
        const column = await partitionColumn(conn, schema);
        if (!column) {
          ctx.log.warn('no integer primary key to split the table by: reading it as one partition; set partition_column', {
            table: opts.table ?? null,
          });
          return [{ id: '0' }];
        }
        if (opts.partitions === 1) return [{ id: '0' }];
        const [rows] = await conn.query<mysql.RowDataPacket[]>({
          sql: `SELECT CAST(MIN(${q(column)}) AS CHAR) AS lo, CAST(MAX(${q(column)}) AS CHAR) AS hi FROM ${from()}`,
        });
        const lo = rows[0]?.lo;
        const hi = rows[0]?.hi;
        if (lo === null || lo === undefined || hi === null || hi === undefined) return [{ id: '0' }];
        return keyRanges(column, BigInt(String(lo)), BigInt(String(hi)), opts.partitions);
      } catch (error) {
        throw classify(error, `planning partitions of ${opts.table ?? 'the query'} on ${where(opts)}`);
      }
    },

    async *read(partition: Partition, ctx: TaskContext) {
      const conn = await connect(opts, ctx);
      let finished = false;
      try {
        const json = await jsonTextColumns(conn);
        let sql = opts.table ? `SELECT * FROM ${q(opts.table)}` : (opts.query as string);
        const params: unknown[] = [];
        if (typeof (partition as RangePartition).column === 'string') {
          const p = partition as RangePartition;
          if (!opts.table) sql = `SELECT * FROM ${from()}`;
          sql += ` WHERE (${q(p.column)} >= ? AND ${q(p.column)} < ?)${p.nulls ? ` OR ${q(p.column)} IS NULL` : ''}`;
          params.push(p.from, p.to);
        }
        const core = (conn as unknown as { connection: CoreConnection }).connection;
        // rows built here from arrays: mysql2's generated row parsers refuse a column named __proto__
        // (and then never end the stream); its static parser with rowsAsArray does not look at names
        const query = core.query({ sql, values: params, rowsAsArray: true, disableEval: true } as never);
        let names: string[] = [];
        query.on('fields', (fields: { name: string }[]) => {
          names = fields.map((f) => f.name);
        });
        const stream = query.stream({ highWaterMark: opts.fetch_size });
        let chunk: Row[] = [];
        try {
          for await (const values of stream as AsyncIterable<unknown[]>) {
            const row = rowOf(names, values);
            let tooDeep: string | undefined;
            for (const name of json) {
              const v = row[name];
              if (typeof v === 'string') {
                try {
                  row[name] = parseJsonExact(v, opts.max_depth);
                } catch (error) {
                  // nested too deeply: a row error; anything else is not JSON after all: keep the text
                  if (error instanceof JsonDepthError) tooDeep = name;
                }
              }
            }
            if (tooDeep !== undefined) {
              await ctx.reject(
                { ...row, [tooDeep]: null },
                new RowError(
                  `column "${tooDeep}" holds JSON nested deeper than ${opts.max_depth} levels; raise source.max_depth if such values are expected`,
                  { code: 'json_too_deep' },
                ),
                rowAt(row, partition),
              );
              continue;
            }
            chunk.push(row);
            if (chunk.length >= opts.fetch_size) {
              yield chunk;
              chunk = [];
            }
          }
        } catch (error) {
          throw classify(error, `reading ${opts.table ?? 'the query'} on ${where(opts)}`);
        }
        if (chunk.length) yield chunk;
        finished = true;
      } finally {
        if (finished) await release(conn);
        else conn.destroy(); // a half-read result cannot be ended politely
      }
    },

    async close() {
      const conn = planConn;
      planConn = undefined;
      await release(conn);
    },
  };
}

/** Splits [lo, hi] into at most n contiguous ranges [from, to); the first also takes NULL keys. */
export function keyRanges(column: string, lo: bigint, hi: bigint, n: number): RangePartition[] {
  const span = hi - lo + 1n;
  const count = BigInt(n) < span ? BigInt(n) : span;
  const out: RangePartition[] = [];
  for (let i = 0n; i < count; i++) {
    const start = lo + (span * i) / count;
    const end = lo + (span * (i + 1n)) / count;
    out.push({ id: String(i), column, from: start.toString(), to: end.toString(), nulls: i === 0n });
  }
  return out;
}
