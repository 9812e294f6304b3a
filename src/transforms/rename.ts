/** `rename`: columns renamed by a map, or every column to snake_case / lower / upper case. */
import { RowError } from '../sdk/errors.js';
import { o } from '../sdk/options.js';
import { defineTransform, type Transform } from '../sdk/transform.js';
import { emptyRow, type Row } from '../sdk/types.js';
import { encodedForm } from './encoded.js';
import { StepOptionError } from './step.js';

const CASES = ['snake', 'lower', 'upper'] as const;
type Case = (typeof CASES)[number];

/**
 * `Cost Total $` → `cost_total`, `orderID` → `order_id`, `HTTPServer` → `http_server`,
 * `E-mail Address` → `e_mail_address`. A name with no letter or digit stays as it is.
 */
export function snakeCase(name: string): string {
  const out = name
    .replace(/([\p{Ll}\p{N}])(\p{Lu})/gu, '$1_$2')
    .replace(/(\p{Lu})(\p{Lu}\p{Ll})/gu, '$1_$2')
    .replace(/[^\p{L}\p{N}]+/gu, '_')
    .replace(/^_+|_+$/g, '')
    .toLowerCase();
  return out === '' ? name : out;
}

const convert = (c: Case | undefined, name: string) =>
  c === 'snake' ? snakeCase(name) : c === 'lower' ? name.toLowerCase() : c === 'upper' ? name.toUpperCase() : name;

const MEMO_LIMIT = 10_000;

export default defineTransform({
  name: 'rename',
  description: 'Renames columns: by a map of old name to new name, and/or every other column to a case (snake_case, lower, upper).',
  options: {
    fields: o
      .map(o.string({ minLength: 1, maxLength: 1024 }))
      .describe('Old name → new name. Names are as the rows carry them at this step (any text: quote it in YAML).')
      .example({ 'Cost Total $': 'amount' }),
    case: o
      .enum(CASES)
      .describe('`snake`: `Cost Total $` → `cost_total`, `orderID` → `order_id`. Applies to every column that `fields` does not rename.'),
  },
  shorthand: {
    of: o
      .map(o.string({ minLength: 1, maxLength: 1024 }))
      .describe('`rename: { old: new }` is short for `rename: { fields: { old: new } }`.'),
    expand: (v) => ({ fields: v }),
  },
  create(opts) {
    const fields = new Map(Object.entries(opts.fields ?? {}));
    if (fields.size === 0 && !opts.case) throw new StepOptionError('fields', 'rename needs fields (old: new) or case: snake');
    const targets = new Map<string, string>();
    for (const [from, to] of fields) {
      const other = targets.get(to);
      if (other !== undefined)
        throw new StepOptionError(
          `fields.${from}`,
          `${JSON.stringify(other)} and ${JSON.stringify(from)} would both become ${JSON.stringify(to)}; give each its own name`,
        );
      targets.set(to, from);
    }
    const memo = new Map<string, string>();
    const nameOf = (name: string): string => {
      const given = fields.get(name);
      if (given !== undefined) return given;
      let out = memo.get(name);
      if (out === undefined) {
        out = convert(opts.case, name);
        if (memo.size < MEMO_LIMIT) memo.set(name, out);
      }
      return out;
    };
    const columns = (names: readonly string[]) => {
      const renamed = names.map(nameOf);
      return new Set(renamed).size === renamed.length ? { names: renamed, from: names.map((_, i) => i) } : undefined;
    };
    const step: Transform = {
      row(row: Row): Row {
        const out = emptyRow();
        for (const key in row) {
          const to = nameOf(key);
          if (Object.hasOwn(out, to))
            throw new RowError(
              `rename: two columns would both be named ${JSON.stringify(to)} (one of them ${JSON.stringify(key)}); rename one of them in fields`,
              {
                code: 'rename_collision',
              },
            );
          out[to] = row[key];
        }
        return out;
      },
      schema(input) {
        const seen = new Map<string, string>();
        return input.map((c) => {
          const to = nameOf(c.name);
          const other = seen.get(to);
          if (other !== undefined)
            throw new StepOptionError(
              'fields',
              `columns ${JSON.stringify(other)} and ${JSON.stringify(c.name)} would both be named ${JSON.stringify(to)}; rename one of them in fields`,
            );
          seen.set(to, c.name);
          return { ...c, name: to };
        });
      },
    };
    return encodedForm(step, { kind: 'columns', columns });
  },
});
