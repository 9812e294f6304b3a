/**
 * The postgres source's export fast path (worker, once per partition): the
 * partition as `COPY (SELECT …) TO STDOUT (FORMAT csv)` chunks for a writer that
 * appends canonical CSV as it is (the csv sink, `EncodingHints.dialect`).
 *
 * The invariant: every record is byte for byte what the csv sink's row path writes
 * for the row the cursor path reads. The server renders each column as the row
 * path's text ({@link exportColumn}: booleans `true`/`false`, floats as JavaScript
 * prints them, timestamps in ISO-8601 with `T` and `Z`, bytea as base64, integer,
 * boolean and text arrays as JSON); COPY's CSV quoting is weir's but for one case,
 * a first field starting with a backslash, which {@link RecordCutter} quotes. A
 * partition with a column whose row-path text the server cannot give (json, jsonb,
 * float and timestamp arrays, types node-postgres parses into objects) is read by
 * the row path instead, whole.
 */
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { TaskContext } from '../../sdk/connector.js';
import { quoteIdentifier as q } from '../../sdk/sql.js';
import type { EncodedRows, Partition, Row } from '../../sdk/types.js';
import { rowOf } from '../../sdk/types.js';
import { Decimal } from '../../sdk/values.js';
import type { Dialect } from '../shared/csv-text.js';
import { connect, destroy, endQuietly, OID, pgError } from './client.js';
import { beginRead } from './partitions.js';
import type { PostgresOptions } from './spec.js';

const LF = 0x0a;
const BACKSLASH = 0x5c;

/** Bytes of whole records per chunk handed on. */
const CHUNK_BYTES = 2 * 1024 * 1024;

/** How a column's CSV text turns back into the row path's value (for `decode`). */
type Decoder = (text: string) => unknown;

/** One column of the export: the SQL giving the row path's text, and its way back to the value. */
export interface ExportColumn {
  readonly sql: string;
  readonly decode: Decoder;
}

const asText: Decoder = (t) => t;
const asInt: Decoder = (t) => Number.parseInt(t, 10);
const asInt8: Decoder = (t) => {
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : BigInt(t);
};
const asFloat: Decoder = (t) => Number.parseFloat(t);
const asBool: Decoder = (t) => t === 'true';
const asBytes: Decoder = (t) => Buffer.from(t, 'base64');
const asJson: Decoder = (t) => JSON.parse(t);
/** numeric as the row path reads it: an exact Decimal; NaN and ±Infinity as numbers. */
const asNumeric: Decoder = (t) => Decimal.parse(t) ?? Number(t);

/** node-postgres' parser of a type: for a type it has none for (oid 0), the text as it is. */
const parserOf = pg.types.getTypeParser as (oid: number, format: 'text') => unknown;
const NO_PARSER = parserOf(0, 'text');

/** Arrays node-postgres parses into lists of numbers, booleans or strings, which `to_json` writes as the row path's JSON. */
const JSON_ARRAYS = new Set([
  1000, // bool[]
  1005, // int2[]
  1007, // int4[]
  1028, // oid[]
  1009, // text[]
  1014, // bpchar[]
  1015, // varchar[]
  2951, // uuid[]
]);

/**
 * A double as JavaScript prints it, from PostgreSQL's text `t` of it (the row path
 * prints `parseFloat(t)`). Between 1e-3 and `fixedBelow` (PostgreSQL switches to
 * an exponent from 1e15 for double precision, 1e7 for real; the margins keep
 * values whose shortest digits round up to the switch out) both write the same
 * shortest digits in fixed notation, so the text passes as it is (the common
 * case, and cheap). Otherwise: `-0` is `0`; fixed notation from 1e-6 up to 1e21 (the exact
 * decimal of the text, through numeric); else the exponent without leading zeros
 * (`1e-07` → `1e-7`). NaN and ±Infinity are as PostgreSQL writes them (NaN
 * compares above every number there).
 */
