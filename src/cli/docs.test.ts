/** `weir docs` for a connector of one's own: the page the built-ins get, generated from the module's option spec. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli } from '../../test/helpers/cli.js';
import { connectorDocs } from '../config/docs.js';
import type { AnyConnector } from '../sdk/connector.js';

const MODULE = './examples/api-connector/tickets-connector.mjs';

describe('weir docs --connector MODULE', () => {
  it("prints the module's connector page: option table with types, defaults, secrets marked, a pipeline that validates", async () => {
    const r = await runCli(['docs', '--connector', MODULE]);
    expect(r.code, r.stderr).toBe(0);
    const tickets = ((await import(join(ROOT, MODULE))) as { default: AnyConnector }).default;
    expect(r.stdout).toBe(connectorDocs(tickets, { module: MODULE }));
    expect(r.stdout).toContain('| `base_url` | url (http, https) | yes |');
    expect(r.stdout).toContain('| `page_size` | int (1–1,000) | no | `100` |');
    expect(r.stdout).toMatch(/\| `token` \| secret \| yes \|.*🔒 secret/);
    expect(r.stderr).toBe('');
    // the example pipeline loads the module and validates
    const yaml = (/```yaml\n([\s\S]*?)```/.exec(r.stdout)?.[1] ?? '').replace(MODULE, join(ROOT, MODULE));
    expect(yaml).toContain('type: tickets');
    const dir = mkdtempSync(join(tmpdir(), 'weir-docs-'));
    writeFileSync(join(dir, 'pipeline.yaml'), yaml);
    const v = await runCli(['validate', join(dir, 'pipeline.yaml')], { env: { TICKETS_TOKEN: 'x' } });
    expect(v.code, v.stdout + v.stderr).toBe(0);
  });

  it('the same page by connector name, and by the module path as the argument', async () => {
    const [byName, byPath] = await Promise.all([
      runCli(['docs', 'tickets', '--connector', MODULE]),
      runCli(['docs', 'tickets-connector.mjs'], { cwd: join(ROOT, 'examples/api-connector') }),
    ]);
    expect(byName.code, byName.stderr).toBe(0);
    expect(byPath.code, byPath.stderr).toBe(0);
    expect(byName.stdout).toContain('# tickets\n');
    expect(byPath.stdout).toBe(byName.stdout.replace(MODULE, './tickets-connector.mjs'));
  });

  it('a module that cannot be loaded: exit 2 naming it and the fix; an undocumented option: a warning with the fix', async () => {
    const missing = await runCli(['docs', './no-such-connector.mjs']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot load connector module "./no-such-connector.mjs"');
    expect(missing.stderr).toContain('exports defineConnector');
    const undocumented = await runCli(['docs', '--connector', './test/conformance/fixtures/undocumented-connector.mjs']);
    expect(undocumented.code).toBe(0);
    expect(undocumented.stderr).toContain("warning: connector undocumented: option size has no description; add .describe('…')");
  });
});
