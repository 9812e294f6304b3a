/**
 * OpenTelemetry export (`weir run --otlp-endpoint URL`, or `telemetry.otlp_endpoint`):
 * traces and metrics over OTLP/HTTP (JSON) through the official `@opentelemetry/*`
 * packages, fed only by run events, like the Prometheus metrics.
 *
 * Traces: a `weir.run` span for the run; a `weir.partition` span per partition attempt
 * (child of the run span) with `weir.run_id`, `weir.pipeline`, `weir.partition_id`,
 * `weir.attempt`; batch writes, batch retries and dead-lettered rows as events of the
 * attempt's span (at most {@link EVENTS_PER_SPAN} per span). Metrics: the counters and
 * histograms of docs/observability.md, every `metrics_interval` and at the end.
 *
 * Off by default and free when off: the packages are imported only when an endpoint is
 * set. Every attribute value is scrubbed of secrets. An export that fails is reported
 * once per signal as a warning; the run goes on (and never waits more than
 * {@link SHUTDOWN_TIMEOUT_MS} at its end for a collector that does not answer).
 */
import type { Attributes, Counter, Gauge, Histogram, Span } from '@opentelemetry/api';
import type { Redactor } from '../secrets/redactor.js';
import type { EventBus, PartitionMetrics } from './events.js';

export interface OtelOptions {
  /** Base URL of the collector: traces go to `/v1/traces`, metrics to `/v1/metrics`. */
  endpoint: string;
  /** Headers sent with every export (an API key); their values are registered as secrets. */
  headers?: Record<string, string>;
  serviceName?: string;
  /** How often metrics are exported (ms). */
  metricsIntervalMs?: number;
  /** How long a batch of spans may wait before it is exported (ms). */
  traceDelayMs?: number;
  weirVersion?: string;
  /** A warning for the log (an export failed). */
  warn: (message: string) => void;
}

export interface Otel {
  /** Exports what is left and stops (bounded by {@link SHUTDOWN_TIMEOUT_MS}). */
  shutdown(): Promise<void>;
}

export const EVENTS_PER_SPAN = 1000;
export const SHUTDOWN_TIMEOUT_MS = 5000;

/** `http://host:4318` or `http://host:4318/` → `http://host:4318/v1/traces`; a path given is kept as the base. */
export function signalUrl(endpoint: string, signal: 'traces' | 'metrics'): string {
  return `${endpoint.replace(/\/+$/, '')}/v1/${signal}`;
}

type ExportResult = { code: number; error?: Error };

