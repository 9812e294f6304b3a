/**
 * A template (catalog.ts) as a pipeline file: each option with the first sentence of
 * its spec's description beside it, the template's commented options as comments, and
 * a header that says what to do next. Every option must exist in its connector's spec
 * (or the pipeline file's): a template that names one that does not is a bug, thrown
 * here, before any file is written.
 */
import { stringify } from 'yaml';
import { pipelineSpec } from '../../config/pipeline.js';
import type { Registry } from '../../config/registry.js';
import type { Spec } from '../../sdk/options.js';
import type { Template, TemplateSection } from './catalog.js';

const COMMENT_COLUMN_MAX = 44;
const COMMENT_MAX = 96;

// a sentence ends at a full stop and a space, not inside "e.g." or "i.e."
const SENTENCE_END = /(?<!\be\.g|\bi\.e)\.(?=\s|$)/g;
// "Sink only." says too little alone: the next sentence comes with it
const TOO_SHORT = 16;

/** The first sentence of an option's description, short enough for a line's end. */
export function summary(description: string | undefined): string {
  const text = (description ?? '').replace(/\s+/g, ' ').trim();
  const ends = [...text.matchAll(SENTENCE_END)].map((m) => (m.index ?? 0) + 1);
  const end = ends.find((e) => e >= TOO_SHORT) ?? text.length;
  const first = text.slice(0, end);
  return first.length > COMMENT_MAX ? `${first.slice(0, COMMENT_MAX - 1)}…` : first;
}

/** A value in YAML flow style, on one line. */
const flow = (value: unknown) => stringify(value, { collectionStyle: 'flow', lineWidth: 0 }).trimEnd();

interface Line {
  text: string;
  comment?: string;
}

function optionLines(
  spec: Spec,
  options: Record<string, unknown>,
  indent: string,
  where: string,
  set: Record<string, unknown> = {},
): Line[] {
  const commented = options !== set;
  return Object.entries(options).map(([key, value]) => {
    const opt = spec[key];
    if (!opt) throw new Error(`template bug: ${where} has no option ${JSON.stringify(key)}`);
    if (commented && key in set) throw new Error(`template bug: ${where}'s ${key} is both set and commented`);
    return { text: `${indent}${commented ? '# ' : ''}${key}: ${flow(value)}`, comment: summary(opt.meta.description) };
  });
}

function sectionLines(role: 'source' | 'sink', section: TemplateSection, registry: Registry): Line[] {
  const connector = registry.get(section.type);
  if (!connector?.[role]) throw new Error(`template bug: no ${role} connector ${JSON.stringify(section.type)}`);
  const where = `the ${section.type} connector`;
  return [
    { text: `${role}:` },
    { text: `  type: ${section.type}`, comment: summary(connector.description) },
    ...optionLines(connector.options, section.options, '  ', where, section.options),
    ...optionLines(connector.options, section.commented ?? {}, '  ', where, section.options),
  ];
}

function aligned(lines: Line[]): string {
  const column = Math.min(COMMENT_COLUMN_MAX, Math.max(...lines.map((l) => (l.comment ? l.text.length : 0))) + 2);
  return lines.map((l) => (l.comment ? `${l.text.padEnd(column - 2)}  # ${l.comment}` : l.text)).join('\n');
}

/**
 * The pipeline file of `template`, with pipeline id `id`.
 *
 * @example
 * writeFileSync('events.yaml', renderTemplate(findTemplate('csv-to-postgres')!, 'events', registry));
 */
export function renderTemplate(template: Template, id: string, registry: Registry): string {
  const pipeline = pipelineSpec(registry) as Spec;
  const roles = [template.source.type, template.sink.type];
  const set = template.pipeline ?? {};
  const header = [
    `# ${template.name}: ${template.description}.`,
    `# Written by \`weir init ${template.name}\`.`,
    `# Before the first run: ${template.before}.`,
    '# Then: weir validate FILE · weir discover FILE · weir run FILE --dry-run · weir run FILE',
    `# Every option: ${[...new Set(roles)].map((t) => `weir docs ${t}`).join(' · ')} · weir docs pipeline`,
    '',
  ];
  const lines: Line[] = [
    { text: `pipeline: ${flow(id)}`, comment: summary(pipeline.pipeline?.meta.description) },
    ...sectionLines('source', template.source, registry),
    ...sectionLines('sink', template.sink, registry),
    ...optionLines(pipeline, set, '', 'the pipeline file', set),
    ...optionLines(pipeline, template.pipelineCommented ?? {}, '', 'the pipeline file', set),
  ];
  return `${header.join('\n')}${aligned(lines)}\n`;
}
