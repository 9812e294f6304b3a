/**
 * The checkpoint store lives beside the pipeline file (`.weir/` there), as every other
 * path of the file resolves: the same pipeline stopped in one working directory
 * resumes from another, and no `.weir/` appears where weir was started. Needs `npm run build`.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { logLines, runCli, tempDir } from '../helpers/cli.js';

describe('checkpoint store location', () => {
  it('is beside the pipeline file: a run stopped from one directory resumes from another', async () => {
    const root = tempDir();
    const home = join(root, 'pipelines');
    const [a, b] = [join(root, 'a'), join(root, 'b')];
    for (const d of [home, a, b]) mkdirSync(d);
    const file = join(home, 'p.yaml');
    writeFileSync(
      file,
      'pipeline: located\nsource: { type: generator, rows: 4000, partitions: 4 }\nsink: { type: sqlite, path: out.db, table: t, batch_size: 100 }\nconcurrency: 1\nrate_limit: { rows_per_second: 2000 }\n',
    );
    const first = await runCli(['run', file], {
      cwd: a,
      onStdout: (chunk, kill) => {
        if (chunk.includes('"partition_complete"')) kill('SIGTERM');
      },
    });
    expect(first.code, first.stderr).toBe(143);
    expect(existsSync(join(home, '.weir', 'checkpoints.db'))).toBe(true);
    expect(existsSync(join(home, 'out.db'))).toBe(true);
    // the state is visible: what ran, and what the next run does; a reset refuses to forget an interrupted run
    const show = await runCli(['state', 'show', file], { cwd: b });
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/stopped\s+1\/4 partitions committed/);
    expect(show.stdout).toMatch(/next weir run resumes run \S+: its 1 committed partition\(s\) are skipped/);
    const refused = await runCli(['state', 'reset', file], { cwd: b });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--fresh');
    const list = await runCli(['state', 'list', home]);
    expect(list.stdout).toMatch(/^located {2}1 run\(s\); last \S+ {2}stopped/m);
    const second = await runCli(['run', file], { cwd: b });
    expect(second.code, second.stderr).toBe(0);
    const start = logLines(second.stdout).find((l) => l.event === 'run_start');
    expect(start?.resumed).toBe(true);
    expect(logLines(second.stdout).some((l) => l.event === 'partition_skipped')).toBe(true);
    for (const d of [a, b]) expect(existsSync(join(d, '.weir')), `no .weir/ in ${d}`).toBe(false);
    const reset = await runCli(['state', 'reset', file], { cwd: b });
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toContain('forgot 1 run(s) of located');
    expect((await runCli(['state', 'show', file])).stdout).toContain('no runs recorded');
  });
});
