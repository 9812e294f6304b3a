/** `filter`: keeps the rows for which an expression is true (null and false leave the row out). */

import { RowError } from '../sdk/errors.js';
import { o } from '../sdk/options.js';
import { defineTransform, type Transform } from '../sdk/transform.js';
import type { Row } from '../sdk/types.js';
import { compileOption } from './compile.js';
import { encodedForm } from './encoded.js';
import { typeOf } from './expr.js';
import { requireColumns } from './step.js';

const expression = () => o.string({ minLength: 1, maxLength: 4096 });

export default defineTransform({
  name: 'filter',
  description: 'Keeps the rows for which an expression is true; a row where it is false or null is left out (counted as filtered).',
  options: {
    expression: expression()
      .describe('The condition, e.g. `amount > 0 and country in ["DE", "FR"]` (see the expression language below).')
      .required()
      .example('amount > 0'),
  },
  shorthand: {
    of: expression().describe('`filter: amount > 0` is short for `filter: { expression: amount > 0 }`.'),
    expand: (v) => ({ expression: v }),
  },
  create(opts) {
    const expr = compileOption('expression', opts.expression);
    const test = expr.evaluate;
    const step: Transform = {
      row(row: Row, ctx) {
        const v = test(row, ctx);
        if (v === true) return row;
        if (v === false || v === null || v === undefined) return null;
        throw new RowError(
          `filter ${JSON.stringify(opts.expression.slice(0, 60))}: gave ${typeOf(v)}, not true or false; write a comparison such as x > 0`,
          {
            code: 'expression_error',
          },
        );
      },
      schema(input) {
        requireColumns('filter', 'expression', expr.fields, input);
        return input;
      },
    };
    return encodedForm(step, { kind: 'filter', fields: expr.fields });
  },
});
