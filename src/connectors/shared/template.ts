/**
 * Templates of row fields — a Redis key, a NATS subject, an AMQP routing key, an
 * MQTT topic — such as `user:{id}` or `order:{region}:{order_id}`: `{field}` is replaced by the row's value of that field; `{{` and `}}` are literal braces.
 * Compiled once (planner and worker); rendering is a string concatenation per row.
 */
import { RowError } from '../../sdk/errors.js';
import { type Row, rowValue } from '../../sdk/types.js';

/** A date as ISO 8601 text; a {@link RowError} for an invalid date (toISOString would throw a RangeError). */
export function dateText(d: Date, field: string): string {
  if (Number.isNaN(d.getTime())) throw new RowError(`field ${field} holds an invalid date`, { code: 'invalid_date' });
  return d.toISOString();
}

export interface KeyTemplate {
  readonly source: string;
  /** The fields the template reads, in order of appearance. */
  readonly fields: readonly string[];
  /** The key for one row. Throws a {@link RowError} when a field is missing, null or not a scalar. */
  render(row: Row): string;
  /** Throws the {@link RowError} `render` would, without building the key (a sink checks a whole batch before sending any of it). */
  check(row: Row): void;
}

/** Parses a template; throws an Error whose message says what is wrong (used by option validation). */
export function compileTemplate(template: string, option = 'key'): KeyTemplate {
  const literals: string[] = [];
  const fields: string[] = [];
  let text = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i] as string;
    if (c === '{' && template[i + 1] === '{') {
      text += '{';
      i++;
    } else if (c === '}' && template[i + 1] === '}') {
      text += '}';
      i++;
    } else if (c === '{') {
      const end = template.indexOf('}', i + 1);
      const name = end < 0 ? '' : template.slice(i + 1, end).trim();
      if (end < 0)
        throw new Error(`${option} template ${JSON.stringify(template)} has a "{" without its "}"; write {{ for a literal brace`);
      if (!name || name.includes('{'))
        throw new Error(`${option} template ${JSON.stringify(template)} has an empty or nested {}; write {field_name}`);
      literals.push(text);
      fields.push(name);
      text = '';
      i = end;
    } else if (c === '}') {
      throw new Error(`${option} template ${JSON.stringify(template)} has a "}" without its "{"; write }} for a literal brace`);
    } else text += c;
  }
  literals.push(text);
  const n = fields.length;
  return {
    source: template,
    fields,
    render(row: Row): string {
      let out = literals[0] as string;
      for (let i = 0; i < n; i++) out += keyPart(row, fields[i] as string, template) + (literals[i + 1] as string);
      return out;
    },
    check(row: Row): void {
      for (let i = 0; i < n; i++) {
        const field = fields[i] as string;
        const v = rowValue(row, field);
        const type = typeof v;
        if (type !== 'string' && type !== 'number' && type !== 'bigint' && type !== 'boolean') keyPart(row, field, template);
      }
    },
  };
}

function keyPart(row: Row, field: string, template: string): string {
  const v = rowValue(row, field);
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(v);
    default:
      if (v instanceof Date) return dateText(v, field);
      if (v === null || v === undefined)
        throw new RowError(
          `row has no value for field ${field} of the key template ${JSON.stringify(template)}; every row needs it (or fix the template)`,
          {
            code: 'missing_key_field',
          },
        );
      throw new RowError(
        `field ${field} of the key template ${JSON.stringify(template)} holds ${Array.isArray(v) ? 'a list' : 'an object'}; key fields must be text, numbers or booleans`,
        {
          code: 'invalid_key_field',
        },
      );
  }
}
