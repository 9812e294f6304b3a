#!/usr/bin/env node
/**
 * The raw baseline: pipe a CSV file into `COPY table FROM STDIN (FORMAT csv, HEADER)`
 * with pg + pg-copy-streams and nothing else. Usage: node bench/raw-copy.js FILE TABLE
 * (connection from PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD).
 */
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

const [file, table] = process.argv.slice(2);
if (!file || !table) {
  console.error('usage: node bench/raw-copy.js FILE TABLE');
  process.exit(2);
}
const client = new pg.Client({
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: process.env.PGUSER ?? 'postgres',
  database: process.env.PGDATABASE ?? 'test',
  password: process.env.PGPASSWORD,
});
await client.connect();
try {
  const copy = client.query(copyFrom(`COPY "${table.replaceAll('"', '""')}" FROM STDIN (FORMAT csv, HEADER true)`));
  await pipeline(createReadStream(file, { highWaterMark: 256 * 1024 }), copy);
  console.log(`${copy.rowCount} rows`);
} finally {
  await client.end();
}
