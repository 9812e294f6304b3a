/**
 * A pathological row is a row error, never a run failure (issue 10, item 10): JSON
 * nested deep enough to exhaust the stack, read by a source or built by one and
 * then written by a sink, is dead-lettered with `errors.tolerance: all` while the
 * other rows are written, and the counts add up.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { defineConnector } from '../../src/sdk/connector.js';
import { o } from '../../src/sdk/options.js';
import type { Row } from '../../src/sdk/types.js';
import { tempDir } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';
import { runYaml } from './harness.js';

const pgUp = await requireService('postgres');

async function dropTable(table: string) {
  const client = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
  await client.connect();
  await client.query(`DROP TABLE IF EXISTS ${table}`);
  await client.end();
}

const nested = (depth: number) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;
const TOLERANT = 'errors: { tolerance: all, dead_letter: { type: jsonl, path: dead.jsonl } }';

function lines(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A sink as a custom connector may write it: plain JSON.stringify, which overflows the stack on a deep value. */
const naiveSink = defineConnector({
  name: 'naive-json-sink',
  description: 'Collects JSON.stringify of each row.',
  options: {},
  sink: () => ({
    writer: () => ({
      write(batch: Row[]) {
        for (const row of batch) JSON.stringify(row);
      },
    }),
  }),
});

/** A source whose second row holds a value nested 200,000 levels deep (built in memory, never parsed). */
const deepSource = defineConnector({
  name: 'deep-source',
  description: 'Three rows, the second nested beyond any stack.',
  options: { rows: o.int().describe('unused').default(3) },
  source: () => ({
    async *read() {
      let deep: unknown = 1;
      for (let i = 0; i < 200_000; i++) deep = [deep];
      yield [{ id: 1 }, { id: 2, deep }, { id: 3 }] as Row[];
    },
  }),
});

