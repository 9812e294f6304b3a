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
 *   X → csv         the same rows exported to a CSV file (see EXPORT_PATHS): postgres vs
 *                   `psql \copy (SELECT …) TO … CSV HEADER`, mysql vs `mariadb --batch -e
 *                   'SELECT …'`, sqlite vs `sqlite3 -csv -header`, parquet and jsonl vs DuckDB
 *                   `COPY (SELECT * FROM read_…) TO … (FORMAT csv)`; the files compared by a
 *                   digest of their parsed, normalised rows
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
import { createReadStream, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
  'postgres → csv': 0.8,
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
// X → csv: the bench rows exported from each source to a CSV file

const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: process.env.PGUSER ?? 'postgres',
  database: process.env.PGDATABASE ?? 'test',
};
const EXPORT_TABLE = 'bench_export_src';
const psqlArgs = (sql) => ['-h', PG.host, '-p', String(PG.port), '-U', PG.user, PG.database, '-qc', sql];
const myArgs = () => ['-h', MY.host, '-P', String(MY.port), '-u', MY.user, MY.database];

/** Each source of the bench rows, made once per process from the bench CSV (typed as the csv → mariadb path types it). */
const exportSources = {};
function exportSource(kind, csv, dir, make) {
  exportSources[kind] ??= make(csv, dir);
  return exportSources[kind];
}

async function run(cmd, argv) {
  const r = await measure(cmd, argv, { rss: false });
  if (r.code !== 0) throw new Error(`${cmd} ${argv.join(' ').slice(0, 200)}: exit ${r.code}: ${r.stderr.slice(-1000)}`);
}

const duckdb = (...sql) => run(process.execPath, [join(ROOT, 'bench', 'duckdb-run.js'), ...sql]);
const DUCK_READ_CSV = (csv) =>
  `read_csv('${csv}', header = true, quote = '"', escape = '"', columns = {'id': 'BIGINT', 'name': 'VARCHAR', 'amount': 'DOUBLE', 'active': 'BOOLEAN', 'created_at': 'TIMESTAMPTZ', 'note': 'VARCHAR', 'price': 'DECIMAL(28,10)'})`;

const makeSource = {
  async postgres(csv) {
    await run('psql', [
      ...psqlArgs(
        `DROP TABLE IF EXISTS ${EXPORT_TABLE}; CREATE TABLE ${EXPORT_TABLE} (id bigint, name text, amount double precision, active boolean, created_at timestamptz, note text, price numeric)`,
      ),
    ]);
    await run('psql', psqlArgs(`\\copy ${EXPORT_TABLE} FROM '${csv}' WITH (FORMAT csv, HEADER)`));
  },
  async mysql(csv) {
    await freshMyTable(EXPORT_TABLE);
    const sql = `LOAD DATA LOCAL INFILE '${csv}' INTO TABLE ${EXPORT_TABLE} CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' ESCAPED BY '' LINES TERMINATED BY '\\n' IGNORE 1 LINES (id, name, amount, @active, @created_at, note, @price) SET active = (@active = 'true'), created_at = REPLACE(REPLACE(@created_at, 'T', ' '), 'Z', ''), price = NULLIF(@price, '')`;
    await run('mariadb', ['--local-infile=1', ...myArgs(), '-e', sql]);
  },
  async sqlite(csv, dir) {
    const db = freshSqlite(dir, 'export-src.db');
    await run('sqlite3', [db, SQLITE_TABLE, `.import --csv --skip 1 ${csv} t`]);
    return db;
  },
  async parquet(csv, dir) {
    const file = join(dir, 'export-src.parquet');
    await duckdb(`COPY (SELECT * FROM ${DUCK_READ_CSV(csv)}) TO '${file}' (FORMAT parquet, COMPRESSION snappy)`);
    return file;
  },
  async jsonl(csv, dir) {
    // price as a string: JSON numbers of 28 digits would pass through a double in DuckDB's reader
    const file = join(dir, 'export-src.jsonl');
    await duckdb(
      `COPY (SELECT id, name, amount, active, strftime(created_at, '%Y-%m-%dT%H:%M:%S.%gZ') AS created_at, note, CAST(price AS VARCHAR) AS price FROM ${DUCK_READ_CSV(csv)}) TO '${file}' (FORMAT json)`,
    );
    return file;
  },
};

const SQL_ESCAPES = { n: '\n', t: '\t', 0: '\0', '\\': '\\' };

/** The records of `mariadb --batch` output (tab-separated, backslash escapes, NULL as `NULL`). */
async function* batchRecords(file) {
  let rest = '';
  for await (const chunk of createReadStream(file, 'utf8')) {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop();
    for (const line of lines) yield line.split('\t').map((f) => (f === 'NULL' ? null : f.replace(/\\(.)/g, (_, c) => SQL_ESCAPES[c] ?? c)));
  }
}

/**
 * The records of a CSV file (quote `"`, doubled to escape): an unquoted empty field
 * is null, a quoted one the empty string. Read whole; csv-parse with a `cast`
 * callback, which could tell the two apart, takes minutes for a million rows.
 */
