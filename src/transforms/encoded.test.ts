/**
 * Transforms on the encoded path against the row path: for the same CSV and the
 * same steps, the records handed to the writer read (as COPY reads them) as the
 * row path's rows, and the per-step counts are the same. Where the encoded path
 * cannot vouch for a batch, it hands it back (nothing counted) for the row path.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAsCopy } from '../../test/helpers/copy.js';
import { Registry } from '../config/registry.js';
import csv from '../connectors/csv/index.js';
import { builtinConnectors } from '../connectors/index.js';
import { valueText } from '../connectors/shared/columns.js';
import { collect, connectorOptions, planContext, taskContext, tempDir } from '../sdk/testing.js';
import type { EncodedRows } from '../sdk/types.js';
import { type StepMetrics, type TransformChain, transformsOption } from './index.js';

const registry = new Registry(builtinConnectors);
const tctx = { runId: 'run-1', pipeline: 'p', partitionId: '0', attempt: 1, loadTime: new Date('2024-05-06T07:08:09Z') };

function chain(steps: unknown[]): TransformChain {
  const r = transformsOption(registry).parse(steps, 'transforms');
  if ('issues' in r) throw new Error(r.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  if (!r.ok) throw new Error(r.message);
  return r.value;
}

let dir: string;
beforeAll(async () => {
  dir = await tempDir('weir-tf-enc-');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const COLUMNS = { id: 'integer', s: 'string', n: 'number', d: 'decimal', b: 'boolean', t: 'timestamp' } as const;

interface Outcome {
  columns: readonly string[];
  records: (string | null)[][];
  metrics: StepMetrics[];
  /** Rows a step failed on (the row path's dead letters), as text. */
  failed: string[];
}

/** The row path: the source's rows through the chain, as the text of each output column. */
async function rowPath(path: string, options: Record<string, unknown>, steps: unknown[]): Promise<Outcome> {
  const source = csv.source?.(connectorOptions(csv, { path, ...options }, 'source')) ?? expect.unreachable();
  const schema = await source.schema?.(planContext({ baseDir: dir }));
  const rows = await collect(source.read({ id: '0', path }, taskContext({ baseDir: dir, schema })));
  const c = chain(steps);
  const run = c.start(tctx);
  const failed: string[] = [];
  const out = await run.apply(rows, async (record) => {
    failed.push(JSON.stringify(record, (_k, v) => valueText(v) ?? v));
  });
  const columns = (c.schema(schema) ?? []).map((col) => col.name);
  return { columns, records: out.map((r) => columns.map((k) => valueText(r[k]))), metrics: run.metrics(), failed };
}

/** The encoded path: the source's chunks through the chain's encoded form, read as COPY reads them; a batch handed back goes the row path. */
async function encodedPath(path: string, options: Record<string, unknown>, steps: unknown[]): Promise<Outcome & { handedBack: number }> {
  const source = csv.source?.(connectorOptions(csv, { path, ...options }, 'source')) ?? expect.unreachable();
  const schema = await source.schema?.(planContext({ baseDir: dir }));
  const c = chain(steps);
  const run = c.start(tctx);
  const encoded = run.encoded(schema) ?? expect.unreachable();
  const columns = (c.schema(schema) ?? []).map((col) => col.name);
  const records: (string | null)[][] = [];
  const failed: string[] = [];
  let handedBack = 0;
  const ctx = taskContext({ baseDir: dir, schema });
  for await (const batch of source.readEncoded?.({ id: '0', path }, ctx, 'csv') ?? expect.unreachable()) {
    const out = encoded.apply(batch);
    if (out) {
      expect(out.columns).toEqual(columns);
      const read = readAsCopy(out.data, out.delimiter, out.quote, out.nullText);
      expect(read).toHaveLength(out.rows);
      // decoding the transformed batch (a writer that declines it) gives the same rows
      const decoded = await out.decode(async () => {});
      expect(decoded.map((r) => columns.map((k) => valueText(r[k])))).toEqual(read);
      records.push(...read);
    } else {
      handedBack++;
      const rows = await batch.decode(async () => {});
      const kept = await run.apply(rows, async (record) => {
        failed.push(JSON.stringify(record, (_k, v) => valueText(v) ?? v));
      });
      records.push(...kept.map((r) => columns.map((k) => valueText(r[k]))));
    }
    batch.release?.();
  }
  return { columns, records, metrics: run.metrics(), failed, handedBack };
}

