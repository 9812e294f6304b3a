/**
 * JSON Schema (draft 2020-12) generated from option specs: `weir spec CONNECTOR`
 * prints one connector's section, `weir schema` the whole pipeline file for editors.
 *
 * The schema follows what {@link validateOptions} accepts, with two deliberate gaps:
 * cross-field rules cannot be expressed generally (they are listed in `$comment`),
 * and the string coercions meant for resolved references (`"5000"` for an int) are
 * only accepted in the form of a whole secret reference such as `${env:BATCH_SIZE}`.
 *
 * Secret options never carry a default or examples, and are marked `writeOnly`.
 */
import type { AnyConnector } from '../sdk/connector.js';
import { IDENTIFIER, type Opt, type OptionMeta, type Rule, type Spec } from '../sdk/options.js';
import { pipelineSpec } from './pipeline.js';
import type { Registry } from './registry.js';

/** What the generators read of a connector; any `defineConnector` result fits. */
export type ConnectorInfo = Pick<
  AnyConnector,
  'name' | 'description' | 'options' | 'rules' | 'sourceRules' | 'sinkRules' | 'exactlyOnce' | 'transactional'
> & {
  readonly source?: unknown;
  readonly sink?: unknown;
};

/** A JSON Schema document or sub-schema. */
export type JsonSchema = { [keyword: string]: unknown };

/** What schema generation needs besides the spec itself. */
export interface JsonSchemaOptions {
  /** Expands `connector` options into a `oneOf` over the registry's connectors of that role. Without it they are generic `{ type, ... }` objects. */
  readonly registry?: Registry;
}

/** The dialect every top-level schema declares. */
export const JSON_SCHEMA_DIALECT = 'https://json-schema.org/draft/2020-12/schema';

/** A whole-value secret reference: `${env:NAME}`, `${file:PATH}`, `${file:PATH#key}`, `${secret:scope/key}`. */
export const REFERENCE_PATTERN = '^\\$\\{(env|file|secret):[^}]+\\}$';

/** `abc` → `[aA][bB][cC]`: JSON Schema patterns have no flags, the parsers are case-insensitive. */
const caseless = (word: string) => [...word].map((ch) => `[${ch.toLowerCase()}${ch.toUpperCase()}]`).join('');

const DURATION_PATTERN = `^\\s*\\d+(\\.\\d+)?\\s*(${caseless('ms')}|${['s', 'm', 'h', 'd'].map(caseless).join('|')})\\s*$`;
const BYTES_PATTERN = `^\\s*\\d+(\\.\\d+)?\\s*(${['b', 'kb', 'mb', 'gb', 'tb'].map(caseless).join('|')})\\s*$`;

const reference: JsonSchema = {
  type: 'string',
  pattern: REFERENCE_PATTERN,
  description: 'A reference such as ${env:NAME}, ${file:PATH} or ${secret:scope/key}, resolved before validation.',
};

/** Adds `minimum`/`maximum` from the option's bounds. */
function range(meta: OptionMeta, lowest?: number): JsonSchema {
  const out: JsonSchema = {};
  const min = meta.min === undefined ? lowest : lowest === undefined ? meta.min : Math.max(meta.min, lowest);
  if (min !== undefined) out.minimum = min;
  if (meta.max !== undefined) out.maximum = meta.max;
  return out;
}

