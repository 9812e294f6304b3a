/**
 * How the postgres source is split, and the one snapshot all its partitions read.
 *
 * Splits (planner, once): ranges of `partition_column` between its min and max, or —
 * a table without one — ranges of the table's physical blocks (`ctid`, read by TID
 * range scans, PostgreSQL 14 or later), in block order, so that the partitions'
 * rows put one after the other are the order a plain scan gives.
 *
 * Snapshot: with more than one partition the planner opens a repeatable-read,
 * read-only transaction, takes an ACCESS SHARE lock on the table (no TRUNCATE,
 * VACUUM FULL or ALTER TABLE under the run), exports its snapshot
 * (`pg_export_snapshot()`, as `pg_dump -j` does) and holds it until the run ends
 * ({@link SnapshotHolder.close}, from `Source.close`). Each partition's
 * transaction imports it (`SET TRANSACTION SNAPSHOT`): every partition reads the
 * table as it was at that one moment, so a row moved from one range into another
 * during the run is read once — not twice, not never. The snapshot id is a
 * {@link RUN_ONLY} fact of the partitions: a resumed run exports a new one.
 */
import type pg from 'pg';
import type { Log, PlanContext } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import { quoteIdentifier as q } from '../../sdk/sql.js';
import { type JsonValue, type Partition, RUN_ONLY } from '../../sdk/types.js';
import { connect, endQuietly, pgError, type RangeKind, rangeKindOfOid } from './client.js';
import type { PostgresOptions } from './spec.js';

/** A range of the partition column: `lo` inclusive, `hi` exclusive; null means unbounded. The first range also takes NULLs. */
export interface RangePartition extends Partition {
  lo: string | null;
  hi: string | null;
}

/** The oldest server whose planner reads a `ctid` range without scanning the whole table. */
const TID_RANGE_SCANS = 140_000;

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

/** `[first, end)` block numbers of a block-range partition (end null: to the table's end), checked: partitions are read back from JSON. */
function blocksOf(partition: Partition): [number, number | null] | undefined {
  const b = partition.blocks;
  if (b === undefined) return undefined;
  const ok = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  if (!Array.isArray(b) || b.length !== 2 || !ok(b[0]) || !(b[1] === null || ok(b[1])))
    throw new WeirError(`partition ${partition.id}: blocks must be [first, end or null] block numbers, got ${JSON.stringify(b)}`, {
      kind: 'internal',
    });
  return [b[0] as number, b[1] as number | null];
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
  const blocks = blocksOf(partition);
  if (blocks) {
    const [first, end] = blocks;
    const where = [first > 0 ? `ctid >= '(${first},0)'::tid` : '', end !== null ? `ctid < '(${end},0)'::tid` : ''].filter(Boolean);
    return { sql: `SELECT * FROM ${relation}${where.length ? ` WHERE ${where.join(' AND ')}` : ''}`, params: [] };
  }
  const lo = partition.lo as string | null | undefined;
  const hi = partition.hi as string | null | undefined;
  if (!column || (lo == null && hi == null)) return { sql: `SELECT * FROM ${relation}`, params: [] };
  const c = q(column);
  if (lo == null)
    return { sql: `SELECT * FROM ${relation} WHERE (${c} < ${bound(hi as string, 1)} OR ${c} IS NULL)`, params: [hi as string] };
  if (hi == null) return { sql: `SELECT * FROM ${relation} WHERE ${c} >= ${bound(lo, 1)}`, params: [lo] };
  return { sql: `SELECT * FROM ${relation} WHERE ${c} >= ${bound(lo, 1)} AND ${c} < ${bound(hi, 2)}`, params: [lo, hi] };
}

/** What the planner splits: the relation's SQL, and the table (`"schema"."table"`) when it is one. */
export interface SplitTarget {
  readonly relation: string;
  readonly table: string | undefined;
  /** For messages: `source table public.events`. */
  readonly what: string;
}

/** The planner's open transaction whose snapshot the partitions import; closed when the run ends. */
export class SnapshotHolder {
  private constructor(
    private readonly client: pg.Client,
    readonly id: string,
  ) {}

  /**
   * Opens the transaction, runs `check` in it (that the table and column exist: before
   * the lock, whose own error is less clear), locks `table` when given and exports
   * the snapshot.
   */
  static async open(
    opts: PostgresOptions,
    ctx: PlanContext,
    table: string | undefined,
    check: (client: pg.Client) => Promise<void>,
  ): Promise<SnapshotHolder> {
    const client = await connect(opts, { baseDir: ctx.baseDir, log: ctx.log, role: 'source planner' });
    try {
      // the transaction stays idle while the partitions read: a server-wide idle timeout must not end it
      await client.query('SET idle_in_transaction_session_timeout = 0');
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await check(client);
      if (table) await client.query(`LOCK TABLE ${table} IN ACCESS SHARE MODE`);
      const r = await client.query<{ id: string }>('SELECT pg_export_snapshot() AS id');
      return new SnapshotHolder(client, (r.rows[0] as { id: string }).id);
    } catch (error) {
      await endQuietly(client);
      throw error;
    }
  }

  /** Queries inside the snapshot's transaction (the split is planned on the data the partitions will read). */
  query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    return this.client.query<R>(sql, params);
  }

  async close(): Promise<void> {
    await endQuietly(this.client);
  }
}

