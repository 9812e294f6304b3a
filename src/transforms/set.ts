/**
 * `set`: new or replaced columns from expressions, e.g. the run's metadata
 * (`$run_id`, `$pipeline`, `$partition`, `$load_time`). Every expression sees the
 * row as it came into the step.
 */
import { o } from '../sdk/options.js';
import { defineTransform } from '../sdk/transform.js';
import type { Row } from '../sdk/types.js';
import { compileOption } from './compile.js';
import type { Compiled } from './expr.js';
import { requireColumns } from './step.js';

const fieldsMap = () => o.map(o.string({ minLength: 1, maxLength: 4096 }));

export default defineTransform({
  name: 'set',
  description:
    "Sets columns (new or replaced) from expressions; `$run_id`, `$pipeline`, `$partition`, `$attempt` and `$load_time` give the run's metadata. Text constants are quoted: `source: '\"crm\"'`.",
  options: {
    fields: fieldsMap()
      .describe('Column → expression. Each expression sees the row as it came into this step.')
      .required()
      .example({ amount_cents: 'round(amount * 100)', loaded_at: '$load_time' }),
  },
  shorthand: {
    of: fieldsMap().describe('`set: { x: expr }` is short for `set: { fields: { x: expr } }`.'),
    expand: (v) => ({ fields: v }),
  },
  create(opts) {
    const entries = Object.entries(opts.fields).map(([name, source]) => [name, compileOption(`fields.${name}`, source)] as const);
    const names = entries.map(([n]) => n);
    const evals: Compiled[] = entries.map(([, e]) => e.evaluate);
    const values: unknown[] = new Array(entries.length);
    return {
      row(row: Row, ctx) {
        for (let i = 0; i < evals.length; i++) values[i] = (evals[i] as Compiled)(row, ctx);
        for (let i = 0; i < names.length; i++) row[names[i] as string] = values[i];
        return row;
      },
      schema(input) {
        for (const [name, e] of entries) requireColumns('set', `fields.${name}`, e.fields, input);
        const types = new Map(input.map((c) => [c.name, c.type]));
        const out = input.map((c) => ({ ...c }));
        for (const [name, e] of entries) {
          const type = e.infer(types) ?? 'string';
          const col = { name, type, nullable: true };
          const i = out.findIndex((c) => c.name === name);
          if (i >= 0) out[i] = col;
          else out.push(col);
        }
        return out;
      },
    };
  },
});
