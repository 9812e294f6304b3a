/**
 * OpenTelemetry export end to end: `weir run --otlp-endpoint` against a local OTLP/HTTP
 * receiver (a node:http server taking `POST /v1/traces` and `/v1/metrics`, JSON). The
 * run span, one span per partition attempt (the retried partition twice) with the run
 * id, partition id and attempt, batch writes as span events, and the metrics arrive; a
 * canary secret — in the export headers, in a secret option, in row errors and in a
 * retried attempt's error — is absent from every payload.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logLines, runCli, tempDir } from '../helpers/cli.js';
import { findLeaks, newCanary } from '../security/harness.js';

interface Received {
  path: string;
  headers: Record<string, unknown>;
  body: string;
}

let server: Server;
let endpoint: string;
const received: Received[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
    });
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

type AnyValue = { stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number };
interface KeyValue {
  key: string;
  value: AnyValue;
}
interface OtlpSpan {
  name: string;
  spanId: string;
  parentSpanId?: string;
  attributes: KeyValue[];
  events?: { name: string; attributes: KeyValue[] }[];
  status?: { code?: number };
}
const attr = (list: KeyValue[] | undefined, key: string) => {
  const v = list?.find((a) => a.key === key)?.value;
  if (!v) return undefined;
  return v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue));
};

function scenario(pipeline: string): string {
  const dir = tempDir('weir-otel-');
  symlinkSync(join(import.meta.dirname, 'fixtures'), join(dir, 'fixtures'));
  mkdirSync(join(dir, 'out'));
  writeFileSync(join(dir, 'pipeline.yaml'), pipeline);
  return dir;
}

describe('weir run --otlp-endpoint', () => {
  it('exports the run span, a span per partition attempt and metrics, without the canary', async () => {
    const canary = newCanary();
    const dir = scenario(
      [
        'pipeline: otel-test',
        'connectors: [./fixtures/slow-source.mjs]',
        'source: { type: slowsrc, api_key: "${env:WEIR_OTEL_SECRET}", rows: 300, partitions: 3, reject_every: 100, fail_first_attempt: true }',
        'sink: { type: jsonl, path: out/rows.jsonl }',
        'errors: { tolerance: all, dead_letter: { type: jsonl, path: out/dead.jsonl } }',
        'retry: { initial_delay: 50ms }',
        'batch: { rows: 50 }',
        'telemetry:',
        '  service_name: weir-otel-test',
        '  metrics_interval: 500ms',
        '  headers: { authorization: "Bearer ${env:WEIR_OTEL_SECRET}" }',
        '',
      ].join('\n'),
    );
    const r = await runCli(['run', 'pipeline.yaml', '--log-format', 'json', '--otlp-endpoint', endpoint], {
      cwd: dir,
      env: { WEIR_OTEL_SECRET: canary.value },
    });
    expect(r.code, r.stderr).toBe(0);
    const runId = logLines(r.stdout).find((l) => l.event === 'run_start')?.run_id as string;
    expect(runId).toMatch(/^\d{8}T\d{6}Z-/);

    const traces = received.filter((x) => x.path === '/v1/traces');
    const metrics = received.filter((x) => x.path === '/v1/metrics');
    expect(traces.length).toBeGreaterThan(0);
    expect(metrics.length).toBeGreaterThan(0);
    // the secret really went to the collector, in the header it belongs in
    expect(traces[0]?.headers.authorization).toBe(`Bearer ${canary.value}`);
    expect(traces[0]?.headers['content-type']).toContain('application/json');

    const spans: OtlpSpan[] = [];
    let resource: KeyValue[] = [];
    for (const t of traces)
      for (const rs of JSON.parse(t.body).resourceSpans ?? []) {
        resource = rs.resource?.attributes ?? resource;
        for (const ss of rs.scopeSpans ?? []) spans.push(...ss.spans);
      }
    expect(attr(resource, 'service.name')).toBe('weir-otel-test');
    expect(attr(resource, 'weir.run_id')).toBe(runId);
    const run = spans.filter((s) => s.name === 'weir.run');
    expect(run).toHaveLength(1);
    expect(attr(run[0]?.attributes, 'weir.run_id')).toBe(runId);
    expect(attr(run[0]?.attributes, 'weir.pipeline')).toBe('otel-test');
    expect(attr(run[0]?.attributes, 'weir.status')).toBe('succeeded');
    expect(run[0]?.events?.map((e) => e.name)).toContain('job_commit');

    const attempts = spans
      .filter((s) => s.name === 'weir.partition')
      .map((s) => ({ span: s, id: attr(s.attributes, 'weir.partition_id'), attempt: attr(s.attributes, 'weir.attempt') }));
    expect(attempts.map((a) => `${a.id}#${a.attempt}`).sort()).toEqual(['p0#1', 'p1#1', 'p1#2', 'p2#1']);
    for (const a of attempts) {
      expect(a.span.parentSpanId).toBe(run[0]?.spanId);
      expect(attr(a.span.attributes, 'weir.run_id')).toBe(runId);
      const batches = a.span.events?.filter((e) => e.name === 'batch_written') ?? [];
      if (a.id === 'p1' && a.attempt === 1) {
        expect(attr(a.span.attributes, 'weir.status')).toBe('retried');
        expect(a.span.status?.code).toBe(2); // ERROR
        const ex = a.span.events?.find((e) => e.name === 'exception');
        expect(attr(ex?.attributes, 'exception.message')).toContain('upstream reset the connection');
      } else {
        expect(attr(a.span.attributes, 'weir.status')).toBe('committed');
        expect(batches.length).toBeGreaterThan(0);
        expect(batches.reduce((n, e) => n + Number(attr(e.attributes, 'weir.rows')), 0)).toBe(297);
        expect(attr(a.span.attributes, 'weir.rows_failed')).toBe(3);
        const dead = a.span.events?.find((e) => e.name === 'row_dead_lettered');
        expect(attr(dead?.attributes, 'weir.error_message')).toContain('***REDACTED***');
      }
    }

    // the counters' last export holds the run's totals
    const sums = new Map<string, number>();
    for (const m of metrics)
      for (const rm of JSON.parse(m.body).resourceMetrics ?? [])
        for (const sm of rm.scopeMetrics ?? [])
          for (const metric of sm.metrics ?? [])
            if (metric.sum)
              sums.set(
                metric.name,
                metric.sum.dataPoints.reduce(
                  (n: number, p: { asInt?: number | string; asDouble?: number }) => n + Number(p.asInt ?? p.asDouble ?? 0),
                  0,
                ),
              );
    // 3 × 297, and what p1's failed attempt wrote before it failed: the batch events of every attempt
    const batchRows = attempts.reduce(
      (n, a) =>
        n +
        (a.span.events ?? []).filter((e) => e.name === 'batch_written').reduce((k, e) => k + Number(attr(e.attributes, 'weir.rows')), 0),
      0,
    );
    expect(batchRows).toBeGreaterThan(891);
    expect(sums.get('weir.rows.written')).toBe(batchRows);
    expect(sums.get('weir.rows.dead_lettered')).toBeGreaterThanOrEqual(9);
    expect(sums.get('weir.partition.retries')).toBe(1);

    const payloads = Object.fromEntries(received.map((x, i) => [`${x.path} #${i}`, x.body]));
    expect(findLeaks(canary, { ...payloads, stdout: r.stdout, stderr: r.stderr })).toEqual([]);
  }, 60_000);

  it('a collector that is not there: the run succeeds, warns once per signal, and does not hang', async () => {
    const dir = scenario(
      [
        'pipeline: otel-down',
        'connectors: [./fixtures/slow-source.mjs]',
        'source: { type: slowsrc, api_key: "not-a-real-key-1234", rows: 50, partitions: 2 }',
        'sink: { type: jsonl, path: out/rows.jsonl }',
        '',
      ].join('\n'),
    );
    const started = Date.now();
    const r = await runCli(['run', 'pipeline.yaml', '--log-format', 'json', '--otlp-endpoint', 'http://127.0.0.1:9'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - started).toBeLessThan(30_000);
    const warnings = logLines(r.stdout).filter((l) => l.event === 'otel_export_failed');
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings.length).toBeLessThanOrEqual(3);
    // refused connections are retried by the exporter: either it gives up or weir stops waiting at the end
    expect(String(warnings[0]?.msg)).toMatch(/http:\/\/127\.0\.0\.1:9(\/v1\/(traces|metrics) failed| did not take the last export)/);
  }, 60_000);

  it('a bad --otlp-endpoint is a usage error naming the flag', async () => {
    const r = await runCli(['run', 'examples/quickstart.yaml', '--otlp-endpoint', 'localhost:4318']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--otlp-endpoint must be an http:// or https:// URL');
  });
});
