/**
 * The csv sink's encoded path: offered only where canonical CSV is the row path's
 * file, appending only canonical batches of its dialect and columns; the csv source
 * hands such a writer rows (its chunks are not canonical).
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitContext, connectorOptions, taskContext, tempDir } from '../../sdk/testing.js';
import type { EncodedRows, JsonValue } from '../../sdk/types.js';
import csv from './index.js';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('weir-csv-sink-encoded-');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const batch = (over: Partial<EncodedRows> = {}): EncodedRows => ({
  kind: 'encoded',
  format: 'csv',
  canonical: true,
  columns: ['id', 'name'],
  delimiter: ',',
  quote: '"',
  nullText: '',
  data: Buffer.from('1,"a,b"\n2,\n'),
  rows: 2,
  decode: async () => [
    { id: 1, name: 'a,b' },
    { id: 2, name: null },
  ],
  ...over,
});

describe('csv sink: appending canonical CSV as it is', () => {
  it('appends canonical batches of its dialect and columns, and declines any other', async () => {
    const path = join(dir, 'out.csv');
    const sink = csv.sink?.(connectorOptions(csv, { path }, 'sink')) ?? expect.unreachable();
    expect(sink.accepts).toEqual(['csv']);
    const schema = [
      { name: 'id', type: 'integer' as const },
      { name: 'name', type: 'string' as const },
    ];
    const ctx = taskContext({ baseDir: dir, schema });
    const writer = await sink.writer({ id: '0' }, ctx);
    expect(await writer.encodingHints?.('csv')).toEqual({ dialect: { delimiter: ',', quote: '"', nullText: '' } });
    expect(await writer.writeEncoded?.(batch({ canonical: undefined }))).toBe(false);
    expect(await writer.writeEncoded?.(batch({ delimiter: ';' }))).toBe(false);
    expect(await writer.writeEncoded?.(batch({ nullText: 'NULL' }))).toBe(false);
    expect(await writer.writeEncoded?.(batch({ columns: ['name', 'id'] }))).toBe(false);
    expect(await writer.writeEncoded?.(batch())).toBe(true);
    await writer.write([{ id: 3, name: '' }]);
    const message = (await writer.commit?.()) as JsonValue;
    await writer.close?.();
    await sink.commit?.([message], commitContext({ baseDir: dir, schema }));
    expect(await readFile(path, 'utf8')).toBe('id,name\n1,"a,b"\n2,\n3,""\n');
    expect(ctx.bytes).toBe(Buffer.byteLength('1,"a,b"\n2,\n3,""\n'));
  });

  it('is not offered where the row path writes other bytes than canonical CSV', () => {
    for (const input of [{ formula_escape: true }, { encoding: 'latin1' }, { columns: { id: 'integer' } }, { delimiter: '§' }]) {
      const sink = csv.sink?.(connectorOptions(csv, { path: join(dir, 'x.csv'), ...input }, 'sink')) ?? expect.unreachable();
      expect(sink.accepts).toBeUndefined();
    }
  });

  it('the csv source hands a writer that asks for canonical CSV its rows, not chunks it would decode', async () => {
    const path = join(dir, 'in.csv');
    await writeFile(path, 'id,name\n1,a\n');
    const source = csv.source?.(connectorOptions(csv, { path }, 'source')) ?? expect.unreachable();
    const ctx = taskContext({ baseDir: dir });
    expect(source.readEncoded?.({ id: '0' }, ctx, 'csv', { dialect: { delimiter: ',', quote: '"', nullText: '' } })).toBeUndefined();
    expect(source.readEncoded?.({ id: '0' }, ctx, 'csv', {})).toBeDefined();
  });
});
