import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { undocumentedOptions } from '../../src/config/docs.js';
import { generatedDocs } from '../../src/config/generated-docs.js';
import { builtinConnectors } from '../../src/connectors/index.js';
import { ROOT } from '../helpers/cli.js';

describe('generated docs', () => {
  it('every option of every built-in connector has a description', () => {
    for (const c of builtinConnectors) expect(undocumentedOptions(c.options), c.name).toEqual([]);
  });

  it('docs/ is current (run `npm run docs` after changing a spec)', async () => {
    const files = await generatedDocs();
    for (const [path, text] of Object.entries(files)) {
      const file = join(ROOT, 'docs', path);
      expect(existsSync(file), `${path} is missing: run npm run docs`).toBe(true);
      expect(readFileSync(file, 'utf8'), `${path} is stale: run npm run docs`).toBe(text);
    }
    const onDisk = readdirSync(join(ROOT, 'docs', 'connectors')).map((f) => `connectors/${f}`);
    expect(onDisk.sort()).toEqual(
      Object.keys(files)
        .filter((f) => f.startsWith('connectors/'))
        .sort(),
    );
  });
});
