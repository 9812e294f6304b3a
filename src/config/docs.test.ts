import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { type AnyConnector, defineConnector } from '../sdk/connector.js';
import { o, rules, validateOptions } from '../sdk/options.js';
import { allDocs, connectorDocs, pipelineDocs, undocumentedOptions } from './docs.js';
import { pipelineSpec } from './pipeline.js';
import { Registry } from './registry.js';

const PASSWORD_EXAMPLE = 'canary-example-pw';
const TOKEN_DEFAULT = 'canary-default-token';
const WEBHOOK_EXAMPLE = 'https://canary.example/hook';

const widget = defineConnector({
  name: 'widget',
  description: 'Writes widgets to a test server.',
  options: {
    host: o.host().describe('Server name or IP address.').default('127.0.0.1'),
    port: o.port().describe('TCP port.').default(5432),
    table: o.identifier().describe('Target table.').required().example('events'),
    password: o.secret().describe('Password of the user.').example(PASSWORD_EXAMPLE),
    mode: o
      .enum(['append', 'upsert'] as const)
      .describe('How rows are written.')
      .default('append'),
    timeout: o.duration({ min: 0, max: 600_000 }).describe('Request timeout.').default('30s'),
    token: o.secret().describe('API token.').default(TOKEN_DEFAULT).advanced(),
    buffer: o.bytes({ min: 1024 }).describe('Write buffer.').default('16MB').advanced(),
    hook: o.url().secret().describe('Called after each commit.').example(WEBHOOK_EXAMPLE),
    tls: o
      .object(
        {
          enabled: o.bool().describe('Use TLS.').default(false),
          ca_cert: o.path().describe('CA certificate file.'),
          key: o.secret().describe('Client key.'),
        },
        [rules.requiredWhen('ca_cert', 'enabled', true)],
      )
      .describe('TLS settings.'),
  },
  rules: [rules.requiredWhen('tls', 'mode', 'upsert')],
  sinkRules: [rules.custom('upsert needs a primary key on `table`', ['mode'], () => undefined)],
  sink: () => ({ writer: () => ({ write() {} }) }),
  exactlyOnce: true,
});

const gadget = defineConnector({
  name: 'gadget',
  description: 'Reads gadgets.',
  options: { count: o.int({ min: 0 }).describe('How many rows.').default(10) },
  source: () => ({ async *read() {} }),
});

const registry = new Registry([widget, gadget] as unknown as AnyConnector[]);

/** The table row of an option, split into its five cells. */
function rowOf(markdown: string, option: string): string[] {
  const line = markdown.split('\n').find((l) => l.startsWith(`| \`${option}\` |`));
  if (!line) throw new Error(`no row for ${option}`);
  return line
    .slice(2, -2)
    .split(/(?<!\\) \| /)
    .map((c) => c.trim());
}

/** Every table line has the same number of unescaped pipes as its header. */
function expectWellFormedTables(markdown: string) {
  const pipes = (l: string) => (l.match(/(?<!\\)\|/g) ?? []).length;
  let expected: number | undefined;
  for (const line of markdown.split('\n')) {
    if (!line.startsWith('|')) {
      expected = undefined;
      continue;
    }
    expected ??= pipes(line);
    expect(pipes(line), line).toBe(expected);
  }
}

