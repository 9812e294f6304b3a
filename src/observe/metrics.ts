/**
 * Prometheus metrics (prom-client), fed only by run events, plus the health server
 * (`/metrics`, `/healthz`, `/readyz`) behind `--metrics-port`. Names are prefixed
 * `weir_` and follow Prometheus conventions (`_total`, `_seconds`, `_bytes`).
 * Labels are low-cardinality: pipeline, connector, error_type, stage, status, and
 * a transform step's position and name (fixed by the pipeline file).
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
export function collectMetrics(bus: EventBus, redactor: Redactor, withDefaults = true): RunMetrics {
  const registry = new Registry();
  if (withDefaults) collectDefaultMetrics({ register: registry, prefix: 'weir_process_' });
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
        state = 'running';
        running.set({ pipeline }, 1);
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
        break;
      case 'partition_failed':
        partitions.inc({ pipeline, status: 'failed' });
        errors.inc({ pipeline, stage: 'partition', error_type: label(e.error_type) });
        break;
      case 'partition_retry':
        partitionRetries.inc({ pipeline, error_type: label(e.error_type) });
        errors.inc({ pipeline, stage: 'partition', error_type: label(e.error_type) });
        break;
      case 'partition_skipped':
        partitions.inc({ pipeline, status: 'skipped' });
        break;
      case 'run_complete':
        state = 'succeeded';
        running.set({ pipeline }, 0);
        lastSuccess.set({ pipeline }, Date.now() / 1000);
        break;
      case 'run_failed':
        state = e.summary.status === 'stopped' ? 'stopped' : 'failed';
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
