/**
 * `mask`: replaces values so the raw value never reaches the sink or any output —
 * by a fixed text, by its last N characters, or by a keyed HMAC-SHA256 token (the
 * same input gives the same token under the same key, so joins still work; the key
 * is a secret reference).
 */
import { createHmac } from 'node:crypto';
import { o, rules } from '../sdk/options.js';
import { defineTransform } from '../sdk/transform.js';
import type { Row } from '../sdk/types.js';
import { stringOf } from './expr.js';
import { requireColumns, StepOptionError } from './step.js';

const METHODS = ['fixed', 'last', 'hmac'] as const;
export const MIN_KEY_LENGTH = 16;

export default defineTransform({
  name: 'mask',
  description: 'Replaces the values of columns by a fixed text, their last N characters, or a keyed HMAC-SHA256 token; null stays null.',
  options: {
    fields: o
      .list(o.string({ minLength: 1, maxLength: 1024 }), { min: 1 })
      .describe('The columns to mask.')
      .required()
      .example(['email']),
    method: o
      .enum(METHODS)
      .describe(
        '`fixed`: every value becomes `text`. `last`: all but the last `keep` characters (never more than half of a value) become `*`. `hmac`: the hex HMAC-SHA256 of the value under `key` (the same value gives the same token).',
      )
      .default('fixed'),
    text: o.string({ maxLength: 256 }).describe('`fixed`: the text every value becomes.').default('****'),
    keep: o.int({ min: 0, max: 64 }).describe('`last`: how many characters at the end stay as they are.').default(4),
    key: o
      .secret()
      .describe(
        `\`hmac\`: the key, at least ${MIN_KEY_LENGTH} characters (e.g. \`openssl rand -hex 32\`). Tokens are stable as long as the key is.`,
      ),
  },
  rules: [rules.requiredWhen('key', 'method', 'hmac')],
  create(opts) {
    const fields = [...new Set(opts.fields)];
    let replace: (v: string) => string;
    if (opts.method === 'hmac') {
      const key = opts.key as string;
      if (key.length < MIN_KEY_LENGTH)
        throw new StepOptionError(
          'key',
          `must be at least ${MIN_KEY_LENGTH} characters long; use a random secret such as \`openssl rand -hex 32\``,
        );
      replace = (v) => createHmac('sha256', key).update(v).digest('hex');
    } else if (opts.method === 'last') {
      const keep = opts.keep;
      replace = (v) => {
        const chars = [...v];
        const shown = Math.min(keep, Math.floor(chars.length / 2)); // never most of a short value
        return '*'.repeat(chars.length - shown) + chars.slice(chars.length - shown).join('');
      };
    } else {
      const text = opts.text;
      replace = () => text;
    }
    return {
      masks: fields,
      row(row: Row) {
        for (const f of fields) {
          if (!Object.hasOwn(row, f)) continue;
          const v = row[f];
          if (v === null || v === undefined) continue;
          row[f] = replace(stringOf(v) ?? '');
        }
        return row;
      },
      schema(input) {
        requireColumns('mask', 'fields', fields, input);
        const masked = new Set(fields);
        return input.map((c) => (masked.has(c.name) ? { name: c.name, type: 'string', nullable: c.nullable ?? true } : c));
      },
    };
  },
});
