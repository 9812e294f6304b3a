/**
 * The live run page end to end: a rate-limited run (~8 s) with `--ui-port`, opened in
 * headless Chromium (Debian's /usr/bin/chromium through playwright-core). The numbers
 * move, the partitions table fills, a screenshot is taken, and a canary secret — in a
 * secret option, in dead-lettered rows' errors and in a retried attempt's error —
 * appears nowhere in the page's HTML, its SSE stream or its DOM.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error a plain JS module (the screenshot script), without types
import { captureRunPage, demoDir, demoPipeline } from '../../scripts/screenshot-ui.js';
import { requireTool } from '../helpers/services.js';
import { findLeaks, newCanary } from '../security/harness.js';

const hasChromium = requireTool('chromium', 'chromium');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Capture {
  html: string;
  dom: string;
  finalDom: string;
  pageSse: string;
  sse: string;
  readings: [{ at: number; rows: number }, { at: number; rows: number }];
  table: string[][];
  code: number | 'timeout';
  stdout: string;
  stderr: string;
}

describe.skipIf(!hasChromium)('weir run --ui-port in headless Chromium', () => {
  it('shows a live run whose numbers move, and never the canary', async () => {
    const canary = newCanary();
    const dir = demoDir(demoPipeline({ seconds: 8, rate: 1000, partitions: 6 }));
    dirs.push(dir);
    const port = 20000 + Math.floor(Math.random() * 20000);
    const r = (await captureRunPage({
      dir,
      env: { WEIR_UI_SECRET: canary.value },
      port,
      screenshot: join(dir, 'out', 'ui.png'),
    })) as Capture;
    expect(r.code, r.stderr).toBe(0);
    // the numbers move
    const [first, second] = r.readings;
    expect(first.rows).toBeGreaterThan(0);
    expect(second.rows).toBeGreaterThan(first.rows);
    // the table filled: one row per partition seen, with a state, rows and a duration
    expect(r.table.length).toBeGreaterThanOrEqual(3);
    for (const row of r.table) {
      expect(row[0]).toMatch(/^p\d$/);
      expect(['running', 'retrying', 'committed', 'failed', 'skipped']).toContain(row[1]);
      expect(row[6]).toMatch(/s$/);
    }
    expect(r.table.some((row) => row[1] === 'committed')).toBe(true);
    // the scenario did what it says: the canary's errors reached the page, scrubbed
    expect(r.dom).toContain('upstream refused record');
    expect(r.dom).toContain('***REDACTED***');
    expect(r.finalDom).toContain('succeeded');
    expect(r.finalDom).toContain('RowsRejected');
    expect(r.pageSse).toContain('"dead_letters"');
    expect(r.sse).toContain('event: snapshot');
    expect(r.sse).toContain('ECONNRESET');
    expect(r.sse).toContain('event: end');
    // and never the canary
    const leaks = findLeaks(canary, {
      html: r.html,
      'page sse': r.pageSse,
      sse: r.sse,
      'dom at screenshot': r.dom,
      'dom at end': r.finalDom,
      stdout: r.stdout,
      stderr: r.stderr,
    });
    expect(leaks).toEqual([]);
  }, 120_000);
});
