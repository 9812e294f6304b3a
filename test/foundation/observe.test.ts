import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePipelineText } from '../../src/config/load.js';
import { validatePipeline } from '../../src/config/pipeline.js';
import { Registry } from '../../src/config/registry.js';
import { builtinConnectors } from '../../src/connectors/index.js';
import { evaluateAlerts, parseCondition, prometheusRules, promql } from '../../src/observe/alerts.js';
import { EventBus } from '../../src/observe/events.js';
import { collectMetrics, startHealthServer } from '../../src/observe/metrics.js';
import { Redactor } from '../../src/secrets/redactor.js';
import { requireTool } from '../helpers/services.js';

const promtool = requireTool('promtool', 'prometheus');

/** Waits until `ok()` holds (at most 10 s: timers run late on a loaded machine). */
async function waitFor(ok: () => boolean): Promise<void> {
  for (const until = Date.now() + 10_000; !ok() && Date.now() < until; ) await new Promise((r) => setTimeout(r, 10));
}

const yaml = `pipeline: obs
source: { type: generator, rows: 10 }
sink: { type: sqlite, path: out.db, table: t }
alerts:
  - { name: HighErrorRate, when: error_rate > 0.01, for: 1m }
  - { name: SlowBatches, when: batch_latency_p99 > 2s, for: 5m, severity: critical }
`;

function config() {
  return validatePipeline(parsePipelineText(yaml), new Registry(builtinConnectors), new Redactor(), '/tmp').config;
}

describe('metrics', () => {
  it('turns events into weir_ metrics and serves /metrics, /healthz and /readyz', async () => {
    const bus = new EventBus();
    const metrics = collectMetrics(bus, new Redactor(), false);
    const server = await startHealthServer(metrics, 0);
    const port = (server.address() as { port: number }).port;
    const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`);
    expect((await get('/readyz')).status).toBe(503);
    bus.emit({
      type: 'run_start',
      run_id: 'r',
      pipeline: 'p1',
      source: 'generator',
      sink: 'sqlite',
      partitions: 1,
      delivery: 'at-least-once',
      resumed: false,
    });
    bus.emit({ type: 'rows_read', partition_id: '0', rows: 10 });
    bus.emit({ type: 'batch_written', partition_id: '0', batch_id: 1, rows: 9, bytes: 900, duration_ms: 12 });
    bus.emit({ type: 'row_dead_lettered', partition_id: '0', stage: 'write', error_type: 'bad_row', error_message: 'x' });
    bus.emit({
      type: 'batch_retry',
      partition_id: '0',
      batch_id: 1,
      attempt: 1,
      delay_ms: 5,
      error_type: 'ECONNRESET',
      error_message: 'reset',
    });
    expect((await get('/readyz')).status).toBe(200);
    expect((await get('/healthz')).status).toBe(200);
    const text = await (await get('/metrics')).text();
    expect(text).toContain('weir_rows_read_total{pipeline="p1",source="generator"} 10');
    expect(text).toContain('weir_rows_written_total{pipeline="p1",sink="sqlite"} 9');
    expect(text).toContain('weir_sent_bytes_total{pipeline="p1",sink="sqlite"} 900');
    expect(text).toContain('weir_rows_failed_total{pipeline="p1",stage="write",error_type="bad_row"} 1');
    expect(text).toContain('weir_batch_retries_total{pipeline="p1",sink="sqlite",error_type="ECONNRESET"} 1');
    // a stream's consumer lag: the latest value per partition, summed
    bus.emit({ type: 'source_lag', partition_id: '0', lag: 700 });
    bus.emit({ type: 'source_lag', partition_id: '1', lag: 50 });
    bus.emit({ type: 'source_lag', partition_id: '0', lag: 300 });
    const lagged = await (await get('/metrics')).text();
    expect(lagged).toContain('weir_source_lag_messages{pipeline="p1",source="generator"} 350');
    expect(lagged).toMatch(/weir_source_last_message_timestamp_seconds\{pipeline="p1",source="generator"\} \d/);
    expect(text).toContain('weir_batch_duration_seconds_bucket');
    for (const line of text.split('\n').filter((l) => l.startsWith('# TYPE weir_'))) {
      const [, , name, type] = line.split(' ');
      if (type === 'counter') expect(name).toMatch(/_total$/);
    }
    server.close();
    metrics.stop();
  });
});

describe('alerts', () => {
  it('exports Prometheus rules', () => {
    const rules = prometheusRules(config());
    expect(rules).toContain('alert: HighErrorRate');
    expect(rules).toContain('weir_rows_failed_total{pipeline="obs"}');
    expect(rules).toContain('for: 60s');
    expect(rules).toContain('histogram_quantile(0.99');
    expect(promql(parseCondition('batch_latency_p99 > 2s'), 'obs')).toMatch(/> 2$/);
    expect(parseCondition('batch_latency_p99 > 250ms').value).toBeCloseTo(0.25);
  });

  it('fires after the condition held for `for`, and resolves', async () => {
    const bus = new EventBus();
    const logs: string[] = [];
    const c = { ...config(), alerts: [{ name: 'Errors', when: 'error_rate > 0.1', for: 0, severity: 'warning' as const }] };
    const stop = evaluateAlerts(bus, c, {
      intervalMs: 20,
      windowMs: 60,
      redactor: new Redactor(),
      log: (_l, f) => logs.push(String(f.event)),
    });
    bus.emit({ type: 'rows_read', partition_id: '0', rows: 10 });
    for (let i = 0; i < 5; i++)
      bus.emit({ type: 'row_dead_lettered', partition_id: '0', stage: 'write', error_type: 'x', error_message: 'x' });
    await waitFor(() => logs.includes('alert_firing'));
    for (let i = 0; i < 400 && !logs.includes('alert_resolved'); i++) {
      bus.emit({ type: 'rows_read', partition_id: '0', rows: 1000 });
      await new Promise((r) => setTimeout(r, 25));
    }
    await stop();
    expect(logs).toContain('alert_resolved');
  });
});

describe('stream alerts', () => {
  it('fire on consumer lag and on a source that went quiet', async () => {
    const bus = new EventBus();
    const logs: string[] = [];
    const c = {
      ...config(),
      alerts: [
        { name: 'Lagging', when: 'lag > 10000', for: 0, severity: 'warning' as const },
        { name: 'Quiet', when: 'idle_seconds > 1', for: 0, severity: 'warning' as const },
      ],
    };
    const stop = evaluateAlerts(bus, c, { intervalMs: 20, redactor: new Redactor(), log: (_l, f) => logs.push(`${f.event} ${f.alert}`) });
    bus.emit({ type: 'rows_read', partition_id: '0', rows: 10 });
    bus.emit({ type: 'source_lag', partition_id: '0', lag: 9000 });
    bus.emit({ type: 'source_lag', partition_id: '1', lag: 2000 });
    await waitFor(() => logs.includes('alert_firing Lagging'));
    expect(logs).not.toContain('alert_firing Quiet');
    bus.emit({ type: 'source_lag', partition_id: '1', lag: 0 });
    await waitFor(() => logs.includes('alert_resolved Lagging') && logs.includes('alert_firing Quiet'));
    await stop();
    expect(logs).toContain('alert_resolved Lagging');
    expect(logs).toContain('alert_firing Quiet');
    expect(promql(parseCondition('lag > 10000'), 'obs')).toBe('sum(weir_source_lag_messages{pipeline="obs"}) > 10000');
    expect(promql(parseCondition('idle_seconds > 300'), 'obs')).toContain('time() - max(weir_source_last_message_timestamp_seconds');
  });
});

describe('weir run --metrics-port', () => {
  it('serves /metrics while the run is in progress', async () => {
    const { runCli, tempDir } = await import('../helpers/cli.js');
    const dir = tempDir();
    const file = join(dir, 'p.yaml');
    writeFileSync(
      file,
      'pipeline: scraped\nsource: { type: generator, rows: 3000 }\nsink: { type: sqlite, path: out.db, table: t, batch_size: 100 }\nrate_limit: { rows_per_second: 1500 }\n',
    );
    const port = 20000 + Math.floor(Math.random() * 20000);
    let scraped = '';
    const r = await runCli(['run', file, '--metrics-port', String(port)], {
      cwd: dir,
      onStdout: (chunk) => {
        if (!scraped && chunk.includes('run_start'))
          setTimeout(() => {
            fetch(`http://127.0.0.1:${port}/metrics`)
              .then((res) => res.text())
              .then((t) => {
                scraped = t;
              })
              .catch(() => {});
          }, 500);
      },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(scraped).toContain('weir_rows_written_total{pipeline="scraped",sink="sqlite"}');
    expect(scraped).toContain('weir_run_running{pipeline="scraped"} 1');
    expect(scraped).toContain('weir_run_status{pipeline="scraped",status="running"} 1');
    expect(scraped).toMatch(
      /weir_run_info\{pipeline="scraped",run_id="[^"]+",source="generator",sink="sqlite",delivery="at-least-once",version="\d/,
    );
    expect(scraped).toMatch(/weir_partitions\{pipeline="scraped",state="running"\} [1-9]/);
    expect(scraped).toContain('process_cpu_seconds_total');
    expect(scraped).not.toContain('weir_process_');
    // the format Prometheus checks: names, suffixes, HELP and TYPE lines
    if (!promtool) return;
    const check = spawnSync('promtool', ['check', 'metrics'], { input: scraped, encoding: 'utf8' });
    expect(`${check.stdout}${check.stderr}`.trim()).toBe('');
    expect(check.status).toBe(0);
  });
});

