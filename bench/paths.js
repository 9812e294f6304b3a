#!/usr/bin/env node
/**
 * weir against the native loader of each path (`npm run bench:paths`; not part of
 * `npm test`). Each path runs its peer and weir alternately, `--runs` times, in one
 * process, so both see the same machine state; the best run of each is reported
 * (the machine is shared: the best is the least disturbed). The content each left
 * behind is compared; rows/s, peak RSS and the ratio are printed as one table.
 *
 * Paths:
 *   csv → mariadb   `mariadb --local-infile` running LOAD DATA LOCAL INFILE (with SET
 *                   clauses for the boolean and timestamp columns, as a user would) vs
 *                   `weir run` csv → mysql, method load_data, exactly-once
 *   csv → sqlite    the `sqlite3` shell's `.import --csv` into the same table, and a plain
 *                   better-sqlite3 script (bench/sqlite-raw.js: csv-parse, one prepared
 *                   statement, one transaction) vs `weir run` csv → sqlite, exactly-once
 *   csv → parquet   DuckDB `COPY (SELECT * FROM read_csv(…)) TO … (FORMAT parquet, COMPRESSION
 *                   snappy)` with the bench's types declared (bench/duckdb-parquet.js) vs
 *                   `weir run` csv → parquet, snappy; content: DuckDB reading either file
 *   parquet → postgres  the extension-free route: DuckDB writes the Parquet file (DuckDB's own,
 *                   from the csv → parquet peer) out as CSV, then `psql \copy` loads it, vs
 *                   `weir run` parquet → postgres, exactly-once; the target is peak RSS
 *
 * Options: --rows N (1000000) · --runs N (3) · --paths a,b (all) · --json FILE.
 * Environment: MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_DATABASE (127.0.0.1, 3306, root, test);
 * PGHOST, PGPORT, PGUSER, PGDATABASE (127.0.0.1, 5432, postgres, test).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { BIN, ensureCsv, measure, ROOT } from './lib.js';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '3' },
    paths: { type: 'string' },
    json: { type: 'string' },
  },
});
const ROWS = Number(args.rows);
const RUNS = Math.max(1, Number(args.runs));
const MY = {
  host: process.env.MYSQL_HOST ?? '127.0.0.1',
  port: Number(process.env.MYSQL_PORT ?? 3306),
  user: process.env.MYSQL_USER ?? 'root',
  database: process.env.MYSQL_DATABASE ?? 'test',
};
const TARGETS = {
  'csv → mariadb': 0.8,
  'csv → sqlite (.import)': 0.5,
  'csv → sqlite (script)': 0.9,
  'csv → parquet': 0.5,
  // no speed target: the target is peak RSS (< PEAK_RSS_MB, as on every path)
  'parquet → postgres': 0,
};
const PEAK_RSS_MB = 200;

async function withMy(fn) {
  const conn = await mysql.createConnection({ ...MY, dateStrings: true, supportBigNumbers: true, bigNumberStrings: true });
  try {
    return await fn(conn);
  } finally {
    await conn.end();
  }
}

const MY_COLUMNS = 'id BIGINT, name TEXT, amount DOUBLE, active BOOLEAN, created_at DATETIME(6), note TEXT, price DECIMAL(28,10)';

async function freshMyTable(name) {
  await withMy(async (c) => {
    await c.query(`DROP TABLE IF EXISTS \`${name}\``);
    await c.query(`CREATE TABLE \`${name}\` (${MY_COLUMNS}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`);
  });
}

/**
 * Row count and an order-free digest of every row's text. LOAD DATA cannot tell an
 * empty CSV field (NULL) from a quoted empty one (''), so `note` is compared with
 * NULL read as '' (weir stores NULL and '' apart, as the row path does).
 */
async function myDigest(name) {
  return withMy(async (c) => {
    const [[r]] = await c.query(
      `SELECT COUNT(*) AS n, SUM(CRC32(CONCAT_WS('|', id, name, amount, active, created_at, COALESCE(note, ''), COALESCE(price, 'N')))) AS s, BIT_XOR(CRC32(CONCAT_WS('|', id, name, amount, active, created_at, COALESCE(note, ''), COALESCE(price, 'N')))) AS x FROM \`${name}\``,
    );
    return { rows: Number(r.n), digest: `${r.n}:${r.s}:${r.x}` };
  });
}

const CSV_COLUMNS =
  'columns: { id: integer, name: string, amount: number, active: boolean, created_at: timestamp, note: string, price: decimal }';

const SQLITE_TABLE = 'CREATE TABLE t (id INTEGER, name TEXT, amount REAL, active INTEGER, created_at TEXT, note TEXT, price DECIMAL_TEXT)';

