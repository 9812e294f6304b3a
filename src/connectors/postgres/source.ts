/**
 * The postgres source: a table or a query, optionally split into ranges of a
 * column or of the table's blocks, all read on one snapshot (partitions.ts), each
 * range read by one task through a server-side cursor (`DECLARE … CURSOR` +
 * `FETCH n` in a read-only transaction, the next FETCH in flight while the
 * previous rows are being written). For a writer that appends canonical CSV (the
 * csv sink), `readEncoded` exports each range through COPY instead (export.ts).
 */
import type pg from 'pg';
import type { PlanContext, Source, TaskContext } from '../../sdk/connector.js';
import { keyText, RowError, type RowLocation, WeirError } from '../../sdk/errors.js';
import type { EncodedRows, Partition, Row, Schema } from '../../sdk/types.js';
import { JsonDepthError } from '../../sdk/values.js';
import { byteDialectOk } from '../shared/csv-text.js';
import { connect, endQuietly, OID, pgError, qualified, querySchema, tableColumns } from './client.js';
import { type ExportPlan, exportCsv } from './export.js';
import { beginRead, planPartitions, rangeQuery, SnapshotHolder } from './partitions.js';
import type { PostgresOptions } from './spec.js';

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

  /** The planner's exported snapshot, held while partitions read it (more than one partition). */
  let snapshot: SnapshotHolder | undefined;

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

    partitions: async (ctx): Promise<Partition[]> => {
      if (opts.partitions <= 1) return [{ id: '0' }];
      await snapshot?.close();
      snapshot = undefined;
      const table = opts.table ? qualified(opts.schema, opts.table) : undefined;
      let holder: SnapshotHolder;
      try {
        holder = await SnapshotHolder.open(opts, ctx, table, checkTable);
      } catch (error) {
        throw pgError(error, what, opts);
      }
      try {
        const out = await planPartitions(opts, { relation, table, what }, holder, ctx);
        if (out.length > 1) snapshot = holder;
        else await holder.close();
        return out;
      } catch (error) {
        await holder.close();
        throw pgError(error, what, opts);
      }
    },

    /** Ends the planner's snapshot transaction (after the run: every partition has imported it). */
    close: () => snapshot?.close(),

    async *read(partition: Partition, ctx: TaskContext): AsyncGenerator<Row[]> {
      const { sql, params } = rangeQuery(relation, opts.partition_column, partition);
      const client = await connect(opts, { baseDir: ctx.baseDir, log: ctx.log, role: `source p${partition.id}` });
      const fetchSql = `FETCH ${opts.fetch_size} FROM _weir_cursor`;
      let pending: Promise<pg.QueryResult<Row>> | undefined;
      try {
        await beginRead(client, partition, opts, ctx.log);
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
