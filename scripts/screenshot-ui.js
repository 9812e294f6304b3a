// Runs a rate-limited pipeline with `--ui-port`, opens its run page in headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core), and saves a screenshot.
//
//   node scripts/screenshot-ui.js [out.png]      (default docs/ui.png; needs `npm run build`)
//
// test/observe/ui.test.ts calls captureRunPage() too: what it checks is what the
// committed screenshot shows.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const CHROMIUM = '/usr/bin/chromium';
/** The machine's network is closed: without these Chromium floods refused connections. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A pipeline of the test source (`slowsrc`) that lasts about `seconds` at `rate` rows/s, with dead letters, a partition retry and an alert. */
export function demoPipeline({ seconds = 8, rate = 1000, partitions = 6 } = {}) {
  const rows = Math.round((seconds * rate) / partitions);
  return [
    'pipeline: orders-to-warehouse',
    'connectors: [./fixtures/slow-source.mjs]',
    'source:',
    '  type: slowsrc',
    '  api_key: ${env:WEIR_UI_SECRET}',
    `  rows: ${rows}`,
    `  partitions: ${partitions}`,
    '  reject_every: 400',
    '  fail_first_attempt: true',
    'sink: { type: sqlite, path: out/warehouse.db, table: orders }',
    'errors: { tolerance: all, dead_letter: { type: jsonl, path: out/dead.jsonl } }',
    `rate_limit: { rows_per_second: ${rate} }`,
    'retry: { initial_delay: 200ms }',
    'concurrency: 3',
    'batch: { rows: 200 }',
    'alerts:',
    '  - { name: RowsRejected, when: "rows_failed > 0", severity: warning }',
    '',
  ].join('\n');
}

/** A fresh directory holding the demo pipeline (the fixture linked beside it). */
export function demoDir(pipelineText) {
  const dir = mkdtempSync(join(tmpdir(), 'weir-ui-'));
  symlinkSync(join(root, 'test', 'observe', 'fixtures'), join(dir, 'fixtures'));
  mkdirSync(join(dir, 'out'));
  writeFileSync(join(dir, 'pipeline.yaml'), pipelineText);
  return dir;
}

const sleep = (ms, unref = false) =>
  new Promise((r) => {
    const t = setTimeout(r, ms);
    if (unref) t.unref();
  });

async function waitFor(check, timeoutMs, what) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * Runs `weir run pipeline.yaml --ui-port PORT` in `dir`, opens the page, and records
 * what the page got: its HTML, its SSE stream (seen by the page and by a second
 * client), two readings of "rows read", the partitions table, the DOM when the
 * screenshot is taken. Resolves once the run ended.
 */
export async function captureRunPage({ dir, env = {}, port, screenshot, readingsGapMs = 2500, timeoutMs = 60_000 }) {
  const { chromium } = await import('playwright-core');
  const child = spawn(
    process.execPath,
    [join(root, 'bin', 'weir.js'), 'run', 'pipeline.yaml', '--ui-port', String(port), '--log-format', 'json'],
    {
      cwd: dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((r) => child.on('exit', (code) => r(code)));
  const base = `http://127.0.0.1:${port}/`;
  const userDir = mkdtempSync(join(tmpdir(), 'weir-chromium-'));
  let browser;
  const sse = { text: '' };
  const controller = new AbortController();
  try {
    await waitFor(async () => (await fetch(`${base}healthz`)).ok, 20_000, `the run page on ${base}`);
    const html = await (await fetch(base)).text();
    // a second client of the event stream, read raw
    const streamed = fetch(`${base}events`, { signal: controller.signal })
      .then(async (res) => {
        const decoder = new TextDecoder();
        for await (const chunk of res.body) sse.text += decoder.decode(chunk, { stream: true });
      })
      .catch(() => {});
    browser = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 1000 },
    });
    const page = await browser.newPage();
    // records every message the page's EventSource receives
    await page.addInitScript(() => {
      window.__sse = [];
      const Original = window.EventSource;
      window.EventSource = class extends Original {
        constructor(...args) {
          super(...args);
          this.addEventListener('snapshot', (m) => window.__sse.push(m.data));
        }
      };
    });
    await page.goto(base);
    const readRows = async () => Number(((await page.textContent('#read')) ?? '').replace(/[^0-9]/g, '') || 0);
    await waitFor(async () => (await readRows()) > 0, 20_000, 'rows read on the page');
    const first = { at: Date.now(), rows: await readRows() };
    await sleep(readingsGapMs);
    const second = { at: Date.now(), rows: await readRows() };
    await waitFor(async () => (await page.locator('#parts tr').count()) > 0, 20_000, 'the partitions table');
    // the screenshot once some partitions committed, while the run still runs
    await waitFor(
      async () => (await page.locator('#parts td.state-committed').count()) > 0 || (await page.textContent('#status')) !== 'running',
      timeoutMs,
      'a committed partition',
    );
    await waitFor(async () => (await page.locator('#alerts .alert').count()) > 0, 10_000, 'the alert').catch(() => {});
    const table = await page.$$eval('#parts tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    if (screenshot) {
      mkdirSync(dirname(screenshot), { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true });
    }
    const dom = await page.content();
    const status = await page.textContent('#status');
    const code = await Promise.race([exited, sleep(timeoutMs, true).then(() => 'timeout')]);
    await sleep(300);
    const pageSse = await page.evaluate(() => window.__sse.join('\n'));
    const finalDom = await page.content();
    return { html, dom, finalDom, pageSse, sse: sse.text, readings: [first, second], table, status, code, stdout, stderr, streamed };
  } finally {
    controller.abort();
    await browser?.close().catch(() => {});
    if (child.exitCode === null) child.kill('SIGTERM');
    rmSync(userDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = resolve(process.argv[2] ?? join(root, 'docs', 'ui.png'));
  const dir = demoDir(demoPipeline({ seconds: 12 }));
  try {
    const r = await captureRunPage({
      dir,
      env: { WEIR_UI_SECRET: 'demo-secret-not-real-0000' },
      port: 20000 + Math.floor(Math.random() * 20000),
      screenshot: out,
    });
    process.stdout.write(`run exited ${r.code}; rows read ${r.readings[0].rows} → ${r.readings[1].rows}; screenshot ${out}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