function floatText(c: string, fixedBelow: string): string {
  const t = `${c}::text`;
  const v = `(${t})::float8`;
  const exact = `CASE WHEN ${v} = 0 THEN '0' WHEN abs(${v}) >= 1e21 OR abs(${v}) < 1e-6 THEN regexp_replace(${t}, 'e([+-])0+([0-9])', 'e\\1\\2') ELSE ((${t})::numeric)::text END`;
  return `CASE WHEN abs(${c}) >= 1e-3 AND abs(${c}) < ${fixedBelow} THEN ${t} ELSE ${exact} END`;
}

/**
 * Timestamps as the row path writes them: the first space a `T` and, with a zone
 * (the session is in UTC, so always +00), `+00` as `Z`. From year 1 on the text has
 * one space and `+00` only at its end, so plain `replace` does (cheaper than a
 * regular expression); BC years, whose text ends in ` BC`, take the regular one.
 */
function timestampText(c: string, zone: boolean): string {
  const t = `${c}::text`;
  const ad = zone ? `replace(replace(${t}, ' ', 'T'), '+00', 'Z')` : `replace(${t}, ' ', 'T')`;
  const bc = zone ? `regexp_replace(regexp_replace(${t}, ' ', 'T'), '[+]00$', 'Z')` : `regexp_replace(${t}, ' ', 'T')`;
  return `CASE WHEN ${c} >= '0001-01-01 00:00:00${zone ? '+00' : ''}' THEN ${ad} ELSE ${bc} END`;
}

/**
 * The SQL that renders a column of type `oid` as the csv sink's row path writes the
 * value the cursor path reads, and how that text reads back; undefined when the
 * server cannot render it so (the partition then takes the row path).
 */
export function exportColumn(name: string, oid: number): ExportColumn | undefined {
  const c = q(name);
  switch (oid) {
    case OID.int2:
    case OID.int4:
    case OID.oid:
      return { sql: c, decode: asInt };
    case OID.int8:
      return { sql: c, decode: asInt8 };
    case OID.numeric:
      return { sql: c, decode: asNumeric };
    case OID.float4:
      return { sql: floatText(c, '1e5'), decode: asFloat };
    case OID.float8:
      return { sql: floatText(c, '1e14'), decode: asFloat };
    case OID.bool:
      // constants: cheaper than the cast to text, which gives the same words
      return { sql: `CASE WHEN ${c} THEN 'true' WHEN NOT ${c} THEN 'false' END`, decode: asBool };
    case OID.date:
    case OID.interval:
      return { sql: c, decode: asText };
    case OID.timestamp:
      return { sql: timestampText(c, false), decode: asText };
    case OID.timestamptz:
      return { sql: timestampText(c, true), decode: asText };
    case OID.bytea:
      return { sql: `translate(encode(${c}, 'base64'), chr(10), '')`, decode: asBytes };
    case OID.json:
    case OID.jsonb:
      return undefined;
  }
  if (JSON_ARRAYS.has(oid)) return { sql: `to_json(${c})::text`, decode: asJson };
  if (parserOf(oid, 'text') === NO_PARSER) return { sql: c, decode: asText };
  return undefined;
}

/**
 * Cuts the COPY stream into chunks of whole records and counts them. Quoting in
 * COPY's output is whole-field, so a quote byte always toggles "inside quotes";
 * a line feed outside quotes ends a record. Records whose first field starts with
 * a backslash are remembered: weir quotes that field (PostgreSQL reads a line `\.`
 * as the end of data), COPY does not.
 */
