import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RowError, WeirError } from '../../sdk/errors.js';
import { validateOptions } from '../../sdk/options.js';
import { collect, commitContext, messageOf, planContext, taskContext, tempDir } from '../../sdk/testing.js';
import type { JsonValue, Row, Schema } from '../../sdk/types.js';
import { Decimal } from '../../sdk/values.js';
import jsonl from './index.js';
import { type JsonlOptions, jsonlOptions } from './spec.js';

function options(input: Record<string, unknown>): JsonlOptions {
  const r = validateOptions(jsonlOptions, input, 'source');
  if (!r.value) throw new Error(r.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return r.value;
}

let dir: string;
beforeEach(async () => {
  dir = await tempDir('weir-jsonl-');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function readAll(input: Record<string, unknown>) {
  const source = jsonl.source?.(options(input)) ?? expect.unreachable();
  const schema = await source.schema?.(planContext({ baseDir: dir }));
  const partitions = (await source.partitions?.(planContext({ baseDir: dir }))) ?? [{ id: '0' }];
  const ctx = taskContext({ baseDir: dir, schema });
  const rows: Row[] = [];
  for (const p of partitions) rows.push(...(await collect(source.read(p, ctx))));
  return { schema, partitions, rows, rejected: ctx.rejected };
}

async function writeAll(
  input: Record<string, unknown>,
  parts: [id: string, rows: Row[]][],
  { schema, runId = 'run-1' }: { schema?: Schema; runId?: string } = {},
) {
  const sink = jsonl.sink?.(options(input)) ?? expect.unreachable();
  const cctx = commitContext({ baseDir: dir, runId, schema });
  await sink.setup?.(cctx);
  const messages: JsonValue[] = [];
  for (const [id, rows] of parts) {
    const writer = await sink.writer({ id }, taskContext({ baseDir: dir, runId, schema, partitionId: id }));
    await writer.write(rows);
    messages.push((await writer.commit?.()) ?? null);
    await writer.close?.();
  }
  await sink.commit?.(messages, cctx);
  return { sink, messages, cctx };
}

describe('jsonl source', () => {
  it('infers the schema from the fields of the first lines', async () => {
    await writeFile(
      join(dir, 'in.jsonl'),
      '{"id":1,"price":1,"ok":true,"at":"2024-05-01T00:00:00Z","name":"a","tags":["x"]}\n' +
        '{"id":2,"price":2.5,"ok":false,"at":null,"name":"b","tags":null,"extra":"z"}\n',
    );
    const { schema, rows, rejected } = await readAll({ path: 'in.jsonl' });
    expect(schema?.map((c) => [c.name, c.type])).toEqual([
      ['id', 'integer'],
      ['price', 'decimal'],
      ['ok', 'boolean'],
      ['at', 'timestamp'],
      ['name', 'string'],
      ['tags', 'json'],
      ['extra', 'string'],
    ]);
    expect(rows).toHaveLength(2);
    expect(rows[1]).toEqual({ id: 2, price: Decimal.parse('2.5'), ok: false, at: null, name: 'b', tags: null, extra: 'z' });
    expect(rejected).toEqual([]);
  });

  it('keeps numbers exact: decimals with their digits, integers beyond 2^53, also nested; jsonl → jsonl gives the same text', async () => {
    const text =
      '{"id":1,"amount":12345678901234567890123456789.123456789,"price":375.30,"big":18446744073709551615,"doc":{"x":[1.10,2]}}\n' +
      '{"id":2,"amount":-0.5,"price":1e3,"big":-9007199254740993,"doc":null}\n';
    await writeFile(join(dir, 'in.jsonl'), text);
    const { schema, rows } = await readAll({ path: 'in.jsonl' });
    expect(schema?.map((c) => [c.name, c.type])).toEqual([
      ['id', 'integer'],
      ['amount', 'decimal'],
      ['price', 'decimal'],
      ['big', 'integer'],
      ['doc', 'json'],
    ]);
    expect(rows[0]).toEqual({
      id: 1,
      amount: Decimal.parse('12345678901234567890123456789.123456789'),
      price: Decimal.parse('375.30'),
      big: 18446744073709551615n,
      doc: { x: [Decimal.parse('1.10'), 2] },
    });
    await writeAll({ path: 'out.jsonl' }, [['0', rows]]);
    expect(await readFile(join(dir, 'out.jsonl'), 'utf8')).toBe(text);
  });

  it('rejects lines that are not JSON objects and keeps reading', async () => {
    await writeFile(join(dir, 'in.jsonl'), '{"a":1}\nnot json\n\n[1,2]\n{"a":2}\r\n42\n{"a":3}');
    const { rows, rejected } = await readAll({ path: 'in.jsonl' });
    expect(rows).toEqual([{ a: 1 }, { a: 2 }, { a: 3 }]);
    expect(rejected.map((r) => r.record)).toEqual([
      { line: 2, raw: 'not json' },
      { line: 4, raw: '[1,2]' },
      { line: 6, raw: '42' },
    ]);
    expect(rejected.every((r) => r.error instanceof RowError)).toBe(true);
    expect(messageOf(rejected[0])).toMatch(/^the line is not valid JSON/);
    expect(messageOf(rejected[1])).toMatch(/^the line is a JSON array, not a JSON object/);
    // the runtime puts the location in front of the message (locateError)
    expect(rejected.map((r) => r.at)).toEqual([2, 4, 6].map((line) => ({ file: join(dir, 'in.jsonl'), line })));
  });

  it('converts declared columns and rejects values that do not fit', async () => {
    await writeFile(join(dir, 'in.jsonl'), '{"id":"1","n":5}\n{"id":"x","n":6}\n{"id":3}\n');
    const { schema, rows, rejected } = await readAll({ path: 'in.jsonl', columns: { id: 'integer', n: 'string' } });
    expect(schema?.map((c) => [c.name, c.type])).toEqual([
      ['id', 'integer'],
      ['n', 'string'],
    ]);
    expect(rows).toEqual([{ id: 1, n: '5' }, { id: 3 }]);
    expect(rejected).toHaveLength(1);
    expect(messageOf(rejected[0])).toBe('field "id": "x" is not an integer');
    expect(rejected[0]?.at).toEqual({ file: join(dir, 'in.jsonl'), line: 2 });
  });

  it('resolves a relative path against baseDir', async () => {
    await mkdir(join(dir, 'data'));
    await writeFile(join(dir, 'data', 'in.jsonl'), '{"a":1}\n');
    const { partitions, rows } = await readAll({ path: 'data/in.jsonl' });
    expect(partitions).toEqual([{ id: '0', path: join(dir, 'data', 'in.jsonl') }]);
    expect(rows).toEqual([{ a: 1 }]);
  });

  it('fails with a clear ENOENT connector error for a missing file', async () => {
    const error = await readAll({ path: 'missing.jsonl' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WeirError);
    expect(error).toMatchObject({ kind: 'config', code: 'ENOENT' });
    expect((error as Error).message).toContain(join(dir, 'missing.jsonl'));
  });

  it('estimates the row count and yields arrays', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 3000; i++) lines.push(JSON.stringify({ i }));
    await writeFile(join(dir, 'in.jsonl'), `${lines.join('\n')}\n`);
    const source = jsonl.source?.(options({ path: 'in.jsonl' })) ?? expect.unreachable();
    const estimate = (await source.estimate?.(planContext({ baseDir: dir }))) ?? 0;
    expect(Math.abs(estimate - 3000)).toBeLessThan(400);
    const sizes: number[] = [];
    for await (const chunk of source.read({ id: '0' }, taskContext({ baseDir: dir }))) sizes.push(Array.isArray(chunk) ? chunk.length : 1);
    expect(sizes).toEqual([1000, 1000, 1000]);
  });
});

describe('jsonl sink', () => {
  it('round-trips jsonl → rows → jsonl', async () => {
    const text = '{"id":1,"name":"a","nested":{"x":[1,2]}}\n{"id":2,"name":null,"nested":null}\n';
    await writeFile(join(dir, 'in.jsonl'), text);
    const { schema, rows } = await readAll({ path: 'in.jsonl' });
    await writeAll({ path: 'out.jsonl' }, [['0', rows]], { schema });
    expect(await readFile(join(dir, 'out.jsonl'), 'utf8')).toBe(text);
  });

  it('works without a schema (dead-letter use): Dates and bytes as strings, bigints as exact numbers', async () => {
    await writeAll({ path: 'dead.jsonl' }, [
      ['dead-letter', [{ at: new Date(0), big: 2n ** 70n, bytes: new Uint8Array([1, 2, 3]), deep: { n: 1n } }]],
    ]);
    expect(await readFile(join(dir, 'dead.jsonl'), 'utf8')).toBe(
      '{"at":"1970-01-01T00:00:00.000Z","big":1180591620717411303424,"bytes":"AQID","deep":{"n":1}}\n',
    );
  });

  it('turns an unserializable row into a RowError', async () => {
    const sink = jsonl.sink?.(options({ path: 'out.jsonl' })) ?? expect.unreachable();
    const writer = await sink.writer({ id: '0' }, taskContext({ baseDir: dir }));
    const row: Row = { a: 1 };
    row.self = row;
    await expect(writer.write([row])).rejects.toBeInstanceOf(RowError);
    await writer.abort?.();
    expect(await readdir(dir)).toEqual([]);
  });

  it('concatenates partitions in partition-id order, idempotently', async () => {
    const { sink, messages, cctx } = await writeAll({ path: 'out.jsonl' }, [
      ['2', [{ p: 2 }]],
      ['10', [{ p: 10 }]],
      ['1', [{ p: 1 }]],
    ]);
    const expected = '{"p":1}\n{"p":2}\n{"p":10}\n';
    expect(await readFile(join(dir, 'out.jsonl'), 'utf8')).toBe(expected);
    await sink.commit?.(messages, cctx);
    expect(await readFile(join(dir, 'out.jsonl'), 'utf8')).toBe(expected);
    expect(await readdir(dir)).toEqual(['out.jsonl']);
  });

  it('appends in append mode', async () => {
    await writeFile(join(dir, 'out.jsonl'), '{"p":0}');
    await writeAll({ path: 'out.jsonl', mode: 'append' }, [['0', [{ p: 1 }]]]);
    await writeAll({ path: 'out.jsonl', mode: 'append' }, [['0', [{ p: 2 }]]], { runId: 'run-2' });
    expect(await readFile(join(dir, 'out.jsonl'), 'utf8')).toBe('{"p":0}\n{"p":1}\n{"p":2}\n');
  });

  it('leaves no files after writer abort and job abort', async () => {
    const sink = jsonl.sink?.(options({ path: 'out/x.jsonl' })) ?? expect.unreachable();
    const cctx = commitContext({ baseDir: dir });
    const a = await sink.writer({ id: '0' }, taskContext({ baseDir: dir }));
    await a.write([{ a: 1 }]);
    await a.abort?.();
    await a.close?.();
    const b = await sink.writer({ id: '1' }, taskContext({ baseDir: dir }));
    await b.write([{ a: 2 }]);
    const message = (await b.commit?.()) ?? null;
    await b.close?.();
    await sink.abort?.([message, null], cctx);
    expect(await readdir(join(dir, 'out'))).toEqual([]);
  });
});
