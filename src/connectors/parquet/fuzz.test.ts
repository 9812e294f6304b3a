/**
 * Fuzzing the parquet reader: valid files written by weir's sink and by DuckDB
 * (several codecs, V1 and V2 pages, dictionaries, nulls, lists, structs and a
 * VARIANT, several row groups) are mutated by a seeded fast-check run (fuzz-probe.ts,
 * in a child process: a hang is cut off and the peak RSS is the reader's) and
 * every mutant must read exactly as the original or be refused with a clear
 * error (see fuzz-probe.ts for the two contracts).
 *
 * WEIR_FUZZ_RUNS sets the number of mutants (default 2,000: about 5 s here),
 * WEIR_FUZZ_SEED the seed (default fixed, so CI runs the same cases).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { rolldown } from 'rolldown';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../sdk/testing.js';
import { Decimal } from '../../sdk/values.js';
import { writeWithSink } from './test-files.js';

const RUNS = Number(process.env.WEIR_FUZZ_RUNS ?? 2000);
const SEED = Number(process.env.WEIR_FUZZ_SEED ?? 20261202);
/** A run longer than this is a hang (the default runs take about a tenth of it). */
const TIMEOUT_MS = Math.max(120_000, RUNS * 500);

let dir: string;
const files: string[] = [];

const rows = Array.from({ length: 300 }, (_, i) => ({
  id: i,
  name: i % 7 === 0 ? null : `name ${i % 40}`,
  price: i % 5 === 0 ? null : i * 1.25,
  ok: i % 3 === 0,
  at: new Date(Date.UTC(2024, 0, 1) + i * 3_600_000),
  amount: Decimal.parse(`${i}.${String(i % 100).padStart(2, '0')}`),
}));

/** DuckDB's table: dictionary strings, nulls, a list and a struct. */
const DUCK_TABLE = `SELECT i AS id, CASE WHEN i % 4 = 0 THEN NULL ELSE 'k' || (i % 13) END AS k, (i * 1.5)::DECIMAL(18,3) AS d,
  CASE WHEN i % 6 = 0 THEN NULL ELSE [i, i + 1] END AS lst, {'a': i, 's': 'x' || (i % 5)} AS st FROM range(300) t(i)`;

beforeAll(async () => {
  dir = await tempDir('weir-parquet-fuzz-');
  for (const compression of ['snappy', 'zstd', 'gzip', 'lz4', 'uncompressed']) {
    const name = `weir-${compression}.parquet`;
    await writeWithSink(dir, name, rows, { compression, row_group_size: 120 });
    files.push(name);
  }
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const duck = await (await DuckDBInstance.create(':memory:')).connect();
  for (const [codec, version] of [
    ['zstd', 'V1'],
    ['snappy', 'V2'],
    ['gzip', 'V1'],
    ['brotli', 'V2'],
  ]) {
    const name = `duckdb-${codec}-${version}.parquet`;
    await duck.run(
      `COPY (${DUCK_TABLE}) TO '${join(dir, name)}' (FORMAT parquet, COMPRESSION ${codec}, ROW_GROUP_SIZE 100, PARQUET_VERSION ${version})`,
    );
    files.push(name);
  }
  // a VARIANT column: hyparquet decodes it (after weir's page reader checked its pages)
  await duck.run(
    `COPY (SELECT i AS id, {'a': i, 'b': 'x' || (i % 7)}::VARIANT AS v FROM range(300) t(i)) TO '${join(dir, 'duckdb-variant.parquet')}' (FORMAT parquet, ROW_GROUP_SIZE 100)`,
  );
  files.push('duckdb-variant.parquet');
  duck.closeSync();
});

interface Summary {
  cases: number;
  strict: number;
  same: number;
  refused: number;
  changed: number;
  byCode: Record<string, number>;
  seconds: number;
  peakRssMiB: number;
  failure?: string;
}

/** Bundles the probe and runs it; its summary, or the case it hung on. */
async function runProbe(): Promise<Summary> {
  const probe = join(dir, 'fuzz-probe.mjs');
  const bundle = await rolldown({
    input: join(import.meta.dirname, 'fuzz-probe.ts'),
    platform: 'node',
    external: (id) => id.startsWith('node:'),
    logLevel: 'silent',
  });
  await bundle.write({ file: probe, format: 'esm', codeSplitting: false });
  await bundle.close();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [probe, dir, String(SEED), String(RUNS), ...files], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let lastCase = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      const text = d.toString();
      const lines = text.split('\n').filter((l) => l.startsWith('case '));
      if (lines.length) lastCase = lines[lines.length - 1] as string;
      stderr = (stderr + text).slice(-4000);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal) return reject(new Error(`the fuzz probe was killed (${signal}) after ${TIMEOUT_MS} ms: a hang at ${lastCase}`));
      if (code !== 0) return reject(new Error(`the fuzz probe exited with ${code} at ${lastCase}:\n${stderr}`));
      resolve(JSON.parse(out.trim().split('\n').pop() as string) as Summary);
    });
  });
}

describe('parquet reader fuzz', () => {
  it(
    `${RUNS} mutants of ${9} valid files: each reads as the original or is refused clearly, under 300 MB`,
    async () => {
      const summary = await runProbe();
      process.stdout.write(`[parquet fuzz] seed ${SEED}: ${JSON.stringify({ ...summary, failure: undefined })}\n`);
      expect(summary.failure, summary.failure).toBeUndefined();
      expect(summary.cases).toBeGreaterThan(RUNS * 0.9);
      expect(summary.refused).toBeGreaterThan(0);
      expect(summary.peakRssMiB).toBeLessThan(300);
    },
    TIMEOUT_MS + 60_000,
  );
});
