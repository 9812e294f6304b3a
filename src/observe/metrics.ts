/**
 * Prometheus metrics (prom-client), fed only by run events, plus the health server
 * (`/`, `/metrics`, `/healthz`, `/readyz`) behind `--metrics-port`. weir's families
 * are prefixed `weir_`; the process's are prom-client's under their standard names
 * (`process_*`, `nodejs_*`). Names follow Prometheus conventions (`_total` on
 * counters only, `_seconds`, `_bytes`) and pass `promtool check metrics` (tested).
 * Label sets are fixed and low-cardinality: pipeline, connector, error_type, stage,
 * state, status, and a transform step's position and name (fixed by the pipeline
 * file) — never a partition id, a row value or anything unbounded.
 */
import { createServer, type Server } from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Redactor } from '../secrets/redactor.js';
import type { EventBus } from './events.js';

export interface RunMetrics {
  registry: Registry;
  /** Current state for /readyz: ready once the run started, not ready after it failed. */
  readonly state: 'starting' | 'running' | 'succeeded' | 'failed' | 'stopped';
  stop(): void;
}

/** Subscribes a fresh registry to the bus. One registry per run, so tests never share state. */
export function collectMetrics(bus: EventBus, redactor: Redactor, withDefaults = true, weirVersion = 'unknown'): RunMetrics {
  const registry = new Registry();
  if (withDefaults) {
    collectDefaultMetrics({ register: registry });
    // gauges that prom-client names `_total`, which promtool rejects; `nodejs_active_handles` (by type) etc. stay
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'])
      registry.removeSingleMetric(name);
  }
  const mk = <T extends string>(name: string, help: string, labelNames: T[]) =>
    new Counter({ name, help, labelNames, registers: [registry] });
  const rowsRead = mk('weir_rows_read_total', 'Rows read from the source.', ['pipeline', 'source']);
  const rowsWritten = mk('weir_rows_written_total', 'Rows written by the sink (before the job commit).', ['pipeline', 'sink']);
  const rowsFailed = mk('weir_rows_failed_total', 'Rows rejected (dead-lettered), by stage and error type.', [
    'pipeline',
    'stage',
    'error_type',
  ]);
  const bytesSent = mk('weir_sent_bytes_total', 'Bytes sent to the sink (estimated when the sink does not report them).', [
    'pipeline',
    'sink',
  ]);
  const batches = mk('weir_batches_total', 'Batches written.', ['pipeline', 'sink']);
  const retries = mk('weir_batch_retries_total', 'Batch write retries, by error type.', ['pipeline', 'sink', 'error_type']);
  const errors = mk('weir_errors_total', 'Errors, by stage and type.', ['pipeline', 'stage', 'error_type']);
  const partitions = mk('weir_partitions_total', 'Partitions finished, by status.', ['pipeline', 'status']);
  const partitionRetries = mk(
    'weir_partition_retries_total',
    'Partition attempts that failed with a retryable error and ran again, by error type.',
    ['pipeline', 'error_type'],
  );
  const transformRows = mk('weir_transform_rows_total', 'Rows through each step of `transforms:`, by outcome: in, out, filtered, failed.', [
    'pipeline',
    'step',
    'name',
    'outcome',
  ]);
  const rateWait = mk('weir_rate_limit_wait_seconds_total', 'Time tasks spent waiting for the rate limiter.', ['pipeline']);
  const latency = new Histogram({
    name: 'weir_batch_duration_seconds',
    help: 'Time to write one batch, retries included.',
    labelNames: ['pipeline', 'sink'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const running = new Gauge({
    name: 'weir_run_running',
    help: '1 while a run is in progress.',
    labelNames: ['pipeline'],
    registers: [registry],
  });
  const lastSuccess = new Gauge({
    name: 'weir_run_last_success_timestamp_seconds',
    help: 'Unix time of the last successful run.',
    labelNames: ['pipeline'],
    registers: [registry],
  });

  const lag = new Gauge({
    name: 'weir_source_lag_messages',
    help: "Messages still waiting in an unbounded source's broker (JetStream pending, queue depth, stream lag), summed over partitions.",
    labelNames: ['pipeline', 'source'],
    registers: [registry],
  });
  const lastMessage = new Gauge({
    name: 'weir_source_last_message_timestamp_seconds',
    help: 'Unix time of the last row read from the source.',
    labelNames: ['pipeline', 'source'],
    registers: [registry],
  });
  const lagByPartition = new Map<string, number>();
  const partitionLatency = new Histogram({
    name: 'weir_partition_duration_seconds',
    help: 'Time of one partition attempt, from its start to its commit or failure.',
    labelNames: ['pipeline', 'status'],
    buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600],
    registers: [registry],
  });
  const partitionsByState = new Gauge({
    name: 'weir_partitions',
    help: 'Partitions of the run by state: pending, running, retrying, committed, failed, skipped.',
    labelNames: ['pipeline', 'state'],
    registers: [registry],
  });
  const runInfo = new Gauge({
    name: 'weir_run_info',
    help: 'The run this process executes (value 1): its id, source and sink types, delivery guarantee and weir version.',
    labelNames: ['pipeline', 'run_id', 'source', 'sink', 'delivery', 'version'],
    registers: [registry],
  });
  const runStatus = new Gauge({
    name: 'weir_run_status',
    help: 'The run status: 1 for the current one of starting, running, succeeded, failed, stopped; 0 for the others.',
    labelNames: ['pipeline', 'status'],
    registers: [registry],
  });
  const RUN_STATES = ['starting', 'running', 'succeeded', 'failed', 'stopped'] as const;
  const PARTITION_STATES = ['pending', 'running', 'retrying', 'committed', 'failed', 'skipped'] as const;
  type PartitionState = (typeof PARTITION_STATES)[number];
  const partitionState = new Map<string, Exclude<PartitionState, 'pending'>>();
  let planned = 0;
  /** Recounts the states; a partition not seen yet is pending. */
  const setPartition = (id?: string, next?: Exclude<PartitionState, 'pending'>) => {
    if (id !== undefined && next) partitionState.set(id, next);
    const counts = Object.fromEntries(PARTITION_STATES.map((k) => [k, 0])) as Record<PartitionState, number>;
    for (const v of partitionState.values()) counts[v]++;
    counts.pending = Math.max(0, planned - partitionState.size);
    for (const k of PARTITION_STATES) partitionsByState.set({ pipeline, state: k }, counts[k]);
  };
  const setStatus = (next: RunMetrics['state']) => {
    state = next;
    for (const k of RUN_STATES) runStatus.set({ pipeline, status: k }, k === next ? 1 : 0);
  };

  let pipeline = '';
  let source = '';
  let sink = '';
  let state: RunMetrics['state'] = 'starting';
  // every label value is scrubbed before it is cut: error types come from connectors, and the
  // pipeline id or a connector name may come from a reference (`pipeline: ${env:NAME}`)
  const label = (v: string) => redactor.truncate(v, 64);

  const unsubscribe = bus.subscribe((e) => {
    switch (e.type) {
      case 'run_start':
        [pipeline, source, sink] = [e.pipeline, e.source, e.sink].map((v) => redactor.scrub(v)) as [string, string, string];
        setStatus('running');
        running.set({ pipeline }, 1);
        runInfo.set({ pipeline, run_id: label(e.run_id), source, sink, delivery: label(e.delivery), version: label(weirVersion) }, 1);
        planned = e.partitions;
        setPartition();
        break;
      case 'partition_start':
        setPartition(e.partition_id, 'running');
        break;
      case 'rows_read':
        rowsRead.inc({ pipeline, source }, e.rows);
        lastMessage.set({ pipeline, source }, Date.now() / 1000);
        break;
      case 'source_lag': {
        lagByPartition.set(e.partition_id, e.lag);
        let total = 0;
        for (const v of lagByPartition.values()) total += v;
        lag.set({ pipeline, source }, total);
        break;
      }
      case 'rows_transformed':
        for (const s of e.steps) {
          const labels = { pipeline, step: String(s.step), name: label(s.name) };
          transformRows.inc({ ...labels, outcome: 'in' }, s.rows_in);
          transformRows.inc({ ...labels, outcome: 'out' }, s.rows_out);
          transformRows.inc({ ...labels, outcome: 'filtered' }, s.rows_filtered);
          transformRows.inc({ ...labels, outcome: 'failed' }, s.rows_failed);
        }
        break;
      case 'batch_written':
        rowsWritten.inc({ pipeline, sink }, e.rows);
        bytesSent.inc({ pipeline, sink }, e.bytes);
        batches.inc({ pipeline, sink });
        latency.observe({ pipeline, sink }, e.duration_ms / 1000);
        break;
      case 'batch_retry':
        retries.inc({ pipeline, sink, error_type: label(e.error_type) });
        errors.inc({ pipeline, stage: 'write', error_type: label(e.error_type) });
        break;
      case 'row_dead_lettered':
        rowsFailed.inc({ pipeline, stage: label(e.stage), error_type: label(e.error_type) });
        errors.inc({ pipeline, stage: label(e.stage), error_type: label(e.error_type) });
        break;
      case 'rate_limit_wait':
        rateWait.inc({ pipeline }, e.wait_ms / 1000);
        break;
      case 'partition_complete':
        partitions.inc({ pipeline, status: 'committed' });
        partitionLatency.observe({ pipeline, status: 'committed' }, e.metrics.duration_seconds);
        setPartition(e.metrics.partition_id, 'committed');
        break;
      case 'partition_failed':
        partitions.inc({ pipeline, status: 'failed' });
        errors.inc({ pipeline, stage: 'partition', error_type: label(e.error_type) });
        partitionLatency.observe({ pipeline, status: 'failed' }, e.metrics.duration_seconds);
        setPartition(e.metrics.partition_id, 'failed');
        break;
      case 'partition_retry':
        partitionRetries.inc({ pipeline, error_type: label(e.error_type) });
        errors.inc({ pipeline, stage: 'partition', error_type: label(e.error_type) });
        partitionLatency.observe({ pipeline, status: 'retried' }, e.metrics.duration_seconds);
        setPartition(e.metrics.partition_id, 'retrying');
        break;
      case 'partition_skipped':
        partitions.inc({ pipeline, status: 'skipped' });
        setPartition(e.partition_id, 'skipped');
        break;
      case 'run_complete':
        setStatus('succeeded');
        running.set({ pipeline }, 0);
        lastSuccess.set({ pipeline }, Date.now() / 1000);
        break;
      case 'run_failed':
        setStatus(e.summary.status === 'stopped' ? 'stopped' : 'failed');
        running.set({ pipeline }, 0);
        break;
      default:
        break;
    }
  });
  return {
    registry,
    get state() {
      return state;
    },
    stop: unsubscribe,
  };
}

/** Serves /metrics, /healthz (process alive) and /readyz (run started and not failed). */
export async function startHealthServer(metrics: RunMetrics, port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/metrics') {
      metrics.registry
        .metrics()
        .then((text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text))
        .catch(() => res.writeHead(500).end());
    } else if (path === '/') {
      res
        .writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
        .end('weir\n/metrics  Prometheus metrics\n/healthz  the process is alive\n/readyz   the run started and has not failed\n');
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok' }));
    } else if (path === '/readyz') {
      const ready = metrics.state === 'running' || metrics.state === 'succeeded';
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: metrics.state }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  server.unref();
  return server;
}

/** docs/metrics.md: every weir metric family with its type, labels and help, from the registry itself. */
export async function metricsDocs(): Promise<string> {
  const { EventBus } = await import('./events.js');
  const { Redactor } = await import('../secrets/redactor.js');
  const m = collectMetrics(new EventBus(), new Redactor(), false);
  const rows: string[] = [];
  for (const family of await m.registry.getMetricsAsJSON()) {
    const labels = (m.registry.getSingleMetric(family.name) as unknown as { labelNames?: string[] }).labelNames ?? [];
    rows.push(
      `| \`${family.name}\` | ${family.type} | ${labels.map((l) => `\`${l}\``).join(', ')} | ${family.help.replace(/\|/g, '\\|')} |`,
    );
  }
  m.stop();
  return [
    '# Metrics',
    '',
    '<!-- generated by `npm run docs` from src/observe/metrics.ts; do not edit -->',
    '',
    '`weir run --metrics-port PORT` serves `/metrics` (Prometheus text format, checked with `promtool check metrics` in CI),',
    '`/healthz` (the process is alive), `/readyz` (the run started and has not failed) and `/` (this list).',
    "Besides weir's families below, the process metrics of prom-client are exported under their standard names",
    '(`process_cpu_seconds_total`, `process_resident_memory_bytes`, `nodejs_heap_size_used_bytes`, `nodejs_eventloop_lag_seconds`, …).',
    'Every label set is fixed; label values are scrubbed of secrets and cut to 64 characters.',
    '',
    'A Grafana dashboard whose every query names one of these metrics: [grafana-dashboard.json](grafana-dashboard.json).',
    '',
    '| metric | type | labels | meaning |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}