describe('pathological rows', () => {
  it('JSONL lines nested too deeply are dead letters; the rest is written (max_depth, 64 by default)', async () => {
    const dir = tempDir('weir-deep-');
    const input = [
      '{"id":1}',
      `{"id":2,"deep":${nested(200_000)}}`,
      `{"id":3,"x":1.5,"deep":${'{"a":'.repeat(200_000)}1${'}'.repeat(200_000)}}`,
      `{"id":4,"deep":${nested(80)}}`,
      '{"id":5}',
    ];
    writeFileSync(join(dir, 'in.jsonl'), `${input.join('\n')}\n`);
    const run = (extra: string) =>
      runYaml(`pipeline: deep\nsource: { type: jsonl, path: in.jsonl${extra} }\nsink: { type: jsonl, path: out.jsonl }\n${TOLERANT}\n`, {
        dir,
      });
    const { summary } = await run('');
    expect(summary.error?.error_message).toBeUndefined();
    expect(summary.totals).toMatchObject({ rows_read: 5, rows_written: 2, rows_dead_lettered: 3 });
    expect(lines(join(dir, 'out.jsonl')).map((r) => r.id)).toEqual([1, 5]);
    const dead = lines(join(dir, 'dead.jsonl'));
    expect(dead.map((d) => d.error_type)).toEqual(['json_too_deep', 'json_too_deep', 'json_too_deep']);
    expect(dead[0]?.error_message).toBe(
      `${join(dir, 'in.jsonl')}:2: the line nests arrays and objects deeper than 64 levels; raise source.max_depth if such lines are expected`,
    );

    const raised = await run(', max_depth: 100');
    expect(raised.summary.totals).toMatchObject({ rows_read: 5, rows_written: 3, rows_dead_lettered: 2 });
  });

  it('a row a sink cannot serialise (a stack overflow in JSON.stringify) is a dead letter, not a failed run', async () => {
    const dir = tempDir('weir-deep-');
    const { summary } = await runYaml(
      `pipeline: deep-write\nsource: { type: deep-source }\nsink: { type: jsonl, path: out.jsonl }\n${TOLERANT}\n`,
      {
        dir,
        connectors: [deepSource as never],
      },
    );
    expect(summary.error?.error_message).toBeUndefined();
    expect(summary.totals).toMatchObject({ rows_read: 3, rows_written: 2, rows_dead_lettered: 1 });
    expect(lines(join(dir, 'out.jsonl')).map((r) => r.id)).toEqual([1, 3]);
    const [dead] = lines(join(dir, 'dead.jsonl'));
    expect(dead).toMatchObject({ stage: 'write', error_type: 'bad_row' });
    expect(String(dead?.error_message)).toMatch(/cannot be written as JSON: Maximum call stack size exceeded/);
    expect(dead?.record).toMatch(/^\(a row that cannot be written as JSON/);
  });

  it("a custom sink's RangeError on one row (its own JSON.stringify) is a row error: that row is dead-lettered", async () => {
    const dir = tempDir('weir-deep-');
    const { summary } = await runYaml(
      `pipeline: deep-naive\nsource: { type: deep-source }\nsink: { type: naive-json-sink }\n${TOLERANT}\n`,
      {
        dir,
        connectors: [deepSource as never, naiveSink as never],
      },
    );
    expect(summary.error?.error_message).toBeUndefined();
    expect(summary.totals).toMatchObject({ rows_read: 3, rows_written: 2, rows_dead_lettered: 1 });
    const [dead] = lines(join(dir, 'dead.jsonl'));
    expect(dead).toMatchObject({ stage: 'write', error_type: 'row_too_complex' });
    expect(String(dead?.error_message)).toMatch(/^row cannot be processed: Maximum call stack size exceeded/);
  });

  it('without tolerance the run fails with the row error, not a stack trace', async () => {
    const dir = tempDir('weir-deep-');
    const { summary } = await runYaml(`pipeline: deep-fail\nsource: { type: deep-source }\nsink: { type: jsonl, path: out.jsonl }\n`, {
      dir,
      connectors: [deepSource as never],
    });
    expect(summary.status).toBe('failed');
    expect(summary.error?.error_message).toMatch(/cannot be written as JSON/);
    expect(summary.error?.error_message).not.toMatch(/\n\s+at /);
  });
});

describe('an oversized CSV record', () => {
  // a few MB over a limit of 1MB shows what a 100MB field over the default does
  const big = (n: number) => `${'x'.repeat(64)}\n`.repeat(Math.ceil(n / 65)).slice(0, n);
  for (const [what, field] of [
    ['an unquoted field', 'y'.repeat(3_000_000)],
    ['a quoted field with line breaks and delimiters', `"${big(3_000_000).replaceAll('x,', 'x,')}a,b,""c"""`],
  ] as const) {
    for (const sink of ['jsonl', 'postgres'] as const) {
      it.skipIf(sink === 'postgres' && !pgUp)(`is one dead letter, whatever it holds (${what}, csv → ${sink})`, async () => {
        const dir = tempDir('weir-big-');
        writeFileSync(join(dir, 'in.csv'), `id,v\n1,a\n2,${field}\n3,c\r\n4,d\n`);
        const table = `weir_big_${Math.random().toString(36).slice(2, 10)}`;
        const sinkYaml =
          sink === 'jsonl'
            ? 'type: jsonl, path: out.jsonl'
            : `type: postgres, host: 127.0.0.1, user: postgres, database: test, table: ${table}`;
        const { summary } = await runYaml(
          `pipeline: big\nsource: { type: csv, path: in.csv, max_record_bytes: 1MB, columns: { id: integer } }\nsink: { ${sinkYaml} }\nerrors: { tolerance: all, max_failed_rows: 1, dead_letter: { type: jsonl, path: dead.jsonl } }\n`,
          { dir },
        );
        if (sink === 'postgres') await dropTable(table);
        expect(summary.error?.error_message).toBeUndefined();
        expect(summary.totals).toMatchObject({ rows_read: 4, rows_written: 3, rows_dead_lettered: 1 });
        const dead = lines(join(dir, 'dead.jsonl'));
        expect(dead).toHaveLength(1);
        expect(dead[0]).toMatchObject({ error_type: 'record_too_large', record: { line: 3 } });
        expect(String(dead[0]?.error_message)).toMatch(/larger than max_record_bytes \(1MB\)/);
        if (sink === 'jsonl') expect(lines(join(dir, 'out.jsonl')).map((r) => r.v)).toEqual(['a', 'c', 'd']);
      });
    }
  }
});

describe.skipIf(!pgUp)('deep JSON in a database', () => {
  it('a PostgreSQL jsonb value nested deeper than max_depth is one dead letter; the other rows are read', async () => {
    const table = `weir_deep_${Math.random().toString(36).slice(2, 10)}`;
    const client = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
    await client.connect();
    try {
      await client.query(`CREATE TABLE ${table} (id int, j jsonb)`);
      await client.query(`INSERT INTO ${table} VALUES (1, '{"a": [1]}'), (2, $1), (3, 'null')`, [nested(70)]);
      const dir = tempDir('weir-deep-');
      const source = `type: postgres, host: 127.0.0.1, user: postgres, database: test, table: ${table}`;
      const run = (extra: string) =>
        runYaml(`pipeline: deep-pg\nsource: { ${source}${extra} }\nsink: { type: jsonl, path: out.jsonl }\n${TOLERANT}\n`, { dir });
      const { summary } = await run('');
      expect(summary.error?.error_message).toBeUndefined();
      expect(summary.totals).toMatchObject({ rows_read: 3, rows_written: 2, rows_dead_lettered: 1 });
      expect(lines(join(dir, 'dead.jsonl'))[0]).toMatchObject({ error_type: 'json_too_deep', record: { id: 2, j: null } });
      expect(lines(join(dir, 'dead.jsonl'))[0]?.error_message).toMatch(
        new RegExp(`^table public\\.${table}: column "j" holds JSON nested deeper`),
      );
      const keyed = await run(', partition_column: id');
      expect(keyed.summary.totals).toMatchObject({ rows_dead_lettered: 1 });
      expect(lines(join(dir, 'dead.jsonl')).at(-1)?.error_message).toMatch(new RegExp(`^table public\\.${table}, key id=2: column "j"`));
      expect((await run(', max_depth: 100')).summary.totals).toMatchObject({ rows_written: 3, rows_dead_lettered: 0 });
    } finally {
      await client.query(`DROP TABLE IF EXISTS ${table}`);
      await client.end();
    }
  });
});
