/**
 * `weir init [TEMPLATE] [FILE]`: writes a starter pipeline that validates.
 *
 * - `weir init` lists the templates.
 * - `weir init TEMPLATE [FILE]` writes TEMPLATE to FILE (default `TEMPLATE.yaml`), its
 *   pipeline id from FILE's name; an existing file is kept unless `--force`.
 *
 * The file is validated as `weir validate` would before it is written: a template that
 * does not validate is a bug in weir, never a user's problem to find.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, resolve } from 'node:path';
import { parsePipelineText } from '../config/load.js';
import { createRegistry, openPipeline } from '../config/open.js';
import type { Registry } from '../config/registry.js';
import { suggest } from '../sdk/options.js';
import { redactor } from '../secrets/redactor.js';
import { EXIT } from './exit.js';
import { findTemplate, TEMPLATES, type Template } from './templates/catalog.js';
import { renderTemplate } from './templates/render.js';

const PIPELINE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** The pipeline id a file name gives (`orders.yaml` → `orders`), else the template's name. */
export function pipelineIdFor(file: string, template: Template): string {
  const stem = basename(file, extname(file));
  return PIPELINE_ID.test(stem) ? stem : template.name;
}

/** The template as the text of `file`, validated as `weir validate` validates it. Throws when it does not validate (a bug). */
export async function templateText(template: Template, file: string, registry: Registry): Promise<string> {
  const text = renderTemplate(template, pipelineIdFor(file, template), registry);
  await openPipeline(parsePipelineText(text, file), dirname(resolve(file)), registry, redactor);
  return text;
}

function listTemplates(): number {
  const width = Math.max(...TEMPLATES.map((t) => t.name.length)) + 2;
  process.stdout.write('templates (weir init TEMPLATE [FILE]):\n');
  for (const t of TEMPLATES) process.stdout.write(`  ${t.name.padEnd(width)}${t.description}\n`);
  return EXIT.ok;
}

export async function initCommand(name: string | undefined, file: string | undefined, flags: { force?: boolean } = {}): Promise<number> {
  if (name === undefined) return listTemplates();
  const template = findTemplate(name);
  if (!template) {
    const near = suggest(
      name,
      TEMPLATES.map((t) => t.name),
    );
    process.stderr.write(
      `error: no template named ${JSON.stringify(name)}${near ? ` (did you mean "${near}"?)` : ''}; run weir init for the list\n`,
    );
    return EXIT.usage;
  }
  const target = file ?? `${template.name}.yaml`;
  const text = await templateText(template, target, await createRegistry());
  mkdirSync(dirname(resolve(target)), { recursive: true });
  try {
    writeFileSync(target, text, { flag: flags.force ? 'w' : 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    process.stderr.write(`error: ${target} already exists; pass --force to overwrite it, or name another file: weir init ${name} FILE\n`);
    return EXIT.usage;
  }
  process.stdout.write(
    `wrote ${target} (${template.name}). Before the first run: ${template.before}.\nThen: weir validate ${target} · weir run ${target} --dry-run\n`,
  );
  return EXIT.ok;
}