/**
 * Row count and md5 of every row in id order. `.import` reads every field as text
 * (an empty one as '', `true` as 'true'): NULL is read as '' in `note`, and `active`
 * 'true'/'false' as 1/0, so the shell's table can be compared with the others.
 */
function sqliteDigest(file) {
  const db = new Database(file, { readonly: true });
  try {
    const hash = createHash('md5');
    let rows = 0;
    for (const r of db
      .prepare(
        "SELECT id, name, amount, CASE active WHEN 'true' THEN 1 WHEN 'false' THEN 0 ELSE active END AS active, created_at, COALESCE(note, '') AS note, NULLIF(price, '') AS price FROM t ORDER BY id",
      )
      .raw()
      .iterate()) {
      hash.update(`${JSON.stringify(r)}\n`);
      rows++;
    }
    return { rows, digest: hash.digest('hex') };
  } finally {
    db.close();
  }
}

function freshSqlite(dir, name) {
  const file = join(dir, name);
  for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
  return file;
}

async function weirSqlite(csv, dir) {
  const db = freshSqlite(dir, 'weir.db');
  const setup = new Database(db);
  setup.exec(SQLITE_TABLE);
  setup.close();
  const file = join(dir, 'sq.yaml');
  writeFileSync(
    file,
    `pipeline: bench-sq-weir
source:
  type: csv
  path: ${csv}
  ${CSV_COLUMNS}
sink: { type: sqlite, path: ${db}, table: t }
delivery: exactly-once
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
  );
  const r = await measure(process.execPath, [BIN, 'run', file, '--log-level', 'info', '--log-format', 'json']);
  return { ...r, check: () => sqliteDigest(db) };
}

// ---------------------------------------------------------------------------
// parquet

/** Row count and md5 of every row as DuckDB reads the Parquet file back, in id order (NULL apart from ''). */
async function parquetDigest(file) {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const c = await (await DuckDBInstance.create(':memory:')).connect();
  await c.run("SET TimeZone = 'UTC'");
  const r = await c.runAndReadAll(
    `SELECT count(*)::BIGINT AS n, md5(string_agg(concat_ws('|', id, name, amount, active, created_at, coalesce('"' || note || '"', 'NULL'), coalesce(price::VARCHAR, 'NULL')), '\n' ORDER BY id)) AS d FROM read_parquet('${file}')`,
  );
  const [n, d] = r.getRows()[0];
  c.closeSync();
  return { rows: Number(n), digest: `${n}:${d}` };
}

const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: process.env.PGUSER ?? 'postgres',
  database: process.env.PGDATABASE ?? 'test',
};
const PG_COLUMNS = 'id bigint, name text, amount double precision, active boolean, created_at timestamptz, note text, price numeric(38,10)';

async function withPg(fn) {
  const c = new pg.Client(PG);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function freshPgTable(name) {
  await withPg(async (c) => {
    await c.query(`DROP TABLE IF EXISTS "${name}"`);
    await c.query(`CREATE TABLE "${name}" (${PG_COLUMNS})`);
    await c.query('CHECKPOINT');
  });
}

/** Row count and md5 of every row's text in id order (NULL apart from ''). */
async function pgDigest(name) {
  return withPg(async (c) => {
    await c.query("SET TIME ZONE 'UTC'");
    const r = await c.query(`SELECT count(*)::int AS n, md5(string_agg(t::text, E'\\n' ORDER BY t.id)) AS d FROM "${name}" t`);
    return { rows: r.rows[0].n, digest: `${r.rows[0].n}:${r.rows[0].d}` };
  });
}

const DUCK = join(ROOT, 'bench', 'duckdb-parquet.js');

/** DuckDB's Parquet file of the bench CSV (the parquet → postgres input), written once beside the CSV. */
async function ensureParquet(csv) {
  const file = csv.replace(/\.csv$/, '.parquet');
  if (existsSync(file)) return file;
  const r = await measure(process.execPath, [DUCK, 'to-parquet', csv, `${file}.tmp`], { rss: false });
  if (r.code !== 0) throw new Error(`cannot write ${file}: ${r.stderr}`);
  renameSync(`${file}.tmp`, file);
  return file;
}

/** Each path: its peer and weir, each returning the measured process and where its rows went. */
const paths = {
  'csv → mariadb': {
    peerLabel: 'mariadb LOAD DATA LOCAL INFILE',
    async peer(csv) {
      const table = 'bench_my_peer';
      await freshMyTable(table);
      const sql = `LOAD DATA LOCAL INFILE '${csv}' INTO TABLE ${table} CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' ESCAPED BY '' LINES TERMINATED BY '\\n' IGNORE 1 LINES (id, name, amount, @active, @created_at, note, @price) SET active = (@active = 'true'), created_at = REPLACE(REPLACE(@created_at, 'T', ' '), 'Z', ''), price = NULLIF(@price, '')`;
      const r = await measure('mariadb', ['--local-infile=1', '-h', MY.host, '-P', String(MY.port), '-u', MY.user, MY.database, '-e', sql]);
      return { ...r, check: () => myDigest(table) };
    },
    async weir(csv, dir) {
      const table = 'bench_my_weir';
      await freshMyTable(table);
      const file = join(dir, 'my.yaml');
      writeFileSync(
        file,
        `pipeline: bench-my-weir
source:
  type: csv
  path: ${csv}
  ${CSV_COLUMNS}
sink: { type: mysql, host: ${MY.host}, port: ${MY.port}, user: ${MY.user}, database: ${MY.database}, table: ${table}, method: load_data }
delivery: exactly-once
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
      );
      const r = await measure(process.execPath, [BIN, 'run', file, '--log-level', 'info', '--log-format', 'json']);
      return { ...r, check: () => myDigest(table) };
    },
    async cleanup() {
      await withMy(async (c) => {
        for (const t of ['bench_my_peer', 'bench_my_weir']) await c.query(`DROP TABLE IF EXISTS \`${t}\``);
        await c.query("DELETE FROM _weir_runs WHERE pipeline LIKE 'bench-%'").catch(() => {});
        await c.query("DELETE FROM _weir_checkpoints WHERE pipeline LIKE 'bench-%'").catch(() => {});
      });
    },
  },
  'csv → sqlite (.import)': {
    peerLabel: 'sqlite3 .import --csv',
    async peer(csv, dir) {
      const db = freshSqlite(dir, 'import.db');
      const r = await measure('sqlite3', [db, SQLITE_TABLE, `.import --csv --skip 1 ${csv} t`]);
      return { ...r, check: () => sqliteDigest(db) };
    },
    weir: weirSqlite,
    cleanup() {},
  },
  'csv → parquet': {
    peerLabel: 'DuckDB COPY … (FORMAT parquet)',
    async peer(csv, dir) {
      const out = join(dir, 'duckdb.parquet');
      rmSync(out, { force: true });
      const r = await measure(process.execPath, [DUCK, 'to-parquet', csv, out]);
      return { ...r, check: () => parquetDigest(out) };
    },
    async weir(csv, dir) {
      const out = join(dir, 'weir.parquet');
      const file = join(dir, 'pq.yaml');
      writeFileSync(
        file,
        `pipeline: bench-pq-weir
source:
  type: csv
  path: ${csv}
  ${CSV_COLUMNS}
sink: { type: parquet, path: ${out}, compression: snappy }
`,
      );
      const r = await measure(process.execPath, [BIN, 'run', file, '--log-level', 'info', '--log-format', 'json']);
      return { ...r, check: () => parquetDigest(out) };
    },
    cleanup() {},
  },
  'parquet → postgres': {
    peerLabel: 'DuckDB → CSV, psql \\copy',
    async peer(csv, dir) {
      const parquet = await ensureParquet(csv);
      const table = 'bench_pq_peer';
      await freshPgTable(table);
      const out = join(dir, 'from-parquet.csv');
      const psql = `psql -h ${PG.host} -p ${PG.port} -U ${PG.user} -d ${PG.database} -v ON_ERROR_STOP=1 -c "\\copy ${table} FROM '${out}' CSV HEADER"`;
      // both steps in one measured process: the time is the sum, the peak RSS the larger
      const r = await measure('bash', ['-c', `set -e; "${process.execPath}" "${DUCK}" to-csv "${parquet}" "${out}"; ${psql}`]);
      return { ...r, check: () => pgDigest(table) };
    },
    async weir(csv, dir) {
      const parquet = await ensureParquet(csv);
      const table = 'bench_pq_weir';
      await freshPgTable(table);
      const file = join(dir, 'pqpg.yaml');
      writeFileSync(
        file,
        `pipeline: bench-pqpg-weir
source: { type: parquet, path: ${parquet} }
sink: { type: postgres, host: ${PG.host}, port: ${PG.port}, user: ${PG.user}, database: ${PG.database}, table: ${table} }
delivery: exactly-once
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
      );
      const r = await measure(process.execPath, [BIN, 'run', file, '--log-level', 'info', '--log-format', 'json']);
      return { ...r, check: () => pgDigest(table) };
    },
    async cleanup() {
      await withPg(async (c) => {
        for (const t of ['bench_pq_peer', 'bench_pq_weir']) await c.query(`DROP TABLE IF EXISTS "${t}"`);
        await c.query("DELETE FROM _weir_runs WHERE pipeline LIKE 'bench-%'").catch(() => {});
        await c.query("DELETE FROM _weir_checkpoints WHERE pipeline LIKE 'bench-%'").catch(() => {});
      });
    },
  },
  'csv → sqlite (script)': {
    peerLabel: 'better-sqlite3 script',
    async peer(csv, dir) {
      const db = freshSqlite(dir, 'script.db');
      const r = await measure(process.execPath, [join(ROOT, 'bench', 'sqlite-raw.js'), csv, db]);
      return { ...r, check: () => sqliteDigest(db) };
    },
    weir: weirSqlite,
    cleanup() {},
  },
};

async function main() {
  const csv = await ensureCsv(ROWS);
  const dir = mkdtempSync(join(tmpdir(), 'weir-bench-paths-'));
  const chosen = args.paths ? args.paths.split(',').map((p) => p.trim()) : Object.keys(paths);
  console.log(
    `\n${ROWS.toLocaleString('en-US')} rows × 7 columns (${(statSync(csv).size / 1e6).toFixed(1)} MB); ${RUNS} alternating run(s) of weir and its peer per path, best reported\n`,
  );
  const table = [];
  for (const name of chosen) {
    const path = paths[name];
    if (!path) throw new Error(`unknown path "${name}"; the paths are ${Object.keys(paths).join(', ')}`);
    const best = { peer: undefined, weir: undefined };
    let equal = true;
    for (let run = 1; run <= RUNS; run++)
      for (const who of ['peer', 'weir']) {
        const r = await path[who](csv, dir);
        const c = await r.check();
        if (r.code !== 0 || c.rows !== ROWS)
          throw new Error(`${name}, ${who}: exit ${r.code}, ${c.rows} rows: ${r.stderr.slice(-2000)}${r.stdout.slice(-1000)}`);
        r.content = c.digest;
        console.log(
          `  ${name}  run ${run}  ${(who === 'peer' ? path.peerLabel : 'weir').padEnd(32)} ${r.seconds.toFixed(2).padStart(6)} s  ${r.rssMb.toFixed(0).padStart(4)} MB`,
        );
        if (!best[who] || r.seconds < best[who].seconds) best[who] = r;
        if (who === 'weir' && r.content !== best.peer?.content) equal = false;
      }
    await path.cleanup();
    table.push({
      path: name,
      peer: path.peerLabel,
      peerRowsPerSecond: ROWS / best.peer.seconds,
      weirRowsPerSecond: ROWS / best.weir.seconds,
      ratio: best.peer.seconds / best.weir.seconds,
      target: TARGETS[name],
      peerRssMb: best.peer.rssMb,
      weirRssMb: best.weir.rssMb,
      contentEqual: equal,
    });
  }
  console.log(
    `\n${'path'.padEnd(24)}${'peer'.padEnd(34)}${'peer rows/s'.padStart(12)}${'weir rows/s'.padStart(12)}${'ratio'.padStart(8)}${'target'.padStart(8)}${'weir RSS'.padStart(10)}${'content'.padStart(9)}`,
  );
  for (const t of table)
    console.log(
      `${t.path.padEnd(24)}${t.peer.padEnd(34)}${Math.round(t.peerRowsPerSecond).toLocaleString('en-US').padStart(12)}${Math.round(t.weirRowsPerSecond).toLocaleString('en-US').padStart(12)}${`${t.ratio.toFixed(2)}x`.padStart(8)}${`${t.target}x`.padStart(8)}${`${t.weirRssMb.toFixed(0)} MB`.padStart(10)}${(t.contentEqual ? 'equal' : 'DIFFERS').padStart(9)}`,
    );
  const failed = table.filter((t) => !t.contentEqual || t.ratio < t.target || t.weirRssMb >= PEAK_RSS_MB);
  console.log('');
  for (const t of table)
    console.log(
      `${failed.includes(t) ? 'FAIL' : 'PASS'}  ${t.path}: ${t.ratio.toFixed(2)}x of ${t.peer} (target ${t.target}x), weir peak RSS ${t.weirRssMb.toFixed(0)} MB (< ${PEAK_RSS_MB}), content ${t.contentEqual ? 'equal' : 'differs'}`,
    );
  if (args.json) writeFileSync(args.json, `${JSON.stringify({ rows: ROWS, runs: RUNS, paths: table }, null, 2)}\n`);
  rmSync(dir, { recursive: true, force: true });
  process.exitCode = failed.length ? 1 : 0;
}

main().catch((error) => {
  console.error(`bench failed: ${error.message}`);
  process.exitCode = 2;
});
