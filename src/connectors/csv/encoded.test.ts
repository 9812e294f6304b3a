import { isUtf8 } from 'node:buffer';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readAsCopy } from '../../../test/helpers/copy.js';
import { collect, connectorOptions, messageOf, planContext, type Rejected, taskContext, tempDir } from '../../sdk/testing.js';
import { type EncodedRows, type EncodingHints, isEncodedRows, type Row } from '../../sdk/types.js';
import { ISO_TIMESTAMP, valueText } from '../shared/columns.js';
import { fieldValueOf, isoTimestampBytes, numberAtOf } from './encoded.js';
import csv from './index.js';
import { type EncodedTuning, encodable, readCsvEncoded } from './source.js';
import type { CsvOptions } from './spec.js';

function options(input: Record<string, unknown>): CsvOptions {
  return connectorOptions(csv, input, 'source');
}

let dir: string;
beforeEach(async () => {
  dir = await tempDir('weir-csv-enc-');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Compared {
  rows: Row[];
  rejected: { record: unknown; message: string }[];
  chunks: EncodedRows[];
}

const rejections = (rs: Rejected[]) => rs.map((r) => ({ record: r.record, message: messageOf(r) }));

/** The row path's rows and rejections for a file. */
async function rowPath(input: Record<string, unknown>) {
  const source = csv.source?.(options(input)) ?? expect.unreachable();
  const schema = await source.schema?.(planContext({ baseDir: dir }));
  const ctx = taskContext({ baseDir: dir, schema });
  const rows = await collect(source.read({ id: '0', path: String(input.path) }, ctx));
  return { schema, rows, rejected: rejections(ctx.rejected) };
}

/**
 * The encoded path for the same file, checked chunk by chunk: `data` reads (as
 * COPY would) as the text of the rows `decode()` gives, `rows` counts them, and
 * decode rejects nothing more.
 */
async function encodedPath(input: Record<string, unknown>, tuning?: Partial<EncodedTuning>): Promise<Compared> {
  const opts = options(input);
  const source = csv.source?.(opts) ?? expect.unreachable();
  const schema = await source.schema?.(planContext({ baseDir: dir }));
  const ctx = taskContext({ baseDir: dir, schema });
  const chunks: EncodedRows[] = [];
  const rows: Row[] = [];
  const iterable = tuning
    ? readCsvEncoded(String(input.path), opts, ctx, {
        chunkBytes: 4 << 20,
        firstChunkBytes: 4 << 20,
        readBytes: 1 << 20,
        readAhead: 2,
        rowModeRows: 20_000,
        ...tuning,
      })
    : (source.readEncoded?.({ id: '0', path: String(input.path) }, ctx, 'csv') ?? expect.unreachable());
  for await (const chunk of iterable) {
    expect(isEncodedRows(chunk)).toBe(true);
    chunks.push(chunk);
    const late: unknown[] = [];
    const decoded = await chunk.decode(async (record) => {
      late.push(record);
    });
    expect(late).toEqual([]);
    expect(decoded).toHaveLength(chunk.rows);
    expect(isUtf8(chunk.data)).toBe(true); // the server would refuse anything else, or store it as it is
    const copy = readAsCopy(chunk.data, chunk.delimiter, chunk.quote, chunk.nullText);
    expect(copy).toHaveLength(chunk.rows);
    copy.forEach((fields, i) => {
      const row = decoded[i] as Row;
      expect(fields).toEqual(chunk.columns.map((c) => valueText(row[c])));
    });
    rows.push(...decoded);
  }
  return { rows, rejected: rejections(ctx.rejected), chunks };
}

async function same(
  content: string | Buffer,
  input: Record<string, unknown> = {},
  tuning: Partial<EncodedTuning> = { chunkBytes: 16, readBytes: 5 },
) {
  const path = join(dir, 'in.csv');
  await writeFile(path, content);
  const a = await rowPath({ path, ...input });
  const b = await encodedPath({ path, ...input }, tuning);
  expect(b.rows).toEqual(a.rows);
  expect(b.rejected).toEqual(a.rejected);
  return { ...b, schema: a.schema };
}

describe('csv readEncoded', () => {
  it('passes whole records through untouched and counts them', async () => {
    const content = 'id,name,note\n1,ann,"x, ""y"""\n2,bob,\n3,"multi\nline",z\n';
    const { chunks, rows } = await same(content, { columns: { id: 'integer', name: 'string', note: 'string' } }, { chunkBytes: 1 << 20 });
    expect(chunks).toHaveLength(1);
    expect(chunks[0]?.data.toString()).toBe('1,ann,"x, ""y"""\n2,bob,\n3,"multi\nline",z\n');
    expect(chunks[0]?.columns).toEqual(['id', 'name', 'note']);
    expect(rows).toEqual([
      { id: 1, name: 'ann', note: 'x, "y"' },
      { id: 2, name: 'bob', note: null },
      { id: 3, name: 'multi\nline', note: 'z' },
    ]);
  });

  it('cuts chunks only between records: quoted line breaks and delimiters across every boundary', async () => {
    const lines = ['id,text'];
    for (let i = 0; i < 60; i++) lines.push(`${i},"a,${'b'.repeat(i % 7)}\n""q"",\r\nc${i}"`);
    const content = `${lines.join('\n')}\n`;
    for (const chunkBytes of [8, 13, 40, 97]) {
      const { chunks, rows } = await same(content, {}, { chunkBytes, readBytes: 3 });
      expect(rows).toHaveLength(60);
      expect(chunks.reduce((n, c) => n + c.rows, 0)).toBe(60);
      expect(chunks.length).toBeGreaterThan(1);
    }
  });

  it('handles CRLF files, a last record without a line ending, a BOM, skip_lines and empty lines', async () => {
    await same('\ufefftitle line\r\n\r\na,b\r\n1,"x\r\ny"\r\n\r\n2,z', { skip_lines: 1 });
    const { chunks } = await same('a,b\n1,x\n2,y', {}, { chunkBytes: 1 << 20 });
    expect(chunks[0]?.data.toString()).toBe('1,x\n2,y\n');
    const crlf = await same('a,b\r\n1,x\r\n2,y', {}, { chunkBytes: 1 << 20 });
    expect(crlf.chunks[0]?.data.toString()).toBe('1,x\r\n2,y\r\n');
    await same('a,b\n\n\n1,x\n\n', {});
    await same('a,b\nx,""\n', {});
    await same('0.', { header: false, null_value: '0', columns: { c0: 'number' } }, { chunkBytes: 4, readBytes: 1 });
  });

  it('skips the header and skip_lines the way the row path does, also with header: false', async () => {
    await same('# export\n# of orders\nid,v\n1,2\n', { skip_lines: 2 });
    await same('"quoted\ntitle",x\nid,v\n1,2\n', { skip_lines: 1 });
    await same('junk\n1,2\n3,4\n', { header: false, skip_lines: 1, columns: { id: 'integer', v: 'integer' } });
    await same('1,2\n3,4', { header: false, columns: { id: 'integer', v: 'integer' } });
    await same('id,v\n', {});
    await same('', {});
    await same('title\nid,v\r\n1,2\r\n3,4\r\n', { skip_lines: 1 }); // csv-parse settled on LF: the CRs are data
    await same('"a\r\nb",x\r\nid,v\n1,2\n', { skip_lines: 2 });
    // a header beyond the first block read at once
    await same(`${'#'.repeat(70_000)}\nid,v\n1,2\n`, { skip_lines: 1 });
    await same(`${'#'.repeat(65_530)}\nid,v\n1,2\n`, { skip_lines: 1 });
    await same(`id,${'v'.repeat(65_530)}\n1,2\n`, {});
    await same(`${'#'.repeat(4094)}\nid,v\n1,2\n`, { skip_lines: 1 });
    await same(`${'#\n'.repeat(3000)}id,v\n1,2\n`, { skip_lines: 3000 });
  });

  it('rewrites fields the row path hands on differently: booleans, numbers, quoted nulls, padded values', async () => {
    const content =
      'i,n,b,t,s\n' +
      '007,1.50,TRUE,2024-05-01,""\n' +
      '+5, 2 ,yes, 2024-05-01T10:00:00Z ,NULL\n' +
      '"12","-0","0","2024-05-01 10:00",x\n' +
      '-0,100.00,N,2024-05-01,"NULL"\n' +
      ',,,,\n';
    const cols = { i: 'integer', n: 'number', b: 'boolean', t: 'timestamp', s: 'string' };
    const { chunks } = await same(content, { columns: cols }, { chunkBytes: 1 << 20 });
    // records with a field the byte checks do not vouch for (`-0`, padded values) are re-encoded whole
    expect(chunks[0]?.data.toString()).toBe(
      '7,1.5,true,2024-05-01,""\n5,2,true,2024-05-01T10:00:00Z,NULL\n12,0,false,2024-05-01 10:00,x\n0,100,false,2024-05-01,NULL\n,,,,\n',
    );
    await same(content, { columns: cols, null_value: 'NULL' }, { chunkBytes: 1 << 20 });
    await same('a,b\n0,00\n', { columns: { a: 'integer', b: 'integer' }, null_value: '0' }, { chunkBytes: 1 << 20 });
  });

  it('rejects what the row path rejects, with its messages and line numbers, and keeps the rest', async () => {
    const content = 'id,v\n1,2\n2,abc\n"3\n",4\n4\n5,6,7\n6,1e400\n7,{"a":1}\n';
    const { rejected, rows } = await same(content, { columns: { id: 'integer', v: 'integer' } });
    expect(rejected.map((r) => r.record)).toEqual([
      { line: 3, raw: '2,abc' },
      { line: 6, raw: '4' },
      { line: 7, raw: '5,6,7' },
      { line: 8, raw: '6,1e400' },
      { line: 9, raw: '7,"{""a"":1}"' },
    ]);
    expect(rows).toEqual([
      { id: 1, v: 2 },
      { id: 3, v: 4 }, // "3\n" trims to 3
    ]);
    await same('id,j,n\n1,{"a":[1,2]},1e400\n2,"""x""",-1.5e-9\n3,null,0.0000001\n', {
      columns: { id: 'integer', j: 'json', n: 'number' },
    });
  });

  it('leaves lenient quoting to csv-parse: stray quotes, text after a closing quote, an unclosed quote at the end', async () => {
    await same('a,b\n1,x"y\n2,"p"q,r\n3,z\n', {});
    await same('a,b\n1,"x"y\n2,w\n', {});
    await same('a,b\r\n1,x\r\n2,"unclosed\r\n3,y\r\n', {});
    await same('a,b\n1,x\n2,"unclosed\n3,y', {});
    await same('a,b\n1,"x"\r\n2,y\n', {});
    await same('a,b\n1,x\ry\n2,z\n', {});
    await same('a,b\r\n1,x\ny\r\n2,z\r\n', {});
    await same('a,b\r1,x\r2,y\r', {});
  });

  it('never emits a line PostgreSQL reads as the end-of-data marker \\.', async () => {
    const { chunks } = await same('a\n\\.\nx\n', {}, { chunkBytes: 1 << 20 });
    expect(chunks.map((c) => c.data.toString()).join('')).toBe('"\\."\nx\n');
    await same('a,b\n\\,\n\\.,x\n', {});
    await same('a.b\n\\.\n1.2\n', { delimiter: '.' });
  });

  it('hands on invalid UTF-8 as the row path decodes it (U+FFFD) with encoding: utf8-lossy', async () => {
    const lossy = { encoding: 'utf8-lossy' };
    await same(Buffer.concat([Buffer.from('a,b\n1,'), Buffer.from([0xff, 0xfe, 0x41]), Buffer.from('\n2,ok\n')]), lossy);
    await same(Buffer.concat([Buffer.from('a,b\n1,x\n2,"'), Buffer.from([0xc3]), Buffer.from('"\n3,\\\n4,y')]), lossy, {
      chunkBytes: 1 << 20,
    });
  });

  it('rejects a record with invalid UTF-8 as the row path does (the default, strict utf8), and keeps the rest', async () => {
    const bad = Buffer.concat([
      Buffer.from('a,b\n1,'),
      Buffer.from([0xff, 0xfe, 0x41]),
      Buffer.from('\n2,ok\n3,"x'),
      Buffer.from([0xc3]),
      Buffer.from('"\n4,\u00e9\n'),
    ]);
    for (const tuning of [{ chunkBytes: 1 << 20 }, { chunkBytes: 8, readBytes: 3 }]) {
      const { rows, rejected } = await same(bad, {}, tuning);
      expect(rows.map((r) => r.a)).toEqual([2, 4]);
      expect(rejected.map((r) => r.record)).toEqual([
        { line: 2, raw: '1,\ufffd\ufffdA' },
        { line: 4, raw: '3,x\ufffd' },
      ]);
      expect(rejected[0]?.message).toMatch(/not valid UTF-8.*encoding: latin1/);
    }
  });

  it('is off for options COPY cannot take as they are', () => {
    const ok = options({ path: 'x.csv' });
    expect(encodable(ok)).toBe(true);
    expect(encodable(options({ path: 'x.csv', encoding: 'latin1' }))).toBe(false);
    expect(encodable(options({ path: 'x.csv', delimiter: '§' }))).toBe(false);
    expect(encodable(options({ path: 'x.csv', null_value: 'a,b' }))).toBe(false);
    expect(encodable(options({ path: 'x.csv', null_value: '\\N' }))).toBe(false);
    expect(encodable(options({ path: 'x.csv', delimiter: ';', quote: "'" }))).toBe(true);
    const source = csv.source?.(options({ path: 'x.csv', encoding: 'latin1' })) ?? expect.unreachable();
    expect(source.readEncoded?.({ id: '0', path: 'x.csv' }, taskContext({ baseDir: dir }), 'csv')).toBeUndefined();
  });

  it("passes booleans and numbers as they are in the reader's value columns (EncodingHints), and nowhere else", async () => {
    const path = join(dir, 'in.csv');
    const body = 'true,1.50,1.50,yes\n"No",2.0,3,0\n';
    await writeFile(path, `b,n,m,c\n${body}`);
    const input = { path, columns: { b: 'boolean', n: 'number', m: 'number', c: 'boolean' } };
    const opts = options(input);
    const source = csv.source?.(opts) ?? expect.unreachable();
    const schema = await source.schema?.(planContext({ baseDir: dir }));
    const read = async (valueColumns?: string[]) => {
      const ctx = taskContext({ baseDir: dir, schema });
      const chunks = await collect(
        source.readEncoded?.({ id: '0', path }, ctx, 'csv', valueColumns ? { valueColumns } : undefined) ?? expect.unreachable(),
      );
      return {
        data: Buffer.concat(chunks.map((c) => c.data)).toString(),
        rows: (await Promise.all(chunks.map((c) => c.decode(async () => {})))).flat(),
      };
    };
    const strict = await read();
    expect(strict.data).toBe('true,1.5,1.5,true\nfalse,2,3,false\n');
    const loose = await read(['b', 'n']);
    expect(loose.data).toBe('true,1.50,1.5,true\n"No",2.0,3,false\n');
    expect(loose.rows).toEqual(strict.rows);
    expect(loose.rows[0]).toEqual({ b: true, n: 1.5, m: 1.5, c: true });
  });

  it("cuts chunks no larger than the writer's batchBytes (and one record), the same records either way", async () => {
    const path = join(dir, 'in.csv');
    const body = Array.from({ length: 40_000 }, (_, i) => `${i},name ${i},${'x'.repeat(i % 50)}\n`).join('');
    await writeFile(path, `id,name,note\n${body}`);
    const source = csv.source?.(options({ path, columns: { id: 'integer', name: 'string', note: 'string' } })) ?? expect.unreachable();
    const schema = await source.schema?.(planContext({ baseDir: dir }));
    const read = async (hints: EncodingHints) =>
      collect(source.readEncoded?.({ id: '0', path }, taskContext({ baseDir: dir, schema }), 'csv', hints) ?? expect.unreachable());
    const whole = await read({});
    const small = await read({ batchBytes: 100_000 });
    expect(Buffer.concat(small.map((c) => c.data)).equals(Buffer.concat(whole.map((c) => c.data)))).toBe(true);
    expect(Buffer.concat(whole.map((c) => c.data)).toString()).toBe(body);
    expect(small.length).toBeGreaterThan(whole.length);
    expect(Math.max(...small.map((c) => c.data.length))).toBeLessThanOrEqual(100_000 + 80);
  });

  it('takes records of many fields (more than the scanner starts with), quoted or not', async () => {
    const names = Array.from({ length: 150 }, (_, i) => `c${i}`);
    const plain = names.map((_, i) => String(i)).join(',');
    const quoted = names.map((_, i) => (i % 50 === 0 ? `"q,${i}"` : String(i))).join(',');
    const { rows } = await same(
      `${names.join(',')}\n${plain}\n${quoted}\n${plain},extra\n`,
      {},
      { chunkBytes: 1 << 20, readBytes: 1 << 20 },
    );
    expect(rows).toHaveLength(2);
    expect(rows[1]?.c50).toBe('q,50');
  });

  it('uses another delimiter and quote character', async () => {
    await same("a;b\n1;'x;''y'''\n2;'multi\nline'\n", { delimiter: ';', quote: "'" });
  });

  it('matches the row path on random files (fast-check)', async () => {
    // D and Q stand for the dialect's delimiter and quote
    const token = fc.constantFrom(
      'a',
      'é',
      'D',
      'Q',
      ',',
      '"',
      '\n',
      '\r\n',
      '\r',
      ' ',
      '1',
      '0',
      '-',
      '.',
      '007',
      '1.50',
      'true',
      'No',
      '\\',
      '\\.',
      '2024-05-01',
      'T10:00:00Z',
      'QQ',
      'NULL',
      '{"k":[1]}',
      '1e3',
      '\ufeff',
    );
    const types = fc.constantFrom('integer', 'number', 'boolean', 'timestamp', 'string', 'json', undefined);
    const dialects = fc.constantFrom([',', '"'], [';', "'"], ['\t', '"'], ['.', '|']);
    await fc.assert(
      fc.asyncProperty(
        fc.array(token, { maxLength: 80 }),
        fc.array(types, { minLength: 1, maxLength: 3 }),
        fc.boolean(),
        fc.constantFrom('', 'NULL', '0'),
        fc.integer({ min: 0, max: 2 }),
        dialects,
        fc.integer({ min: 4, max: 48 }),
        fc.integer({ min: 1, max: 9 }),
        async (tokens, colTypes, header, nullValue, skipLines, [d, q], chunkBytes, readBytes) => {
          if (nullValue.includes(d as string)) return;
          const names = colTypes.map((_, i) => `c${i}`);
          const declared = Object.fromEntries(colTypes.flatMap((t, i) => (t ? [[`c${i}`, t]] : header ? [] : [[`c${i}`, 'string']])));
          const body = tokens
            .join('')
            .replaceAll('D', d as string)
            .replaceAll('Q', q as string);
          const content = `${'title\n'.repeat(skipLines)}${header ? `${names.join(d)}\n` : ''}${body}`;
          const input = {
            header,
            null_value: nullValue,
            skip_lines: skipLines,
            delimiter: d,
            quote: q,
            ...(Object.keys(declared).length ? { columns: declared } : {}),
          };
          await same(content, input, {
            chunkBytes,
            firstChunkBytes: 4 + (chunkBytes % 7),
            readBytes,
            readAhead: 1 + (chunkBytes % 2),
            rowModeRows: 3,
          });
        },
      ),
      { numRuns: Number(process.env.WEIR_FUZZ_RUNS ?? 300) },
    );
  });
});

describe('csv readEncoded on well-formed files', () => {
  it('matches the row path (fast-check: quoted and unquoted fields, LF or CRLF)', async () => {
    const value = fc.oneof(
      fc.constantFrom('', 'NULL', '0', '1', '-0', '007', '12', '-3', '1.50', '2.5', '100.00', '1e3', '0.0000001', '12345678901234567'),
      fc.constantFrom('true', 'f', 'Yes', 'no', 'Y', 'TRUE ', ' 1', '2024-05-01', '2024-05-01T10:00:00Z', '2024-02-30 23:59', '2024-13-01'),
      fc.constantFrom('{"a":1}', '[1,2]', '"s"', 'null', 'x', 'é', 'a b', 'x"y', 'a,b', 'l1\nl2', 'r\rx', '\\', '\\.', ' '),
    );
    const types = fc.constantFrom('integer', 'number', 'boolean', 'timestamp', 'string', 'json');
    await fc.assert(
      fc.asyncProperty(
        fc.array(types, { minLength: 1, maxLength: 4 }),
        fc.array(fc.array(fc.tuple(value, fc.boolean()), { minLength: 1, maxLength: 4 }), { maxLength: 25 }),
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom('', 'NULL', '0'),
        fc.integer({ min: 4, max: 64 }),
        async (colTypes, records, crlf, lastEol, nullValue, chunkBytes) => {
          const eol = crlf ? '\r\n' : '\n';
          const field = ([v, quoted]: [string, boolean]) => (quoted || /[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);
          const names = colTypes.map((_, i) => `c${i}`);
          // mostly the right number of fields, now and then not
          const lines = records.map((r) =>
            colTypes
              .map((_, i) => field(r[i % r.length] as [string, boolean]))
              .concat(r.length === 4 ? ['extra'] : [])
              .join(','),
          );
          const content = [names.join(','), ...lines].join(eol) + (lastEol ? eol : '');
          const columns = Object.fromEntries(colTypes.map((t, i) => [`c${i}`, t]));
          await same(
            content,
            { columns, null_value: nullValue },
            { chunkBytes, readBytes: 1 + (chunkBytes % 11), readAhead: 2, rowModeRows: 4 },
          );
        },
      ),
      { numRuns: Number(process.env.WEIR_FUZZ_RUNS ?? 300) },
    );
  });
});

describe('encoded.ts field checks', () => {
  it('isoTimestampBytes agrees with the row path pattern', () => {
    const part = fc.constantFrom(
      '2024',
      '-',
      '05',
      '13',
      '00',
      '31',
      '32',
      'T',
      ' ',
      '23',
      '24',
      ':',
      '59',
      '60',
      '61',
      '.',
      '123',
      'Z',
      '+',
      '02',
      '0230',
      'x',
      '1',
    );
    fc.assert(
      fc.property(fc.array(part, { maxLength: 14 }), (parts) => {
        const s = parts.join('');
        const b = Buffer.from(s, 'latin1');
        expect(isoTimestampBytes(b, 0, b.length)).toBe(ISO_TIMESTAMP.test(s));
      }),
      { numRuns: 3000 },
    );
    for (const s of ['2024-05-01', '2024-05-01T10:00', '2024-05-01 10:00:60.5+02:30', '2024-05-01T10:00:00Z', '2024-02-30'])
      expect(isoTimestampBytes(Buffer.from(s), 0, s.length)).toBe(true);
  });

  it('numberAt reads a number field from its bytes as fieldValue reads its text, or leaves it to fieldValue', () => {
    const types = ['number', 'string', 'integer'] as const;
    const numberAt = numberAtOf(types);
    const fieldValue = fieldValueOf(types);
    const part = fc.constantFrom('0', '1', '5', '9', '00', '123', '999999', '0000000', '.', '-', '+', 'e', ' ', 'x', '1e3');
    fc.assert(
      fc.property(fc.array(part, { maxLength: 12 }), fc.constantFrom(0, 1, 2), (parts, index) => {
        const s = parts.join('');
        const b = Buffer.from(`,${s};`, 'latin1');
        const v = numberAt(index, b, 1, b.length - 1);
        if (v !== undefined) {
          expect(index).toBe(0);
          expect(Object.is(v, fieldValue(index, s)), s).toBe(true);
        }
      }),
      { numRuns: 5000 },
    );
    // the plain forms are read from the bytes, exactly; 16 digits and more, and other forms, are not
    for (const s of [
      '1.5',
      '-0',
      '-0.0',
      '0.1',
      '0.3',
      '123456789012345',
      '12345678.1234567',
      '0.00000000000001',
      '9007.19925474099',
      '-2.5',
    ])
      expect([s, numberAt(0, Buffer.from(s), 0, s.length)]).toEqual([s, fieldValue(0, s)]);
    for (const s of ['1234567890123456', '0.000000000000001', '1.', '.5', '+1', '1e3', '', '-', '1.2.3', ' 1'])
      expect([s, numberAt(0, Buffer.from(s), 0, s.length)]).toEqual([s, undefined]);
  });
});

describe('csv readEncoded with LF and CRLF records in one file', () => {
  it('reads each record on its own as the row path does, and hands COPY one line ending', async () => {
    for (const content of ['id,name\r\n1,a\n2,b\n3,c\n', 'id,name\n1,a\r\n2,b\r\n3,"c\r\nd"\r\n', 'id,name\r\n1,a\n2,b\r\n3,c']) {
      for (const tuning of [{ chunkBytes: 1 << 20 }, { chunkBytes: 8, readBytes: 3 }]) {
        const { rows, chunks } = await same(content, { columns: { id: 'integer', name: 'string' } }, tuning);
        expect(rows.map((r) => r.id)).toEqual([1, 2, 3]);
        expect(rows.map((r) => r.name)).not.toContainEqual(expect.stringMatching(/\r$/));
        // `same` read every chunk as COPY does, which refuses a file mixing the two
        expect(chunks.length).toBeGreaterThan(0);
      }
    }
  });
});
