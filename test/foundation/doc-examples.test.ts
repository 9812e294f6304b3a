/**
 * Docs whose examples run: every ```yaml block in README.md, docs/ and examples/ is a
 * pipeline that `weir validate` accepts. A block that is a fragment (no `pipeline`, no
 * `source` or no `sink`) is completed with a generator or a JSON Lines file first, so
 * what it shows is still checked; a block that starts with `# PATH` of a file in the
 * repository must be that file, and is validated where it lives. References are
 * resolved as a user would have them: every `${env:NAME}` is set, every relative
 * `${file:PATH}` exists.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parsePipelineText } from '../../src/config/load.js';
import { createRegistry, openPipeline } from '../../src/config/open.js';
import { ConfigError } from '../../src/sdk/errors.js';
import { Redactor } from '../../src/secrets/redactor.js';
import { ROOT, tempDir } from '../helpers/cli.js';

function markdownFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.name === 'node_modules' || e.name.startsWith('.')) return [];
    const path = join(dir, e.name);
    return e.isDirectory() ? markdownFiles(path) : e.name.endsWith('.md') ? [path] : [];
  });
}

const files = [join(ROOT, 'README.md'), ...markdownFiles(join(ROOT, 'docs')), ...markdownFiles(join(ROOT, 'examples'))];
const blocks = files.flatMap((file) => {
  const md = readFileSync(file, 'utf8');
  return [...md.matchAll(/^```yaml\n([\s\S]*?)^```/gm)].map((m, i) => ({
    name: `${relative(ROOT, file)} #${i + 1}`,
    text: m[1] as string,
    // the module a block loads (`connectors: [./x.mjs]`) is the JavaScript block shown before it
    module: [...md.slice(0, m.index).matchAll(/^```js\n([\s\S]*?)^```/gm)].pop()?.[1],
  }));
});

/** A value for `${env:NAME}` as a user would have it: a URL of the right scheme for `…URL`, else text long enough for any key. */
function exampleValue(name: string): string {
  if (!/URL$/.test(name)) return 'doc-example-value-0123456789';
  const scheme = [
    ['AMQP', 'amqp'],
    ['RABBIT', 'amqp'],
    ['NATS', 'nats'],
    ['MQTT', 'mqtt'],
    ['REDIS', 'redis'],
    ['POSTGRES', 'postgres'],
    ['MYSQL', 'mysql'],
  ].find(([part]) => name.includes(part as string))?.[1];
  return `${scheme ?? 'https'}://doc.example.com/weir`;
}

/** The block as a whole pipeline, and where it is validated from. */
function asPipeline(block: string, module?: string): { text: string; baseDir: string } {
  let text = block;
  const named = /^# (\S+\.ya?ml)\s*$/m.exec(text.split('\n')[0] ?? '');
  if (named) {
    const path = join(ROOT, named[1] as string);
    expect(parse(text), `the block shows ${named[1]} as it is`).toEqual(parse(readFileSync(path, 'utf8')));
    return { text: readFileSync(path, 'utf8'), baseDir: dirname(path) };
  }
  const doc = (parse(text) ?? {}) as Record<string, unknown>;
  const dir = tempDir('weir-doc-');
  for (const m of text.matchAll(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)/g)) process.env[m[1] as string] ??= exampleValue(m[1] as string);
  for (const m of ((doc.connectors ?? []) as unknown[]).filter((c): c is string => typeof c === 'string' && c.startsWith('./'))) {
    expect(module, `${m} is shown in a js block before the example`).toBeDefined();
    writeFileSync(join(dir, m), (module as string).replaceAll("'weir/sdk'", `'${join(ROOT, 'dist', 'sdk', 'index.js')}'`));
  }
  // files an example names at absolute paths (a CA certificate, a creds file) are read from the temporary folder instead
  text = text.replace(/^(\s*[a-z_]*(?:cert|key|file|creds)[a-z_]*:\s*)(\/[^\s#,}]+)/gm, (_m, head: string, abs: string) => {
    const local = join(dir, 'files', abs.replace(/\//g, '_'));
    mkdirSync(dirname(local), { recursive: true });
    writeFileSync(local, 'doc-example');
    return `${head}${local}`;
  });
  // secret providers that read files at absolute paths read them from the temporary folder instead
  const secrets = (doc.secrets ?? {}) as Record<string, { provider?: string; path?: string }>;
  for (const [scope, p] of Object.entries(secrets)) {
    if (!p.path?.startsWith('/') || (p.provider !== 'file' && p.provider !== 'dir')) continue;
    const local = join(dir, 'secrets', scope);
    const keys = [...text.matchAll(new RegExp(`\\$\\{secret:${scope}/([^}]+)\\}`, 'g'))].map((m) => m[1] as string);
    if (p.provider === 'file') {
      mkdirSync(dirname(local), { recursive: true });
      writeFileSync(local, JSON.stringify(Object.fromEntries(keys.map((k) => [k, 'doc-example']))));
    } else {
      mkdirSync(local, { recursive: true });
      for (const k of keys) writeFileSync(join(local, k), 'doc-example');
    }
    text = text.replace(p.path, local);
  }
  for (const m of text.matchAll(/\$\{file:([^}#]+)(?:#([^}]+))?\}/g)) {
    const path = join(dir, m[1] as string);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, m[2] ? `${m[2]}=doc-example\n` : 'doc-example');
  }
  const completed = {
    ...(doc.pipeline === undefined ? { pipeline: 'doc-example' } : {}),
    ...(doc.source === undefined ? { source: { type: 'generator', rows: 10 } } : {}),
    ...(doc.sink === undefined ? { sink: { type: 'jsonl', path: 'out/doc.jsonl' } } : {}),
  };
  const extra = Object.entries(completed)
    .map(([k, v]) => `${k}: ${JSON.stringify(v)}\n`)
    .join('');
  return { text: `${text}${extra}`, baseDir: dir };
}

describe('YAML examples in README.md, docs/ and examples/', () => {
  it('there are examples to check', () => expect(blocks.length).toBeGreaterThan(15));

  it.each(blocks)('$name validates', async ({ text, module }) => {
    const doc = parse(text) as Record<string, unknown> | null;
    // a Kubernetes manifest (docs/distributed.md) is YAML, not a pipeline: it must parse, and name a weir command
    if (doc && 'apiVersion' in doc && 'kind' in doc) return expect(text).toMatch(/args: \[(run|worker)\b/);
    const p = asPipeline(text, module);
    try {
      await openPipeline(parsePipelineText(p.text, 'example.yaml'), p.baseDir, await createRegistry(), new Redactor());
    } catch (error) {
      const detail = error instanceof ConfigError ? error.issues.map((i) => `${i.path}: ${i.message}`).join('\n') : String(error);
      expect.fail(`${detail}\n--- the example:\n${p.text}`);
    }
  });
});
