#!/usr/bin/env node
/**
 * weir benchmarks (`npm run bench`; not part of `npm test`).
 *
 * Loads the same 1,000,000-row, 6-column CSV into PostgreSQL five ways, interleaved
 * in one run so they share the machine's state:
 *   psql \copy           the baseline: psql streams the file, the server parses it
 *   pg-copy-streams      a raw Node script piping the file into COPY (bench/raw-copy.js)
 *   weir (obs on)        `weir run` csv → postgres with the defaults (the file cut into
 *                        split_bytes partitions, loaded in parallel), JSON logs at info,
 *                        metrics server, summary file
 *   weir (obs off)       the same with --log-level silent, no metrics server
 *   weir (1 partition)   obs on, split_bytes: 0: one COPY stream, like psql
 * then a chaos check: weir is SIGKILLed at random moments and resumed; exactly-once
 * must hold (every row once). Prints rows/s, peak RSS and the ratios, checks the
 * gates and exits 1 when one fails.
 *
 * Options: --rows N (1000000) · --runs N (3; the median is reported) · --no-chaos ·
 * --keep (keep the tables) · --json FILE (write the results). Environment: PGHOST,
 * PGPORT, PGUSER, PGDATABASE (127.0.0.1, 5432, postgres, test), PGPASSWORD.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { BIN, ensureCsv, freePort, measure, median, ROOT } from './lib.js';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '3' },
    'no-chaos': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const ROWS = Number(args.rows);
const RUNS = Math.max(1, Number(args.runs));
const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: process.env.PGUSER ?? 'postgres',
  database: process.env.PGDATABASE ?? 'test',
  password: process.env.PGPASSWORD,
};
const GATES = { weirVsPsql: 0.8, peakRssMb: 250 };
const COLUMNS = 'id bigint, name text, amount double precision, active boolean, created_at timestamptz, note text, price numeric';

// ---------------------------------------------------------------------------
// database helpers

async function withDb(fn) {
  const client = new pg.Client(PG);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function freshTable(name) {
  await withDb(async (c) => {
    await c.query(`DROP TABLE IF EXISTS "${name}"`);
    await c.query(`CREATE TABLE "${name}" (${COLUMNS})`);
    await c.query('CHECKPOINT'); // start every contender with no dirty buffers of the previous one
  });
}

async function tableStats(name) {
  return withDb(async (c) => {
    const r = await c.query(`SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM "${name}"`);
    return r.rows[0];
  });
}

/** md5 of every row's text in id order: the same content as psql's load, value for value (NULL apart from ''). */
async function contentDigest(name) {
  return withDb(async (c) => {
    await c.query("SET TIME ZONE 'UTC'");
    const r = await c.query(`SELECT md5(string_agg(t::text, E'\\n' ORDER BY t.id)) AS d FROM "${name}" t`);
    return r.rows[0].d;
  });
}

// ---------------------------------------------------------------------------
// contenders

const PASSWORD_REF = '  password: ${env:PGPASSWORD}\n';

function pipelineYaml(csv, table, name, dir, { delivery = 'exactly-once', splitBytes } = {}) {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `pipeline: ${name}
source:
  type: csv
  path: ${csv}
${splitBytes === undefined ? '' : `  split_bytes: ${splitBytes}\n`}  columns: { id: integer, name: string, amount: number, active: boolean, created_at: timestamp, note: string, price: decimal }
sink:
  type: postgres
  host: ${PG.host}
  port: ${PG.port}
  user: ${PG.user}
  database: ${PG.database}
  table: ${table}
${PG.password ? PASSWORD_REF : ''}delivery: ${delivery}
checkpoint: { path: ${join(dir, 'checkpoints.db')} }
`,
  );
  return file;
}