/** Loads the OpenTelemetry packages and subscribes to the bus; providers are built at `run_start`, with the run's ids in their resource. */
export async function startOtel(bus: EventBus, redactor: Redactor, options: OtelOptions): Promise<Otel> {
  for (const v of Object.values(options.headers ?? {})) redactor.addValue(v);
  const [
    api,
    { BasicTracerProvider, BatchSpanProcessor },
    { OTLPTraceExporter },
    metricsSdk,
    { OTLPMetricExporter },
    { resourceFromAttributes },
  ] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/sdk-metrics'),
    import('@opentelemetry/exporter-metrics-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const s = (v: unknown) => redactor.truncate(String(v ?? ''), 1000);
  const headers = options.headers ?? {};
  const warned = new Set<string>();
  /** Reports the first failed export of a signal (scrubbed: an endpoint may carry credentials). */
  const watch = (signal: string) => (result: ExportResult) => {
    if (result.code === 0 || warned.has(signal)) return;
    warned.add(signal);
    options.warn(
      s(
        `OpenTelemetry: exporting ${signal} to ${signalUrl(options.endpoint, signal as 'traces')} failed: ${result.error?.message ?? 'unknown error'}; the run goes on without them (is a collector listening?)`,
      ),
    );
  };

  let tracerProvider: InstanceType<typeof BasicTracerProvider> | undefined;
  let meterProvider: InstanceType<typeof metricsSdk.MeterProvider> | undefined;
  let tracer: ReturnType<InstanceType<typeof BasicTracerProvider>['getTracer']> | undefined;
  let runSpan: Span | undefined;
  let runEnded = false;
  let common: Attributes = {};
  const attempts = new Map<string, { span: Span; events: number }>();
  let m:
    | {
        rowsRead: Counter;
        rowsWritten: Counter;
        deadLettered: Counter;
        bytes: Counter;
        batches: Counter;
        batchRetries: Counter;
        partitionRetries: Counter;
        partitions: Counter;
        rateWait: Counter;
        batchDuration: Histogram;
        partitionDuration: Histogram;
        lag: Gauge;
      }
    | undefined;
  const lagByPartition = new Map<string, number>();

  const start = (e: {
    run_id: string;
    pipeline: string;
    source: string;
    sink: string;
    delivery: string;
    partitions: number;
    resumed: boolean;
  }) => {
    common = { 'weir.run_id': s(e.run_id), 'weir.pipeline': s(e.pipeline) };
    const resource = resourceFromAttributes({
      'service.name': s(options.serviceName ?? 'weir'),
      'service.version': s(options.weirVersion ?? 'unknown'),
      'service.instance.id': s(e.run_id),
      ...common,
    });
    const traceExporter = new OTLPTraceExporter({ url: signalUrl(options.endpoint, 'traces'), headers });
    const onTraces = watch('traces');
    tracerProvider = new BasicTracerProvider({
      resource,
      spanLimits: { eventCountLimit: EVENTS_PER_SPAN + 1 },
      spanProcessors: [
        new BatchSpanProcessor(
          {
            export: (spans, done) =>
              traceExporter.export(spans, (r) => {
                onTraces(r);
                done(r);
              }),
            shutdown: () => traceExporter.shutdown(),
            forceFlush: () => traceExporter.forceFlush(),
          },
          { scheduledDelayMillis: options.traceDelayMs ?? 2000 },
        ),
      ],
    });
    tracer = tracerProvider.getTracer('weir', options.weirVersion);
    const metricExporter = new OTLPMetricExporter({ url: signalUrl(options.endpoint, 'metrics'), headers });
    const onMetrics = watch('metrics');
    meterProvider = new metricsSdk.MeterProvider({
      resource,
      readers: [
        new metricsSdk.PeriodicExportingMetricReader({
          exporter: {
            export: (metrics, done) =>
              metricExporter.export(metrics, (r) => {
                onMetrics(r);
                done(r);
              }),
            forceFlush: () => metricExporter.forceFlush(),
            shutdown: () => metricExporter.shutdown(),
            selectAggregationTemporality: (kind) => metricExporter.selectAggregationTemporality(kind),
          },
          exportIntervalMillis: options.metricsIntervalMs ?? 10_000,
        }),
      ],
    });
    const meter = meterProvider.getMeter('weir', options.weirVersion);
    const counter = (name: string, description: string, unit: string) => meter.createCounter(name, { description, unit });
    m = {
      rowsRead: counter('weir.rows.read', 'Rows read from the source.', '{row}'),
      rowsWritten: counter('weir.rows.written', 'Rows written by the sink (before the job commit).', '{row}'),
      deadLettered: counter('weir.rows.dead_lettered', 'Rows rejected and dead-lettered, by stage and error type.', '{row}'),
      bytes: counter('weir.sent', 'Bytes sent to the sink (estimated when the sink does not report them).', 'By'),
      batches: counter('weir.batches', 'Batches written.', '{batch}'),
      batchRetries: counter('weir.batch.retries', 'Batch write retries, by error type.', '{retry}'),
      partitionRetries: counter(
        'weir.partition.retries',
        'Partition attempts that failed with a retryable error and ran again.',
        '{retry}',
      ),
      partitions: counter('weir.partitions.finished', 'Partitions finished, by status (committed, failed, skipped).', '{partition}'),
      rateWait: counter('weir.rate_limit.wait', 'Time tasks spent waiting for the rate limiter.', 's'),
      batchDuration: meter.createHistogram('weir.batch.duration', { description: 'Time to write one batch, retries included.', unit: 's' }),
      partitionDuration: meter.createHistogram('weir.partition.duration', { description: 'Time of one partition attempt.', unit: 's' }),
      lag: meter.createGauge('weir.source.lag', {
        description: "Messages still waiting in an unbounded source's broker.",
        unit: '{message}',
      }),
    };
    runSpan = tracer.startSpan('weir.run', {
      kind: api.SpanKind.INTERNAL,
      attributes: {
        ...common,
        'weir.source': s(e.source),
        'weir.sink': s(e.sink),
        'weir.delivery': s(e.delivery),
        'weir.partitions': e.partitions,
        'weir.resumed': e.resumed,
      },
    });
  };

  const event = (id: string, name: string, attributes: Attributes) => {
    const a = attempts.get(id);
    if (!a || a.events >= EVENTS_PER_SPAN) return;
    a.events++;
    a.span.addEvent(name, attributes);
    if (a.events === EVENTS_PER_SPAN)
      a.span.addEvent('weir.events_capped', { 'weir.limit': EVENTS_PER_SPAN, message: 'later events of this attempt are not recorded' });
  };
  const endAttempt = (pm: PartitionMetrics, status: 'committed' | 'failed' | 'retried', error?: { type: string; message: string }) => {
    const a = attempts.get(pm.partition_id);
    if (!a) return;
    attempts.delete(pm.partition_id);
    a.span.setAttributes({
      'weir.status': status,
      'weir.rows_read': pm.rows_read,
      'weir.rows_written': pm.rows_processed,
      'weir.rows_failed': pm.rows_failed,
      'weir.bytes_sent': pm.bytes_sent,
      'weir.batches': pm.batches_sent,
      'weir.batch_retries': pm.retry_count,
    });
    if (error) {
      a.span.addEvent('exception', { 'exception.type': s(error.type), 'exception.message': s(error.message) });
      a.span.setStatus({ code: api.SpanStatusCode.ERROR, message: s(error.message) });
    } else a.span.setStatus({ code: api.SpanStatusCode.OK });
    a.span.end();
    m?.partitionDuration.record(pm.duration_seconds, { 'weir.pipeline': common['weir.pipeline'], 'weir.status': status });
  };

  const unsubscribe = bus.subscribe((e) => {
    if (e.type === 'run_start') {
      start(e);
      return;
    }
    if (!tracer || !m || !runSpan) return;
    const p = { 'weir.pipeline': common['weir.pipeline'] as string };
    switch (e.type) {
      case 'partition_start': {
        attempts.get(e.partition_id)?.span.end();
        const span = tracer.startSpan(
          'weir.partition',
          { attributes: { ...common, 'weir.partition_id': s(e.partition_id), 'weir.attempt': e.attempt } },
          api.trace.setSpan(api.context.active(), runSpan),
        );
        attempts.set(e.partition_id, { span, events: 0 });
        break;
      }
      case 'partition_skipped':
        runSpan.addEvent('partition_skipped', { 'weir.partition_id': s(e.partition_id), 'weir.reason': s(e.reason) });
        m.partitions.add(1, { ...p, 'weir.status': 'skipped' });
        break;
      case 'rows_read':
        m.rowsRead.add(e.rows, p);
        break;
      case 'batch_written':
        m.rowsWritten.add(e.rows, p);
        m.bytes.add(e.bytes, p);
        m.batches.add(1, p);
        m.batchDuration.record(e.duration_ms / 1000, p);
        event(e.partition_id, 'batch_written', {
          'weir.batch_id': e.batch_id,
          'weir.rows': e.rows,
          'weir.bytes': e.bytes,
          'weir.duration_ms': e.duration_ms,
        });
        break;
      case 'batch_retry':
        m.batchRetries.add(1, { ...p, 'weir.error_type': s(e.error_type).slice(0, 64) });
        event(e.partition_id, 'batch_retry', {
          'weir.batch_id': e.batch_id,
          'weir.attempt': e.attempt,
          'weir.delay_ms': e.delay_ms,
          'weir.error_type': s(e.error_type),
          'weir.error_message': s(e.error_message),
        });
        break;
      case 'row_dead_lettered':
        m.deadLettered.add(1, { ...p, 'weir.stage': e.stage, 'weir.error_type': s(e.error_type).slice(0, 64) });
        event(e.partition_id, 'row_dead_lettered', {
          'weir.stage': e.stage,
          'weir.error_type': s(e.error_type),
          'weir.error_message': s(e.error_message),
          ...(e.batch_id !== undefined ? { 'weir.batch_id': e.batch_id } : {}),
        });
        break;
      case 'rate_limit_wait':
        m.rateWait.add(e.wait_ms / 1000, p);
        break;
      case 'source_lag': {
        lagByPartition.set(e.partition_id, e.lag);
        let total = 0;
        for (const v of lagByPartition.values()) total += v;
        m.lag.record(total, p);
        break;
      }
      case 'epoch_commit':
        event(e.partition_id, 'epoch_commit', { 'weir.epoch': e.epoch, 'weir.rows': e.rows, 'weir.duration_ms': e.duration_ms });
        break;
      case 'partition_complete':
        m.partitions.add(1, { ...p, 'weir.status': 'committed' });
        endAttempt(e.metrics, 'committed');
        break;
      case 'partition_failed':
        m.partitions.add(1, { ...p, 'weir.status': 'failed' });
        endAttempt(e.metrics, 'failed', { type: e.error_type, message: e.error_message });
        break;
      case 'partition_retry':
        m.partitionRetries.add(1, { ...p, 'weir.error_type': s(e.error_type).slice(0, 64) });
        endAttempt(e.metrics, 'retried', { type: e.error_type, message: e.error_message });
        break;
      case 'job_committing':
        runSpan.addEvent('job_committing', { 'weir.partitions': e.partitions });
        break;
      case 'job_commit':
        runSpan.addEvent('job_commit', { 'weir.partitions': e.partitions, 'weir.duration_ms': e.duration_ms });
        break;
      case 'job_abort':
        runSpan.addEvent('job_abort', { 'weir.partitions': e.partitions, 'weir.reason': s(e.reason) });
        break;
      case 'run_complete':
      case 'run_failed': {
        const t = e.summary.totals;
        for (const a of attempts.values()) a.span.end();
        attempts.clear();
        runSpan.setAttributes({
          'weir.status': e.summary.status,
          'weir.rows_read': t.rows_read,
          'weir.rows_written': t.rows_written,
          'weir.rows_dead_lettered': t.rows_dead_lettered,
          'weir.partitions_committed': t.partitions_committed,
          'weir.partitions_failed': t.partitions_failed,
          'weir.partitions_skipped': t.partitions_skipped,
        });
        if (e.type === 'run_failed') {
          runSpan.addEvent('exception', { 'exception.type': s(e.error_type), 'exception.message': s(e.error_message) });
          runSpan.setStatus({ code: api.SpanStatusCode.ERROR, message: s(e.error_message) });
        } else runSpan.setStatus({ code: api.SpanStatusCode.OK });
        runSpan.end();
        runEnded = true;
        break;
      }
      default:
        break;
    }
  });

  return {
    async shutdown() {
      unsubscribe();
      if (!runEnded) runSpan?.end();
      const done = Promise.allSettled([tracerProvider?.shutdown(), meterProvider?.shutdown()]);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), SHUTDOWN_TIMEOUT_MS);
        timer.unref();
      });
      const r = await Promise.race([done, timeout]);
      clearTimeout(timer);
      if (r === 'timeout')
        options.warn(
          s(
            `OpenTelemetry: the collector at ${options.endpoint} did not take the last export within ${SHUTDOWN_TIMEOUT_MS / 1000} s; it is dropped`,
          ),
        );
    },
  };
}