async function compare(content: string, steps: unknown[], options: Record<string, unknown> = { columns: COLUMNS }) {
  const path = join(dir, `in-${Math.random().toString(36).slice(2)}.csv`);
  await writeFile(path, content);
  try {
    const a = await rowPath(path, options, steps);
    const b = await encodedPath(path, options, steps);
    expect(b.columns).toEqual(a.columns);
    expect(b.records).toEqual(a.records);
    expect(b.metrics).toEqual(a.metrics);
    expect(b.failed).toEqual(a.failed);
    return { row: a, encoded: b };
  } finally {
    await rm(path, { force: true });
  }
}

describe('transforms on encoded rows', () => {
  it('rename, select and drop change the columns; filter keeps the rows the row path keeps', async () => {
    const content =
      'id,s,n,d,b,t\n1,ann,1.50,0.10,yes,2024-01-01\n2,,-3,1e3,0,2024-02-01T10:00:00Z\n3,"x, ""y""",7,12.5,true, 2024-03-01 \n';
    const { encoded } = await compare(content, [
      { rename: { s: 'name', n: 'amount' } },
      { filter: 'amount > 0' },
      { select: ['amount', 'name', 'id', 't'] },
      { drop: ['t'] },
    ]);
    expect(encoded.records).toEqual([
      ['1.5', 'ann', '1'],
      ['7', 'x, "y"', '3'],
    ]);
    expect(encoded.metrics.map((m) => [m.name, m.rows_in, m.rows_out, m.rows_filtered])).toEqual([
      ['rename', 3, 3, 0],
      ['filter', 3, 2, 1],
      ['select', 2, 2, 0],
      ['drop', 2, 2, 0],
    ]);
    expect(encoded.handedBack).toBe(0);
  });

  it('a rename alone hands the bytes on as they are', async () => {
    const source = csv.source?.(connectorOptions(csv, { path: join(dir, 'r.csv'), columns: COLUMNS }, 'source')) ?? expect.unreachable();
    await writeFile(join(dir, 'r.csv'), 'id,s,n,d,b,t\n1,a,1,1,t,2024-01-01\n');
    const schema = await source.schema?.(planContext({ baseDir: dir }));
    const encoded =
      chain([{ rename: { case: 'upper' } }])
        .start(tctx)
        .encoded(schema) ?? expect.unreachable();
    const [batch] = await collect(
      source.readEncoded?.({ id: '0', path: join(dir, 'r.csv') }, taskContext({ schema }), 'csv') ?? expect.unreachable(),
    );
    const out = encoded.apply(batch as EncodedRows) ?? expect.unreachable();
    expect(out.columns).toEqual(['ID', 'S', 'N', 'D', 'B', 'T']);
    expect(out.data).toBe((batch as EncodedRows).data);
  });

  it('NULL and the empty string stay apart; decimals compare exactly', async () => {
    const content = 'id,s,n,d,b,t\n1,,1,0.1,t,\n2,"",1,0.10,f,\n3,NULL,1,0.3,t,\n4,"NULL",1,0.30000000000000001,t,\n';
    for (const filter of ['s == null', 's == ""', 'is_null(s)', 'd == 0.1', 'd == 0.3', 'd + 0.2 == 0.5', 's != "NULL"', 'not b'])
      await compare(content, [{ filter }], { columns: COLUMNS, null_value: 'NULL' });
    for (const filter of ['s == null', 's == ""']) await compare(content, [{ filter }]);
  });

  it('a first column that starts with a backslash is quoted (a line \\. would end the COPY)', async () => {
    const { encoded } = await compare('id,s,n,d,b,t\n1,\\.,1,1,t,2024-01-01\n2,\\x,2,2,f,2024-01-01\n', [{ select: ['s', 'id'] }]);
    expect(encoded.records).toEqual([
      ['\\.', '1'],
      ['\\x', '2'],
    ]);
  });

  it('CRLF files, quoted line breaks and a last record without a line ending', async () => {
    await compare('id,s,n,d,b,t\r\n1,"a\r\nb",1,1,t,2024-01-01\r\n2,c,-1,2,f,2024-01-01', [{ filter: 'n > 0' }]);
    await compare('id,s,n,d,b,t\r\n1,"a\r\nb",1,1,t,2024-01-01\r\n2,c,-1,2,f,2024-01-01', [{ drop: ['s'] }, { filter: 'n < 0' }]);
  });

  it('a filter that fails on a record hands the batch back: the row path dead-letters it, counts match', async () => {
    const { encoded } = await compare('id,s,n,d,b,t\n1,a,1,1,t,2024-01-01\n2,b,2,2,f,2024-01-01\n', [
      { rename: { n: 'x' } },
      { filter: 'x + 1' },
    ]);
    expect(encoded.handedBack).toBe(1);
    expect(encoded.failed).toHaveLength(2);
    expect(encoded.metrics[1]).toMatchObject({ rows_in: 2, rows_failed: 2, rows_out: 0 });
  });

  it('steps that change values keep the row path; so does a rename onto another column', () => {
    const schema = Object.entries(COLUMNS).map(([name, type]) => ({ name, type }));
    for (const steps of [
      [{ cast: { n: 'string' } }],
      [{ mask: { fields: ['s'], method: 'fixed' } }],
      [{ set: { x: '1' } }],
      [{ timestamp: { field: 't', format: 'yyyy-MM-dd' } }],
    ])
      expect(chain(steps).start(tctx).encoded(schema)).toBeUndefined();
    expect(
      chain([{ rename: { s: 'S', n: 'N' } }])
        .start(tctx)
        .encoded(schema),
    ).toBeDefined();
    expect(
      chain([{ filter: 'n > 0' }])
        .start(tctx)
        .encoded(undefined),
    ).toBeUndefined();
  });

  it('maps the writer hints onto the source columns', () => {
    const schema = Object.entries(COLUMNS).map(([name, type]) => ({ name, type }));
    const encoded =
      chain([{ rename: { d: 'price', b: 'ok' } }, { drop: ['n'] }])
        .start(tctx)
        .encoded(schema) ?? expect.unreachable();
    expect(encoded.sourceHints({ valueColumns: ['ok', 'n'], fractionDigits: { price: 2 } })).toEqual({
      valueColumns: ['b'],
      fractionDigits: { d: 2 },
    });
  });

  it('property: random filters over hard values keep the rows the row path keeps, with the same counts', async () => {
    const text = fc.constantFrom('', '""', 'NULL', '"NULL"', 'a', '"x,y"', '"q""q"', '"multi\nline"', '\\.', ' pad ', 'é', '0', '1.50');
    const num = fc.constantFrom(
      '',
      '1.50',
      '-0',
      '-0.0',
      '007',
      '1e3',
      '0.1',
      '0.3',
      '-2.5',
      '"3"',
      'NULL',
      '12345678901234567',
      '123456789012345',
      '0.000000000000001',
      '1.',
      '.5',
      'abc',
      '0',
    );
    const dec = fc.constantFrom('', '0.10', '-0.0', '1e2', '12345678901234567890.123', '0.3', '"0.2"', '5', 'x');
    const bool = fc.constantFrom('', 't', 'F', 'yes', 'No', '1', '0', 'true', '"false"', 'maybe');
    const ts = fc.constantFrom('', '2024-01-01', ' 2024-02-01 ', '2024-03-01T10:00:00Z', '"2024-04-01 12:00"', 'soon');
    const int = fc.constantFrom('', '1', '-7', '007', ' 5', '9007199254740993', '"3"', 'x');
    const record = fc.tuple(int, text, num, dec, bool, ts).map((r) => r.join(','));
    const atom = fc.constantFrom(
      'n > 0',
      'n >= 1.5',
      'n == null',
      'd >= 0.1',
      'd == 0.10',
      'd * 2 > 1',
      's == ""',
      's == null',
      's != "a"',
      'is_null(s)',
      'b',
      'b == false',
      'id % 2 == 0',
      'id > 3',
      't == null',
      'true',
      'n + 1', // not a boolean: a row error
    );
    const expr = fc
      .array(atom, { minLength: 1, maxLength: 3 })
      .chain((atoms) => fc.constantFrom(' and ', ' or ').map((op) => atoms.map((a) => (a === 'n + 1' ? a : `(${a})`)).join(op)));
    const steps = fc
      .tuple(expr, fc.boolean(), fc.constantFrom('none', 'select', 'drop'), fc.option(expr, { nil: undefined }))
      .map(([f1, rename, pick, f2]) => {
        const out: unknown[] = [{ filter: f1 }];
        if (rename) out.push({ rename: { n: 'm', s: 'n' } }); // n becomes m and s becomes n
        if (pick === 'select') out.push({ select: ['d', rename ? 'n' : 's', 'id', 'b', rename ? 'm' : 'n', 't'] });
        if (pick === 'drop') out.push({ drop: ['t'] });
        // a later filter names the columns as they are at its step
        const later = f2 && rename ? f2.replace(/\bn\b/g, 'm').replace(/\bs\b/g, 'n') : f2;
        if (later && !(pick === 'drop' && /\bt\b/.test(later))) out.push({ filter: later });
        return out;
      });
    await fc.assert(
      fc.asyncProperty(fc.array(record, { minLength: 0, maxLength: 25 }), steps, fc.boolean(), async (records, chainSteps, nullText) => {
        const content = `id,s,n,d,b,t\n${records.join('\n')}\n`;
        await compare(content, chainSteps, nullText ? { columns: COLUMNS, null_value: 'NULL' } : { columns: COLUMNS });
      }),
      { numRuns: 150 },
    );
  });
});
