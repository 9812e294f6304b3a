/**
 * `weir completion bash|zsh`: the script is built from the program itself, so bash
 * completes every subcommand, the options of each, their choices and the connector
 * names. Needs `npm run build` and bash; zsh is checked where it is installed.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../test/helpers/cli.js';
import { TEMPLATES } from './templates/catalog.js';

const dir = tempDir();
const script = join(dir, 'weir.bash');

/** What bash completes for the words of a command line (the last one being typed). */
function complete(...words: string[]): string[] {
  const line = words.map((w) => `'${w}'`).join(' ');
  const r = spawnSync(
    'bash',
    ['-c', `source ${script}; COMP_WORDS=(${line}); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); _weir; printf '%s\\n' "\${COMPREPLY[@]}"`],
    { encoding: 'utf8', cwd: dir },
  );
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

beforeAll(async () => {
  const r = await runCli(['completion', 'bash']);
  expect(r.code, r.stderr).toBe(0);
  writeFileSync(script, r.stdout);
});

describe('weir completion bash', () => {
  it('registers itself with complete -F', () => {
    const r = spawnSync('bash', ['-c', `source ${script}; complete -p weir`], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('complete -F _weir weir');
  });

  it('completes the subcommands, from the program', async () => {
    const help = await runCli(['--help']);
    const listed = [...help.stdout.matchAll(/^ {2}([a-z]+)\b/gm)].map((m) => m[1]).filter((c) => c !== 'help');
    expect(listed.length).toBeGreaterThan(10);
    expect(complete('weir', '').sort()).toEqual([...new Set(listed)].sort());
    expect(complete('weir', 'st')).toEqual(['status', 'state']);
    expect(complete('weir', 'state', '')).toEqual(['list', 'show', 'reset']);
  });

  it("completes a command's options and an option's choices", () => {
    expect(complete('weir', 'run', '--dr')).toEqual(['--dry-run']);
    expect(complete('weir', 'discover', '--')).toEqual(expect.arrayContaining(['--json', '--set', '--log-level', '--help']));
    expect(complete('weir', 'run', '--log-format', '')).toEqual(['json', 'pretty']);
    expect(complete('weir', 'run', '--engine', 'b')).toEqual(['bullmq']);
  });

  it('completes connector names, templates and files where the program names them', () => {
    writeFileSync(join(dir, 'orders.yaml'), '');
    expect(complete('weir', 'spec', 'post')).toEqual(['postgres']);
    expect(complete('weir', 'docs', '')).toEqual(expect.arrayContaining(['csv', 'postgres', 'nats', 'sqlite']));
    expect(complete('weir', 'init', '')).toEqual(TEMPLATES.map((t) => t.name));
    expect(complete('weir', 'run', '--log-level', 'info', 'ord')).toEqual(['orders.yaml']);
    expect(complete('weir', 'completion', '')).toEqual(['bash', 'zsh']);
  });
});

const zsh = spawnSync('zsh', ['--version']).error === undefined;
if (!zsh) process.stderr.write('\n[weir tests] SKIPPED: zsh is not installed (Debian package zsh); weir completion zsh is not checked\n');

describe.skipIf(!zsh)('weir completion zsh', () => {
  it('loads in zsh and registers the completion', async () => {
    const r = await runCli(['completion', 'zsh']);
    const file = join(dir, 'weir.zsh');
    writeFileSync(file, r.stdout);
    const z = spawnSync('zsh', ['-c', `autoload -U compinit && compinit -u; source ${file}; print -r -- $_comps[weir]`], {
      encoding: 'utf8',
    });
    expect(z.status, z.stderr).toBe(0);
    expect(z.stdout).toContain('_weir');
  });
});
