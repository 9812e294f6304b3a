/**
 * A flood of bad rows does not flood the log: 100k dead letters through the real CLI give a
 * few dozen lines (the first of each kind, one per interval, a count of the rest), while the
 * summary and the dead-letter file still hold every one. Needs `npm run build`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { logLines, runCli, tempDir } from '../helpers/cli.js';

const BAD = 100_000;
const GOOD = 1_000;

/** GOOD objects, each followed by BAD / GOOD lines that are not JSON. */
function writeInput(path: string): void {
  const lines: string[] = [];
  for (let i = 0; i < GOOD; i++) {
    lines.push(JSON.stringify({ id: i, v: 'ok' }));
    for (let j = 0; j < BAD / GOOD; j++) lines.push(`not json ${i}.${j}`);
  }
  writeFileSync(path, `${lines.join('\n')}\n`);
}

describe('log rate limit', () => {
  it('turns 100k dead letters into a few dozen lines; the summary still counts every one', { timeout: 30_000 }, async () => {
    const dir = tempDir('weir-lograte-');
    writeInput(join(dir, 'in.jsonl'));
    writeFileSync(
      join(dir, 'p.yaml'),
      `pipeline: lograte
source: { type: jsonl, path: in.jsonl }
sink: { type: jsonl, path: out/good.jsonl }
errors:
  tolerance: all
  dead_letter: { type: jsonl, path: out/rejected.jsonl }
`,
    );
    const started = Date.now();
    const r = await runCli(['run', 'p.yaml', '--log-format', 'json', '--summary-json', 'out/summary.json'], { cwd: dir });
    const seconds = (Date.now() - started) / 1000;
    expect(r.stderr).toMatch(/100,000 dead-lettered/);
    expect(r.code).toBe(0);

    const printed = `${r.stdout}${r.stderr}`.split('\n').filter(Boolean);
    expect(printed.length).toBeLessThanOrEqual(36);
    const logs = logLines(r.stdout);
    const shown = logs.filter((l) => l.event === 'row_dead_lettered');
    const heldBack = (l: Record<string, unknown>) => Number(l.suppressed ?? 0);
    const reported = logs.filter((l) => l.event === 'log_suppressed' && l.suppressed_event === 'row_dead_lettered');
    expect(reported.length).toBeGreaterThan(0);
    expect(reported.at(-1)?.msg).toMatch(/^\d+ more row_dead_lettered lines suppressed$/);
    // every dead letter is either printed or counted in a later line
    expect(shown.length + [...shown, ...reported].reduce((n, l) => n + heldBack(l), 0)).toBe(BAD);

    const summary = JSON.parse(readFileSync(join(dir, 'out', 'summary.json'), 'utf8'));
    expect(summary.totals).toMatchObject({ rows_read: BAD + GOOD, rows_written: GOOD, rows_dead_lettered: BAD });
    expect(
      readFileSync(join(dir, 'out', 'rejected.jsonl'), 'utf8')
        .trim()
        .split('\n'),
    ).toHaveLength(BAD);
    console.log(`log-rate: ${printed.length} lines printed for ${BAD} dead letters in ${seconds.toFixed(1)} s`);
  });
});
