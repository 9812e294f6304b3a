import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { locationsOf, RowError, WeirError } from '../../sdk/errors.js';
import { validateOptions } from '../../sdk/options.js';
import { collect, commitContext, messageOf, planContext, taskContext, tempDir } from '../../sdk/testing.js';
import type { JsonValue, Partition, Row, Schema } from '../../sdk/types.js';
import { Decimal } from '../../sdk/values.js';
import csv from './index.js';
import { quotedFields } from './source.js';
import { type CsvOptions, csvOptions, csvRules, csvSourceRules } from './spec.js';

/** Validated options, as the runtime would pass them. */
function options(input: Record<string, unknown>, role: 'source' | 'sink' = 'source'): CsvOptions {
  const r = validateOptions(csvOptions, input, 'source', [...csvRules, ...(role === 'source' ? csvSourceRules : [])]);
  if (!r.value) throw new Error(r.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return r.value;
}

let dir: string;
beforeEach(async () => {
  dir = await tempDir('weir-csv-');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Reads a whole file through the source the way a run does: schema, partitions, read. */
async function readAll(input: Record<string, unknown>, baseDir = dir) {
  const source = csv.source?.(options(input)) ?? expect.unreachable();
  const schema = await source.schema?.(planContext({ baseDir }));
  const partitions = (await source.partitions?.(planContext({ baseDir }))) ?? [{ id: '0' }];
  const ctx = taskContext({ baseDir, schema });
  const rows: Row[] = [];
  for (const p of partitions) rows.push(...(await collect(source.read(p, ctx))));
  return { schema, partitions, rows, rejected: ctx.rejected };
}

/** Writes partitions (in the given order) through the sink and commits the job. */
async function writeAll(
  input: Record<string, unknown>,
  parts: [id: string, rows: Row[]][],
  { schema, runId = 'run-1', baseDir = dir }: { schema?: Schema; runId?: string; baseDir?: string } = {},
) {
  const sink = csv.sink?.(options(input, 'sink')) ?? expect.unreachable();
  const cctx = commitContext({ baseDir, runId, schema });
  await sink.setup?.(cctx);
  const messages: JsonValue[] = [];
  for (const [id, rows] of parts) {
    const writer = await sink.writer({ id }, taskContext({ baseDir, runId, schema, partitionId: id }));
    await writer.write(rows);
    messages.push((await writer.commit?.()) ?? null);
    await writer.close?.();
  }
  await sink.commit?.(messages, cctx);
  return { sink, messages, cctx };
}

describe('csv source', () => {
  it('infers only types that keep the text: integer, decimal, boolean, timestamp, string; unquoted empty is null, quoted empty is text', async () => {
    await writeFile(
      join(dir, 'in.csv'),
      'id,price,ok,at,name,zip,big,flag\n' +
        '1,9.50,true,2024-05-01T12:00:00Z,Ann,007,12345678901234567890,TRUE\n' +
        '2,10,false,2024-05-02,Bob,010,1,no\n' +
        '3,,,,,,,\n' +
        '4,,,,"","",,""\n',
    );
    const { schema, rows, rejected } = await readAll({ path: join(dir, 'in.csv') });
    expect(schema?.map((c) => [c.name, c.type])).toEqual([
      ['id', 'integer'],
      ['price', 'decimal'],
      ['ok', 'boolean'],
      ['at', 'timestamp'],
      ['name', 'string'],
      ['zip', 'string'],
      ['big', 'decimal'], // beyond 64 bits: no bigint column holds it
      ['flag', 'string'], // TRUE/no: a boolean would come back as true/false
    ]);
    expect(schema?.find((c) => c.name === 'price')).toMatchObject({ precision: 4, scale: 2 });
    expect(schema?.find((c) => c.name === 'big')).toMatchObject({ precision: 20, scale: 0 });
    const d = (t: string) => Decimal.parse(t);
    expect(rows).toEqual([
      {
        id: 1,
        price: d('9.50'),
        ok: true,
        at: '2024-05-01T12:00:00Z',
        name: 'Ann',
        zip: '007',
        big: d('12345678901234567890'),
        flag: 'TRUE',
      },
      { id: 2, price: d('10'), ok: false, at: '2024-05-02', name: 'Bob', zip: '010', big: d('1'), flag: 'no' },
      { id: 3, price: null, ok: null, at: null, name: null, zip: null, big: null, flag: null },
      { id: 4, price: null, ok: null, at: null, name: '', zip: '', big: null, flag: '' },
    ]);
    expect(rejected).toEqual([]);
  });

  it('infers types in read when no planner schema is given', async () => {
    await writeFile(join(dir, 'in.csv'), 'a,b\n1,x\n2,y\n');
    const source = csv.source?.(options({ path: 'in.csv' })) ?? expect.unreachable();
    const rows = await collect(source.read({ id: '0' }, taskContext({ baseDir: dir })));
    expect(rows).toEqual([
      { a: 1, b: 'x' },
      { a: 2, b: 'y' },
    ]);
  });

  it('rejects a field that does not fit its declared type and keeps reading', async () => {
    await writeFile(join(dir, 'in.csv'), 'id,name\n1,a\nabc,b\n3,c\n');
    const { schema, rows, rejected } = await readAll({ path: join(dir, 'in.csv'), columns: { id: 'integer' } });
    expect(schema).toEqual([
      { name: 'id', type: 'integer', nullable: true },
      { name: 'name', type: 'string', nullable: true },
    ]);
    expect(rows).toEqual([
      { id: 1, name: 'a' },
      { id: 3, name: 'c' },
    ]);
    expect(rejected).toHaveLength(1);
    expect(rejected[0]?.record).toEqual({ line: 3, raw: 'abc,b' });
    expect(rejected[0]?.error).toBeInstanceOf(RowError);
    expect(messageOf(rejected[0])).toBe('column "id": "abc" is not an integer');
    expect(rejected[0]?.at).toEqual({ file: join(dir, 'in.csv'), line: 3 }); // the runtime leads the message with it
  });

  it('marks the rows it yields with their lines, for the errors a sink raises on them', async () => {
    await writeFile(join(dir, 'in.csv'), 'id,name\n1,a\n"2","b\nb"\nx,c\n4,d\n');
    const source = csv.source?.(options({ path: 'in.csv', columns: { id: 'integer' } })) ?? expect.unreachable();
    const ctx = taskContext({ baseDir: dir });
    const chunks: Row[][] = [];
    for await (const chunk of source.read({ id: '0' }, ctx)) chunks.push(chunk as Row[]);
    const locate = locationsOf(chunks[0] ?? []);
    expect(chunks[0]?.map((_, i) => locate?.(i))).toEqual([2, 3, 6].map((line) => ({ file: join(dir, 'in.csv'), line })));
  });

  it('rejects records with the wrong number of fields and malformed quoting, with line numbers', async () => {
    await writeFile(join(dir, 'in.csv'), 'a,b\n1,2\n"multi\nline",3\n4,5,6\n7,"8"x\nx"y,9\n"unclosed,10\n11,12\n');
    const { rows, rejected } = await readAll({ path: join(dir, 'in.csv'), columns: { a: 'string', b: 'integer' } });
    expect(rows).toEqual([
      { a: '1', b: 2 },
      { a: 'multi\nline', b: 3 },
      { a: 'x"y', b: 9 },
    ]);
    expect(rejected.map((r) => (r.record as { line: number }).line)).toEqual([5, 6, 9]);
    expect(messageOf(rejected[0])).toMatch(/3 field\(s\), expected 2/);
    expect(messageOf(rejected[1])).toBe('column "b": "\\"8\\"x" is not an integer');
    expect(messageOf(rejected[2])).toMatch(/malformed CSV: Quote Not Closed/);
  });

  it('counts lines across CRLF line ends and empty lines', async () => {
    await writeFile(join(dir, 'in.csv'), 'a,b\r\n1,2\r\n\r\nx,3\r\n"4\r\n",5\r\ny,6\r\n');
    const { rows, rejected } = await readAll({ path: join(dir, 'in.csv'), columns: { a: 'integer' } });
    expect(rows).toEqual([
      { a: 1, b: 2 },
      { a: 4, b: 5 },
    ]);
    expect(rejected.map((r) => r.record)).toEqual([
      { line: 4, raw: 'x,3' },
      { line: 7, raw: 'y,6' },
    ]);
  });

  it('reads without a header using declared columns, other delimiters, skip_lines and latin1', async () => {
    await writeFile(join(dir, 'in.csv'), Buffer.from('exported by X\n1;café\n2;"a;b"\n', 'latin1'));
    const { rows } = await readAll({
      path: join(dir, 'in.csv'),
      header: false,
      columns: { id: 'integer', name: 'string' },
      delimiter: ';',
      encoding: 'latin1',
      skip_lines: 1,
    });
    expect(rows).toEqual([
      { id: 1, name: 'café' },
      { id: 2, name: 'a;b' },
    ]);
  });

  it('tells quoted fields from unquoted ones in a raw record (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string({ unit: fc.constantFrom('a', ',', '"', '\n', 'é') }), fc.boolean()), { minLength: 1, maxLength: 6 }),
        fc.constantFrom('\n', '\r\n', ''),
        (fields, eol) => {
          const raw = fields.map(([v, q]) => (q || /[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v)).join(',') + eol;
          const expected = fields.map(([v, q]) => q || /[",\n]/.test(v));
          expect(quotedFields(raw, ',', '"', fields.length)).toEqual(expected);
        },
      ),
    );
  });

  it('treats null_value as null', async () => {
    await writeFile(join(dir, 'in.csv'), 'a,b\nNULL,x\n2,\n3,NULL\n4,"NULL"\n5,""\n');
    const { rows } = await readAll({ path: join(dir, 'in.csv'), null_value: 'NULL' });
    expect(rows).toEqual([
      { a: null, b: 'x' },
      { a: 2, b: null },
      { a: 3, b: null },
      { a: 4, b: 'NULL' }, // quoted: text, as PostgreSQL reads it
      { a: 5, b: '' },
    ]);
  });

  it('resolves a relative path against baseDir and returns a plain-JSON partition', async () => {
    await mkdir(join(dir, 'data'));
    await writeFile(join(dir, 'data', 'in.csv'), 'a\n1\n');
    const { partitions, rows } = await readAll({ path: 'data/in.csv' });
    expect(partitions).toEqual([{ id: '0', path: join(dir, 'data', 'in.csv') }]);
    expect(JSON.parse(JSON.stringify(partitions))).toEqual(partitions);
    expect(rows).toEqual([{ a: 1 }]);
  });

  it('yields rows in arrays and estimates the row count', async () => {
    const lines = ['n'];
    for (let i = 0; i < 2500; i++) lines.push(String(i));
    await writeFile(join(dir, 'in.csv'), `${lines.join('\n')}\n`);
    const source = csv.source?.(options({ path: 'in.csv' })) ?? expect.unreachable();
    const estimate = await source.estimate?.(planContext({ baseDir: dir }));
    expect(estimate).toBeGreaterThan(2000);
    expect(estimate).toBeLessThan(3000);
    const chunks: number[] = [];
    for await (const chunk of source.read({ id: '0', path: join(dir, 'in.csv') }, taskContext({ baseDir: dir })))
      chunks.push(Array.isArray(chunk) ? chunk.length : 1);
    expect(chunks).toEqual([1000, 1000, 500]);
  });

  it('fails with a clear ENOENT connector error for a missing file', async () => {
    const source = csv.source?.(options({ path: 'nope.csv' })) ?? expect.unreachable();
    const error = await Promise.resolve(source.schema?.(planContext({ baseDir: dir }))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WeirError);
    expect(error).toMatchObject({ kind: 'config', code: 'ENOENT' });
    expect((error as Error).message).toContain(join(dir, 'nope.csv'));
    expect((error as Error).message).toContain('`path`');
    await expect(collect(source.read({ id: '0' }, taskContext({ baseDir: dir })))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('names a declared column missing from the header, and duplicate header names', async () => {
    await writeFile(join(dir, 'in.csv'), 'a,b\n1,2\n');
    await expect(readAll({ path: 'in.csv', columns: { c: 'integer' } })).rejects.toMatchObject({
      kind: 'config',
      message: expect.stringContaining('"c"'),
    });
    await writeFile(join(dir, 'dup.csv'), 'a,a\n1,2\n');
    await expect(readAll({ path: 'dup.csv' })).rejects.toMatchObject({ kind: 'config', code: 'duplicate_column' });
  });
});

describe('csv options', () => {
  it('require columns when header is false (source) and a delimiter different from the quote', () => {
    const noColumns = validateOptions(csvOptions, { path: 'x.csv', header: false }, 'source', [...csvRules, ...csvSourceRules]);
    expect(noColumns.issues.map((i) => i.message).join()).toMatch(/columns is required when header is false/);
    const same = validateOptions(csvOptions, { path: 'x.csv', delimiter: '"' }, 'sink', csvRules);
    expect(same.issues.map((i) => i.message).join()).toMatch(/delimiter and quote/);
    const long = validateOptions(csvOptions, { path: 'x.csv', delimiter: ';;' }, 'sink', csvRules);
    expect(long.issues[0]?.path).toBe('sink.delimiter');
  });

  it('describe every option', () => {
    for (const [name, opt] of Object.entries(csvOptions)) expect(opt.meta.description, name).toBeTruthy();
  });
});

describe('csv sink', () => {
  it('round-trips csv → rows → csv', async () => {
    const text = 'id,name,score,ok,at,note\n1,Ann,9.5,true,2024-05-01T12:00:00Z,"a, ""quoted"" note"\n2,Bob,,false,,"two\nlines"\n';
    await writeFile(join(dir, 'in.csv'), text);
    const { schema, rows } = await readAll({ path: 'in.csv' });
    await writeAll({ path: 'out.csv' }, [['0', rows]], { schema });
    expect(await readFile(join(dir, 'out.csv'), 'utf8')).toBe(text);
  });

  it('round-trips arbitrary strings', async () => {
    const value = fc.string({ unit: fc.constantFrom('a', 'b', ',', '"', '\n', ' ', 'é', ';', '\t'), minLength: 1 });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ x: value, y: value }), { minLength: 1, maxLength: 20 }), async (rows) => {
        const sub = await tempDir('weir-csv-prop-');
        await writeAll({ path: 'out.csv' }, [['0', rows]], { baseDir: sub });
        const back = await readAll({ path: 'out.csv', columns: { x: 'string', y: 'string' } }, sub);
        await rm(sub, { recursive: true, force: true });
        expect(back.rows).toEqual(rows);
        expect(back.rejected).toEqual([]);
      }),
      { numRuns: 30 },
    );
  });

  it('concatenates partitions in partition-id order with one header', async () => {
    await writeAll({ path: 'out.csv' }, [
      ['10', [{ n: 10 }]],
      ['2', [{ n: 2 }]],
      ['0', [{ n: 0 }, { n: 1 }]],
    ]);
    expect(await readFile(join(dir, 'out.csv'), 'utf8')).toBe('n\n0\n1\n2\n10\n');
    expect(await readdir(dir)).toEqual(['out.csv']);
  });

  it('commits idempotently', async () => {
    const { sink, messages, cctx } = await writeAll({ path: 'out.csv', mode: 'append' }, [['0', [{ n: 1 }]]]);
    await sink.commit?.(messages, cctx);
    await sink.commit?.(messages, cctx);
    expect(await readFile(join(dir, 'out.csv'), 'utf8')).toBe('n\n1\n');
  });

  it('appends without a second header, and refuses a file with another header', async () => {
    await writeFile(join(dir, 'out.csv'), 'n\n1');
    await writeAll({ path: 'out.csv', mode: 'append' }, [['0', [{ n: 2 }]]]);
    expect(await readFile(join(dir, 'out.csv'), 'utf8')).toBe('n\n1\n2\n');
    await expect(writeAll({ path: 'out.csv', mode: 'append' }, [['0', [{ m: 3 }]]], { runId: 'run-2' })).rejects.toMatchObject({
      code: 'header_mismatch',
    });
    expect(await readFile(join(dir, 'out.csv'), 'utf8')).toBe('n\n1\n2\n');
  });

  it('overwrites by default', async () => {
    await writeFile(join(dir, 'out.csv'), 'old\nstuff\n');
    await writeAll({ path: 'out.csv' }, [['0', [{ n: 1 }]]]);
    expect(await readFile(join(dir, 'out.csv'), 'utf8')).toBe('n\n1\n');
  });

  it('leaves no files after writer abort and job abort', async () => {
    const sink = csv.sink?.(options({ path: 'sub/out.csv' }, 'sink')) ?? expect.unreachable();
    const cctx = commitContext({ baseDir: dir });
    await sink.setup?.(cctx);
    const a = await sink.writer({ id: '0' }, taskContext({ baseDir: dir }));
    await a.write([{ n: 1 }]);
    await a.abort?.();
    await a.abort?.();
    await a.close?.();
    const b = await sink.writer({ id: '1' }, taskContext({ baseDir: dir, partitionId: '1' }));
    await b.write([{ n: 2 }]);
    const message = (await b.commit?.()) ?? null;
    await b.close?.();
    // a writer that crashed without aborting
    const c = await sink.writer({ id: '2' }, taskContext({ baseDir: dir, partitionId: '2' }));
    await c.write([{ n: 3 }]);
    await c.close?.();
    expect(await readdir(join(dir, 'sub'))).toHaveLength(2);
    await sink.abort?.([message], cctx);
    await sink.abort?.([message], cctx);
    expect(await readdir(join(dir, 'sub'))).toEqual([]);
  });

  it('writes temp files beside the target, named after the partition, and reports bytes', async () => {
    const sink = csv.sink?.(options({ path: 'out.csv' }, 'sink')) ?? expect.unreachable();
    const ctx = taskContext({ baseDir: dir, partitionId: 'p/1' });
    const writer = await sink.writer({ id: 'p/1' }, ctx);
    await writer.write([{ n: 1 }, { n: 2 }]);
    const message = (await writer.commit?.()) as { tmp: string; rows: number };
    await writer.close?.();
    expect(message.rows).toBe(2);
    expect(message.tmp.startsWith(join(dir, 'out.csv.p_1.'))).toBe(true);
    expect(message.tmp.endsWith('.tmp')).toBe(true);
    expect(ctx.bytes).toBe(4);
    expect(existsSync(join(dir, 'out.csv'))).toBe(false);
  });

  it('orders columns by the schema and formats values', async () => {
    const schema: Schema = [
      { name: 'b', type: 'integer' },
      { name: 'a', type: 'json' },
      { name: 'c', type: 'timestamp' },
    ];
    await writeAll(
      { path: 'out.csv', null_value: 'NULL' },
      [
        [
          '0',
          [
            { a: { x: [1n, Decimal.parse('1.50')] }, b: 2n, c: new Date(0) },
            { a: null, b: 'NULL' },
            { a: '', b: Decimal.parse('375.30') },
          ],
        ],
      ],
      { schema },
    );
    expect(await readFile(join(dir, 'out.csv'), 'utf8')).toBe(
      'b,a,c\n2,"{""x"":[1,1.50]}",1970-01-01T00:00:00.000Z\n"NULL",NULL,NULL\n375.30,,NULL\n',
    );
  });

  it('rejects a row with a field outside the columns, unless columns are set', async () => {
    const sink = csv.sink?.(options({ path: 'out.csv' }, 'sink')) ?? expect.unreachable();
    const writer = await sink.writer({ id: '0' }, taskContext({ baseDir: dir }));
    await writer.write([{ a: 1 }]);
    await expect(writer.write([{ a: 2, b: 3 }])).rejects.toBeInstanceOf(RowError);
    await writer.abort?.();
    await writeAll({ path: 'out.csv', columns: { a: 'integer' } }, [['0', [{ a: 1, b: 2 }]]]);
    expect(await readFile(join(dir, 'out.csv'), 'utf8')).toBe('a\n1\n');
  });

  it('writes NULL and the empty string so that they read back apart (csv → csv is exact)', async () => {
    const text = 'a,b,c\n,"",x\n"",,1.50\n12345678901234567890123456789.123456789,"",-0\n';
    await writeFile(join(dir, 'in.csv'), text);
    const { schema, rows } = await readAll({ path: 'in.csv' });
    await writeAll({ path: 'out.csv' }, [['0', rows]], { schema });
    expect(await readFile(join(dir, 'out.csv'), 'utf8')).toBe(text);
  });

  it('writes a header-only file when no rows arrive, and no header when header is false', async () => {
    await writeAll({ path: 'empty.csv' }, [['0', []]], { schema: [{ name: 'a', type: 'string' }] });
    expect(await readFile(join(dir, 'empty.csv'), 'utf8')).toBe('a\n');
    await writeAll({ path: 'bare.csv', header: false, delimiter: ';' }, [['0', [{ a: 1, b: 'x;y' }]]]);
    expect(await readFile(join(dir, 'bare.csv'), 'utf8')).toBe('1;"x;y"\n');
  });

  it('resolves a relative target against baseDir and creates missing directories', async () => {
    const partition: Partition = { id: '0' };
    await writeAll({ path: 'deep/er/out.csv' }, [[partition.id, [{ n: 1 }]]]);
    expect(await readFile(join(dir, 'deep', 'er', 'out.csv'), 'utf8')).toBe('n\n1\n');
  });
});

describe('csv sink formula_escape', () => {
  const hostile = ['=HYPERLINK("http://evil","x")', '+1+2', '-2+3', '@SUM(A1)', '\tcmd', '\r=1', 'plain', '', 'a=b'];
  const rows = (): Row[] => hostile.map((text, i) => ({ id: i, text, n: -5, d: Decimal.parse('-1.5') }));

  it('is off by default: values are written as they are', async () => {
    await writeAll({ path: 'out.csv' }, [['0', rows()]]);
    const back = await readAll({ path: 'out.csv', columns: { text: 'string' } });
    expect(back.rows.map((r) => r.text)).toEqual(hostile);
  });

  it("prefixes text starting with =, +, -, @, tab or CR with ' (OWASP), in values and in the header; numbers stay numbers", async () => {
    await writeAll({ path: 'out.csv', formula_escape: true }, [['0', [...rows(), { id: 99, text: 'x', n: 1, d: null, '=cmd': 'y' }]]], {
      schema: [
        { name: 'id', type: 'integer' },
        { name: 'text', type: 'string' },
        { name: 'n', type: 'integer' },
        { name: 'd', type: 'decimal' },
        { name: '=cmd', type: 'string' },
      ],
    });
    const text = await readFile(join(dir, 'out.csv'), 'utf8');
    expect(text.split('\n')[0]).toBe("id,text,n,d,'=cmd");
    const back = await readAll({ path: 'out.csv', columns: { text: 'string' } });
    expect(back.rows.map((r) => r.text)).toEqual([
      `'=HYPERLINK("http://evil","x")`,
      "'+1+2",
      "'-2+3",
      "'@SUM(A1)",
      "'\tcmd",
      "'\r=1",
      'plain',
      '',
      'a=b',
      'x',
    ]);
    expect(back.rows.slice(0, 3).map((r) => [r.n, String(r.d)])).toEqual([
      [-5, '-1.5'],
      [-5, '-1.5'],
      [-5, '-1.5'],
    ]);
  });
});

describe('csv line endings per record (RFC 4180 readers accept LF and CRLF)', () => {
  const expected = [
    { id: 1, name: 'a' },
    { id: 2, name: 'b' },
    { id: 3, name: 'c' },
  ];
  for (const [what, text] of [
    ['a CRLF header with LF records', 'id,name\r\n1,a\n2,b\n3,c\n'],
    ['an LF header with CRLF records', 'id,name\n1,a\r\n2,b\r\n3,c\r\n'],
    ['records mixing both', 'id,name\r\n1,a\n2,b\r\n3,c'],
    ['quoted fields keep their own line breaks', 'id,name\n1,a\r\n"2","b"\n3,"c"\r\n'],
  ] as const) {
    it(`reads ${what}: every record on its own, no \\r left in a value`, async () => {
      await writeFile(join(dir, 'in.csv'), text);
      const { rows, rejected } = await readAll({ path: 'in.csv', columns: { id: 'integer', name: 'string' } });
      expect(rejected).toEqual([]);
      expect(rows).toEqual(expected);
    });
  }

  it('keeps a line break inside a quoted field as it is, CR and all', async () => {
    await writeFile(join(dir, 'in.csv'), 'id,name\n1,"x\r\ny"\r\n2,"p\nq"\n');
    const { rows } = await readAll({ path: 'in.csv', columns: { id: 'integer', name: 'string' } });
    expect(rows).toEqual([
      { id: 1, name: 'x\r\ny' },
      { id: 2, name: 'p\nq' },
    ]);
  });
});

describe('csv encoding', () => {
  const file = Buffer.concat([
    Buffer.from('id,name\n1,ann\n2,'),
    Buffer.from([0xe9, 0x74, 0xe9]),
    Buffer.from('\n3,"b'),
    Buffer.from([0xc3, 0x28]),
    Buffer.from('"\n4,\u00e9\n'),
  ]);

  it('utf8 (the default) is strict: a record with bytes that are no UTF-8 is a row error naming the fix; the rest is read', async () => {
    await writeFile(join(dir, 'in.csv'), file);
    const { rows, rejected } = await readAll({ path: 'in.csv', columns: { id: 'integer', name: 'string' } });
    expect(rows).toEqual([
      { id: 1, name: 'ann' },
      { id: 4, name: 'é' },
    ]);
    expect(rejected.map((r) => (r.record as { line: number }).line)).toEqual([3, 4]);
    expect(rejected.map((r) => (r.error as Error).message)).toEqual([
      'record is not valid UTF-8 (bytes that encode no character); fix the file, or set encoding: latin1 (each byte one character) or utf8-lossy (such bytes become U+FFFD)',
      'record is not valid UTF-8 (bytes that encode no character); fix the file, or set encoding: latin1 (each byte one character) or utf8-lossy (such bytes become U+FFFD)',
    ]);
  });

  it('utf8-lossy reads such bytes as U+FFFD; latin1 reads every byte as a character', async () => {
    await writeFile(join(dir, 'in.csv'), file);
    const lossy = await readAll({ path: 'in.csv', encoding: 'utf8-lossy', columns: { id: 'integer', name: 'string' } });
    expect(lossy.rejected).toEqual([]);
    expect(lossy.rows.map((r) => r.name)).toEqual(['ann', '\ufffdt\ufffd', 'b\ufffd(', 'é']);
    const latin1 = await readAll({ path: 'in.csv', encoding: 'latin1', columns: { id: 'integer', name: 'string' } });
    expect(latin1.rows.map((r) => r.name)).toEqual(['ann', 'été', 'bÃ(', 'Ã©']);
  });

  it('keeps a valid U+FFFD in the data as text in strict mode', async () => {
    await writeFile(join(dir, 'in.csv'), 'id,name\n1,\ufffd\n');
    const { rows, rejected } = await readAll({ path: 'in.csv', columns: { id: 'integer', name: 'string' } });
    expect(rejected).toEqual([]);
    expect(rows).toEqual([{ id: 1, name: '\ufffd' }]);
  });
});