describe.skipIf(!promtool)('weir alerts', () => {
  it('writes a rules file promtool accepts', async () => {
    const { runCli, tempDir } = await import('../helpers/cli.js');
    const dir = tempDir();
    const file = join(dir, 'p.yaml');
    writeFileSync(
      file,
      `${yaml}  - { name: Lagging, when: lag > 10000, for: 5m }\n  - { name: Quiet, when: idle_seconds > 300, for: 1m, severity: critical }\n`,
    );
    const r = await runCli(['alerts', file], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    writeFileSync(join(dir, 'rules.yaml'), r.stdout);
    const check = spawnSync('promtool', ['check', 'rules', join(dir, 'rules.yaml')], { encoding: 'utf8' });
    expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
    expect(check.stdout).toContain('SUCCESS: 4 rules found');
  });
});

describe('the Grafana dashboard (docs/grafana-dashboard.json)', () => {
  it('queries only metrics weir exports', async () => {
    const { readFileSync } = await import('node:fs');
    const dashboard = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'grafana-dashboard.json'), 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
      templating: { list: { query: string }[] };
    };
    const bus = new EventBus();
    const metrics = collectMetrics(bus, new Redactor());
    const families = new Set<string>();
    for (const m of await metrics.registry.getMetricsAsJSON()) {
      families.add(m.name);
      if (m.type === ('histogram' as unknown)) for (const s of ['_bucket', '_sum', '_count']) families.add(`${m.name}${s}`);
    }
    metrics.stop();
    const exprs = [...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)), ...dashboard.templating.list.map((v) => v.query)];
    const named = exprs.flatMap((e) => [...e.matchAll(/\b((?:weir|process|nodejs)_[a-z_]+)\b/g)].map((m) => m[1] as string));
    expect(named.length).toBeGreaterThan(15);
    expect(named.filter((n) => !families.has(n))).toEqual([]);
  });
});
