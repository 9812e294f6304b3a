import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oldMysqlBookkeeping } from '../../../test/conformance/old-bookkeeping.js';
import { requireService } from '../../../test/helpers/services.js';
import { createMetaTables } from './meta.js';

const up = await requireService('mysql');
const database = `weir_meta_${process.pid}_${Date.now().toString(36)}`;

describe.skipIf(!up)('mysql bookkeeping tables', () => {
  let admin: mysql.Connection;
  beforeAll(async () => {
    admin = await mysql.createConnection({ host: '127.0.0.1', user: 'root' });
    await admin.query(`CREATE DATABASE \`${database}\``);
  });
  afterAll(async () => {
    await admin?.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await admin?.end();
  });

  it('runs that open a target of the old shape at the same time upgrade it once, without colliding', async () => {
    // _weir_runs as mysql/meta.ts created it at 69b99eb: no partitions, rows_written, committed_at
    await admin.query(oldMysqlBookkeeping((name) => `\`${database}\`.\`${name}\``)._weir_runs);
    const conns = await Promise.all(Array.from({ length: 6 }, () => mysql.createConnection({ host: '127.0.0.1', user: 'root', database })));
    try {
      const results = await Promise.allSettled(conns.map((c) => createMetaTables(c)));
      expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    } finally {
      await Promise.all(conns.map((c) => c.end()));
    }
    const [columns] = await admin.query<mysql.RowDataPacket[]>(
      'SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
      [database, '_weir_runs'],
    );
    expect(columns.map((c) => c.name)).toEqual(expect.arrayContaining(['partitions', 'rows_written', 'committed_at']));
  });
});
