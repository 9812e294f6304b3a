/**
 * What the stream benchmarks (stream-mqtt.js, stream-redis.js) share: the PostgreSQL
 * target, the raw consumers' epochs (the same work weir does: rows buffered, inserted
 * with an upsert on `seq` in one transaction per 10,000 rows or 1 s, acknowledged to
 * the broker only after the COMMIT) and the content check.
 */
import pg from 'pg';

export const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: process.env.PGUSER ?? 'postgres',
  database: process.env.PGDATABASE ?? 'test',
  password: process.env.PGPASSWORD,
};

/** The message every variant moves: a JSON object with a key and some text. */
export function message(seq) {
  return JSON.stringify({ seq, device: `dev-${seq % 97}`, body: `message ${seq} ${'x'.repeat(seq % 50)}` });
}

export async function pgClient() {
  const c = new pg.Client(PG);
  await c.connect();
  return c;
}

/**
 * A raw consumer's epochs: `add(row, ack)` buffers; every 10,000 rows or 1 s one
 * transaction upserts them (the same statement shape as weir's upsert: INSERT …
 * ON CONFLICT (seq) DO UPDATE), then the acks run.
 */
/** weir's default `stream.epoch_rows`. */
const EPOCH_ROWS = 10_000;

export class RawEpochs {
  constructor(db, table) {
    this.db = db;
    this.table = table;
    this.rows = [];
    this.acks = [];
    this.opened = performance.now();
    this.written = 0;
  }
  static async open(table) {
    const db = await pgClient();
    await db.query(`DROP TABLE IF EXISTS "${table}"`);
    await db.query(`CREATE TABLE "${table}" (seq bigint PRIMARY KEY, device text, body text)`);
    return new RawEpochs(db, table);
  }
  /** Rows the open epoch still takes. */
  room() {
    return Math.max(0, EPOCH_ROWS - this.rows.length);
  }
  due() {
    return this.rows.length >= EPOCH_ROWS || (this.rows.length > 0 && performance.now() - this.opened >= 1000);
  }
  add(row, ack) {
    this.rows.push(row);
    if (ack) this.acks.push(ack);
  }
  async commit() {
    if (this.rows.length > 0) {
      const seq = [];
      const device = [];
      const body = [];
      for (const r of this.rows) {
        seq.push(String(r.seq));
        device.push(r.device);
        body.push(r.body);
      }
      await this.db.query('BEGIN');
      await this.db.query(
        `INSERT INTO "${this.table}" (seq, device, body) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) ON CONFLICT (seq) DO UPDATE SET device = EXCLUDED.device, body = EXCLUDED.body`,
        [seq, device, body],
      );
      await this.db.query('COMMIT');
      this.written += this.rows.length;
    }
    for (const a of this.acks) await a();
    this.rows = [];
    this.acks = [];
    this.opened = performance.now();
  }
  close() {
    return this.db.end();
  }
}

/** What a table holds: rows, distinct keys, and a digest of every row's content in key order. */
export async function content(db, table) {
  const r = await db.query(
    `SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d, md5(string_agg(seq::text || '|' || device || '|' || body, ',' ORDER BY seq::text::bigint)) AS digest FROM "${table}"`,
  );
  return r.rows[0];
}

/** The expected content of `n` messages, computed by PostgreSQL the same way. */
export async function expected(db, n) {
  const r = await db.query(
    `SELECT md5(string_agg(s::text || '|' || 'dev-' || (s % 97)::text || '|' || 'message ' || s::text || ' ' || repeat('x', (s % 50)::int), ',' ORDER BY s)) AS digest FROM generate_series(1, $1::int) AS s`,
    [n],
  );
  return r.rows[0].digest;
}

export function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((c, i) => String(c).padEnd(widths[i])).join('  ')).join('\n');
}
