import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import csv from '../../src/connectors/csv/index.js';
import jsonl from '../../src/connectors/jsonl/index.js';
import sqlite from '../../src/connectors/sqlite/index.js';
import type { AnyConnector } from '../../src/sdk/connector.js';
import { tempDir } from '../helpers/cli.js';
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