/**
 * The partitions of the source: one without `partitions` above 1; else ranges of
 * `partition_column` or of the table's blocks, on `holder`'s snapshot (the caller
 * closes it; with a single partition it is not needed).
 */
export async function planPartitions(
  opts: PostgresOptions,
  target: SplitTarget,
  holder: SnapshotHolder,
  ctx: PlanContext,
): Promise<Partition[]> {
  const splits = opts.partition_column
    ? await columnRanges(opts.partition_column, opts, target, holder)
    : await blockRanges(opts, target, holder, ctx);
  if (splits.length > 1) ctx.log.debug('split source into ranges', { by: opts.partition_column ?? 'ctid', partitions: splits.length });
  return splits.length > 1 ? splits.map((p) => ({ ...p, [RUN_ONLY]: { snapshot: holder.id } })) : splits;
}

async function columnRanges(column: string, opts: PostgresOptions, target: SplitTarget, holder: SnapshotHolder): Promise<Partition[]> {
  const r = await holder.query(`SELECT min(${q(column)}) AS lo, max(${q(column)}) AS hi FROM ${target.relation}`);
  const field = r.fields[0];
  const kind = field ? rangeKindOfOid(field.dataTypeID) : undefined;
  if (!kind) {
    const t = await holder.query<{ t: string }>('SELECT format_type($1::oid, NULL) AS t', [field?.dataTypeID ?? 0]);
    throw new WeirError(
      `partition_column ${column} has type ${t.rows[0]?.t ?? 'unknown'}, which cannot be split into ranges; use a numeric, date or timestamp column`,
      { kind: 'config', code: 'bad_partition_column' },
    );
  }
  const { lo, hi } = r.rows[0] as { lo: unknown; hi: unknown };
  if (lo === null || hi === null) return [{ id: '0', lo: null, hi: null }];
  const edges: (string | null)[] = [null, ...splitRange(kind, lo, hi, opts.partitions), null];
  const out: RangePartition[] = [];
  for (let i = 0; i + 1 < edges.length; i++) out.push({ id: String(i), lo: edges[i] as string | null, hi: edges[i + 1] as string | null });
  return out;
}

/** Ranges of the table's blocks: pages as they are on disk now (rows of the snapshot cannot lie beyond them). */
async function blockRanges(opts: PostgresOptions, target: SplitTarget, holder: SnapshotHolder, ctx: PlanContext): Promise<Partition[]> {
  const r = await holder.query<{ version: number; blocks: string }>(
    "SELECT current_setting('server_version_num')::int AS version, (pg_relation_size($1::regclass) / current_setting('block_size')::int)::text AS blocks",
    [target.table],
  );
  const { version, blocks } = r.rows[0] as { version: number; blocks: string };
  if (version < TID_RANGE_SCANS) {
    ctx.log.warn(
      `${target.what} is read as one partition: PostgreSQL before 14 scans the whole table for each block range; set partition_column to split it by a column`,
      { server_version_num: version },
    );
    return [{ id: '0' }];
  }
  const ends = splitRange('integer', 0, Number(blocks) - 1, opts.partitions)
    .map(Number)
    .filter((b) => b > 0);
  const edges = [0, ...ends];
  return edges.map((first, i) => ({ id: String(i), blocks: [first, edges[i + 1] ?? null] }));
}

/**
 * Begins a partition's read-only transaction: on the run's exported snapshot when
 * the planner made one. The id comes back from JSON: it is passed as a literal.
 * When the snapshot is gone — the planner ended before this partition began (a
 * `--detach`ed distributed run, a submitter that died, its connection dropped) —
 * the partition reads a snapshot of its own, and says so: rows changed meanwhile
 * may then be read in two ranges or in none.
 */
export async function beginRead(client: pg.Client, partition: Partition, opts: PostgresOptions, log: Log): Promise<void> {
  const facts = partition[RUN_ONLY];
  const snapshot = facts && typeof facts === 'object' && !Array.isArray(facts) ? facts.snapshot : undefined;
  if (snapshot === undefined) {
    await client.query('BEGIN READ ONLY');
    return;
  }
  if (typeof snapshot !== 'string' || !/^[0-9A-F-]{1,64}$/i.test(snapshot))
    throw new WeirError(`partition ${partition.id}: ${RUN_ONLY}.snapshot is not a snapshot id (${JSON.stringify(snapshot)})`, {
      kind: 'internal',
    });
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    await client.query(`SET TRANSACTION SNAPSHOT ${client.escapeLiteral(snapshot)}`);
  } catch (error) {
    if ((error as { code?: unknown }).code !== '22023')
      throw pgError(error, `partition ${partition.id}: importing the run's snapshot`, opts);
    await client.query('ROLLBACK');
    log.warn(
      `partition ${partition.id} reads a snapshot of its own: the run's snapshot is gone (the planner ended before this partition began — a detached run, or its connection to PostgreSQL dropped), so rows changed during the run may be read in two partitions or in none; run attached (without --detach) for one snapshot`,
      { partition_id: partition.id, code: 'snapshot_gone' },
    );
    await client.query('BEGIN READ ONLY');
  }
}
