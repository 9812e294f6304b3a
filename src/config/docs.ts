/**
 * Markdown references generated from the option specs (`weir docs [CONNECTOR]`):
 * one page per connector and one for the pipeline file's own sections.
 *
 * Secrets never show a value: a secret option's default and examples are left out
 * everywhere, and examples use a reference such as `${env:POSTGRES_PASSWORD}`.
 */
import bytesLib from 'bytes';
import ms from 'ms';
import { stringify } from 'yaml';
import { type AnyConnector, validateConnectorOptions } from '../sdk/connector.js';
import { joinPath, maskUrlPassword, type Opt, type OptionMeta, type Rule, type Spec } from '../sdk/options.js';
import type { ConnectorInfo } from './jsonschema.js';
import { pipelineSpec } from './pipeline.js';
import type { Registry } from './registry.js';

type AnyOpt = Opt<unknown, boolean>;

/** How to render one spec's tables. */
interface Context {
  /** Dotted path of the spec (`retry`, `alerts[]`), empty at the top. */
  readonly path: string;
  /** Heading level of nested sections. */
  readonly level: number;
  /** Prefix of environment variable names in secret references, e.g. `POSTGRES`. */
  readonly envPrefix: string;
  readonly registry?: Registry;
}

const TABLE_HEAD = ['| option | type | required | default | description |', '|---|---|---|---|---|'];

// ---------------------------------------------------------------------------
// Cells

/** Escapes text for one Markdown table cell. */
function cell(text: string): string {
  return text.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
}

/** A value as a user writes it in YAML, inline: `30s`, `5000`, `{}`. Never called for secrets. */
function inlineValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return maskUrlPassword(text === '' ? '""' : text);
}

function code(text: string): string {
  return text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``;
}

/** `retry.max_attempts` in `postgres` → `POSTGRES_RETRY_MAX_ATTEMPTS`. */
function envName(...parts: string[]): string {
  return parts
    .filter(Boolean)
    .join('_')
    .replace(/\[\]|\.\*/g, '')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toUpperCase();
}

function secretReference(ctx: Context, key: string): string {
  return `\${env:${envName(ctx.envPrefix, ctx.path, key)}}`;
}

const count = (n: number) => n.toLocaleString('en-US');

function bounds(min: number | undefined, max: number | undefined, fmt: (n: number) => string = count, unit = ''): string {
  if (min !== undefined && max !== undefined) return ` (${fmt(min)}–${fmt(max)}${unit})`;
  if (min !== undefined) return ` (≥ ${fmt(min)}${unit})`;
  if (max !== undefined) return ` (≤ ${fmt(max)}${unit})`;
  return '';
}

/** The type column: `int (1–65535)`, `enum: append, upsert`, `duration (≥ 100ms)`, `secret`. */
function typeText(meta: OptionMeta): string {
  const secret = meta.secret && meta.kind !== 'secret' ? ', secret' : '';
  switch (meta.kind) {
    case 'string':
      return `string${bounds(meta.minLength, meta.maxLength, count, ' chars')}${secret}`;
    case 'int':
    case 'port':
    case 'number':
      return `${meta.kind === 'number' ? 'number' : 'int'}${bounds(meta.min, meta.max)}${secret}`;
    case 'duration':
      return `duration${bounds(meta.min || undefined, meta.max, (n) => ms(n))}${secret}`;
    case 'bytes':
      return `bytes${bounds(meta.min || undefined, meta.max, (n) => bytesLib.format(n) ?? String(n))}${secret}`;
    case 'enum':
      return `enum: ${(meta.values ?? []).join(', ')}${secret}`;
    case 'url':
      return `url (${(meta.schemes ?? ['http', 'https']).join(', ')})${secret}`;
    case 'list':
      return `list of ${meta.item ? typeText(meta.item.meta) : 'values'}${bounds(meta.min, meta.max, count, ' items')}`;
    case 'map':
      return `map of ${meta.item ? typeText(meta.item.meta) : 'values'}`;
    case 'connector':
      return meta.role ? `${meta.role} connector` : 'connector';
    default:
      return `${meta.kind}${secret}`;
  }
}

