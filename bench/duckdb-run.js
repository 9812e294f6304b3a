#!/usr/bin/env node
/**
 * Runs SQL statements in an in-memory DuckDB (`@duckdb/node-api`), one argument
 * each: the peer of the paths that write CSV from Parquet or JSONL, and the tool
 * that prepares those inputs (bench/paths.js). Usage: node bench/duckdb-run.js SQL…
 */
import { DuckDBInstance } from '@duckdb/node-api';

const instance = await DuckDBInstance.create(':memory:');
const connection = await instance.connect();
for (const sql of process.argv.slice(2)) await connection.run(sql);
connection.closeSync();
