/**
 * Secret references through the CLI: `weir validate` names a missing variable, file or
 * key by its reference (never a value) and exits 2; a secret file open to others warns.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { newCanary, newScenario, removeScenarios, writePipeline } from './harness.js';

afterAll(removeScenarios);

describe('weir validate and secret references', () => {
  it('reports a missing env var, file, key and scope key by the reference, exit 2, all at once', async () => {
    const c = newCanary();
    const s = newScenario();
    writeFileSync(join(s.secrets, 'db.json'), JSON.stringify({ password: c.value }), { mode: 0o600 });
    const file = writePipeline(s, {
      pipeline: 'refs',
      secrets: { vault: { provider: 'file', path: 'secrets/db.json' } },
      source: { type: 'generator', rows: '${env:WEIR_TEST_MISSING_ROWS}' },
      sink: {
        type: 'postgres',
        database: 'test',
        table: 't',
        password: '${file:secrets/db.json#pasword}',
        user: '${file:secrets/nope.txt}',
        application_name: '${secret:vault/app_name}',
      },
    });
    const r = await runCli(['validate', file], { cwd: s.work, env: { WEIR_TEST_MISSING_ROWS: undefined } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('source.rows');
    expect(r.stderr).toContain('${env:WEIR_TEST_MISSING_ROWS}: environment variable WEIR_TEST_MISSING_ROWS is not set');
    expect(r.stderr).toContain('sink.password');
    expect(r.stderr).toMatch(/\$\{file:secrets\/db\.json#pasword\}: file .*db\.json has no key "pasword" \(did you mean "password"\?\)/);
    expect(r.stderr).toMatch(/\$\{file:secrets\/nope\.txt\}: file .*nope\.txt does not exist/);
    expect(r.stderr).toContain('${secret:vault/app_name}: scope "vault" has no key "app_name"');
    expect(`${r.stdout}${r.stderr}`).not.toContain(c.core);
  });

  it('warns about a secret file readable by others and still validates', async () => {
    const c = newCanary();
    const s = newScenario();
    writeFileSync(join(s.secrets, 'pw'), c.value, { mode: 0o644 });
    const file = writePipeline(s, {
      pipeline: 'refs',
      source: { type: 'generator' },
      sink: { type: 'postgres', database: 'test', table: 't', password: '${file:secrets/pw}' },
    });
    const r = await runCli(['validate', file], { cwd: s.work });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: secret file .*pw is readable by group or others \(mode 644\); run chmod 600/);
    expect(`${r.stdout}${r.stderr}`).not.toContain(c.core);
  });

  it('refuses a shell-style ${NAME} instead of passing it through as a literal password', async () => {
    const s = newScenario();
    const file = writePipeline(s, {
      pipeline: 'refs',
      source: { type: 'generator' },
      sink: { type: 'postgres', database: 'test', table: 't', password: '${PGPASSWORD}' },
    });
    const r = await runCli(['validate', file], { cwd: s.work });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('${PGPASSWORD} is not a reference; write ${env:PGPASSWORD}');
  });
});