export class RecordCutter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private inQuote = false;
  private atStart = true;
  /** Records complete in `pending`, and the bytes up to the end of the last one. */
  private rows = 0;
  private wholeBytes = 0;
  /** Offsets in `pending` of records that start with a backslash. */
  private backslashes: number[] = [];

  constructor(private readonly d: Dialect) {}

  push(chunk: Buffer): void {
    const quote = this.d.quote.charCodeAt(0);
    const base = this.pendingBytes;
    const n = chunk.length;
    let p = 0;
    // the next quote and line feed at or after p, found again only once p passed them (-1: none left)
    let nextQuote = -2;
    let nextLf = -2;
    while (p < n) {
      if (this.inQuote) {
        const e = chunk.indexOf(quote, p);
        if (e < 0) break;
        this.inQuote = false;
        p = e + 1;
        continue;
      }
      if (this.atStart) {
        this.atStart = false;
        if (chunk[p] === BACKSLASH) this.backslashes.push(base + p);
      }
      if (nextQuote !== -1 && nextQuote < p) nextQuote = chunk.indexOf(quote, p);
      if (nextLf !== -1 && nextLf < p) nextLf = chunk.indexOf(LF, p);
      const lf = nextLf;
      if (lf >= 0 && (nextQuote < 0 || lf < nextQuote)) {
        this.rows++;
        this.wholeBytes = base + lf + 1;
        this.atStart = true;
        p = lf + 1;
      } else if (nextQuote >= 0) {
        this.inQuote = true;
        p = nextQuote + 1;
      } else break;
    }
    this.pending.push(chunk);
    this.pendingBytes += n;
  }

  /** Whether enough whole records wait to make a chunk. */
  get full(): boolean {
    return this.wholeBytes >= CHUNK_BYTES;
  }

  /** The whole records so far (canonical), and how many; the bytes of a record not yet complete stay. */
  take(): { data: Buffer; rows: number } | undefined {
    if (this.rows === 0) return undefined;
    const all = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending, this.pendingBytes);
    const cut = this.wholeBytes;
    const rest = all.subarray(cut);
    const marks = this.backslashes.filter((o) => o < cut);
    const data = marks.length ? quoteFirstFields(all.subarray(0, cut), marks, this.d) : all.subarray(0, cut);
    const rows = this.rows;
    this.pending = rest.length ? [Buffer.from(rest)] : [];
    this.pendingBytes = rest.length;
    this.backslashes = this.backslashes.filter((o) => o >= cut).map((o) => o - cut);
    this.rows = 0;
    this.wholeBytes = 0;
    return { data, rows };
  }

  /** Bytes after the last whole record (at the end of the stream: none, or the stream was cut short). */
  get leftover(): number {
    return this.pendingBytes - this.wholeBytes;
  }
}

/** Quotes the unquoted first field at each of `starts` (text with no quote, delimiter or line break in it), unless it is the null text. */
function quoteFirstFields(data: Buffer, starts: number[], d: Dialect): Buffer {
  const delimiter = d.delimiter.charCodeAt(0);
  const quote = Buffer.from(d.quote);
  const nullText = Buffer.from(d.nullText);
  const parts: Buffer[] = [];
  let from = 0;
  for (const start of starts) {
    let end = start;
    while (data[end] !== delimiter && data[end] !== LF) end++;
    if (data.subarray(start, end).equals(nullText)) continue;
    parts.push(data.subarray(from, start), quote, data.subarray(start, end), quote);
    from = end;
  }
  parts.push(data.subarray(from));
  return Buffer.concat(parts);
}

/**
 * Records of canonical CSV back into the row path's rows: an unquoted null text is
 * null, any other field its column's value. Canonical CSV quotes whole fields, so
 * a field is either quoted from its first character or has no quote in it.
 */
export function decodeRecords(data: Buffer, names: readonly string[], columns: readonly ExportColumn[], d: Dialect): Row[] {
  const text = data.toString('utf8');
  const { delimiter, quote, nullText } = d;
  const doubled = quote + quote;
  const rows: Row[] = [];
  let values: unknown[] = [];
  let p = 0;
  while (p < text.length) {
    let field: string | null;
    if (text[p] === quote) {
      let e = p + 1;
      for (;;) {
        e = text.indexOf(quote, e);
        if (text[e + 1] !== quote) break;
        e += 2;
      }
      field = text
        .slice(p + 1, e)
        .split(doubled)
        .join(quote);
      p = e + 1;
    } else {
      let e = p;
      while (e < text.length && text[e] !== delimiter && text[e] !== '\n') e++;
      const raw = text.slice(p, e);
      field = raw === nullText ? null : raw;
      p = e;
    }
    const column = columns[values.length] as ExportColumn;
    values.push(field === null ? null : column.decode(field));
    if (text[p] === delimiter) p++;
    else {
      rows.push(rowOf(names, values));
      values = [];
      p++;
    }
  }
  return rows;
}

