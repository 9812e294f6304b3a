/**
 * What a person sees: a 2M-row run in a real terminal (tmux, 160×50), its screen
 * captured every 150 ms. On no screen is progress text glued to a log line; while the
 * run goes, the progress line is the last line; no line is wider than the terminal;
 * the last screen holds the summary and no progress line. Needs `npm run build` and tmux.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, tempDir } from '../helpers/cli.js';
import { requireTool } from '../helpers/services.js';

const tmuxHere = requireTool('tmux', 'tmux');
const WIDTH = 160;
const PROGRESS = /\d rows · [\d,]+ rows\/s/;
const LOG = /\d\d:\d\d:\d\d (TRACE|DEBUG|INFO |WARN |ERROR)/;

describe.skipIf(!tmuxHere)('weir run on a terminal', () => {
  it('keeps log lines and the progress line apart, the progress line last, then the summary', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'p.yaml'),
      'pipeline: screen\nsource: { type: generator, rows: 2000000, partitions: 8 }\nsink: { type: jsonl, path: out.jsonl }\nconcurrency: 2\n',
    );
    const socket = `weir-test-${randomBytes(4).toString('hex')}`;
    const tmux = (...args: string[]) => spawnSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
    // the command ends by leaving a marker file, so the test knows when the summary is on screen
    const command = `cd ${dir} && node ${BIN} run p.yaml --log-level debug; touch done; sleep 120`;
    const started = tmux('new-session', '-d', '-x', String(WIDTH), '-y', '50', '-e', 'NO_COLOR=1', command);
    expect(started.status, started.stderr).toBe(0);
    const screens: string[] = [];
    try {
      const deadline = Date.now() + 150_000;
      while (!existsSync(join(dir, 'done')) && Date.now() < deadline) {
        const pane = tmux('capture-pane', '-p');
        if (pane.status === 0) screens.push(pane.stdout);
        await new Promise((r) => setTimeout(r, 150));
      }
      expect(existsSync(join(dir, 'done')), 'the run ended within 150 s').toBe(true);
      // the joined capture shows lines as written, wrapped lines as one: none is wider than the terminal
      const joined = tmux('capture-pane', '-p', '-J', '-S', '-1000').stdout;
      screens.push(tmux('capture-pane', '-p').stdout);
      for (const line of joined.split('\n')) expect(Array.from(line).length, line).toBeLessThanOrEqual(WIDTH);
    } finally {
      tmux('kill-server');
    }

    const withProgress = screens.filter((s) => PROGRESS.test(s));
    expect(withProgress.length, 'the progress line was seen').toBeGreaterThan(0);
    expect(screens.some((s) => LOG.test(s))).toBe(true);
    for (const screen of screens) {
      const lines = screen.split('\n').map((l) => l.trimEnd());
      for (const l of lines) expect(PROGRESS.test(l) && LOG.test(l), `glued: ${l}`).toBe(false);
      const filled = lines.filter((l) => l !== '');
      const at = filled.findIndex((l) => PROGRESS.test(l));
      if (at >= 0 && !screen.includes('succeeded in')) expect(at, `progress not last:\n${screen}`).toBe(filled.length - 1);
    }
    const last = screens[screens.length - 1] as string;
    expect(last).toMatch(/✔ screen succeeded in/);
    expect(last).toContain('2,000,000 read');
    expect(PROGRESS.test(last)).toBe(false);
    // a line per event, no JSON payload on the terminal
    expect(last).not.toMatch(/\{"/);
  });
});
