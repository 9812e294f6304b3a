#!/usr/bin/env node
/**
 * What `transforms:` cost on the CSV → PostgreSQL load (`node bench/transforms.js`
 * after `npm run build`; not part of `npm test`). The same CSV (bench/lib.js) is
 * loaded by `weir run` two or three ways, `--runs` times each, the order rotated every run:
 *
 *   no transforms              the COPY passthrough (CSV bytes straight into COPY)
 *   rename + filter            `rename: { note: remark }` and `filter: amount >= 0`, on the
 *                              encoded path (the records' bytes, filtered, into COPY)
 *   rename + filter, row path  (with --row-path) the same two steps after `cast: { name: string }`
 *                              (a no-op on a text column, with no encoded form): the row path
 *
 * Every row passes the filter, so all three write the same rows: each run checks the
 * tables' content is the same (an md5 of every row's text, in id order). Printed:
 * best-of and spread (best − worst, of the best) per contender; the cost of
 * rename + filter against the passthrough (the target: ≤ 15%) from the best-of runs
 * and as the median (and range) of each run's pair, run back to back.
 * Options: --rows N (300000) · --runs N (5) · --row-path. Environment: PGHOST, PGPORT, PGUSER, PGDATABASE.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { BIN, ensureCsv, measure } from './lib.js';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '300000' },
    runs: { type: 'string', default: '5' },
    'row-path': { type: 'boolean', default: false },
  },
});
const ROWS = Number(args.rows);
const RUNS = Math.max(1, Number(args.runs));
const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: process.env.PGUSER ?? 'postgres',
  database: process.env.PGDATABASE ?? 'test',
};

const CONTENDERS = {
  'no transforms (COPY passthrough)': '',
  'rename + filter (encoded)': 'transforms:\n  - rename: { note: remark }\n  - filter: amount >= 0\n',
  ...(args['row-path']
    ? { 'rename + filter (row path)': 'transforms:\n  - cast: { name: string }\n  - rename: { note: remark }\n  - filter: amount >= 0\n' }
    : {}),
};

async function sql(text) {
  const c = new pg.Client(PG);
  await c.connect();
  try {
    return await c.query(text);
  } finally {
    await c.end();
  }
}

const csv = await ensureCsv(ROWS);
const dir = mkdtempSync(join(tmpdir(), 'weir-bench-tf-'));
const results = Object.fromEntries(Object.keys(CONTENDERS).map((k) => [k, []]));
const names = Object.keys(CONTENDERS);
/** Per run: 1 − encoded / passthrough. */
const pairs = [];
try {
  for (let run = 1; run <= RUNS; run++) {
    const digests = new Set();
    // rotate the order: no contender always runs first (or after the same one)
    for (let k = 0; k < names.length; k++) {
      const i = (k + run - 1) % names.length;
      const name = names[i];
      const transforms = CONTENDERS[name];
      const table = `tf_bench_${i}`;
      await sql(`DROP TABLE IF EXISTS "${table}"`);
      await sql('CHECKPOINT');
      const file = join(dir, `p${i}.yaml`);
      writeFileSync(
        file,
        `pipeline: tf-bench-${i}
source:
  type: csv
  path: ${csv}
  columns: { id: integer, name: string, amount: number, active: boolean, created_at: timestamp, note: string, price: decimal }
sink: { type: postgres, host: ${PG.host}, port: ${PG.port}, user: ${PG.user}, database: ${PG.database}, table: ${table} }
checkpoint: { path: ${join(dir, `c${i}.db`)} }
${transforms}`,
      );
      const r = await measure(process.execPath, [BIN, 'run', file, '--log-level', 'warn', '--fresh']);
      if (r.code !== 0) throw new Error(`${name} failed (exit ${r.code}): ${r.stderr.slice(0, 2000)}${r.stdout.slice(-2000)}`);
      const { n, digest } = (
        await sql(`SELECT count(*)::int AS n, md5(string_agg(t::text, E'\\n' ORDER BY id)) AS digest FROM "${table}" t`)
      ).rows[0];
      if (n !== ROWS) throw new Error(`${name} wrote ${n} rows, expected ${ROWS}`);
      digests.add(digest);
      results[name].push(ROWS / r.seconds);
      console.log(
        `run ${run} ${name.padEnd(34)} ${Math.round(ROWS / r.seconds)
          .toLocaleString('en-US')
          .padStart(9)} rows/s  ${r.seconds.toFixed(2)} s  ${r.rssMb.toFixed(0)} MB`,
      );
    }
    if (digests.size !== 1) throw new Error(`run ${run}: the tables differ (${[...digests].join(', ')})`);
    const [p, e] = names.slice(0, 2).map((k) => results[k][run - 1]);
    pairs.push(1 - e / p);
  }
} finally {
  for (const i of names.keys()) await sql(`DROP TABLE IF EXISTS "tf_bench_${i}"`).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
const best = (k) => Math.max(...results[k]);
const spread = (k) => 1 - Math.min(...results[k]) / best(k);
const [pass, encoded, rowPath] = names.map(best);
console.log(
  `\n${ROWS.toLocaleString('en-US')} rows, best of ${RUNS} run(s) (spread: best − worst, of the best); same content in every run:`,
);
for (const k of names)
  console.log(
    `  ${k.padEnd(34)} ${Math.round(best(k)).toLocaleString('en-US').padStart(9)} rows/s  spread ${(spread(k) * 100).toFixed(0)}%`,
  );
const pct = (x) => `${(x * 100).toFixed(1)}%`;
const sorted = [...pairs].sort((a, b) => a - b);
const medianPair = sorted[Math.floor((sorted.length - 1) / 2)];
const cost = 1 - encoded / pass;
console.log(`  rename + filter (encoded) vs passthrough, best-of:  ${pct(cost)} slower  ${cost <= 0.15 ? 'PASS' : 'FAIL'} (≤ 15%)`);
console.log(
  `  the same, per run (median, range):               ${pct(medianPair)} (${pct(sorted[0])} … ${pct(sorted[sorted.length - 1])})`,
);
if (rowPath !== undefined) console.log(`  rename + filter (row path) vs passthrough:          ${pct(1 - rowPath / pass)} slower`);
