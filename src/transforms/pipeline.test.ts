/**
 * Transforms in whole pipelines: validation with positions, counts that add up,
 * per-step metrics in the summary, events and /metrics, custom steps from a module,
 * and the mask canary: a raw value never reaches the sink or any output.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runYaml } from '../../test/foundation/harness.js';
import { tempDir } from '../../test/helpers/cli.js';
import { parsePipelineText } from '../config/load.js';
import { createRegistry, openPipeline } from '../config/open.js';
import { validatePipeline } from '../config/pipeline.js';
import { Registry } from '../config/registry.js';
import { builtinConnectors } from '../connectors/index.js';
import { EventBus } from '../observe/events.js';
import { createLogger } from '../observe/logger.js';
import { collectMetrics } from '../observe/metrics.js';
import { formatSummary } from '../observe/summary.js';
import { childProcessEngine } from '../runtime/engines/child.js';
import { runPipeline } from '../runtime/run.js';
import { ConfigError } from '../sdk/errors.js';
import { Redactor } from '../secrets/redactor.js';

const KEY = 'tf-test-key-0123456789abcdef';
process.env.TF_MASK_KEY = KEY;

function configIssues(yaml: string): string[] {
  try {
    validatePipeline(parsePipelineText(yaml, 'p.yaml'), new Registry(builtinConnectors), new Redactor(), tempDir());
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((i) => `${i.path}: ${i.message}${i.excerpt ? `\n${i.excerpt}` : ''}`);
    throw error;
  }
  return [];
}

const head = `pipeline: tf-test
source: { type: generator, rows: 10 }
sink: { type: jsonl, path: out.jsonl }
`;

describe('validation', () => {
  it('points at the line and column of an error inside an expression', () => {
    const [issue] = configIssues(`${head}transforms:\n  - rename: { case: snake }\n  - filter: amount > > 0\n`);
    expect(issue).toMatch(
      /^transforms\[1\]\.filter\.expression \(line 6:22\): unexpected ">"; a value was expected \(at column 10 of the expression\)/,
    );
    expect(issue).toContain('6 |   - filter: amount > > 0\n  |                      ^');
    const [block] = configIssues(
      `${head}transforms:\n  - set:\n      fields:\n        ok: |\n          amount > 0 and\n          quantity = 3\n`,
    );
    expect(block).toMatch(/^transforms\[0\]\.set\.fields\.ok \(line 9:20\): use == to compare/);
    const [quoted] = configIssues(`${head}transforms:\n  - filter: { expression: "lower(name) == 'x' and nope(1)" }\n`);
    expect(quoted).toMatch(/\(line 5:51\): unknown function nope\(\)/);
  });

  it('names unknown steps and options with a did-you-mean, every error at once', () => {
    const issues = configIssues(
      `${head}transforms:\n  - renme: { case: snake }\n  - cast: { fields: { id: intger } }\n  - mask: { fields: [email], methd: hmac }\n  - { filter: a > 1, drop: [b] }\n`,
    );
    expect(issues.map((i) => i.split('\n')[0])).toEqual([
      'transforms[0].renme (line 5:5): unknown option (did you mean "rename"?)',
      expect.stringMatching(
        /^transforms\[1\]\.cast\.fields\.id \(line 6:23\): must be one of .*\(did you mean "integer"\?\); got "intger"/,
      ),
      'transforms[2].mask.methd (line 7:30): unknown option (did you mean "method"?)',
      'transforms[3] (line 8:5): drop and filter are two steps in one item; write each as its own list item (- drop: …)',
    ]);
  });

  it('checks column names against the source schema before anything is written', async () => {
    const dir = tempDir();
    const run = await runYaml(`${head}transforms:\n  - select: [id, emial]\n`, [], dir);
    expect(run.summary.status).toBe('failed');
    expect(run.summary.error?.error_message).toMatch(/select: "emial" is not a column of the rows at this step; columns: id, name, email/);
  });

  it('the README example validates', () => {
    process.env.PGPASSWORD ??= 'readme-example-password';
    process.env.MASK_KEY ??= 'readme-example-mask-key-0123456789';
    const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Transforms'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    expect(yaml).toBeDefined();
    const dir = tempDir();
    writeFileSync(join(dir, 'orders.csv'), 'Order ID,Cost Total $,E-mail Address,Country\n1,10.50,a@b.de,DE\n');
    expect(() =>
      validatePipeline(parsePipelineText(yaml as string, 'readme.yaml'), new Registry(builtinConnectors), new Redactor(), dir),
    ).not.toThrow();
  });
});

describe('runs', () => {
  it('counts add up per step, in the summary, the partition_complete event and /metrics', async () => {
    const dir = tempDir();
    const run = await runYaml(
      `pipeline: tf-counts
source: { type: generator, rows: 1000, partitions: 2 }
sink: { type: jsonl, path: out.jsonl }
errors: { tolerance: all, dead_letter: { type: jsonl, path: dead.jsonl } }
transforms:
  - filter: id % 4 != 0
  - set: { ratio: "if(id % 5 == 0, 1 / 0, 1)" }
  - rename: { id: key }
`,
      [],
      dir,
    );
    expect(run.summary.status).toBe('succeeded');
    const t = run.summary.totals;
    expect(t).toMatchObject({ rows_read: 1000, rows_filtered: 250, rows_dead_lettered: 150, rows_written: 600 });
    expect(t.rows_read).toBe(t.rows_written + t.rows_dead_lettered + t.rows_filtered);
    expect(run.summary.transforms).toEqual([
      { step: 0, name: 'filter', rows_in: 1000, rows_out: 750, rows_filtered: 250, rows_failed: 0 },
      { step: 1, name: 'set', rows_in: 750, rows_out: 600, rows_filtered: 0, rows_failed: 150 },
      { step: 2, name: 'rename', rows_in: 600, rows_out: 600, rows_filtered: 0, rows_failed: 0 },
    ]);
    const complete = run.events.filter((e) => e.type === 'partition_complete');
    expect(complete).toHaveLength(2);
    for (const e of complete)
      if (e.type === 'partition_complete') expect(e.metrics.transforms?.map((s) => s.name)).toEqual(['filter', 'set', 'rename']);
    const out = readFileSync(join(dir, 'out.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(out).toHaveLength(600);
    expect(Object.keys(out[0])[0]).toBe('key');
    const dead = readFileSync(join(dir, 'dead.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(dead).toHaveLength(150);
    expect(dead[0]).toMatchObject({ stage: 'transform', error_type: 'expression_error' });
    expect(dead[0].error_message).toMatch(/^transforms\[1\] set: expression "if\(id % 5 == 0, 1 \/ 0, 1\)" at column 19: division by zero/);
    expect(formatSummary(run.summary, new Redactor())).toMatch(/2\. set\s+750\s+600\s+0\s+150/);

    const bus = new EventBus();
    const metrics = collectMetrics(bus, new Redactor(), false);
    for (const e of run.events) bus.emit(e);
    const text = await metrics.registry.metrics();
    expect(text).toContain('weir_transform_rows_total{pipeline="tf-counts",step="0",name="filter",outcome="filtered"} 250');
    expect(text).toContain('weir_transform_rows_total{pipeline="tf-counts",step="1",name="set",outcome="failed"} 150');
    expect(text).toContain('weir_transform_rows_total{pipeline="tf-counts",step="2",name="rename",outcome="out"} 600');
  });

  it('a row error in a step fails the run under the default tolerance', async () => {
    const run = await runYaml(`${head}transforms:\n  - cast: { name: integer }\n`);
    expect(run.summary.status).toBe('failed');
    expect(run.summary.error?.error_message).toMatch(/transforms\[0\] cast: column "name" to integer: string ".*" is not a decimal number/);
  });

  it('loads a custom step from a module, with its own options validated', async () => {
    const dir = tempDir();
    const sdk = join(import.meta.dirname, '..', 'sdk', 'index.ts');
    writeFileSync(
      join(dir, 'cents.mjs'),
      `import { defineTransform, o, Decimal } from ${JSON.stringify(sdk)};
export default defineTransform({
  name: 'cents',
  description: 'A decimal amount as whole cents.',
  options: { field: o.string().describe('The amount column.').required(), into: o.string().describe('Target column.').default('cents') },
  create: (opts) => ({
    row(row) { const v = row[opts.field]; row[opts.into] = v == null ? null : Math.round(Number(v) * 100); return row; },
    schema: (cols) => [...cols, { name: opts.into, type: 'integer' }],
  }),
});
`,
    );
    const yaml = `pipeline: tf-custom
connectors: [./cents.mjs]
source: { type: generator, rows: 3 }
sink: { type: jsonl, path: out.jsonl }
transforms:
  - cents: { field: amount }
  - select: [id, cents]
`;
    const pipeline = await openPipeline(parsePipelineText(yaml, 'p.yaml'), dir, await createRegistry(dir), new Redactor());
    expect(pipeline.config.transforms?.steps.map((s) => s.name)).toEqual(['cents', 'select']);
    await expect(
      openPipeline(
        parsePipelineText(yaml.replace('field: amount', 'feild: amount'), 'p.yaml'),
        dir,
        await createRegistry(dir),
        new Redactor(),
      ),
    ).rejects.toThrow(/transforms\[0\]\.cents\.feild \(line 6:14\): unknown option \(did you mean "field"\?\)/);
  });
});

describe('engines', () => {
  it('transforms run where the partition runs: in a child process, rebuilt from the task JSON', async () => {
    const dir = tempDir();
    const text = `pipeline: tf-child
source: { type: generator, rows: 200, partitions: 2 }
sink: { type: jsonl, path: out.jsonl }
transforms:
  - filter: id % 2 == 0
  - set: { part: $partition, run: $run_id }
  - select: [id, part, run]
`;
    const redactor = new Redactor();
    const pipeline = await openPipeline(parsePipelineText(text, join(dir, 'p.yaml')), dir, await createRegistry(dir), redactor);
    const bus = new EventBus();
    const logger = createLogger({ format: 'json', level: 'warn', redactor, destination: process.stderr });
    const summary = await runPipeline(pipeline, { bus, logger, redactor, cwd: dir, engine: childProcessEngine() });
    expect(summary.status).toBe('succeeded');
    expect(summary.totals).toMatchObject({ rows_read: 200, rows_written: 100, rows_filtered: 100 });
    expect(summary.transforms?.map((s) => [s.name, s.rows_in, s.rows_out])).toEqual([
      ['filter', 200, 100],
      ['set', 100, 100],
      ['select', 100, 100],
    ]);
    const out = readFileSync(join(dir, 'out.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(new Set(out.map((r) => r.part))).toEqual(new Set(['0', '1']));
    expect(out.every((r) => r.run === summary.run_id && Object.keys(r).length === 3)).toBe(true);
  });
});

describe('mask canary', () => {
  it('a raw value never reaches the sink, the dead letters, the logs or the summary', async () => {
    const email = fc
      .tuple(fc.stringMatching(/^[a-z][a-z0-9]{3,10}$/), fc.stringMatching(/^[a-z]{3,8}$/))
      .map(([user, host]) => `canary.${user}@${host}.example`);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(email, fc.boolean(), fc.boolean()), { minLength: 1, maxLength: 20 }), async (rows) => {
        const dir = tempDir();
        const lines = rows.map(([e, good, keep], i) => `${i},${good ? '12.50' : 'not-a-number'},${keep ? 'DE' : 'XX'},${e},"note ${i}"`);
        // and a malformed record the source itself rejects, before any step ran
        lines.push(`99,1.00,DE,${rows[0]?.[0]},note,one field too many`);
        writeFileSync(join(dir, 'in.csv'), `Row Id,Cost Total $,Country,E-Mail Address,Note\n${lines.join('\n')}\n`);
        const run = await runYaml(
          `pipeline: tf-canary
source: { type: csv, path: in.csv, columns: { "Cost Total $": string } }
sink: { type: jsonl, path: out.jsonl }
errors: { tolerance: all, dead_letter: { type: jsonl, path: dead.jsonl } }
transforms:
  - rename: { case: snake }
  - cast: { cost_total: decimal }
  - filter: country == "DE"
  - mask: { fields: [e_mail_address], method: hmac, key: "\${env:TF_MASK_KEY}" }
`,
          [],
          dir,
        );
        expect(run.summary.status).toBe('succeeded');
        const read = (f: string) => {
          try {
            return readFileSync(join(dir, f), 'utf8');
          } catch {
            return '';
          }
        };
        const outputs = [
          read('out.jsonl'),
          read('dead.jsonl'),
          run.logs,
          JSON.stringify(run.summary),
          formatSummary(run.summary, new Redactor()),
        ];
        for (const [e] of rows) for (const o of outputs) expect(o).not.toContain(e);
        for (const o of outputs) expect(o).not.toContain(KEY);
        const t = run.summary.totals;
        expect(t.rows_read).toBe(t.rows_written + t.rows_dead_lettered + t.rows_filtered);
        expect(t.rows_dead_lettered).toBe(rows.filter(([, good]) => !good).length + 1);
      }),
      { numRuns: 15 },
    );
  });
});
