import { describe, expect, it } from 'vitest';
import { RowError } from '../../sdk/errors.js';
import { compileTemplate } from './template.js';

describe('key templates with names of Object.prototype properties', () => {
  for (const name of ['toString', 'constructor', 'hasOwnProperty', '__proto__']) {
    it(`{${name}} reads the row's own field, and a row without it has no value`, () => {
      const t = compileTemplate(`k:{${name}}`);
      expect(() => t.render({ id: 1 })).toThrow(RowError);
      expect(() => t.render({ id: 1 })).toThrow(/no value for field/);
      expect(() => t.check({ id: 1 })).toThrow(/no value for field/);
      const row = JSON.parse(`{${JSON.stringify(name)}: "v"}`);
      expect(t.render(row)).toBe('k:v');
    });
  }
});
