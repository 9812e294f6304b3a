#!/usr/bin/env node
/**
 * The peers of the Parquet paths in bench/paths.js, run as their own process so
 * their time and peak RSS are measured like weir's (DuckDB through @duckdb/node-api,
 * the engine the `duckdb` shell embeds):
 *   node bench/duckdb-parquet.js to-parquet IN.csv OUT.parquet   COPY (SELECT * FROM read_csv(…)) TO … (FORMAT parquet, COMPRESSION snappy)
 *   node bench/duckdb-parquet.js to-csv IN.parquet OUT.csv       COPY (SELECT * FROM read_parquet(…)) TO … (FORMAT csv, HEADER)
 * The CSV is read with the bench's types declared, `price` as DECIMAL(38,10) (read_csv
 * would guess DOUBLE and lose its digits) and `allow_quoted_nulls=false` (else `""`
 * is read as NULL): what it takes for DuckDB's file to hold the CSV's values exactly.
 */
import { DuckDBInstance } from '@duckdb/node-api';

const CSV_TYPES =
  "{'id': 'BIGINT', 'name': 'VARCHAR', 'amount': 'DOUBLE', 'active': 'BOOLEAN', 'created_at': 'TIMESTAMPTZ', 'note': 'VARCHAR', 'price': 'DECIMAL(38,10)'}";

const quote = (path) => `'${path.replaceAll("'", "''")}'`;

async function main() {
  const [mode, input, output] = process.argv.slice(2);
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  await c.run("SET TimeZone = 'UTC'");
  if (mode === 'to-parquet')
    await c.run(
      `COPY (SELECT * FROM read_csv(${quote(input)}, header = true, allow_quoted_nulls = false, columns = ${CSV_TYPES})) TO ${quote(output)} (FORMAT parquet, COMPRESSION snappy)`,
    );
  else if (mode === 'to-csv') await c.run(`COPY (SELECT * FROM read_parquet(${quote(input)})) TO ${quote(output)} (FORMAT csv, HEADER)`);
  else throw new Error(`unknown mode "${mode}": to-parquet or to-csv`);
}

await main();