/** The spec nested in an object option, or in the items of a list or map (`alerts[]`, `secrets.*`). */
function nestedOf(opt: AnyOpt): { spec: Spec; rules: readonly Rule[]; suffix: string } | undefined {
  const { kind, spec, rules, item } = opt.meta;
  if (kind === 'object' && spec) return { spec, rules: rules ?? [], suffix: '' };
  if ((kind === 'list' || kind === 'map') && item) {
    const inner = nestedOf(item);
    return inner && { ...inner, suffix: `${kind === 'list' ? '[]' : '.*'}${inner.suffix}` };
  }
  return undefined;
}

function descriptionText(key: string, opt: AnyOpt, ctx: Context): string {
  const meta = opt.meta;
  const parts = [meta.description ?? '⚠️ undocumented.'];
  if (meta.advanced && ctx.path) parts.unshift('_Advanced._');
  if (meta.patternHint) parts.push(`${meta.patternHint.charAt(0).toUpperCase()}${meta.patternHint.slice(1)}.`);
  if (meta.kind === 'connector' && ctx.registry) {
    const names = ctx.registry.names(meta.role);
    parts.push(`Types: ${names.length ? names.map(code).join(', ') : '(none installed)'}.`);
  }
  if (meta.shorthand?.meta.description) parts.push(meta.shorthand.meta.description);
  const nested = nestedOf(opt);
  if (nested) parts.push(`See ${code(joinPath(ctx.path, key) + nested.suffix)} below.`);
  if (meta.secret) parts.push(`🔒 secret — use a reference such as ${code(secretReference(ctx, key))}`);
  else if (meta.examples.length > 0) {
    parts.push(`${meta.examples.length > 1 ? 'Examples' : 'Example'}: ${meta.examples.map((e) => code(inlineValue(e))).join(', ')}.`);
  }
  return parts.join(' ');
}

function row(key: string, opt: AnyOpt, ctx: Context): string {
  const meta = opt.meta;
  const required = meta.required && meta.default === undefined ? 'yes' : 'no';
  const fallback = !meta.secret && meta.defaultInput !== undefined ? code(inlineValue(meta.defaultInput)) : '';
  const cells = [code(joinPath(ctx.path, key)), typeText(meta), required, fallback, descriptionText(key, opt, ctx)];
  return `| ${cells.map(cell).join(' | ')} |`;
}

function table(entries: [string, AnyOpt][], ctx: Context): string[] {
  return [...TABLE_HEAD, ...entries.map(([key, opt]) => row(key, opt, ctx))];
}

function heading(level: number, text: string): string {
  return `${'#'.repeat(Math.min(level, 6))} ${text}`;
}

/**
 * The sections of the options nested in `spec` (objects, and objects in lists and
 * maps), depth-first: one table each, with its advanced options last and its rules.
 */
function nestedSections(spec: Spec, ctx: Context): string[] {
  const out: string[] = [];
  for (const [key, opt] of Object.entries(spec)) {
    const nested = nestedOf(opt);
    if (!nested) continue;
    const path = joinPath(ctx.path, key) + nested.suffix;
    const inner: Context = { ...ctx, path };
    const entries = Object.entries(nested.spec);
    const ordered = [...entries.filter(([, o]) => !o.meta.advanced), ...entries.filter(([, o]) => o.meta.advanced)];
    out.push('', heading(ctx.level, code(path)), '');
    if (opt.meta.description) out.push(opt.meta.description, '');
    out.push(...table(ordered, inner));
    if (nested.rules.length > 0) out.push('', 'Rules:', '', ...nested.rules.map((r) => `- ${r.description}`));
    out.push(...nestedSections(nested.spec, { ...inner, level: ctx.level + 1 }));
  }
  return out;
}

