/**
 * Every starter pipeline of `weir init` validates as written and with its commented
 * options uncommented (their secret references set), and names only options its
 * connectors have: the templates cannot drift from the option specs.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePipelineText } from '../../config/load.js';
import { createRegistry, openPipeline } from '../../config/open.js';
import { redactor } from '../../secrets/redactor.js';
import { templateText } from '../init.js';
import { TEMPLATES } from './catalog.js';
import { renderTemplate } from './render.js';

const registry = await createRegistry();
const dir = '/tmp/weir-templates';
const REFERENCED = ['PGPASSWORD', 'API_TOKEN', 'NATS_TOKEN'];
const saved = Object.fromEntries(REFERENCED.map((k) => [k, process.env[k]]));

afterEach(() => {
  for (const k of REFERENCED)
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
});

describe('weir init templates', () => {
  it('include the starters the issue asks for', () => {
    expect(TEMPLATES.map((t) => t.name)).toEqual(
      expect.arrayContaining(['csv-to-postgres', 'postgres-to-parquet', 'api-to-postgres', 'csv-to-sqlite', 'nats-to-postgres']),
    );
  });

  it.each(TEMPLATES.map((t) => [t.name, t] as const))('%s validates with no environment set', async (_name, template) => {
    for (const k of REFERENCED) delete process.env[k];
    const text = await templateText(template, join(dir, 'events.yaml'), registry);
    expect(text).toContain('pipeline: events');
    expect(text).toMatch(/^# /);
  });

  it.each(TEMPLATES.map((t) => [t.name, t] as const))('%s validates with its commented options uncommented', async (_name, template) => {
    for (const k of REFERENCED) process.env[k] = `value-of-${k}`;
    const text = renderTemplate(template, 'events', registry)
      .split('\n')
      .map((l) => l.replace(/^(\s*)# ([a-z_]+: )/, '$1$2'))
      .join('\n');
    const file = parsePipelineText(text, join(dir, 'events.yaml'));
    const pipeline = await openPipeline(file, dir, registry, redactor);
    expect(pipeline.config.source.type).toBe(template.source.type);
    for (const k of Object.keys(template.sink.commented ?? {})) expect(text).toMatch(new RegExp(`^  ${k}: `, 'm'));
  });

  it('puts the first sentence of each option description beside it', () => {
    const text = renderTemplate(TEMPLATES[0] as (typeof TEMPLATES)[number], 'events', registry);
    expect(text).toMatch(/^ {2}batch_size: 20000 +# Sink: rows per COPY batch\.$/m);
    expect(text).toMatch(/^ {2}delimiter: "," +# The field separator, one character, e\.g\. "," or ";" or "\\t"\.$/m);
    expect(text).toMatch(/^ {2}# password: "\$\{env:PGPASSWORD\}" +# Password of `user`\.$/m);
  });

  it('refuses a template naming an option its connector does not have', () => {
    const broken = { ...(TEMPLATES[0] as (typeof TEMPLATES)[number]), sink: { type: 'postgres', options: { hots: 'x' } } };
    expect(() => renderTemplate(broken, 'events', registry)).toThrow('the postgres connector has no option "hots"');
  });
});
