#!/usr/bin/env node
/**
 * What `transforms:` cost on the CSV → PostgreSQL load (`node bench/transforms.js`
 * after `npm run build`; not part of `npm test`). The same CSV (bench/lib.js) is
 * loaded by `weir run` three ways, interleaved, `--runs` times each:
 *
 *   no transforms        the COPY passthrough (CSV bytes straight into COPY)
 *   filter: true         the row path with one constant step: the cost of the row path itself
 *   rename + filter      the row path with `rename: { note: remark }` and `filter: amount >= 0`
 *                        (every row passes, so all three write the same rows)
 *
 * Two ratios are printed: rename + filter against the passthrough (what a user sees
 * when adding transforms) and against `filter: true` (what the steps cost on the row path).
 * Options: --rows N (300000) · --runs N (3). Environment: PGHOST, PGPORT, PGUSER, PGDATABASE.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { BIN, ensureCsv, measure, median } from './lib.js';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '300000' }, runs: { type: 'string', default: '3' } } });
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
  'filter: true (row path)': 'transforms:\n  - filter: "true"\n',
  'rename + filter (row path)': 'transforms:\n  - rename: { note: remark }\n  - filter: amount >= 0\n',
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
try {
  for (let run = 1; run <= RUNS; run++) {
    for (const [i, [name, transforms]] of Object.entries(CONTENDERS).entries()) {
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
      const n = (await sql(`SELECT count(*)::int AS n FROM "${table}"`)).rows[0].n;
      if (n !== ROWS) throw new Error(`${name} wrote ${n} rows, expected ${ROWS}`);
      results[name].push(ROWS / r.seconds);
      console.log(
        `run ${run} ${name.padEnd(34)} ${Math.round(ROWS / r.seconds)
          .toLocaleString('en-US')
          .padStart(9)} rows/s  ${r.seconds.toFixed(2)} s  ${r.rssMb.toFixed(0)} MB`,
      );
    }
  }
} finally {
  for (const i of Object.keys(CONTENDERS).keys()) await sql(`DROP TABLE IF EXISTS "tf_bench_${i}"`).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
const [pass, rowPath, steps] = Object.keys(CONTENDERS).map((k) => median(results[k]));
console.log(`\n${ROWS.toLocaleString('en-US')} rows, median of ${RUNS} run(s):`);
for (const [k, v] of Object.entries(results))
  console.log(`  ${k.padEnd(34)} ${Math.round(median(v)).toLocaleString('en-US').padStart(9)} rows/s`);
const costPass = 1 - steps / pass;
const costRow = 1 - steps / rowPath;
console.log(`  rename + filter vs passthrough:  ${(costPass * 100).toFixed(1)}% slower`);
console.log(`  rename + filter vs row path:     ${(costRow * 100).toFixed(1)}% slower  ${costRow <= 0.15 ? 'PASS' : 'FAIL'} (≤ 15%)`);