const contenders = {
  async psql(csv) {
    const table = 'bench_psql';
    await freshTable(table);
    const r = await measure(
      'psql',
      [
        '-h',
        PG.host,
        '-p',
        String(PG.port),
        '-U',
        PG.user,
        '-d',
        PG.database,
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        `\\copy ${table} FROM '${csv}' CSV HEADER`,
      ],
      {
        env: PG.password ? { PGPASSWORD: PG.password } : {},
      },
    );
    return { ...r, table };
  },
  async raw(csv) {
    const table = 'bench_raw';
    await freshTable(table);
    const r = await measure(process.execPath, [join(ROOT, 'bench', 'raw-copy.js'), csv, table]);
    return { ...r, table };
  },
  async weirOn(csv, dir) {
    const table = 'bench_weir_on';
    await freshTable(table);
    const file = pipelineYaml(csv, table, 'bench-weir-on', dir);
    const summary = join(dir, 'summary-on.json');
    const port = await freePort();
    const r = await measure(process.execPath, [
      BIN,
      'run',
      file,
      '--log-level',
      'info',
      '--log-format',
      'json',
      '--metrics-port',
      String(port),
      '--summary-json',
      summary,
    ]);
    return { ...r, table, summary: existsSync(summary) ? JSON.parse(readFileSync(summary, 'utf8')) : undefined };
  },
  async weirOff(csv, dir) {
    const table = 'bench_weir_off';
    await freshTable(table);
    const file = pipelineYaml(csv, table, 'bench-weir-off', dir);
    const summary = join(dir, 'summary-off.json');
    const r = await measure(process.execPath, [BIN, 'run', file, '--log-level', 'silent', '--summary-json', summary]);
    return { ...r, table, summary: existsSync(summary) ? JSON.parse(readFileSync(summary, 'utf8')) : undefined };
  },
  async weirOne(csv, dir) {
    const table = 'bench_weir_one';
    await freshTable(table);
    const file = pipelineYaml(csv, table, 'bench-weir-one', dir, { splitBytes: 0 });
    const summary = join(dir, 'summary-one.json');
    const r = await measure(process.execPath, [BIN, 'run', file, '--log-level', 'info', '--log-format', 'json', '--summary-json', summary]);
    return { ...r, table, summary: existsSync(summary) ? JSON.parse(readFileSync(summary, 'utf8')) : undefined };
  },
};

const LABELS = {
  psql: 'psql \\copy',
  raw: 'pg-copy-streams (raw)',
  weirOn: 'weir (observability on)',
  weirOff: 'weir (observability off)',
  weirOne: 'weir (1 partition, 1 COPY)',
};

// ---------------------------------------------------------------------------
// chaos: SIGKILL weir mid-run, resume, count

/** SIGKILLs weir after a random number of its `batches` batches (so the kill lands mid-run), `kills` times, then resumes. */
async function chaos(csv, dir, batches, kills = 3) {
  const table = 'bench_weir_chaos';
  await freshTable(table);
  const file = pipelineYaml(csv, table, 'bench-weir-chaos', dir);
  const killedAt = [];
  let finished;
  for (let k = 0; k < kills && !finished; k++) {
    const afterBatches = 1 + Math.floor(Math.random() * Math.max(1, batches - 2));
    let seen = 0;
    let sent = false;
    const r = await measure(process.execPath, [BIN, 'run', file, '--log-level', 'debug', '--log-format', 'json'], {
      rss: false, // killed directly (no GNU time in between)
      onStdout: (text, kill) => {
        seen += text.split('"batch_written"').length - 1;
        if (!sent && seen >= afterBatches) {
          sent = true;
          kill('SIGKILL');
        }
      },
    });
    if (r.signal) killedAt.push(afterBatches);
    else finished = r;
    const s = await tableStats(table);
    if (s.n !== s.d) return { ok: false, killedAt, message: `duplicates after kill ${k + 1}: ${s.n} rows, ${s.d} distinct ids` };
  }
  const last = finished ?? (await measure(process.execPath, [BIN, 'run', file, '--log-level', 'info', '--log-format', 'json']));
  const s = await tableStats(table);
  const resumed = /"event":"run_start"[^\n]*"resumed":true/.test(last.stdout);
  const ok = last.code === 0 && s.n === ROWS && s.d === ROWS;
  return {
    ok,
    killedAt,
    resumed,
    message: `${killedAt.length} SIGKILL(s) after ${killedAt.join(', ') || '-'} batches, then ${resumed ? 'a resumed' : 'a'} run (exit ${last.code}): ${s.n.toLocaleString('en-US')} rows, ${s.d.toLocaleString('en-US')} distinct ids (expected ${ROWS.toLocaleString('en-US')})`,
  };
}

// ---------------------------------------------------------------------------

