/**
 * SIGTERM/SIGINT on the real CLI: the run drains, prints its summary, closes every
 * writer, exits 143/130, and `weir run` again resumes it. A second signal exits at
 * once, still closing what it can. Needs `npm run build`.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { logLines, runCli, tempDir } from '../helpers/cli.js';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'connectors.mjs');

function pipeline(dir: string, sink = '', extra = ''): string {
  const file = join(dir, 'p.yaml');
  writeFileSync(
    file,
    `pipeline: signal-test
connectors: [${JSON.stringify(FIXTURE)}]
concurrency: 2
source: { type: test-source, rows: 2400, partitions: 6, delay_ms: 1 }
sink: { type: test-sink, close_log: ${JSON.stringify(join(dir, 'writers.log'))}${sink} }
batch: { rows: 50 }
${extra}`,
  );
  return file;
}

/** Every writer that was opened was closed (the close log has an `open ID` and a `close ID` per writer). */
function writersBalanced(dir: string): { opened: string[]; closed: string[] } {
  const lines = existsSync(join(dir, 'writers.log')) ? readFileSync(join(dir, 'writers.log'), 'utf8').trim().split('\n') : [];
  const opened = lines
    .filter((l) => l.startsWith('open '))
    .map((l) => l.slice(5))
    .sort();
  const closed = lines
    .filter((l) => l.startsWith('close '))
    .map((l) => l.slice(6))
    .sort();
  return { opened, closed };
}

describe('signals', () => {
  it('SIGTERM: drains, prints the summary (status stopped), closes every writer, exits 143; a second run resumes', async () => {
    const dir = tempDir('weir-sigterm-');
    const file = pipeline(dir);
    let sent = false;
    const r = await runCli(['run', file, '--log-format', 'json', '--summary-json', join(dir, 's.json')], {
      cwd: dir,
      onStdout: (chunk, kill) => {
        if (!sent && chunk.includes('"event":"partition_complete"')) {
          sent = true;
          kill('SIGTERM');
        }
      },
    });
    expect(r.code, r.stderr).toBe(143);
    expect(r.stderr).toMatch(/■ signal-test stopped in/);
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
    const logs = logLines(r.stdout);
    expect(logs.some((l) => l.event === 'shutdown_requested' && l.signal === 'SIGTERM')).toBe(true);
    expect(logs.find((l) => l.event === 'run_failed')).toMatchObject({ status: 'stopped', level: 'warn' });
    const summary = JSON.parse(readFileSync(join(dir, 's.json'), 'utf8'));
    expect(summary.status).toBe('stopped');
    const committed = summary.totals.partitions_committed as number;
    expect(committed).toBeGreaterThanOrEqual(1);
    expect(committed).toBeLessThan(6);
    const w = writersBalanced(dir);
    expect(w.opened.length).toBeGreaterThan(0);
    expect(w.closed).toEqual(w.opened);

    const again = await runCli(['run', file, '--log-format', 'json', '--summary-json', join(dir, 's2.json')], { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    const s2 = JSON.parse(readFileSync(join(dir, 's2.json'), 'utf8'));
    expect(s2).toMatchObject({ status: 'succeeded', resumed: true, run_id: summary.run_id });
    expect(s2.totals).toMatchObject({ partitions_committed: 6, partitions_skipped: committed });
    expect(again.stderr).toContain(`(${committed} skipped: already committed)`);
  });

  it('SIGINT exits 130 after the drain', async () => {
    const dir = tempDir('weir-sigint-');
    let sent = false;
    const r = await runCli(['run', pipeline(dir), '--log-format', 'json'], {
      cwd: dir,
      onStdout: (chunk, kill) => {
        if (!sent && chunk.includes('"event":"run_start"')) {
          sent = true;
          setTimeout(() => kill('SIGINT'), 200);
        }
      },
    });
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/■ signal-test stopped/);
    const w = writersBalanced(dir);
    expect(w.closed).toEqual(w.opened);
  });

  it('a second signal exits at once, still closing the open writers', async () => {
    const dir = tempDir('weir-sig2-');
    // each write takes 20 s and the shutdown timeout is long: only the second signal ends the run quickly
    const file = pipeline(dir, ', write_delay_ms: 20000', 'shutdown_timeout: 60s');
    let sent = 0;
    const t0 = Date.now();
    let firstAt = 0;
    const r = await runCli(['run', file, '--log-format', 'json'], {
      cwd: dir,
      onStdout: (chunk, kill) => {
        if (sent === 0 && chunk.includes('"event":"run_start"')) {
          sent = 1;
          setTimeout(() => {
            firstAt = Date.now();
            kill('SIGTERM');
            setTimeout(() => kill('SIGTERM'), 300);
          }, 300);
        }
      },
    });
    expect(r.code).toBe(143);
    expect(Date.now() - firstAt).toBeLessThan(4000);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(r.stderr).toContain('SIGTERM again: closing');
    const w = writersBalanced(dir);
    expect(w.opened).toHaveLength(2);
    expect(w.closed).toEqual(w.opened);
  });
});
