/**
 * `weir init`: lists the templates, writes each one so that `weir validate` passes, keeps
 * an existing file unless --force, and names a misspelt template. Needs `npm run build`.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../test/helpers/cli.js';
import { TEMPLATES } from './templates/catalog.js';

describe('weir init', () => {
  it('alone lists every template', async () => {
    const r = await runCli(['init']);
    expect(r.code, r.stderr).toBe(0);
    for (const t of TEMPLATES) expect(r.stdout).toContain(t.name);
  });

  it.each(TEMPLATES.map((t) => t.name))('%s writes a pipeline that weir validate passes', async (name) => {
    const dir = tempDir();
    const made = await runCli(['init', name], { cwd: dir, env: { PGPASSWORD: undefined, API_TOKEN: undefined, NATS_TOKEN: undefined } });
    expect(made.code, made.stderr).toBe(0);
    const file = join(dir, `${name}.yaml`);
    expect(made.stdout).toContain(`wrote ${name}.yaml`);
    const checked = await runCli(['validate', file], { env: { PGPASSWORD: undefined, API_TOKEN: undefined, NATS_TOKEN: undefined } });
    expect(checked.code, checked.stderr).toBe(0);
    expect(checked.stdout).toContain('is valid');
  });

  it('takes the pipeline id from the file name and creates its directory', async () => {
    const dir = tempDir();
    const r = await runCli(['init', 'csv-to-sqlite', 'pipelines/orders.yaml'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(dir, 'pipelines', 'orders.yaml'), 'utf8')).toMatch(/^pipeline: orders /m);
  });

  it('keeps an existing file unless --force', async () => {
    const dir = tempDir();
    const file = join(dir, 'mine.yaml');
    writeFileSync(file, 'my own pipeline\n');
    const refused = await runCli(['init', 'csv-to-postgres', file]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`${file} already exists; pass --force to overwrite it`);
    expect(readFileSync(file, 'utf8')).toBe('my own pipeline\n');
    const forced = await runCli(['init', 'csv-to-postgres', file, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(file, 'utf8')).toContain('type: postgres');
  });

  it('names a misspelt template with a did-you-mean, and writes nothing', async () => {
    const dir = tempDir();
    const r = await runCli(['init', 'csv-to-postgre'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no template named "csv-to-postgre" (did you mean "csv-to-postgres"?); run weir init for the list');
    expect(existsSync(join(dir, 'csv-to-postgre.yaml'))).toBe(false);
  });
});
