/** `select` keeps only the columns named (in that order); `drop` leaves the named ones out. */
import { o } from '../sdk/options.js';
import { defineTransform, type Transform } from '../sdk/transform.js';
import { emptyRow, type Row } from '../sdk/types.js';
import { encodedForm } from './encoded.js';
import { requireColumns } from './step.js';

const fieldList = () => o.list(o.string({ minLength: 1, maxLength: 1024 }), { min: 1, max: 10_000 });

export const select = defineTransform({
  name: 'select',
  description: 'Keeps only the columns named, in that order; the others are left out.',
  options: { fields: fieldList().describe('The columns to keep, in the order the sink gets them.').required().example(['id', 'email']) },
  shorthand: { of: fieldList().describe('`select: [a, b]` is short for `select: { fields: [a, b] }`.'), expand: (v) => ({ fields: v }) },
  create(opts) {
    const fields = [...new Set(opts.fields)];
    const columns = (names: readonly string[]) => {
      const kept = fields.filter((f) => names.includes(f));
      return { names: kept, from: kept.map((f) => names.indexOf(f)) };
    };
    const step: Transform = {
      row(row: Row): Row {
        const out = emptyRow();
        for (const f of fields) if (Object.hasOwn(row, f)) out[f] = row[f];
        return out;
      },
      schema(input) {
        requireColumns('select', 'fields', fields, input);
        const byName = new Map(input.map((c) => [c.name, c]));
        return fields.map((f) => byName.get(f) as NonNullable<ReturnType<typeof byName.get>>);
      },
    };
    return encodedForm(step, { kind: 'columns', columns });
  },
});

export const drop = defineTransform({
  name: 'drop',
  description: 'Leaves the named columns out; the others pass as they are.',
  options: { fields: fieldList().describe('The columns to leave out.').required().example(['internal_note']) },
  shorthand: { of: fieldList().describe('`drop: [a, b]` is short for `drop: { fields: [a, b] }`.'), expand: (v) => ({ fields: v }) },
  create(opts) {
    const dropped = new Set(opts.fields);
    const columns = (names: readonly string[]) => {
      const from = names.flatMap((n, i) => (dropped.has(n) ? [] : [i]));
      return { names: from.map((i) => names[i] as string), from };
    };
    const step: Transform = {
      row(row: Row): Row {
        const out = emptyRow();
        for (const key in row) if (!dropped.has(key)) out[key] = row[key];
        return out;
      },
      schema(input) {
        requireColumns('drop', 'fields', dropped, input);
        return input.filter((c) => !dropped.has(c.name));
      },
    };
    return encodedForm(step, { kind: 'columns', columns });
  },
});