describe('connectorDocs', () => {
  const md = connectorDocs(widget);

  it('starts with the name, description, roles and delivery', () => {
    expect(md.startsWith('# widget\n\nWrites widgets to a test server.\n')).toBe(true);
    expect(md).toContain('Supports: sink');
    expect(md).toContain('Exactly-once: yes');
    expect(connectorDocs(gadget)).toContain('Supports: source');
    expect(connectorDocs(gadget)).toContain('Exactly-once: no');
  });

  it('has one row per option with type, required, default and description', () => {
    expect(md).toContain('| option | type | required | default | description |');
    expect(rowOf(md, 'port')).toEqual(['`port`', 'int (1–65,535)', 'no', '`5432`', 'TCP port.']);
    expect(rowOf(md, 'table')).toEqual(['`table`', 'identifier', 'yes', '', 'Target table. Example: `events`.']);
    expect(rowOf(md, 'mode')).toEqual(['`mode`', 'enum: append, upsert', 'no', '`append`', 'How rows are written.']);
    expect(rowOf(md, 'timeout')).toEqual(['`timeout`', 'duration (≤ 10m)', 'no', '`30s`', 'Request timeout.']);
    expect(rowOf(md, 'buffer')[1]).toBe('bytes (≥ 1KB)');
    expect(rowOf(md, 'host')[3]).toBe('`127.0.0.1`');
    expectWellFormedTables(md);
  });

  it('lists advanced options in a second table', () => {
    const advanced = md.indexOf('## Advanced options');
    expect(advanced).toBeGreaterThan(md.indexOf('## Options'));
    expect(md.indexOf('| `buffer` |')).toBeGreaterThan(advanced);
    expect(md.indexOf('| `token` |')).toBeGreaterThan(advanced);
    expect(md.indexOf('| `port` |')).toBeLessThan(advanced);
  });

  it('marks secrets and never shows their defaults or examples', () => {
    expect(rowOf(md, 'password')).toEqual([
      '`password`',
      'secret',
      'no',
      '',
      'Password of the user. 🔒 secret — use a reference such as `${env:WIDGET_PASSWORD}`',
    ]);
    expect(rowOf(md, 'token')[3]).toBe('');
    expect(rowOf(md, 'hook')[1]).toBe('url (http, https), secret');
    for (const canary of [PASSWORD_EXAMPLE, TOKEN_DEFAULT, WEBHOOK_EXAMPLE, 'canary']) expect(md).not.toContain(canary);
  });

  it('documents nested objects in their own table', () => {
    expect(md).toContain('## `tls`');
    expect(rowOf(md, 'tls')[4]).toContain('See `tls` below.');
    expect(rowOf(md, 'tls.enabled')).toEqual(['`tls.enabled`', 'bool', 'no', '`false`', 'Use TLS.']);
    expect(rowOf(md, 'tls.key')[4]).toContain('`${env:WIDGET_TLS_KEY}`');
    expect(md).toContain('- `ca_cert` is required when `enabled` is true');
  });

  it('lists the cross-field rules, saying which role they apply to', () => {
    const rulesAt = md.indexOf('## Rules');
    expect(rulesAt).toBeGreaterThan(md.indexOf('## Advanced options'));
    expect(md.slice(rulesAt)).toContain('- `tls` is required when `mode` is "upsert"');
    expect(md.slice(rulesAt)).toContain('- As a sink: upsert needs a primary key on `table`');
  });

  it('ends with an example that the validator accepts, secrets as references', () => {
    const match = /## Examples?\n\nAs a sink:\n\n```yaml\n([\s\S]*?)```/.exec(md);
    expect(match).not.toBeNull();
    const example = parse(match?.[1] ?? '') as { sink: Record<string, unknown> };
    expect(example).toMatchObject({ pipeline: 'generator-to-widget', source: { type: 'generator' } });
    expect(example.sink).toEqual({
      type: 'widget',
      table: 'events',
      password: '${env:WIDGET_PASSWORD}',
      hook: '${env:WIDGET_HOOK}',
    });
    const { hook: _, ...literal } = example.sink;
    const r = validateOptions(widget.options, literal, 'sink', widget.rules, ['type']);
    expect(r.issues).toEqual([]);
    expect(md.indexOf('## Example')).toBeGreaterThan(md.indexOf('## Rules'));
  });

  it('shows required options without examples as placeholders', () => {
    const c = defineConnector({
      name: 'bare',
      description: 'Bare.',
      options: {
        count: o.int({ min: 3 }).describe('Count.').required(),
        dir: o.path().describe('Dir.').required(),
        kind: o
          .enum(['x', 'y'] as const)
          .describe('Kind.')
          .required(),
      },
      source: () => ({ async *read() {} }),
    });
    const example = parse(/```yaml\n([\s\S]*?)```/.exec(connectorDocs(c))?.[1] ?? '');
    expect(example).toEqual({
      pipeline: 'bare-to-jsonl',
      source: { type: 'bare', count: 3, dir: 'data/dir', kind: 'x' },
      sink: { type: 'jsonl', path: 'out/bare.jsonl' },
    });
    expect(validateOptions(c.options, example.source, 'source', [], ['type']).issues).toEqual([]);
  });
});

describe('pipelineDocs', () => {
  const md = pipelineDocs(registry);

  it('documents the top-level sections and their nested options as sub-tables', () => {
    expect(md.startsWith('# Pipeline file')).toBe(true);
    expect(rowOf(md, 'pipeline')[2]).toBe('yes');
    expect(rowOf(md, 'source')).toEqual(expect.arrayContaining(['`source`', 'source connector', 'yes']));
    expect(rowOf(md, 'source')[4]).toContain('Types: `gadget`.');
    expect(rowOf(md, 'sink')[4]).toContain('Types: `widget`.');
    expect(md).toContain('## `retry`');
    expect(rowOf(md, 'retry.max_attempts')).toEqual(expect.arrayContaining(['`retry.max_attempts`', 'int (1–100)', 'no', '`5`']));
    expect(rowOf(md, 'errors.dead_letter')[1]).toBe('sink connector');
    expect(md).toContain('- `dead_letter` is required when `tolerance` is "all"');
    expect(rowOf(md, 'alerts[].when')[2]).toBe('yes');
    expect(md).toContain('### `alerts[].notify`');
    expect(rowOf(md, 'alerts[].notify.webhook')[4]).toContain('🔒 secret');
    expect(rowOf(md, 'secrets.*.provider')[1]).toBe('enum: env, file, dir');
    expect(md).not.toContain('undocumented');
    expectWellFormedTables(md);
  });
});

describe('allDocs', () => {
  it('joins the pipeline reference, a connector index and every connector', () => {
    const md = allDocs(registry);
    expect(md).toContain('# Pipeline file');
    expect(md).toContain('| `gadget` | yes | no | no | no | built-in | Reads gadgets. |');
    expect(md).toContain('| `widget` | no | yes | yes | no | built-in | Writes widgets to a test server. |');
    expect(md).toContain('\n# gadget\n');
    expect(md).toContain('\n# widget\n');
    expect(md).not.toContain('canary');
    expectWellFormedTables(md);
  });
});

describe('undocumentedOptions', () => {
  it('finds options without a description at any depth', () => {
    const spec = {
      a: o.int(),
      b: o.int().describe('B.'),
      c: o.object({ d: o.bool(), e: o.bool().describe('E.') }).describe('C.'),
      f: o.list(o.object({ g: o.string() })).describe('F.'),
      h: o.map(o.object({ i: o.string() })),
      j: o.list(o.string()).describe('Items need no description of their own.'),
    };
    expect(undocumentedOptions(spec)).toEqual(['a', 'c.d', 'f[].g', 'h', 'h.*.i']);
    expect(undocumentedOptions({ x: o.int() }, 'sink')).toEqual(['sink.x']);
  });

  it('finds none in the pipeline file or the test connectors', () => {
    expect(undocumentedOptions(pipelineSpec(new Registry()))).toEqual([]);
    expect(undocumentedOptions(widget.options)).toEqual([]);
  });
});