/** The value's own shape, before annotations and the reference alternative. */
function shapeOf(meta: OptionMeta, options: JsonSchemaOptions): JsonSchema {
  switch (meta.kind) {
    case 'string': {
      const s: JsonSchema = { type: 'string' };
      if (meta.minLength !== undefined) s.minLength = meta.minLength;
      if (meta.maxLength !== undefined) s.maxLength = meta.maxLength;
      if (meta.pattern) s.pattern = meta.pattern.source;
      return s;
    }
    case 'int':
    case 'port':
      return { type: 'integer', ...range(meta) };
    case 'number':
      return { type: 'number', ...range(meta) };
    case 'bool':
      return { type: 'boolean' };
    case 'enum':
      return { type: 'string', enum: [...(meta.values ?? [])] };
    case 'duration':
      return {
        anyOf: [
          { type: 'string', pattern: DURATION_PATTERN, description: 'A duration with a unit: 100ms, 30s, 5m, 2h, 1d.' },
          { type: 'number', description: 'Milliseconds.', ...range(meta, 0) },
        ],
      };
    case 'bytes':
      return {
        anyOf: [
          { type: 'string', pattern: BYTES_PATTERN, description: 'A size such as 512KB, 16MB or 1GB (1KB = 1024 bytes).' },
          { type: 'integer', description: 'Bytes.', ...range(meta, 0) },
        ],
      };
    case 'url': {
      const schemes = meta.schemes ?? ['http', 'https'];
      return { type: 'string', format: 'uri', pattern: `^(${schemes.map(caseless).join('|')}):` };
    }
    case 'path':
      return { type: 'string', minLength: 1 };
    case 'host':
      return {
        type: 'string',
        anyOf: [{ format: 'ipv4' }, { format: 'ipv6' }, { format: 'hostname' }, { pattern: '^\\[[0-9A-Fa-f:.]+\\]$' }],
      };
    case 'identifier':
      return { type: 'string', pattern: IDENTIFIER.source };
    case 'secret':
      return { type: 'string' };
    case 'list': {
      const s: JsonSchema = { type: 'array' };
      if (meta.item) s.items = optionJsonSchema(meta.item, options);
      if (meta.min !== undefined) s.minItems = meta.min;
      if (meta.max !== undefined) s.maxItems = meta.max;
      return s;
    }
    case 'map':
      return { type: 'object', additionalProperties: meta.item ? optionJsonSchema(meta.item, options) : true };
    case 'object':
      return specJsonSchema(meta.spec ?? {}, meta.rules ?? [], options);
    case 'connector':
      return connectorSectionSchema(meta.role, options.registry);
  }
}

/** Whether a whole-value reference already fits the shape (so no alternative is needed). */
function acceptsAnyString(meta: OptionMeta): boolean {
  if (meta.kind === 'secret' || meta.kind === 'path') return true;
  return meta.kind === 'string' && !meta.pattern && meta.maxLength === undefined && (meta.minLength ?? 0) <= 8;
}

/** Objects, maps and connector sections cannot come from a reference: references resolve to strings. */
const STRUCTURED = new Set(['map', 'object', 'connector']);

/**
 * The JSON Schema of one option: its shape (per kind), `description`, `default` (as a
 * user writes it) and `examples`; never a default or examples for a secret option,
 * which is `writeOnly` instead. Scalars other than free text also accept a whole
 * secret reference, since references are resolved before validation; lists accept a
 * comma-separated string, as the validator does.
 *
 * @example
 * optionJsonSchema(o.port().describe('TCP port.').default(5432));
 * // { description: 'TCP port.', default: 5432,
 * //   anyOf: [{ type: 'integer', minimum: 1, maximum: 65535 }, { type: 'string', pattern: '^\\$\\{(env|file|secret):[^}]+\\}$', ... }] }
 */
export function optionJsonSchema(opt: Opt<unknown, boolean>, options: JsonSchemaOptions = {}): JsonSchema {
  const meta = opt.meta;
  const shape = shapeOf(meta, options);
  let schema: JsonSchema;
  if (meta.kind === 'list') schema = { anyOf: [shape, { type: 'string', description: 'Comma-separated items.' }] };
  else if (STRUCTURED.has(meta.kind) || acceptsAnyString(meta)) schema = shape;
  else if (Array.isArray(shape.anyOf) && Object.keys(shape).length === 1) schema = { anyOf: [...shape.anyOf, reference] };
  else schema = { anyOf: [shape, reference] };
  // a shorter form the parser also takes (a transform step's `filter: amount > 0`)
  if (meta.shorthand) schema = { anyOf: [schema, optionJsonSchema(meta.shorthand, options)] };

  const annotations: JsonSchema = {};
  if (meta.description) annotations.description = meta.description;
  if (meta.secret) annotations.writeOnly = true;
  else {
    if (meta.defaultInput !== undefined) annotations.default = meta.defaultInput;
    if (meta.examples.length > 0) annotations.examples = [...meta.examples];
  }
  return { ...annotations, ...schema };
}

