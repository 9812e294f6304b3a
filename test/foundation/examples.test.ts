/** The README's runnable docs: the quickstart and the custom-connector example. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli } from '../helpers/cli.js';

describe('examples', () => {
  it('the quickstart loads the 5,000 sample orders into SQLite', async () => {
    const r = await runCli(['run', 'examples/quickstart.yaml', '--log-level', 'warn']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('5,000 written');
    const db = new Database(join(ROOT, 'out', 'quickstart.db'), { readonly: true });
    expect(db.prepare('SELECT count(*) AS n, count(DISTINCT order_id) AS d FROM orders').get()).toEqual({ n: 5000, d: 5000 });
    const cols = db.prepare('SELECT name, type FROM pragma_table_info(?)').all('orders') as { name: string; type: string }[];
    expect(cols.find((c) => c.name === 'quantity')?.type).toBe('INTEGER');
    // decimals keep their digits: TEXT affinity (SQLite's NUMERIC would store 298.80 as the REAL 298.8)
    expect(cols.find((c) => c.name === 'total')?.type).toBe('DECIMAL_TEXT');
    expect(db.prepare('SELECT total, typeof(total) AS t FROM orders WHERE order_id = 100001').get()).toEqual({
      total: '298.80',
      t: 'text',
    });
    db.close();
  });

  it('the custom connector from the README runs, with its bad row dead-lettered', async () => {
    const r = await runCli(['run', 'examples/custom-connector/pipeline.yaml', '--log-level', 'warn']);
    expect(r.code, r.stderr).toBe(0);
    const db = new Database(join(ROOT, 'out', 'inventory.db'), { readonly: true });
    expect(db.prepare('SELECT count(*) AS n FROM stock').get()).toEqual({ n: 5 });
    db.close();
    const dead = readFileSync(join(ROOT, 'out', 'inventory-rejected.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ pipeline: 'inventory-to-sqlite', partition_id: 'lisbon', stage: 'read', record: { sku: 'GRINDER' } });
    expect(dead[0].error_message).toMatch(/lisbon\.json, key sku=GRINDER: quantity .* is not a whole number$/);
  });

  it('the README example snippet is the real connector file', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const source = readFileSync(join(ROOT, 'examples/custom-connector/inventory-connector.mjs'), 'utf8');
    const body = source.slice(source.indexOf('export default'));
    const normalise = (s: string) =>
      s
        .replace(/^\s*\/\/.*$/gm, '')
        .replace(/\s+/g, ' ')
        .trim();
    expect(normalise(readme)).toContain(normalise(body).slice(0, 400));
  });
});
