/**
 * The postgres source: a table or a query, optionally split into ranges of a
 * numeric, date or timestamp column (min/max read once on the planner), each
 * range read by one task through a server-side cursor (`DECLARE … CURSOR` +
 * `FETCH n` in a read-only transaction, the next FETCH in flight while the
 * previous rows are being written). For a writer that appends canonical CSV (the
 * csv sink), `readEncoded` exports each range through COPY instead (export.ts).
 */
import type pg from 'pg';
import type { PlanContext, Source, TaskContext } from '../../sdk/connector.js';
import { keyText, RowError, type RowLocation, WeirError } from '../../sdk/errors.js';
import { quoteIdentifier as q } from '../../sdk/sql.js';
import type { EncodedRows, JsonValue, Partition, Row, Schema } from '../../sdk/types.js';
import { JsonDepthError } from '../../sdk/values.js';
import { byteDialectOk } from '../shared/csv-text.js';
import { connect, endQuietly, OID, pgError, qualified, querySchema, type RangeKind, rangeKindOfOid, tableColumns } from './client.js';
import { type ExportPlan, exportCsv } from './export.js';
import type { PostgresOptions } from './spec.js';

/** A range of the partition column: `lo` inclusive, `hi` exclusive; null means unbounded. The first range also takes NULLs. */
export interface RangePartition extends Partition {
  lo: string | null;
  hi: string | null;
}

/** Splits [lo, hi] into at most `n` ranges; returns the inner boundaries (ascending, distinct), as text. */
export function splitRange(kind: RangeKind, lo: unknown, hi: unknown, n: number): string[] {
  const out: string[] = [];
  if (kind === 'integer') {
    const a = BigInt(lo as number | bigint);
    const span = BigInt(hi as number | bigint) - a + 1n;
    for (let i = 1; i < n; i++) out.push(String(a + (span * BigInt(i)) / BigInt(n)));
  } else if (kind === 'number') {
    const a = Number(lo);
    const b = Number(hi);
    for (let i = 1; i < n; i++) out.push(String(a + ((b - a) * i) / n));
  } else {
    // dates and timestamps arrive as ISO text (session in UTC); a zone-less value is taken as UTC
    const ms = (v: unknown) => Date.parse(/(Z|[+-]\d\d(:\d\d)?)$/.test(String(v)) || String(v).length === 10 ? String(v) : `${v}Z`);
    const a = ms(lo);
    const b = ms(hi);
    if (Number.isNaN(a) || Number.isNaN(b)) return [];
    for (let i = 1; i < n; i++) out.push(new Date(a + Math.floor(((b - a) * i) / n)).toISOString());
  }
  return [...new Set(out)];
}

function stripSemicolons(sql: string): string {
  return sql.trim().replace(/;+\s*$/, '');
}

/**
 * The rows of a FETCH, less those with a json/jsonb value nested deeper than
 * `max_depth` (its parser returns the error instead of throwing it): each of
 * those goes to `ctx.reject`, so one hostile document is one row error.
 */
async function withoutTooDeep(r: pg.QueryResult<Row>, opts: PostgresOptions, ctx: TaskContext): Promise<Row[]> {
  const json = r.fields.filter((f) => f.dataTypeID === OID.json || f.dataTypeID === OID.jsonb).map((f) => f.name);
  if (json.length === 0) return r.rows;
  const rows: Row[] = [];
  for (const row of r.rows) {
    const column = json.find((name) => row[name] instanceof JsonDepthError);
    if (column === undefined) rows.push(row);
    else
      await ctx.reject(
        { ...row, [column]: null },
        new RowError(
          `column "${column}" holds JSON nested deeper than ${opts.max_depth} levels; raise source.max_depth if such values are expected`,
          {
            code: 'json_too_deep',
          },
        ),
        rowAt(row, opts),
      );
  }
  return rows;
}

/** Where a row is: the table, and its value of `partition_column` when set. */
function rowAt(row: Row, opts: PostgresOptions): RowLocation {
  const key = opts.partition_column ? keyText(row, [opts.partition_column]) : undefined;
  return { ...(opts.table ? { table: `${opts.schema}.${opts.table}` } : {}), ...(key ? { key } : {}) };
}