/** Options tables of a top-level spec: common, then advanced, then nested sections. */
function optionSections(spec: Spec, ctx: Context): string[] {
  const entries = Object.entries(spec);
  const common = entries.filter(([, o]) => !o.meta.advanced);
  const advanced = entries.filter(([, o]) => o.meta.advanced);
  const out = ['', '## Options', ''];
  out.push(...(common.length ? table(common, ctx) : ['This connector has no options.']));
  if (advanced.length) out.push('', '## Advanced options', '', ...table(advanced, ctx));
  out.push(...nestedSections(spec, ctx));
  return out;
}

// ---------------------------------------------------------------------------
// Examples

function placeholder(key: string, meta: OptionMeta, ctx: Context): unknown {
  switch (meta.kind) {
    case 'int':
    case 'number':
      return Math.min(meta.min ?? 1, meta.max ?? Number.POSITIVE_INFINITY);
    case 'port':
      return 8080;
    case 'bool':
      return true;
    case 'enum':
      return meta.values?.[0] ?? '';
    case 'duration':
      return '30s';
    case 'bytes':
      return '16MB';
    case 'url':
      return `${meta.schemes?.[0] ?? 'https'}://example.com`;
    case 'path':
      return `data/${key}`;
    case 'host':
      return 'localhost';
    case 'list':
      return meta.item ? [exampleValue(key, meta.item, ctx)] : [];
    case 'map':
      return meta.item ? { name: exampleValue('name', meta.item, { ...ctx, path: joinPath(ctx.path, key) }) } : {};
    case 'object':
      return exampleOptions(meta.spec ?? {}, { ...ctx, path: joinPath(ctx.path, key) });
    case 'connector':
      return { type: ctx.registry?.names(meta.role)[0] ?? 'NAME' };
    default:
      return key;
  }
}

function exampleValue(key: string, opt: AnyOpt, ctx: Context): unknown {
  const meta = opt.meta;
  if (meta.secret) return secretReference(ctx, key);
  if (meta.examples.length > 0) return meta.examples[0];
  if (meta.defaultInput !== undefined) return meta.defaultInput;
  return placeholder(key, meta, ctx);
}

