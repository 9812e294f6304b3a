// A custom connector in a few dozen lines: a source that reads a directory of
// warehouse inventory snapshots (one JSON file per warehouse) — one partition per file.
// weir gives it validation, docs, redaction, retries, metrics and the commit protocol.
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { RowError, WeirError, defineConnector, o } from 'weir/sdk';

export default defineConnector({
  name: 'inventory',
  description: 'Warehouse inventory snapshots: a directory with one JSON file per warehouse.',
  options: {
    dir: o.path().describe('Directory holding the *.json snapshots, relative to the pipeline file.').required().example('inventory'),
    min_quantity: o.int({ min: 0 }).describe('Skip items with fewer units than this.').default(0),
  },
  source: (opts) => ({
    // planner, once per run
    schema: () => [
      { name: 'warehouse', type: 'string' },
      { name: 'sku', type: 'string' },
      { name: 'quantity', type: 'integer' },
      { name: 'updated_at', type: 'timestamp' },
    ],
    // planner, once per run: plain JSON partitions (they may travel to other workers)
    async partitions(ctx) {
      const dir = resolve(ctx.baseDir, opts.dir);
      const files = (await readdir(dir).catch(() => {
        throw new WeirError(`inventory: directory ${dir} does not exist; check source.dir`, { kind: 'config', code: 'ENOENT' });
      })).filter((f) => f.endsWith('.json'));
      return files.sort().map((file) => ({ id: file.replace(/\.json$/, ''), file: join(dir, file) }));
    },
    // worker, once per partition attempt
    async *read(partition, ctx) {
      const snapshot = JSON.parse(await readFile(partition.file, 'utf8'));
      for (const item of snapshot.items) {
        if (!Number.isInteger(item.quantity)) {
          // `at`: where the row is; weir puts it in front of the message (…/a.json, key sku=A1: quantity …)
          await ctx.reject(item, new RowError(`quantity ${JSON.stringify(item.quantity)} is not a whole number`), {
            file: partition.file,
            key: `sku=${item.sku}`,
          });
          continue;
        }
        if (item.quantity < opts.min_quantity) continue;
        yield { warehouse: snapshot.warehouse, sku: item.sku, quantity: item.quantity, updated_at: snapshot.updated_at };
      }
    },
  }),
});