export interface ExportPlan {
  readonly opts: PostgresOptions;
  /** The partition's SELECT, given a way to write its bound values. */
  readonly select: (bound: (value: string) => string) => string;
  /** For messages: what is read (`source table public.events`). */
  readonly what: string;
  /** The partition's rows by the row path, when the export cannot give them. */
  readonly rowPath: () => AsyncIterable<Row[]>;
}

/**
 * The partition as canonical CSV chunks in dialect `d`, or — when a column's type
 * has no exact export — as the row path's rows. One connection, one COPY, in the
 * row path's read-only transaction (on the run's snapshot: partitions.ts).
 */
export async function* exportCsv(
  plan: ExportPlan,
  partition: Partition,
  ctx: TaskContext,
  d: Dialect,
): AsyncGenerator<EncodedRows | Row[]> {
  const { opts, what } = plan;
  let client: pg.Client | undefined = await connect(opts, { baseDir: ctx.baseDir, log: ctx.log, role: `source p${partition.id}` });
  let done = false;
  try {
    const c = client;
    const lit = (v: string) => c.escapeLiteral(v);
    const select = plan.select(lit);
    await beginRead(c, partition, opts, ctx.log);
    const shape = await c.query({ text: `SELECT * FROM (${select}) AS _weir_x LIMIT 0`, rowMode: 'array' });
    const names = shape.fields.map((f) => f.name);
    const columns = shape.fields.map((f) => exportColumn(f.name, f.dataTypeID));
    if (columns.some((c) => c === undefined) || new Set(names).size !== names.length) {
      const skipped = shape.fields.filter((_, i) => columns[i] === undefined).map((f) => f.name);
      ctx.log.debug('export fast path not taken: columns without an exact CSV text, or repeated names', { columns: skipped });
      await endQuietly(c);
      client = undefined;
      done = true;
      yield* plan.rowPath();
      return;
    }
    const exact = columns as ExportColumn[];
    const list = exact.map((col, i) => `${col.sql} AS ${q(names[i] as string)}`).join(', ');
    const sql = `COPY (SELECT ${list} FROM (${select}) AS _weir_x) TO STDOUT (FORMAT csv, DELIMITER ${lit(d.delimiter)}, QUOTE ${lit(d.quote)}, NULL ${lit(d.nullText)}, ENCODING 'UTF8')`;
    const cutter = new RecordCutter(d);
    const chunk = (taken: { data: Buffer; rows: number }): EncodedRows => ({
      kind: 'encoded',
      format: 'csv',
      canonical: true,
      columns: names,
      delimiter: d.delimiter,
      quote: d.quote,
      nullText: d.nullText,
      data: taken.data,
      rows: taken.rows,
      decode: async () => decodeRecords(taken.data, names, exact, d),
    });
    const stream = c.query(copyTo(sql));
    for await (const data of stream as AsyncIterable<Buffer>) {
      cutter.push(data);
      if (cutter.full) yield chunk(cutter.take() as { data: Buffer; rows: number });
    }
    const last = cutter.take();
    if (last) yield chunk(last);
    if (cutter.leftover > 0) throw new Error(`COPY ended inside a record (${cutter.leftover} bytes after the last line feed)`);
    await c.query('COMMIT');
    done = true;
  } catch (error) {
    throw pgError(error, `exporting ${what}${partition.id === '0' && !('lo' in partition) ? '' : ` (partition ${partition.id})`}`, opts);
  } finally {
    // a COPY left half-read (the task stopped early) holds the connection: close its socket
    if (!done) destroy(client);
    await endQuietly(client);
  }
}