function* csvRecords(file) {
  const text = readFileSync(file, 'utf8');
  let fields = [];
  let p = 0;
  while (p < text.length) {
    let field;
    if (text[p] === '"') {
      let e = p + 1;
      let value = '';
      for (;;) {
        const q = text.indexOf('"', e);
        value += text.slice(e, q);
        if (text[q + 1] !== '"') {
          p = q + 1;
          break;
        }
        value += '"';
        e = q + 2;
      }
      field = value;
    } else {
      let e = p;
      while (e < text.length && text[e] !== ',' && text[e] !== '\n' && text[e] !== '\r') e++;
      field = e === p ? null : text.slice(p, e);
      p = e;
    }
    fields.push(field);
    if (text[p] === ',') p++;
    else {
      yield fields;
      fields = [];
      p += text[p] === '\r' && text[p + 1] === '\n' ? 2 : 1;
    }
  }
}

const ISO_ZONE = /(Z|[+-]\d\d(:?\d\d)?)$/;
/** A timestamp's text in whatever form a tool writes it (` ` or `T`, `+00` or `Z` or none: UTC) as ISO-8601. */
function isoInstant(text) {
  let t = text.replace(' ', 'T');
  if (/[+-]\d\d$/.test(t)) t += ':00';
  if (!ISO_ZONE.test(t)) t += 'Z';
  const ms = Date.parse(t);
  if (Number.isNaN(ms)) throw new Error(`unreadable timestamp ${JSON.stringify(text)}`);
  return new Date(ms).toISOString();
}

/**
 * The bench row's values, whatever tool wrote them: id as an integer, amount as a
 * double, active as true/false (`t`, `1`, `true`), created_at as an instant, note
 * with NULL as '' (LOAD DATA and `.import` cannot tell them apart), price as its
 * digits (an empty one as NULL).
 */
function normaliseRow([id, name, amount, active, createdAt, note, price]) {
  return [
    String(BigInt(id)),
    name,
    amount === null || amount === '' ? null : String(Number(amount)),
    active === null || active === '' ? null : ['t', 'true', '1'].includes(active.toLowerCase()),
    createdAt === null || createdAt === '' ? null : isoInstant(createdAt),
    note ?? '',
    price === null || price === '' ? null : price,
  ];
}

/** Row count and an order-free digest (sum and xor of each normalised row's md5) of an exported file, header skipped. */
async function exportDigest(file, format = 'csv') {
  let rows = -1;
  let sum = 0n;
  let xor = 0n;
  for await (const record of format === 'batch' ? batchRecords(file) : csvRecords(file)) {
    if (++rows === 0) continue;
    const h = BigInt(
      `0x${createHash('md5')
        .update(JSON.stringify(normaliseRow(record)))
        .digest('hex')
        .slice(0, 16)}`,
    );
    sum = (sum + h) & 0xffffffffffffffffn;
    xor ^= h;
  }
  return { rows: Math.max(0, rows), digest: `${rows}:${sum}:${xor}` };
}

/** `weir run` of `source` into a CSV file. */
async function weirExport(dir, name, source) {
  const out = join(dir, `${name}-weir.csv`);
  rmSync(out, { force: true });
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `pipeline: bench-${name}-weir\nsource: ${source}\nsink: { type: csv, path: ${out} }\n`);
  const r = await measure(process.execPath, [BIN, 'run', file, '--log-level', 'info', '--log-format', 'json']);
  return { ...r, check: () => exportDigest(out) };
}

/** A peer that writes `out` by a shell command line (the tool's stdout redirected, as a user would). */
async function peerExport(dir, name, commandLine, format = 'csv') {
  const out = join(dir, `${name}-peer.csv`);
  rmSync(out, { force: true });
  const r = await measure('sh', ['-c', commandLine(out)]);
  return { ...r, check: () => exportDigest(out, format) };
}

const shq = (s) => `'${String(s).replaceAll("'", "'\\''")}'`;