async function main() {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js')) && !existsSync(join(ROOT, 'dist')))
    throw new Error('dist/ is missing: run npm run build (npm run bench does)');
  await withDb(async (c) => c.query('SELECT 1')).catch((e) => {
    throw new Error(`PostgreSQL at ${PG.host}:${PG.port} (database ${PG.database}, user ${PG.user}) is not reachable: ${e.message}`);
  });
  const csv = await ensureCsv(ROWS);
  const dir = mkdtempSync(join(tmpdir(), 'weir-bench-'));
  const results = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  console.log(
    `\n${ROWS.toLocaleString('en-US')} rows × 7 columns (${(statSync(csv).size / 1e6).toFixed(1)} MB) into PostgreSQL at ${PG.host}:${PG.port}; ${RUNS} interleaved run(s) each, median reported\n`,
  );
  let psqlDigest;
  const contentMismatch = [];
  for (let run = 1; run <= RUNS; run++) {
    for (const [name, fn] of Object.entries(contenders)) {
      const r = await fn(csv, dir);
      const s = await tableStats(r.table);
      if (r.code !== 0 || s.n !== ROWS) throw new Error(`${LABELS[name]} failed (exit ${r.code}, ${s.n} rows): ${r.stderr.slice(-2000)}`);
      r.digest = await contentDigest(r.table);
      if (name === 'psql') psqlDigest = r.digest;
      else if (r.digest !== psqlDigest) contentMismatch.push(`${LABELS[name]} run ${run}: ${r.digest} ≠ psql's ${psqlDigest}`);
      results[name].push(r);
      console.log(
        `  run ${run}  ${LABELS[name].padEnd(26)} ${r.seconds.toFixed(2).padStart(6)} s  ${Math.round(ROWS / r.seconds)
          .toLocaleString('en-US')
          .padStart(
            9,
          )} rows/s  ${r.rssMb.toFixed(0).padStart(4)} MB${r.summary ? `  (weir's own: ${r.summary.totals.rows_per_second.toLocaleString('en-US')} rows/s)` : ''}`,
      );
    }
  }

  const table = Object.entries(results).map(([name, rs]) => {
    const seconds = median(rs.map((r) => r.seconds));
    return { name, label: LABELS[name], seconds, rowsPerSecond: ROWS / seconds, peakRssMb: Math.max(...rs.map((r) => r.rssMb)) };
  });
  const by = Object.fromEntries(table.map((t) => [t.name, t]));
  const psql = by.psql.rowsPerSecond;
  console.log(
    `\n${'contender'.padEnd(28)}${'seconds'.padStart(9)}${'rows/s'.padStart(12)}${'peak RSS'.padStart(11)}${'vs psql'.padStart(10)}`,
  );
  for (const t of table)
    console.log(
      `${t.label.padEnd(28)}${t.seconds.toFixed(2).padStart(9)}${Math.round(t.rowsPerSecond).toLocaleString('en-US').padStart(12)}${`${t.peakRssMb.toFixed(0)} MB`.padStart(11)}${`${((100 * t.rowsPerSecond) / psql).toFixed(0)}%`.padStart(10)}`,
    );
  const obsCost = 1 - by.weirOn.rowsPerSecond / by.weirOff.rowsPerSecond;
  console.log(
    `\nobservability on vs off: ${((100 * by.weirOn.rowsPerSecond) / by.weirOff.rowsPerSecond).toFixed(0)}% of the throughput (cost ${(100 * obsCost).toFixed(1)}%)`,
  );

  const gates = [
    {
      name: "every load's content digest equals psql \\copy's (same file, same table)",
      ok: contentMismatch.length === 0,
      detail: contentMismatch.length ? contentMismatch.join('; ') : `md5 ${psqlDigest}`,
    },
    {
      name: `weir csv → postgres ≥ ${GATES.weirVsPsql * 100}% of psql \\copy rows/s`,
      ok: by.weirOn.rowsPerSecond >= GATES.weirVsPsql * psql,
      detail: `${((100 * by.weirOn.rowsPerSecond) / psql).toFixed(0)}% with observability on, ${((100 * by.weirOff.rowsPerSecond) / psql).toFixed(0)}% off`,
    },
    {
      name: `weir peak RSS < ${GATES.peakRssMb} MB`,
      ok: Math.max(by.weirOn.peakRssMb, by.weirOff.peakRssMb, by.weirOne.peakRssMb) < GATES.peakRssMb,
      detail: `${Math.max(by.weirOn.peakRssMb, by.weirOff.peakRssMb, by.weirOne.peakRssMb).toFixed(0)} MB`,
    },
  ];
  let chaosResult;
  if (!args['no-chaos']) {
    const batches = results.weirOn.map((r) => r.summary?.totals?.batches_sent).find((n) => n > 0) ?? 40;
    chaosResult = await chaos(csv, dir, batches);
    gates.push({
      name: 'exactly-once under SIGKILL (csv → postgres, killed and resumed)',
      ok: chaosResult.ok,
      detail: chaosResult.message,
    });
  }
  console.log('');
  for (const g of gates) console.log(`${g.ok ? 'PASS' : 'FAIL'}  ${g.name}: ${g.detail}`);

  if (args.json)
    writeFileSync(args.json, `${JSON.stringify({ rows: ROWS, runs: RUNS, results: table, gates, chaos: chaosResult }, null, 2)}\n`);
  if (!args.keep)
    await withDb(async (c) => {
      for (const t of ['bench_psql', 'bench_raw', 'bench_weir_on', 'bench_weir_off', 'bench_weir_one', 'bench_weir_chaos'])
        await c.query(`DROP TABLE IF EXISTS "${t}"`);
      await c.query("DELETE FROM _weir_runs WHERE pipeline LIKE 'bench-weir-%'").catch(() => {});
      await c.query("DELETE FROM _weir_checkpoints WHERE pipeline LIKE 'bench-weir-%'").catch(() => {});
    });
  rmSync(dir, { recursive: true, force: true });
  process.exitCode = gates.every((g) => g.ok) ? 0 : 1;
}

main().catch((error) => {
  console.error(`bench failed: ${error.message}`);
  process.exitCode = 2;
});
