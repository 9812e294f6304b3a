#!/usr/bin/env node
/**
 * The plain better-sqlite3 script the SQLite path is measured against: csv-parse
 * streams the file, each record's fields are mapped to the column types (numbers,
 * `true`/`false` as 1/0, an empty note or price as NULL: csv-parse's `cast` with
 * its per-field context, which could tell `""` apart, makes it 10x slower) and
 * inserted with one prepared statement in one transaction. Usage: node bench/sqlite-raw.js FILE.csv OUT.db
 */
import { createReadStream } from 'node:fs';
import Database from 'better-sqlite3';
import { parse } from 'csv-parse';

const [file, out] = process.argv.slice(2);
const db = new Database(out);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.pragma('cache_size = -65536'); // 64 MB: the one transaction does not spill pages to the WAL while it runs
db.exec(
  'CREATE TABLE IF NOT EXISTS t (id INTEGER, name TEXT, amount REAL, active INTEGER, created_at TEXT, note TEXT, price DECIMAL_TEXT)',
);
const insert = db.prepare('INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)');
db.exec('BEGIN');
for await (const r of createReadStream(file).pipe(parse({ from_line: 2 })))
  insert.run(Number(r[0]), r[1], Number(r[2]), r[3] === 'true' ? 1 : 0, r[4], r[5] === '' ? null : r[5], r[6] === '' ? null : r[6]);
db.exec('COMMIT');
db.close();