/** Required options, and the common options with examples or secrets (shown as references). */
function exampleOptions(spec: Spec, ctx: Context): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, opt] of Object.entries(spec)) {
    const { required, advanced, examples, secret } = opt.meta;
    if (required || (!advanced && (examples.length > 0 || secret))) out[key] = exampleValue(key, opt, ctx);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Pages

function connectorRuleLines(connector: ConnectorInfo): string[] {
  const lines = (rules: readonly Rule[] | undefined, label: string) => (rules ?? []).map((r) => `- ${label}${r.description}`);
  return [...lines(connector.rules, ''), ...lines(connector.sourceRules, 'As a source: '), ...lines(connector.sinkRules, 'As a sink: ')];
}

/** What the docs say of a sink's `transactional` capability. */
function transactionalText(connector: ConnectorInfo): string {
  return connector.transactional
    ? 'yes — a failed run leaves the target as it was'
    : 'no — what a failed run committed before the failure can stay in the target';
}

/**
 * The Markdown reference of one connector, for `weir docs NAME`: what it supports,
 * its options (common, then advanced, then nested), its cross-field rules, and an
 * example section built from required options, examples and defaults.
 *
 * `from.module`: the connector comes from this module (`./my-api.mjs`); its examples load it
 * (`connectors: [./my-api.mjs]`).
 *
 * @example
 * process.stdout.write(connectorDocs(registry.get('postgres')!));
 */
export function connectorDocs(connector: ConnectorInfo, from: { module?: string } = {}): string {
  const ctx: Context = { path: '', level: 2, envPrefix: connector.name };
  const roles = [connector.source ? 'source' : '', connector.sink ? 'sink' : ''].filter(Boolean);
  const out = [heading(1, connector.name), '', connector.description, '', `Supports: ${roles.join(', ')}`, ''];
  out.push(`Exactly-once: ${connector.sink && connector.exactlyOnce ? 'yes' : 'no'}`);
  if (connector.sink) out.push('', `Transactional: ${transactionalText(connector)}`);
  out.push(...optionSections(connector.options, ctx));
  const rules = connectorRuleLines(connector);
  if (rules.length) out.push('', '## Rules', '', ...rules);
  out.push('', roles.length > 1 ? '## Examples' : '## Example');
  for (const role of roles as ('source' | 'sink')[]) {
    const example = roleExample(connector, role, ctx, from.module);
    out.push('', `As a ${role}:`, '', '```yaml', stringify(example, { aliasDuplicateObjects: false }).trimEnd(), '```');
  }
  out.push('');
  return out.join('\n');
}

/**
 * A whole pipeline with the connector in one role — its required options and the
 * common ones with examples, without those the role refuses (found by validating the
 * example as that role, so the docs never show a source-only option in a sink) — and
 * a generator or a JSON Lines file on the other side. A test validates every one.
 */
function roleExample(connector: ConnectorInfo, role: 'source' | 'sink', ctx: Context, module?: string): Record<string, unknown> {
  const candidates = exampleOptions(connector.options, ctx);
  // a secret is shown as a reference, resolved before validation: checked with a value of its type
  const asResolved = (o: Record<string, unknown>) =>
    Object.fromEntries(
      Object.entries(o).map(([k, v]) => {
        const meta = connector.options[k]?.meta;
        return meta?.secret ? [k, meta.examples[0] ?? meta.defaultInput ?? placeholder(k, meta, ctx)] : [k, v];
      }),
    );
  const validate = (o: Record<string, unknown>) => validateConnectorOptions(connector as AnyConnector, asResolved(o), role).issues;
  const problems = (o: Record<string, unknown>) => validate(o).length;
  // the required options, then each common one that the role takes without a new problem
  const options: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(candidates)) if (connector.options[k]?.meta.required) options[k] = v;
  let issues = problems(options);
  for (const [k, v] of Object.entries(candidates)) {
    if (k in options) continue;
    const next = problems({ ...options, [k]: v });
    if (next <= issues) {
      options[k] = v;
      issues = next;
    }
  }
  // an option the spec requires that this role refuses (a source's `topics` in a sink): left out, as the problem names it
  for (let left = Object.keys(options).length; issues > 0 && left > 0; left--) {
    const said = validate(options)
      .map((i) => `${i.path} ${i.message}`)
      .join(' ');
    const named = Object.keys(options).find((k) => new RegExp(`\\b${k}\\b`).test(said));
    if (named === undefined) break;
    delete options[named];
    issues = problems(options);
  }
  const own = { type: connector.name, ...options };
  // a connector of a module of its own: the pipeline loads it
  const loads = module === undefined ? {} : { connectors: [module] };
  return role === 'source'
    ? { pipeline: `${connector.name}-to-jsonl`, ...loads, source: own, sink: { type: 'jsonl', path: `out/${connector.name}.jsonl` } }
    : { pipeline: `generator-to-${connector.name}`, ...loads, source: { type: 'generator', rows: 1000 }, sink: own };
}

/**
 * The Markdown reference of the pipeline file's own sections, for `weir docs`:
 * top-level options, then one sub-table per nested section (`retry.max_attempts`,
 * `alerts[].when`, …).
 *
 * @example
 * writeFileSync('docs/pipeline.md', pipelineDocs(registry));
 */