/**
 * The JSON Schema of an options object: every option as a property, `required` naming
 * the required options without a default, and no other keys (unknown keys are errors).
 * Cross-field rules are listed in `$comment`.
 *
 * @example
 * specJsonSchema({ table: o.identifier().describe('Target table.').required() });
 * // { type: 'object', properties: { table: {...} }, required: ['table'], additionalProperties: false }
 */
export function specJsonSchema(spec: Spec, rules: readonly Rule[] = [], options: JsonSchemaOptions = {}): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const [key, opt] of Object.entries(spec)) {
    properties[key] = optionJsonSchema(opt, options);
    if (opt.meta.required && opt.meta.default === undefined) required.push(key);
  }
  const schema: JsonSchema = { type: 'object', properties, required, additionalProperties: false };
  if (rules.length > 0) schema.$comment = `Rules: ${rules.map((r) => r.description).join('; ')}.`;
  return schema;
}

/**
 * The rules of a connector's section in a role. Without a role (`weir spec`), the
 * role-specific rules are included and say which role they apply to.
 */
function connectorRules(connector: ConnectorInfo, role: 'source' | 'sink' | undefined): Rule[] {
  const always = connector.rules ?? [];
  const source = connector.sourceRules ?? [];
  const sink = connector.sinkRules ?? [];
  if (role === 'source') return [...always, ...source];
  if (role === 'sink') return [...always, ...sink];
  const labelled = (rules: readonly Rule[], label: string) => rules.map((r) => ({ ...r, description: `${label}: ${r.description}` }));
  return [...always, ...labelled(source, 'as a source'), ...labelled(sink, 'as a sink')];
}

/** One connector's `{ type: NAME, ...options }` section, without the document-level keywords. */
function connectorBranch(connector: ConnectorInfo, role: 'source' | 'sink' | undefined, options: JsonSchemaOptions): JsonSchema {
  const inner = specJsonSchema(connector.options, connectorRules(connector, role), options);
  return {
    title: connector.name,
    description: connector.description,
    ...inner,
    properties: {
      type: { const: connector.name, description: `The connector: \`${connector.name}\`.` },
      ...(inner.properties as Record<string, JsonSchema>),
    },
    required: ['type', ...(inner.required as string[])],
  };
}

function connectorSectionSchema(role: 'source' | 'sink' | undefined, registry: Registry | undefined): JsonSchema {
  const roleText = role ? `${role} ` : '';
  if (!registry) {
    return {
      type: 'object',
      properties: { type: { type: 'string', minLength: 1, description: `Name of the ${roleText}connector.` } },
      required: ['type'],
    };
  }
  const connectors = registry
    .list()
    .map(({ connector }) => connector)
    .filter((c) => !role || Boolean(c[role]));
  return { type: 'object', oneOf: connectors.map((c) => connectorBranch(c, role, { registry })) };
}

/**
 * The JSON Schema of one connector's section, for `weir spec NAME`: its options plus
 * `type: { const: NAME }`.
 *
 * @example
 * JSON.stringify(connectorJsonSchema(registry.get('postgres')!), null, 2);
 */
export function connectorJsonSchema(connector: ConnectorInfo): JsonSchema {
  return { $schema: JSON_SCHEMA_DIALECT, ...connectorBranch(connector, undefined, {}) };
}

/**
 * The JSON Schema of a whole pipeline file, for `weir schema` and editors: the
 * pipeline's own sections, with `source`, `sink` and `errors.dead_letter` as a
 * `oneOf` over the registry's connectors that have that role.
 *
 * @example
 * // .vscode/settings.json: "yaml.schemas": { "weir.schema.json": "pipelines/*.yaml" }
 * writeFileSync('weir.schema.json', JSON.stringify(pipelineJsonSchema(registry), null, 2));
 */
export function pipelineJsonSchema(registry: Registry): JsonSchema {
  return {
    $schema: JSON_SCHEMA_DIALECT,
    title: 'weir pipeline',
    description: 'A weir pipeline file: where rows come from, where they go, and how the run behaves.',
    ...specJsonSchema(pipelineSpec(registry), [], { registry }),
  };
}
