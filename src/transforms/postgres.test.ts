/**
 * The must-show: a CSV whose header has spaces loaded into PostgreSQL with
 * `rename: { case: snake }`, `cast`, a `filter` and an HMAC `mask` of an e-mail
 * column. The table holds the expected rows with the columns the steps made, and no
 * raw e-mail appears anywhere: table, logs, dead letters, summary.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../../test/foundation/harness.js';
import { tempDir } from '../../test/helpers/cli.js';
import { requireService } from '../../test/helpers/services.js';
import { formatSummary } from '../observe/summary.js';
import { Redactor } from '../secrets/redactor.js';

const up = await requireService('postgres');
const BASE = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };
const table = `tf_orders_${randomBytes(4).toString('hex')}`;
const pipeline = `tf-pg-${randomBytes(3).toString('hex')}`;
const KEY = 'tf-pg-mask-key-9f8e7d6c5b4a39281706';
process.env.TF_PG_MASK_KEY = KEY;
let admin: pg.Client;

beforeAll(async () => {
  if (!up) return;
  admin = new pg.Client(BASE);
  await admin.connect();
});

afterAll(async () => {
  if (!up) return;
  await admin.query(`DROP TABLE IF EXISTS "${table}"`);
  await admin.query('DELETE FROM _weir_checkpoints WHERE pipeline LIKE $1', [`${pipeline}%`]).catch(() => {});
  await admin.query('DELETE FROM _weir_runs WHERE pipeline LIKE $1', [`${pipeline}%`]).catch(() => {});
  await admin.end();
});

describe.skipIf(!up)('CSV → PostgreSQL with transforms', () => {
  it('renames, casts, filters and masks; no raw e-mail anywhere', async () => {
    const dir = tempDir();
    const emails = [
      'anna.schmidt@example.org',
      'bob.jones@example.org',
      'chloe.martin@example.org',
      'dan.brown@example.org',
      'eve.adams@example.org',
    ];
    writeFileSync(
      join(dir, 'orders.csv'),
      [
        'Order ID,Cost Total $,E-mail Address,Country',
        `1,10.50,${emails[0]},DE`,
        `2,0.00,${emails[1]},DE`,
        `3,12345678901234.99,${emails[2]},FR`,
        `4,not a number,${emails[3]},DE`,
        `5,7.25,${emails[4]},US`,
        `6,3.10,${emails[0]},FR`,
        '',
      ].join('\n'),
    );
    const run = await runYaml(
      `pipeline: ${pipeline}
source: { type: csv, path: orders.csv, columns: { "Cost Total $": string } }
sink: { type: postgres, host: 127.0.0.1, database: test, user: postgres, table: ${table} }
errors: { tolerance: all, dead_letter: { type: jsonl, path: rejected.jsonl } }
transforms:
  - rename: { case: snake }
  - cast: { cost_total: decimal, order_id: integer }
  - filter: cost_total > 0 and country in ["DE", "FR"]
  - mask: { fields: [e_mail_address], method: hmac, key: "\${env:TF_PG_MASK_KEY}" }
`,
      [],
      dir,
    );
    expect(run.summary.status).toBe('succeeded');
    expect(run.summary.totals).toMatchObject({ rows_read: 6, rows_written: 3, rows_dead_lettered: 1, rows_filtered: 2 });

    const cols = await admin.query(
      `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`,
      [table],
    );
    expect(cols.rows.map((r) => `${r.column_name}:${r.data_type}`)).toEqual([
      'order_id:bigint',
      'cost_total:numeric',
      'e_mail_address:text',
      'country:text',
    ]);
    const token = (e: string) => createHmac('sha256', KEY).update(e).digest('hex');
    const rows = await admin.query(
      `SELECT order_id, cost_total::text AS cost_total, e_mail_address, country FROM "${table}" ORDER BY order_id`,
    );
    expect(rows.rows).toEqual([
      { order_id: '1', cost_total: '10.50', e_mail_address: token(emails[0] as string), country: 'DE' },
      { order_id: '3', cost_total: '12345678901234.99', e_mail_address: token(emails[2] as string), country: 'FR' },
      { order_id: '6', cost_total: '3.10', e_mail_address: token(emails[0] as string), country: 'FR' },
    ]);
    // the same e-mail gives the same token: joins still work
    expect(rows.rows[0].e_mail_address).toBe(rows.rows[2].e_mail_address);

    const dump = await admin.query(`SELECT t::text AS line FROM "${table}" t`);
    const dead = readFileSync(join(dir, 'rejected.jsonl'), 'utf8');
    expect(JSON.parse(dead.trim())).toMatchObject({ stage: 'transform', error_type: 'cast_failed' });
    expect(JSON.parse(dead.trim()).record.e_mail_address).toBe(token(emails[3] as string));
    const outputs = [
      dump.rows.map((r) => r.line).join('\n'),
      dead,
      run.logs,
      JSON.stringify(run.summary),
      formatSummary(run.summary, new Redactor()),
    ];
    for (const e of emails) for (const o of outputs) expect(o).not.toContain(e);
    for (const o of outputs) expect(o).not.toContain(KEY);
  });
});