export function pipelineDocs(registry: Registry): string {
  const ctx: Context = { path: '', level: 2, envPrefix: '', registry };
  const out = [
    heading(1, 'Pipeline file'),
    '',
    'A pipeline is one YAML file. Unknown keys are errors. Any value may be a secret reference, resolved before validation:',
    '`${env:NAME}` (`${env:NAME:-default}` with a default), `${file:PATH}`, `${file:PATH#key}` or `${secret:scope/key}` (`$${` writes a literal `${`).',
    "`source`, `sink` and `errors.dead_letter` take `type` plus that connector's options (`weir docs TYPE`).",
  ];
  out.push(...optionSections(pipelineSpec(registry), ctx), '');
  return out.join('\n');
}

/**
 * The Markdown reference of the transform steps (`docs/transforms.md`, generated part):
 * one section per step with its options, rules and an example, then the expression
 * language's functions.
 *
 * @example
 * writeFileSync('docs/transforms.md', transformsDocs(registry, intro, functions));
 */
export function transformsDocs(registry: Registry, intro: string, functions: readonly string[]): string {
  const out = [intro.trimEnd(), '', heading(2, 'Steps'), ''];
  for (const { transform: t, origin } of registry.listTransforms()) {
    const ctx: Context = { path: t.name, level: 4, envPrefix: '' };
    out.push(heading(3, code(t.name)), '', t.description, '');
    if (origin !== 'built-in') out.push(`From: ${code(origin)}`, '');
    if (t.shorthand?.of.meta.description) out.push(`Short form: ${t.shorthand.of.meta.description}`, '');
    const entries = Object.entries(t.options);
    out.push(...table([...entries.filter(([, o]) => !o.meta.advanced), ...entries.filter(([, o]) => o.meta.advanced)], ctx));
    if (t.rules?.length) out.push('', 'Rules:', '', ...t.rules.map((r) => `- ${r.description}`));
    out.push(...nestedSections(t.options, ctx));
    const example = { transforms: [{ [t.name]: exampleOptions(t.options, { ...ctx, envPrefix: t.name }) }] };
    out.push('', '```yaml', stringify(example, { aliasDuplicateObjects: false }).trimEnd(), '```', '');
  }
  out.push(
    heading(2, 'Functions'),
    '',
    ...functions.map((f) => `- ${code(f.split(' — ')[0] as string)}${f.includes(' — ') ? ` — ${f.split(' — ')[1]}` : ''}`),
    '',
  );
  return out.join('\n');
}

/**
 * The whole reference: the pipeline file, an index of connectors, then every connector's page.
 *
 * @example
 * writeFileSync('docs/reference.md', allDocs(registry));
 */
export function allDocs(registry: Registry): string {
  const connectors = registry.list();
  const index = [
    heading(1, 'Connectors'),
    '',
    '| connector | source | sink | exactly-once | transactional | origin | description |',
    '|---|---|---|---|---|---|---|',
    ...connectors.map(({ connector: c, origin }) => {
      const cells = [
        code(c.name),
        c.source ? 'yes' : 'no',
        c.sink ? 'yes' : 'no',
        c.sink && c.exactlyOnce ? 'yes' : 'no',
        c.sink && c.transactional ? 'yes' : 'no',
        origin,
        c.description,
      ];
      return `| ${cells.map(cell).join(' | ')} |`;
    }),
    '',
  ];
  return [pipelineDocs(registry), index.join('\n'), ...connectors.map(({ connector }) => connectorDocs(connector))].join('\n');
}

/**
 * Dotted paths of the options in `spec` that have no description, at any depth
 * (`alerts[].when`, `secrets.*.path`). The docs test requires this to be empty for
 * every connector and for the pipeline file; items of lists and maps need no
 * description of their own, their list or map has it.
 *
 * @example
 * expect(undocumentedOptions(connector.options)).toEqual([]);
 */
export function undocumentedOptions(spec: Spec, prefix = ''): string[] {
  const out: string[] = [];
  for (const [key, opt] of Object.entries(spec)) {
    const path = joinPath(prefix, key);
    if (!opt.meta.description) out.push(path);
    const nested = nestedOf(opt);
    if (nested) out.push(...undocumentedOptions(nested.spec, path + nested.suffix));
  }
  return out;
}
