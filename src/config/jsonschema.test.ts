import { describe, expect, it } from 'vitest';
import { type AnyConnector, defineConnector } from '../sdk/connector.js';
import { type Opt, o, rules, validateOptions } from '../sdk/options.js';
import { connectorJsonSchema, type JsonSchema, optionJsonSchema, pipelineJsonSchema, specJsonSchema } from './jsonschema.js';
import { pipelineSpec } from './pipeline.js';
import { Registry } from './registry.js';

// ---------------------------------------------------------------------------
// A tiny JSON Schema checker: the keywords the generator emits (formats are annotations).

function typeOk(type: string, v: unknown): boolean {
  switch (type) {
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return Number.isInteger(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'array':
      return Array.isArray(v);
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'null':
      return v === null;
    default:
      throw new Error(`checker does not know type ${type}`);
  }
}

const KNOWN = new Set([
  '$schema',
  'title',
  'description',
  'default',
  'examples',
  'writeOnly',
  '$comment',
  'format',
  'type',
  'const',
  'enum',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'minItems',
  'maxItems',
  'anyOf',
  'oneOf',
]);

/** The keywords the checker reads, typed. */
interface Node {
  const?: unknown;
  enum?: unknown[];
  type?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  items?: JsonSchema;
  required?: string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
}

/** Errors of `value` against `schema`, each with its path; empty when valid. */
function check(schema: JsonSchema, value: unknown, path = '$'): string[] {
  for (const key of Object.keys(schema)) if (!KNOWN.has(key)) throw new Error(`checker does not know keyword ${key} at ${path}`);
  const s = schema as Node;
  const errors: string[] = [];
  if ('const' in s && s.const !== value) errors.push(`${path}: must be ${JSON.stringify(s.const)}`);
  if (s.enum && !s.enum.includes(value)) errors.push(`${path}: must be one of ${s.enum.join(', ')}`);
  if (s.type && !typeOk(s.type, value)) return [...errors, `${path}: must be ${s.type}`];
  if (typeof value === 'string') {
    if (s.pattern && !new RegExp(s.pattern, 'u').test(value)) errors.push(`${path}: must match ${s.pattern}`);
    if (s.minLength !== undefined && value.length < s.minLength) errors.push(`${path}: too short`);
    if (s.maxLength !== undefined && value.length > s.maxLength) errors.push(`${path}: too long`);
  }
  if (typeof value === 'number') {
    if (s.minimum !== undefined && value < s.minimum) errors.push(`${path}: below ${s.minimum}`);
    if (s.maximum !== undefined && value > s.maximum) errors.push(`${path}: above ${s.maximum}`);
  }
  if (Array.isArray(value)) {
    if (s.minItems !== undefined && value.length < s.minItems) errors.push(`${path}: too few items`);
    if (s.maxItems !== undefined && value.length > s.maxItems) errors.push(`${path}: too many items`);
    const items = s.items;
    if (items) value.forEach((v, i) => void errors.push(...check(items, v, `${path}[${i}]`)));
  }
  if (typeOk('object', value)) {
    const obj = value as Record<string, unknown>;
    for (const key of s.required ?? []) if (!(key in obj)) errors.push(`${path}.${key}: is required`);
    for (const [key, v] of Object.entries(obj)) {
      const property = s.properties?.[key];
      if (property) errors.push(...check(property, v, `${path}.${key}`));
      else if (s.additionalProperties === false && s.properties) errors.push(`${path}.${key}: unknown`);
      else if (typeof s.additionalProperties === 'object') errors.push(...check(s.additionalProperties, v, `${path}.${key}`));
    }
  }
  if (s.anyOf && !s.anyOf.some((sub) => check(sub, value, path).length === 0)) errors.push(`${path}: matches no alternative`);
  if (s.oneOf) {
    const matching = s.oneOf.filter((sub) => check(sub, value, path).length === 0).length;
    if (matching !== 1) errors.push(`${path}: matches ${matching} of oneOf`);
  }
  return errors;
}

const valid = (schema: JsonSchema, value: unknown) => check(schema, value).length === 0;

// ---------------------------------------------------------------------------
// Fixtures

const PASSWORD_EXAMPLE = 'canary-example-pw';
const TOKEN_DEFAULT = 'canary-default-token';

const widget = defineConnector({
  name: 'widget',
  description: 'Writes widgets to a test server.',
  options: {
    host: o.host().describe('Server name or IP address.').default('127.0.0.1'),
    port: o.port().describe('TCP port.').default(5432),
    table: o.identifier().describe('Target table.').required().example('events'),
    password: o.secret().describe('Password of the user.').example(PASSWORD_EXAMPLE),
    token: o.secret().describe('API token.').default(TOKEN_DEFAULT).advanced(),
    mode: o
      .enum(['append', 'upsert'] as const)
      .describe('How rows are written.')
      .default('append'),
    timeout: o.duration({ min: 0, max: 600_000 }).describe('Request timeout.').default('30s'),
    buffer: o.bytes({ min: 1024 }).describe('Write buffer.').default('16MB').advanced(),
    endpoint: o.url().describe('HTTP API.').example('https://api.example.com/v1'),
    tags: o.list(o.string({ minLength: 1 }), { max: 3 }).describe('Tags.'),
    headers: o.map(o.string()).describe('Extra headers.'),
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
  rules: [rules.mutuallyExclusive('password', 'token')],
  sink: () => ({ writer: () => ({ write() {} }) }),
  exactlyOnce: true,
});

const gadget = defineConnector({
  name: 'gadget',
  description: 'Reads gadgets.',
  options: { count: o.int({ min: 0 }).describe('How many rows.').default(10) },
  source: () => ({ async *read() {} }),
});

const both = defineConnector({
  name: 'both',
  description: 'Reads and writes.',
  options: { file: o.path().describe('The file.').required() },
  source: () => ({ async *read() {} }),
  sink: () => ({ writer: () => ({ write() {} }) }),
});

const schemaOf = (opt: Opt<unknown, boolean>) => optionJsonSchema(opt);

// ---------------------------------------------------------------------------

describe('optionJsonSchema', () => {
  it('maps each kind to its JSON shape', () => {
    expect(check(schemaOf(o.int({ min: 1, max: 10 })), 5)).toEqual([]);
    expect(valid(schemaOf(o.int({ min: 1, max: 10 })), 11)).toBe(false);
    expect(valid(schemaOf(o.int()), 1.5)).toBe(false);
    expect(valid(schemaOf(o.number({ max: 1 })), 0.5)).toBe(true);
    expect(valid(schemaOf(o.bool()), true)).toBe(true);
    expect(valid(schemaOf(o.bool()), 'yes')).toBe(false);
    expect(valid(schemaOf(o.enum(['a', 'b'] as const)), 'b')).toBe(true);
    expect(valid(schemaOf(o.enum(['a', 'b'] as const)), 'c')).toBe(false);
    expect(valid(schemaOf(o.port()), 0)).toBe(false);
    expect(valid(schemaOf(o.port()), 65535)).toBe(true);
    expect(valid(schemaOf(o.identifier()), 'events_2024')).toBe(true);
    expect(valid(schemaOf(o.identifier()), 'drop table;')).toBe(false);
    expect(valid(schemaOf(o.path()), '')).toBe(false);
  });

  it('writes string constraints from the meta, the pattern from its source', () => {
    const s = schemaOf(o.string({ minLength: 2, maxLength: 5, pattern: /^[a-z]+$/ }));
    expect(JSON.stringify(s)).toContain('"pattern":"^[a-z]+$"');
    expect(valid(s, 'abc')).toBe(true);
    expect(valid(s, 'a')).toBe(false);
    expect(valid(s, 'ABC')).toBe(false);
    expect(schemaOf(o.string())).toEqual({ type: 'string' });
  });

  it('accepts durations and sizes with units or as plain numbers', () => {
    const d = schemaOf(o.duration());
    for (const v of ['100ms', '30s', '5m', '2h', '1d', '1.5s', 0, 1500]) expect(check(d, v)).toEqual([]);
    for (const v of ['30', '30 parsecs', -1, true]) expect(valid(d, v)).toBe(false);
    const b = schemaOf(o.bytes());
    for (const v of ['512KB', '16MB', '1GB', '10b', 4096]) expect(check(b, v)).toEqual([]);
    for (const v of ['16 MiB', -1, 1.5]) expect(valid(b, v)).toBe(false);
  });

  it('marks hosts with formats and URLs as URIs of the allowed schemes', () => {
    const host = schemaOf(o.host()) as { anyOf: JsonSchema[] };
    expect(JSON.stringify(host.anyOf[0])).toMatch(/"format":"ipv4".*"format":"ipv6".*"format":"hostname"/);
    const url = schemaOf(o.url({ schemes: ['postgres'] })) as { anyOf: JsonSchema[] };
    expect(url.anyOf[0]).toMatchObject({ type: 'string', format: 'uri' });
    expect(valid(url, 'postgres://db/app')).toBe(true);
    expect(valid(url, 'https://db/app')).toBe(false);
  });

  it('accepts a whole secret reference for every scalar kind', () => {
    for (const opt of [
      o.int(),
      o.number(),
      o.bool(),
      o.enum(['a'] as const),
      o.duration(),
      o.bytes(),
      o.url(),
      o.host(),
      o.port(),
      o.identifier(),
    ]) {
      expect(check(schemaOf(opt), '${env:VALUE}'), opt.meta.kind).toEqual([]);
      expect(check(schemaOf(opt), '${file:/run/secrets/x#key}'), opt.meta.kind).toEqual([]);
      // Formats are annotations, so a host schema alone cannot refuse this.
      if (opt.meta.kind !== 'host') expect(valid(schemaOf(opt), '${vault:x}'), opt.meta.kind).toBe(false);
    }
    expect(valid(schemaOf(o.object({ a: o.int().describe('A.') })), '${env:X}')).toBe(false);
  });

  it('describes lists, maps and nested objects', () => {
    const list = schemaOf(o.list(o.int({ min: 0 }), { min: 1, max: 2 }));
    expect(valid(list, [1, 2])).toBe(true);
    expect(valid(list, [1, 2, 3])).toBe(false);
    expect(valid(list, [-1])).toBe(false);
    expect(valid(list, '1,2')).toBe(true);
    const map = schemaOf(o.map(o.bool()));
    expect(map).toMatchObject({ type: 'object', additionalProperties: { anyOf: [{ type: 'boolean' }, expect.anything()] } });
    expect(valid(map, { a: true, b: false })).toBe(true);
    expect(valid(map, { a: 1 })).toBe(false);
    const obj = schemaOf(o.object({ inner: o.object({ x: o.int().describe('X.').required() }).describe('Inner.') }));
    expect(obj).toMatchObject({ properties: { inner: { required: ['x'], additionalProperties: false } } });
    expect(valid(obj, { inner: { x: 1 } })).toBe(true);
    expect(check(obj, { inner: {} })).toEqual(['$.inner.x: is required']);
    expect(check(obj, { inner: { x: 1, y: 2 } })).toEqual(['$.inner.y: unknown']);
  });

  it('carries description, default as written and examples', () => {
    const s = schemaOf(o.duration().describe('Timeout.').default('30s').example('1m'));
    expect(s).toMatchObject({ description: 'Timeout.', default: '30s', examples: ['1m'] });
  });

  it('never carries a secret default or example, and marks secrets writeOnly', () => {
    const s = schemaOf(o.secret().describe('Key.').example('canary-1').default('canary-2'));
    expect(s).toEqual({ description: 'Key.', writeOnly: true, type: 'string' });
    const url = schemaOf(o.url().secret().describe('Hook.').example('https://canary.example/x'));
    expect(url.writeOnly).toBe(true);
    expect(JSON.stringify(url)).not.toContain('canary');
  });

  it('falls back to a generic { type } object for connector sections without a registry', () => {
    const s = optionJsonSchema(pipelineSpec(new Registry([widget as unknown as AnyConnector])).sink);
    expect(s).toMatchObject({ type: 'object', required: ['type'], properties: { type: { type: 'string' } } });
    expect(s.oneOf).toBeUndefined();
    expect(valid(s, { type: 'anything', more: 1 })).toBe(true);
    expect(valid(s, { more: 1 })).toBe(false);
  });
});

describe('specJsonSchema', () => {
  it('requires only required options without defaults and refuses unknown keys', () => {
    const s = specJsonSchema(
      {
        a: o.string().describe('A.').required(),
        b: o.int().describe('B.').required().default(1),
        c: o.bool().describe('C.'),
      },
      [rules.exactlyOne('a', 'c')],
    );
    expect(s.required).toEqual(['a']);
    expect(s.additionalProperties).toBe(false);
    expect(Object.keys(s.properties as object)).toEqual(['a', 'b', 'c']);
    expect(s.$comment).toContain('exactly one of `a`, `c` must be set');
    expect(valid(s, { a: 'x' })).toBe(true);
    expect(check(s, {})).toEqual(['$.a: is required']);
    expect(check(s, { a: 'x', d: 1 })).toEqual(['$.d: unknown']);
  });
});

describe('connectorJsonSchema', () => {
  const schema = connectorJsonSchema(widget);

  it('is a draft 2020-12 document with the connector type as a constant', () => {
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.title).toBe('widget');
    expect(schema.description).toBe(widget.description);
    expect(schema).toMatchObject({ type: 'object', additionalProperties: false, properties: { type: { const: 'widget' } } });
    expect(schema.required).toEqual(['type', 'table']);
    expect(Object.keys(schema.properties as object)).toEqual(['type', ...Object.keys(widget.options)]);
    expect(schema.$comment).toContain('only one of `password`, `token` may be set');
  });

  it('validates sample sections the way the validator does', () => {
    const samples: [unknown, boolean][] = [
      [{ type: 'widget', table: 'events' }, true],
      [{ type: 'widget', table: 'events', port: 6432, mode: 'upsert', timeout: '5s', buffer: '1MB', password: '${env:PW}' }, true],
      [{ type: 'widget', table: 'events', tls: { enabled: true, ca_cert: 'ca.pem' }, tags: ['a'], headers: { x: 'y' } }, true],
      [{ type: 'widget', table: 'events', port: '${env:PORT}', endpoint: 'https://api.example.com' }, true],
      [{ type: 'widget' }, false],
      [{ type: 'widget', table: 'events', prot: 1 }, false],
      [{ type: 'widget', table: 'events', port: 70000 }, false],
      [{ type: 'widget', table: 'events', mode: 'merge' }, false],
      [{ type: 'widget', table: 'events', tls: { enabled: 'maybe' } }, false],
      [{ type: 'widget', table: 'events', tags: ['a', 'b', 'c', 'd'] }, false],
      [{ type: 'widget', table: 'events', endpoint: 'ftp://x' }, false],
      [{ type: 'other', table: 'events' }, false],
    ];
    for (const [sample, expected] of samples) {
      expect(valid(schema, sample), JSON.stringify(sample)).toBe(expected);
      const comparable = (sample as { type?: string }).type === 'widget' && !JSON.stringify(sample).includes('${');
      if (comparable) {
        const r = validateOptions(widget.options, sample, '', [], ['type']);
        expect(r.issues.length === 0, `validator agrees on ${JSON.stringify(sample)}`).toBe(expected);
      }
    }
  });

  it('never contains a secret default or example', () => {
    const text = JSON.stringify(schema);
    expect(text).not.toContain(PASSWORD_EXAMPLE);
    expect(text).not.toContain(TOKEN_DEFAULT);
    expect(schema).toMatchObject({
      properties: { password: { writeOnly: true }, token: { writeOnly: true }, tls: { properties: { key: { writeOnly: true } } } },
    });
  });

  it('labels role-specific rules', () => {
    const c = defineConnector({
      ...both,
      sourceRules: [rules.custom('reads need a file', ['file'], () => undefined)],
      sinkRules: [rules.custom('writes need a file', ['file'], () => undefined)],
    });
    expect(connectorJsonSchema(c).$comment).toBe('Rules: as a source: reads need a file; as a sink: writes need a file.');
  });
});

describe('pipelineJsonSchema', () => {
  const registry = new Registry([widget, gadget, both] as unknown as AnyConnector[]);
  const schema = pipelineJsonSchema(registry);
  const props = schema.properties as Record<string, JsonSchema & Node>;
  const branches = (s: Node | undefined) => (s?.oneOf ?? []).map((b) => b.title);

  it('describes the whole file', () => {
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.required).toEqual(['pipeline', 'source', 'sink']);
    expect(schema.additionalProperties).toBe(false);
    expect(props.retry).toMatchObject({ type: 'object', properties: { max_attempts: { default: 5 } } });
  });

  it('offers only the connectors that have each role', () => {
    expect(branches(props.source)).toEqual(['both', 'gadget']);
    expect(branches(props.sink)).toEqual(['both', 'widget']);
    const errors = props.errors as { properties: Record<string, JsonSchema> };
    expect(branches(errors.properties.dead_letter)).toEqual(['both', 'widget']);
    for (const b of props.sink?.oneOf ?? []) expect(b).toMatchObject({ properties: { type: { const: b.title } } });
  });

  it('validates sample pipeline files', () => {
    const good = {
      pipeline: 'gadgets-to-widgets',
      source: { type: 'gadget', count: 5 },
      sink: { type: 'widget', table: 'events', password: '${env:PW}' },
      delivery: 'exactly-once',
      errors: { tolerance: 'all', dead_letter: { type: 'both', file: 'out/rejected.jsonl' } },
      retry: { max_attempts: 3, initial_delay: '50ms' },
      rate_limit: { rows_per_second: 100 },
      alerts: [{ name: 'HighErrorRate', when: 'error_rate > 0.01', for: '1m', notify: { webhook: '${env:ALERT_URL}' } }],
    };
    expect(check(schema, good)).toEqual([]);
    expect(valid(schema, { ...good, source: { type: 'widget', table: 'events' } })).toBe(false);
    expect(valid(schema, { ...good, sink: { type: 'widget' } })).toBe(false);
    expect(valid(schema, { ...good, retry: { max_attempts: 0 } })).toBe(false);
    expect(valid(schema, { ...good, alerts: [{ name: 'x', when: 'nonsense' }] })).toBe(false);
    expect(valid(schema, { ...good, extra: true })).toBe(false);
    const { pipeline: _, ...noId } = good;
    expect(check(schema, noId)).toEqual(['$.pipeline: is required']);
  });

  it('keeps secrets out and is plain JSON', () => {
    const text = JSON.stringify(schema);
    expect(text).not.toContain(PASSWORD_EXAMPLE);
    expect(text).not.toContain(TOKEN_DEFAULT);
    expect(JSON.parse(text)).toEqual(schema);
  });
});
