import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collect, connectorOptions, messageOf, planContext, type Rejected, taskContext, tempDir } from '../../sdk/testing.js';
import type { Partition, Row } from '../../sdk/types.js';
import csv from './index.js';
import { MAX_PARTITIONS } from './source.js';
import { recordBoundaries } from './split.js';

let dir: string;
beforeEach(async () => {
  dir = await tempDir('weir-csv-split-');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const rejections = (rs: Rejected[]) => rs.map((r) => ({ record: r.record, message: messageOf(r) }));

/** Plans the file and reads every partition in order, the row path's way or passed through (decoded back to rows). */
async function readPartitions(input: Record<string, unknown>, encoded = false) {
  const source = csv.source?.(connectorOptions(csv, input, 'source')) ?? expect.unreachable();
  const schema = await source.schema?.(planContext({ baseDir: dir }));
  const partitions: Partition[] = (await source.partitions?.(planContext({ baseDir: dir }))) ?? expect.unreachable();
  const ctx = taskContext({ baseDir: dir, schema });
  const rows: Row[] = [];
  for (const p of partitions) {
    if (!encoded) {
      rows.push(...(await collect(source.read(p, ctx))));
      continue;
    }
    for await (const chunk of source.readEncoded?.(p, ctx, 'csv') ?? expect.unreachable()) {
      const decoded = await chunk.decode(async () => expect.unreachable('decode rejects nothing the scan did not'));
      expect(decoded).toHaveLength(chunk.rows);
      rows.push(...decoded);
    }
  }
  return { partitions, rows, rejected: rejections(ctx.rejected) };
}

/** Reads `content` whole and cut with `split_bytes`: rows, rejections and their line numbers must agree. */
async function sameSplit(content: string, input: Record<string, unknown>, splitBytes: number) {
  const path = join(dir, 'in.csv');
  await writeFile(path, content);
  const whole = await readPartitions({ path, ...input, split_bytes: 0 });
  expect(whole.partitions).toHaveLength(1);
  const cut = await readPartitions({ path, ...input, split_bytes: splitBytes });
  // contiguous ranges: each starts where the one before ends; the last is open
  cut.partitions.forEach((p, k) => {
    expect(p.id).toBe(String(k));
    if (k > 0) expect(p.offset).toBe(cut.partitions[k - 1]?.end);
  });
  expect(cut.partitions.at(-1)?.end).toBeUndefined();
  expect(cut.rows).toEqual(whole.rows);
  expect(cut.rejected).toEqual(whole.rejected);
  const encoded = await readPartitions({ path, ...input, split_bytes: splitBytes }, true);
  expect(encoded.rows).toEqual(whole.rows);
  expect(encoded.rejected).toEqual(whole.rejected);
  return cut;
}

describe('csv split_bytes', () => {
  it('cuts a large file into ranges of whole records; quoted line breaks never end a range', async () => {
    const lines = ['id,note'];
    for (let i = 1; i <= 300; i++) lines.push(i % 3 === 0 ? `${i},"two\nlines, ""quoted"""` : `${i},plain ${i}`);
    const cut = await sameSplit(`${lines.join('\n')}\n`, { columns: { id: 'integer' } }, 512);
    expect(cut.partitions.length).toBeGreaterThan(8);
    expect(cut.rows.map((r) => r.id)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
  });

  it('keeps line numbers of dead letters and CRLF files as a whole-file read has them', async () => {
    const lines = ['id,at'];
    for (let i = 1; i <= 120; i++) lines.push(i % 25 === 0 ? `${i},not a time` : i % 7 === 0 ? `${i},"2024-05-01\r\n"` : `${i},2024-05-01`);
    const cut = await sameSplit(`${lines.join('\r\n')}\r\n`, { columns: { id: 'integer', at: 'timestamp' } }, 200);
    expect(cut.partitions.length).toBeGreaterThan(4);
    expect(cut.rejected.map((r) => (r.record as { line: number }).line)).toEqual([29, 58, 86, 115]); // the file's lines: quoted line breaks count
  });

  it('splits a file without a header, after skipped lines', async () => {
    const lines = ['a title', 'another'];
    for (let i = 1; i <= 100; i++) lines.push(`${i},"x${i}"`);
    const cut = await sameSplit(lines.join('\n'), { header: false, skip_lines: 2, columns: { id: 'integer', name: 'string' } }, 100);
    expect(cut.partitions.length).toBeGreaterThan(4);
    expect(cut.rows).toHaveLength(100);
  });

  it('cuts a file into MAX_PARTITIONS at most, however small split_bytes is', async () => {
    const lines = ['n'];
    for (let i = 0; i < 6000; i++) lines.push(String(i % 10));
    await writeFile(join(dir, 'in.csv'), `${lines.join('\n')}\n`);
    const path = join(dir, 'in.csv');
    const source = csv.source?.(connectorOptions(csv, { path, split_bytes: 1 }, 'source')) ?? expect.unreachable();
    const partitions = (await source.partitions?.(planContext({ baseDir: dir }))) ?? expect.unreachable();
    expect(partitions.length).toBeLessThanOrEqual(MAX_PARTITIONS);
    expect(partitions.length).toBeGreaterThan(MAX_PARTITIONS / 2);
    // the ranges follow each other without a gap up to the end of the file (reading thousands of them
    // one by one takes a minute on a loaded machine: a sample is read, and counts its records)
    const size = (await stat(path)).size;
    partitions.forEach((p, i) => {
      if (i > 0) expect(p.offset).toBe(partitions[i - 1]?.end);
    });
    expect(partitions.at(-1)?.end ?? size).toBe(size);
    const ctx = taskContext({ baseDir: dir });
    for (const i of [0, 1, 2, Math.floor(partitions.length / 2), partitions.length - 2, partitions.length - 1]) {
      const p = partitions[i] as Partition;
      const rows = await collect(source.read(p, ctx));
      const lines = (await readFile(path, 'utf8'))
        .slice(Number(p.offset ?? 2), Number(p.end ?? size))
        .split('\n')
        .filter(Boolean);
      expect(rows.map((r) => String(r.n))).toEqual(lines);
    }
  });

  it('refuses to read the ranges of a file that changed after planning (offsets would split records)', async () => {
    const path = join(dir, 'in.csv');
    const lines = ['id,name'];
    for (let i = 1; i <= 100; i++) lines.push(`${i},name ${i}`);
    await writeFile(path, `${lines.join('\n')}\n`);
    const source = csv.source?.(connectorOptions(csv, { path, split_bytes: 300 }, 'source')) ?? expect.unreachable();
    const partitions = (await source.partitions?.(planContext({ baseDir: dir }))) ?? expect.unreachable();
    expect(partitions.length).toBeGreaterThan(2);
    expect(partitions[1]).toMatchObject({ size: expect.any(Number), mtime_ms: expect.any(Number) });
    await writeFile(path, `id,name\n0,inserted at the top\n${lines.slice(1).join('\n')}\n`);
    const ctx = taskContext({ baseDir: dir });
    await expect(collect(source.read(partitions[1] as Partition, ctx))).rejects.toThrow(/changed since the run was planned/);
    await expect(collect(source.readEncoded?.(partitions[1] as Partition, ctx, 'csv') ?? expect.unreachable())).rejects.toThrow(
      /changed since the run was planned/,
    );
  });

  it('reads a small file, or one with split_bytes 0, as one partition', async () => {
    await writeFile(join(dir, 'in.csv'), 'a\n1\n2\n');
    const small = await readPartitions({ path: join(dir, 'in.csv') });
    expect(small.partitions).toEqual([{ id: '0', path: join(dir, 'in.csv') }]);
  });

  it('reads every file cut anywhere as the whole file (fast-check, lenient quoting included)', async () => {
    const token = fc.constantFrom(
      'a',
      'é',
      'D',
      'Q',
      '\n',
      '\r\n',
      '\r',
      ' ',
      '1',
      '-',
      '.',
      '1.50',
      'true',
      '\\.',
      'QQ',
      'NULL',
      '2024-05-01',
    );
    const types = fc.constantFrom('integer', 'number', 'boolean', 'timestamp', 'string', undefined);
    await fc.assert(
      fc.asyncProperty(
        fc.array(token, { maxLength: 80 }),
        fc.array(types, { minLength: 1, maxLength: 3 }),
        fc.boolean(),
        fc.constantFrom('', 'NULL'),
        fc.integer({ min: 0, max: 2 }),
        fc.constantFrom([',', '"'], [';', "'"]),
        fc.constantFrom('\n', '\r\n'),
        fc.integer({ min: 1, max: 40 }),
        async (tokens, colTypes, header, nullValue, skipLines, [d, q], eol, splitBytes) => {
          const names = colTypes.map((_, i) => `c${i}`);
          const declared = Object.fromEntries(colTypes.flatMap((t, i) => (t ? [[`c${i}`, t]] : header ? [] : [[`c${i}`, 'string']])));
          const body = tokens
            .join('')
            .replaceAll('D', d as string)
            .replaceAll('Q', q as string);
          const content = `${`title${eol}`.repeat(skipLines)}${header ? `${names.join(d)}${eol}` : ''}${body}`;
          await sameSplit(
            content,
            {
              header,
              null_value: nullValue,
              skip_lines: skipLines,
              delimiter: d,
              quote: q,
              ...(Object.keys(declared).length ? { columns: declared } : {}),
            },
            splitBytes,
          );
        },
      ),
      { numRuns: Number(process.env.WEIR_FUZZ_RUNS ?? 200) },
    );
  });

  it('finds the same boundaries whatever the read block size (doubled quotes and CRLF across blocks)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom('a', ',', '"', '""', '\n', '\r\n', '\r', 'x"y'), { minLength: 1, maxLength: 60 }),
        fc.constantFrom('lf', 'crlf') as fc.Arbitrary<'lf' | 'crlf'>,
        fc.integer({ min: 1, max: 9 }),
        async (tokens, lineEnding, blockBytes) => {
          const content = Buffer.from(tokens.join(''));
          const path = join(dir, 'b.csv');
          await writeFile(path, content);
          const d = { delimiter: 0x2c, quote: 0x22, lineEnding };
          const start = { offset: 0, line: 0, lines: 1 };
          const targets = Array.from({ length: content.length }, (_, i) => i + 1);
          const big = await recordBoundaries(path, d, start, content.length, targets);
          const small = await recordBoundaries(path, d, start, content.length, targets, blockBytes);
          expect(small).toEqual(big);
        },
      ),
      { numRuns: Number(process.env.WEIR_FUZZ_RUNS ?? 300) },
    );
  });
});

describe('record boundaries in a file mixing LF and CRLF records', () => {
  it('a quote after a bare LF in a CRLF file opens a quoted field, so no boundary falls inside it', async () => {
    const { writeFile: write } = await import('node:fs/promises');
    const { join: joinPath } = await import('node:path');
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = joinPath(mkdtempSync(joinPath(tmpdir(), 'weir-split-mixed-')), 'in.csv');
    const text = 'id,t\r\n1,"x\nsplit,here\n"\n2,y\r\n';
    await write(path, text);
    const starts = await recordBoundaries(
      path,
      { delimiter: 0x2c, quote: 0x22, lineEnding: 'crlf' },
      { offset: 6, line: 1, lines: 2 },
      text.length,
      [12],
    );
    expect(starts.map((s) => text.slice(s.offset))).toEqual(['2,y\r\n']);
  });
});
