/** Sink conformance (the kit's sinkConformance) of the file sinks and the SQL sinks other than postgres. */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mysqlClient from 'mysql2/promise';
import { afterAll } from 'vitest';
import csv from '../../src/connectors/csv/index.js';
import jsonl from '../../src/connectors/jsonl/index.js';
import mysql from '../../src/connectors/mysql/index.js';
import parquet from '../../src/connectors/parquet/index.js';
import sqlite from '../../src/connectors/sqlite/index.js';
import type { AnyConnector } from '../../src/sdk/connector.js';
import { tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';
import { readBack, sinkConformance } from './harness.js';

const dir = tempDir('weir-conformance-');
let n = 0;

for (const connector of [csv, jsonl] as unknown as AnyConnector[]) {
  sinkConformance(connector, {
    baseDir: dir,
    options: () => ({ path: join(dir, `${connector.name}-${++n}.out`) }),
    read: async (o) => (existsSync(join(dir, String(o.path))) || existsSync(String(o.path)) ? readBack(connector, o, dir) : []),
  });
}

sinkConformance(sqlite as unknown as AnyConnector, {
  baseDir: dir,
  options: () => ({ path: join(dir, 'conformance.db'), table: `t${++n}` }),
  read: async (o) => {
    if (!existsSync(String(o.path))) return [];
    const db = new Database(String(o.path), { readonly: true });
    try {
      const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(o.table);
      return exists ? (db.prepare(`SELECT * FROM "${o.table}"`).all() as Record<string, unknown>[]) : [];
    } finally {
      db.close();
    }
  },
});

sinkConformance(parquet as unknown as AnyConnector, {
  baseDir: dir,
  options: () => ({ path: join(dir, `parquet-${++n}.parquet`) }),
  read: async (o) => (existsSync(String(o.path)) ? readBack(parquet as unknown as AnyConnector, o, dir) : []),
});

// the SQL sink beside postgres (whose suite runs in its own sink.test.ts): with mode replace nothing is visible before the job commit
if (await requireService('mysql')) {
  const tables: string[] = [];
  const admin = () => mysqlClient.createConnection({ host: '127.0.0.1', user: 'root', database: 'test' });
  afterAll(async () => {
    const db = await admin();
    for (const t of tables) await db.query(`DROP TABLE IF EXISTS \`${t}\``);
    await db.end();
  });
  sinkConformance(mysql as unknown as AnyConnector, {
    baseDir: dir,
    options: () => {
      tables.push(`conf_sink_${randomBytes(4).toString('hex')}`);
      return { database: 'test', table: tables.at(-1), mode: 'replace' };
    },
    read: async (o) => {
      const db = await admin();
      try {
        const [found] = await db.query('SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?', [
          'test',
          o.table,
        ]);
        return (found as unknown[]).length ? readBack(mysql as unknown as AnyConnector, o, dir) : [];
      } finally {
        await db.end();
      }
    },
  });
}
