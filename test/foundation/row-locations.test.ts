/**
 * Every row error names where the row is in the source (file and line), with
 * `errors.tolerance: none` and `all`, on the row path and the encoded path, and
 * one bad row counts as one error. The CLI as a user runs it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { logLines, runCli, tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';

const pgUp = await requireService('postgres');

interface Summary {
  totals: { rows_read: number; rows_written: number; rows_dead_lettered: number; rows_failed: number };
  partitions: { errors: Record<string, { count: number; samples: string[] }> }[];
  error?: { error_message: string };
}

/** Runs `weir run` on a pipeline in a fresh directory holding `files`; returns the exit code, log lines and summary. */
async function run(files: Record<string, string>, pipeline: string) {
  const dir = tempDir('weir-rowloc-');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  writeFileSync(join(dir, 'pipeline.yaml'), pipeline);
  const r = await runCli(['run', 'pipeline.yaml', '--log-format', 'json', '--summary-json', 'summary.json'], { cwd: dir });
  const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as Summary;
  const failed = logLines(r.stdout).find((l) => l.event === 'partition_failed') as
    | { error_message: string; errors: Record<string, { count: number }> }
    | undefined;
  const dead = () =>
    readFileSync(join(dir, 'dead.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { error_message: string; error_type: string });
  return { code: r.code, out: r.stdout + r.stderr, summary, failed, dead, dir };
}

const BAD_INTEGER = 'id,n\n1,10\n2,20\n3,x\n4,40\n'; // the bad row is on line 4
const BAD_QUOTING = 'id,n\n1,10\n2,"2"0,5\n3,30\n'; // three fields on line 3
const TOLERANT = 'errors: { tolerance: all, dead_letter: { type: jsonl, path: dead.jsonl } }';
const csvPipeline = (file: string, extra = '') =>
  `pipeline: rowloc\nsource: { type: csv, path: ${file}, columns: { n: integer } }\nsink: { type: jsonl, path: out.jsonl }\n${extra}\n`;

describe('row errors name their source location', () => {
  it('tolerance none: a bad CSV integer fails the run with file:line, counted once', async () => {
    const r = await run({ 'data.csv': BAD_INTEGER }, csvPipeline('data.csv'));
    expect(r.code).toBe(1);
    const where = `${join(r.dir, 'data.csv')}:4`;
    expect(r.failed?.error_message).toBe(`${where}: column "n": "x" is not an integer`);
    expect(r.failed?.errors).toEqual({ bad_field: expect.objectContaining({ count: 1 }) });
    expect(r.summary.partitions[0]?.errors.bad_field?.count).toBe(1);
    expect(r.summary.error?.error_message).toContain(where);
    expect(r.summary.totals.rows_failed).toBe(1);
    expect(r.out).toContain(`error: ${where}: column "n"`); // the human summary
  });

  it('tolerance none: a CSV quoting error names the line it is on', async () => {
    const r = await run({ 'quote.csv': BAD_QUOTING }, csvPipeline('quote.csv'));
    expect(r.code).toBe(1);
    expect(r.failed?.error_message).toBe(
      `${join(r.dir, 'quote.csv')}:3: record has 3 field(s), expected 2 (id, n); check the delimiter and quoting on this line`,
    );
    expect(r.failed?.errors.bad_record?.count).toBe(1);
  });

  it('tolerance all: the dead letter carries the location; the counts add up', async () => {
    const r = await run({ 'data.csv': BAD_INTEGER }, csvPipeline('data.csv', TOLERANT));
    expect(r.code).toBe(0);
    expect(r.dead()).toEqual([
      expect.objectContaining({
        error_type: 'bad_field',
        error_message: `${join(r.dir, 'data.csv')}:4: column "n": "x" is not an integer`,
      }),
    ]);
    expect(r.summary.totals).toMatchObject({ rows_read: 4, rows_written: 3, rows_dead_lettered: 1 });
    expect(r.summary.partitions[0]?.errors.bad_field?.count).toBe(1);
  });

  it('a multi-line record before the bad row moves its line, as the file has it', async () => {
    const r = await run({ 'data.csv': 'id,n\n"a\nb",1\n2,x\n' }, csvPipeline('data.csv', TOLERANT));
    expect(r.dead()[0]?.error_message).toBe(`${join(r.dir, 'data.csv')}:4: column "n": "x" is not an integer`);
  });

  it('JSONL: the file and line, with tolerance none and all', async () => {
    const files = { 'in.jsonl': '{"id":1}\n{"id":2}\nnot json\n{"id":4}\n' };
    const pipeline = (extra = '') =>
      `pipeline: rowloc\nsource: { type: jsonl, path: in.jsonl }\nsink: { type: jsonl, path: out.jsonl }\n${extra}\n`;
    const none = await run(files, pipeline());
    expect(none.code).toBe(1);
    expect(none.failed?.error_message).toMatch(new RegExp(`^${escapeRegExp(join(none.dir, 'in.jsonl'))}:3: the line is not valid JSON`));
    expect(none.failed?.errors.bad_json?.count).toBe(1);
    const all = await run(files, pipeline(TOLERANT));
    expect(all.code).toBe(0);
    expect(all.dead()[0]?.error_message).toMatch(new RegExp(`^${escapeRegExp(join(all.dir, 'in.jsonl'))}:3: the line is not valid JSON`));
  });
});

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function psql(sql: string): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

describe.skipIf(!pgUp)('rows PostgreSQL refuses name their source line, not the COPY line', () => {
  // 100000 is an integer to weir and out of range for the table's smallint; the quoted
  // line break moves the bad row to line 5 of the file, the 3rd row of the batch
  const FILE = 'id,n\n1,10\n"2\nb",20\n3,100000\n4,40\n';
  it('append: a record the encoded path rejects while scanning names its line, tolerance none and all', async () => {
    const table = `weir_rowloc_scan_${Math.random().toString(36).slice(2, 8)}`;
    try {
      const pipeline = (extra = '') =>
        `pipeline: rowloc\nsource: { type: csv, path: data.csv, columns: { id: string, n: integer } }\nsink: { type: postgres, host: 127.0.0.1, user: postgres, database: test, table: ${table} }\n${extra}\n`;
      const none = await run({ 'data.csv': FILE.replace('100000', 'x') }, pipeline());
      expect(none.code).toBe(1);
      expect(none.failed?.error_message).toBe(`${join(none.dir, 'data.csv')}:5: column "n": "x" is not an integer`);
      expect(none.failed?.errors.bad_field?.count).toBe(1);
      const all = await run({ 'data.csv': FILE.replace('100000', 'x') }, pipeline(TOLERANT));
      expect(all.dead().map((d) => d.error_message)).toEqual([`${join(all.dir, 'data.csv')}:5: column "n": "x" is not an integer`]);
    } finally {
      await psql(`DROP TABLE IF EXISTS ${table}`);
    }
  });

  it('upsert: a value the table would round (numeric scale, checked before COPY) names its line, tolerance none', async () => {
    const table = `weir_rowloc_scale_${Math.random().toString(36).slice(2, 8)}`;
    await psql(`CREATE TABLE ${table} (id text PRIMARY KEY, d numeric(6,1))`);
    try {
      const r = await run(
        { 'data.csv': 'id,d\n1,1.5\n"2\nb",2.5\n3,3.25\n4,4.5\n' },
        `pipeline: rowloc\nsource: { type: csv, path: data.csv, columns: { id: string, d: decimal } }\nsink: { type: postgres, host: 127.0.0.1, user: postgres, database: test, table: ${table}, mode: upsert, key_columns: [id] }\n`,
      );
      expect(r.code).toBe(1);
      expect(r.failed?.error_message).toBe(
        `${join(r.dir, 'data.csv')}:5: column "d": "3.25" has more digits after the point than the target column keeps (1), so it would be rounded; widen the column's scale, or round the value in the source`,
      );
    } finally {
      await psql(`DROP TABLE IF EXISTS ${table}`);
    }
  });

  it('append: after an oversized record sends the rest of the file the row path, a refused row still names its line', async () => {
    const table = `weir_rowloc_rest_${Math.random().toString(36).slice(2, 8)}`;
    await psql(`CREATE TABLE ${table} (id text, n smallint)`);
    try {
      const r = await run(
        { 'data.csv': `id,n\n1,10\n2${'x'.repeat(3000)},20\n3,30\n"4\nb",40\n5,100000\n6,60\n` },
        `pipeline: rowloc\nsource: { type: csv, path: data.csv, max_record_bytes: 1KB, columns: { id: string, n: integer } }\nsink: { type: postgres, host: 127.0.0.1, user: postgres, database: test, table: ${table} }\n${TOLERANT}\n`,
      );
      expect(r.code).toBe(0);
      const where = escapeRegExp(join(r.dir, 'data.csv'));
      expect(r.dead().map((d) => d.error_message)).toEqual([
        expect.stringMatching(new RegExp(`^${where}:3: the record starting on this line is larger than max_record_bytes`)),
        expect.stringMatching(new RegExp(`^${where}:7: .*out of range`)),
      ]);
    } finally {
      await psql(`DROP TABLE IF EXISTS ${table}`);
    }
  });

  for (const mode of ['append', 'upsert']) {
    it(`${mode} (${mode === 'append' ? 'encoded path, decoded after COPY refused the chunk' : 'row path'}), tolerance none and all`, async () => {
      const table = `weir_rowloc_${mode}_${Math.random().toString(36).slice(2, 8)}`;
      await psql(`CREATE TABLE ${table} (id text PRIMARY KEY, n smallint)`);
      try {
        const sink = `{ type: postgres, host: 127.0.0.1, user: postgres, database: test, table: ${table}${mode === 'upsert' ? ', mode: upsert, key_columns: [id]' : ''} }`;
        const pipeline = (extra = '') =>
          `pipeline: rowloc\nsource: { type: csv, path: data.csv, columns: { id: string, n: integer } }\nsink: ${sink}\n${extra}\n`;
        const none = await run({ 'data.csv': FILE }, pipeline());
        expect(none.code).toBe(1);
        expect(none.failed?.error_message).toMatch(
          new RegExp(`^${escapeRegExp(join(none.dir, 'data.csv'))}:5: .*out of range for type smallint`),
        );
        const all = await run({ 'data.csv': FILE }, pipeline(TOLERANT));
        expect(all.code).toBe(0);
        const dead = all.dead();
        expect(dead).toHaveLength(1);
        expect(dead[0]?.error_message).toMatch(
          new RegExp(`^${escapeRegExp(join(all.dir, 'data.csv'))}:5: .*out of range for type smallint`),
        );
        expect(all.summary.totals).toMatchObject({ rows_read: 4, rows_written: 3, rows_dead_lettered: 1 });
      } finally {
        await psql(`DROP TABLE IF EXISTS ${table}`);
      }
    });
  }
});

const myUp = await requireService('mysql');

describe.skipIf(!myUp)('rows MariaDB refuses name their source line, not the statement row', () => {
  // 'toolong' does not fit the table's varchar(3): the server refuses the 3rd row of the batch, on line 5 of the file
  const FILE = 'id,s\n1,a\n"2\nb",b\n3,toolong\n4,d\n';
  for (const method of ['insert', 'load_data']) {
    it(`${method}: tolerance none and all`, async () => {
      const table = `weir_rowloc_${method}_${Math.random().toString(36).slice(2, 8)}`;
      const my = await mysql.createConnection({ host: '127.0.0.1', user: 'root', database: 'test' });
      await my.query(`CREATE TABLE ${table} (id varchar(20) PRIMARY KEY, s varchar(3))`);
      try {
        const pipeline = (extra = '') =>
          `pipeline: rowloc\nsource: { type: csv, path: data.csv, columns: { id: string, s: string } }\nsink: { type: mysql, host: 127.0.0.1, user: root, database: test, table: ${table}, method: ${method} }\n${extra}\n`;
        const none = await run({ 'data.csv': FILE }, pipeline());
        expect(none.code).toBe(1);
        expect(none.failed?.error_message).toMatch(new RegExp(`^${escapeRegExp(join(none.dir, 'data.csv'))}:5: .*column 's' at row 3`));
        const all = await run({ 'data.csv': FILE }, pipeline(TOLERANT));
        expect(all.code).toBe(0);
        expect(all.dead().map((d) => d.error_message)).toEqual([
          expect.stringMatching(new RegExp(`^${escapeRegExp(join(all.dir, 'data.csv'))}:5: `)),
        ]);
      } finally {
        await my.query(`DROP TABLE IF EXISTS ${table}`);
        await my.end();
      }
    });
  }
});