export function postgresSource(opts: PostgresOptions): Source {
  const relation = opts.query ? `(${stripSemicolons(opts.query)}) AS _weir_q` : qualified(opts.schema, opts.table as string);
  const what = opts.query ? 'source query' : `source table ${opts.schema}.${opts.table}`;

  const withClient = async <T>(ctx: PlanContext, fn: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = await connect(opts, { baseDir: ctx.baseDir, log: ctx.log, role: 'source planner' });
    try {
      return await fn(client);
    } catch (error) {
      throw pgError(error, what, opts);
    } finally {
      await endQuietly(client);
    }
  };

  const checkTable = async (client: pg.Client) => {
    if (opts.query) return;
    const cols = await tableColumns(client, opts.schema, opts.table as string);
    if (!cols)
      throw new WeirError(`source table ${opts.schema}.${opts.table} does not exist in database ${opts.database}; check table and schema`, {
        kind: 'config',
        code: 'no_such_table',
      });
    if (opts.partition_column && !cols.has(opts.partition_column))
      throw new WeirError(
        `partition_column ${opts.partition_column} is not a column of ${opts.schema}.${opts.table} (columns: ${[...cols.keys()].join(', ')}); fix partition_column`,
        { kind: 'config', code: 'unknown_column' },
      );
  };

  const source: Source = {
    schema: (ctx): Promise<Schema> =>
      withClient(ctx, async (client) => {
        await checkTable(client);
        return querySchema(client, `SELECT * FROM ${relation}`);
      }),

    estimate: (ctx) =>
      opts.query
        ? undefined
        : withClient(ctx, async (client) => {
            const r = await client.query<{ n: string }>('SELECT reltuples::bigint::text AS n FROM pg_class WHERE oid = to_regclass($1)', [
              qualified(opts.schema, opts.table as string),
            ]);
            const n = Number(r.rows[0]?.n ?? -1);
            return n >= 0 ? n : undefined;
          }),

    partitions: (ctx): Promise<Partition[]> | Partition[] => {
      const column = opts.partition_column;
      if (!column || opts.partitions <= 1) return [{ id: '0' }];
      return withClient(ctx, async (client) => {
        await checkTable(client);
        const r = await client.query(`SELECT min(${q(column)}) AS lo, max(${q(column)}) AS hi FROM ${relation}`);
        const field = r.fields[0];
        const kind = field ? rangeKindOfOid(field.dataTypeID) : undefined;
        if (!kind) {
          const t = await client.query<{ t: string }>('SELECT format_type($1::oid, NULL) AS t', [field?.dataTypeID ?? 0]);
          throw new WeirError(
            `partition_column ${column} has type ${t.rows[0]?.t ?? 'unknown'}, which cannot be split into ranges; use a numeric, date or timestamp column`,
            { kind: 'config', code: 'bad_partition_column' },
          );
        }
        const { lo, hi } = r.rows[0] as { lo: unknown; hi: unknown };
        if (lo === null || hi === null) return [{ id: '0', lo: null, hi: null }];
        const bounds = splitRange(kind, lo, hi, opts.partitions);
        const edges: (string | null)[] = [null, ...bounds, null];
        const out: RangePartition[] = [];
        for (let i = 0; i + 1 < edges.length; i++)
          out.push({ id: String(i), lo: edges[i] as string | null, hi: edges[i + 1] as string | null });
        ctx.log.debug('split source into ranges', { column, partitions: out.length, kind });
        return out;
      });
    },

    async *read(partition: Partition, ctx: TaskContext): AsyncGenerator<Row[]> {
      const { sql, params } = rangeQuery(relation, opts.partition_column, partition);
      const client = await connect(opts, { baseDir: ctx.baseDir, log: ctx.log, role: `source p${partition.id}` });
      const fetchSql = `FETCH ${opts.fetch_size} FROM _weir_cursor`;
      let pending: Promise<pg.QueryResult<Row>> | undefined;
      try {
        await client.query('BEGIN READ ONLY');
        await client.query(`DECLARE _weir_cursor NO SCROLL CURSOR FOR ${sql}`, params);
        pending = client.query<Row>(fetchSql);
        while (pending) {
          const r = await pending;
          pending = undefined;
          if (r.rows.length === 0) break;
          if (r.rows.length === opts.fetch_size) {
            // the next FETCH runs on the server while these rows are written
            pending = client.query<Row>(fetchSql);
            pending.catch(() => {});
          }
          yield await withoutTooDeep(r, opts, ctx);
        }
        await client.query('COMMIT');
      } catch (error) {
        throw pgError(error, `reading ${what}${partition.id === '0' && !('lo' in partition) ? '' : ` (partition ${partition.id})`}`, opts);
      } finally {
        if (pending) await pending.catch(() => {});
        await endQuietly(client);
      }
    },

    /**
     * Worker, instead of `read`, for a writer that appends canonical CSV in a dialect
     * (the csv sink): the partition as COPY TO STDOUT chunks (see export.ts).
     * Undefined for any other writer, which gets the rows.
     */
    readEncoded(partition, ctx, format, hints) {
      const d = hints?.dialect;
      if (format !== 'csv' || !d || !byteDialectOk(d)) return undefined;
      const plan: ExportPlan = {
        opts,
        what,
        select: (bound) => rangeQuery(relation, opts.partition_column, partition, bound).sql,
        rowPath: () => source.read(partition, ctx) as AsyncIterable<Row[]>,
      };
      return exportCsv(plan, partition, ctx, d) as AsyncIterable<EncodedRows>;
    },
  };
  return source;
}

/**
 * The SELECT of one partition, with its range bounds as bound parameters (`$1`,
 * `$2`), or written by `bound` where parameters cannot be bound (COPY: literals).
 */
export function rangeQuery(
  relation: string,
  column: string | undefined,
  partition: Partition,
  bound: (value: string, index: number) => string = (_, index) => `$${index}`,
): { sql: string; params: JsonValue[] } {
  const lo = partition.lo as string | null | undefined;
  const hi = partition.hi as string | null | undefined;
  if (!column || (lo == null && hi == null)) return { sql: `SELECT * FROM ${relation}`, params: [] };
  const c = q(column);
  if (lo == null)
    return { sql: `SELECT * FROM ${relation} WHERE (${c} < ${bound(hi as string, 1)} OR ${c} IS NULL)`, params: [hi as string] };
  if (hi == null) return { sql: `SELECT * FROM ${relation} WHERE ${c} >= ${bound(lo, 1)}`, params: [lo] };
  return { sql: `SELECT * FROM ${relation} WHERE ${c} >= ${bound(lo, 1)} AND ${c} < ${bound(hi, 2)}`, params: [lo, hi] };
}