const EXPORT_PATHS = {
  'postgres → csv': {
    peerLabel: 'psql \\copy (SELECT …) TO … CSV',
    async peer(csv, dir) {
      await exportSource('postgres', csv, dir, makeSource.postgres);
      return peerExport(dir, 'pgcsv', (out) =>
        ['psql', ...psqlArgs(`\\copy (SELECT * FROM ${EXPORT_TABLE}) TO '${out}' WITH (FORMAT csv, HEADER)`)].map(shq).join(' '),
      );
    },
    async weir(csv, dir) {
      await exportSource('postgres', csv, dir, makeSource.postgres);
      return weirExport(
        dir,
        'pgcsv',
        // two block ranges of one snapshot, read in parallel (two cores here)
        `{ type: postgres, host: ${PG.host}, port: ${PG.port}, user: ${PG.user}, database: ${PG.database}, table: ${EXPORT_TABLE}, partitions: 2 }`,
      );
    },
    async cleanup() {
      await run('psql', psqlArgs(`DROP TABLE IF EXISTS ${EXPORT_TABLE}`)).catch(() => {});
    },
  },
  'mysql → csv': {
    peerLabel: "mariadb --batch -e 'SELECT …'",
    async peer(csv, dir) {
      await exportSource('mysql', csv, dir, makeSource.mysql);
      return peerExport(
        dir,
        'mycsv',
        (out) =>
          `${['mariadb', ...myArgs(), '--batch', '--quick', '-e', `SELECT * FROM ${EXPORT_TABLE}`].map(shq).join(' ')} > ${shq(out)}`,
        'batch',
      );
    },
    async weir(csv, dir) {
      await exportSource('mysql', csv, dir, makeSource.mysql);
      return weirExport(
        dir,
        'mycsv',
        `{ type: mysql, host: ${MY.host}, port: ${MY.port}, user: ${MY.user}, database: ${MY.database}, table: ${EXPORT_TABLE} }`,
      );
    },
    async cleanup() {
      await withMy((c) => c.query(`DROP TABLE IF EXISTS \`${EXPORT_TABLE}\``)).catch(() => {});
    },
  },
  'sqlite → csv': {
    peerLabel: 'sqlite3 -csv -header',
    async peer(csv, dir) {
      const db = await exportSource('sqlite', csv, dir, makeSource.sqlite);
      return peerExport(dir, 'sqcsv', (out) => `sqlite3 -csv -header ${shq(db)} 'SELECT * FROM t' > ${shq(out)}`);
    },
    async weir(csv, dir) {
      const db = await exportSource('sqlite', csv, dir, makeSource.sqlite);
      return weirExport(dir, 'sqcsv', `{ type: sqlite, path: ${db}, table: t }`);
    },
    cleanup() {},
  },
  'parquet → csv': {
    peerLabel: 'DuckDB COPY read_parquet TO csv',
    async peer(csv, dir) {
      const file = await exportSource('parquet', csv, dir, makeSource.parquet);
      return peerExport(dir, 'pqcsv', (out) =>
        [
          process.execPath,
          join(ROOT, 'bench', 'duckdb-run.js'),
          `COPY (SELECT * FROM read_parquet('${file}')) TO '${out}' (FORMAT csv, HEADER)`,
        ]
          .map(shq)
          .join(' '),
      );
    },
    async weir(csv, dir) {
      const file = await exportSource('parquet', csv, dir, makeSource.parquet);
      return weirExport(dir, 'pqcsv', `{ type: parquet, path: ${file} }`);
    },
    cleanup() {},
  },
  'jsonl → csv': {
    peerLabel: 'DuckDB COPY read_json TO csv',
    async peer(csv, dir) {
      const file = await exportSource('jsonl', csv, dir, makeSource.jsonl);
      return peerExport(dir, 'jlcsv', (out) =>
        [
          process.execPath,
          join(ROOT, 'bench', 'duckdb-run.js'),
          `COPY (SELECT * FROM read_json('${file}', format = 'newline_delimited')) TO '${out}' (FORMAT csv, HEADER)`,
        ]
          .map(shq)
          .join(' '),
      );
    },
    async weir(csv, dir) {
      const file = await exportSource('jsonl', csv, dir, makeSource.jsonl);
      return weirExport(dir, 'jlcsv', `{ type: jsonl, path: ${file} }`);
    },
    cleanup() {},
  },
};

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
  ...EXPORT_PATHS,
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
      `${t.path.padEnd(24)}${t.peer.padEnd(34)}${Math.round(t.peerRowsPerSecond).toLocaleString('en-US').padStart(12)}${Math.round(t.weirRowsPerSecond).toLocaleString('en-US').padStart(12)}${`${t.ratio.toFixed(2)}x`.padStart(8)}${(t.target ? `${t.target}x` : '—').padStart(8)}${`${t.weirRssMb.toFixed(0)} MB`.padStart(10)}${(t.contentEqual ? 'equal' : 'DIFFERS').padStart(9)}`,
    );
  const failed = table.filter((t) => !t.contentEqual || (t.target !== undefined && t.ratio < t.target) || t.weirRssMb >= PEAK_RSS_MB);
  console.log('');
  for (const t of table)
    console.log(
      `${failed.includes(t) ? 'FAIL' : 'PASS'}  ${t.path}: ${t.ratio.toFixed(2)}x of ${t.peer} (target ${t.target ? `${t.target}x` : 'none: measured'}), weir peak RSS ${t.weirRssMb.toFixed(0)} MB (< ${PEAK_RSS_MB}), content ${t.contentEqual ? 'equal' : 'differs'}`,
    );
  if (args.json) writeFileSync(args.json, `${JSON.stringify({ rows: ROWS, runs: RUNS, paths: table }, null, 2)}\n`);
  rmSync(dir, { recursive: true, force: true });
  process.exitCode = failed.length ? 1 : 0;
}

main().catch((error) => {
  console.error(`bench failed: ${error.message}`);
  process.exitCode = 2;
});
