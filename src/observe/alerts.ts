/**
 * Alert rules from the pipeline's `alerts:` section: exported as a Prometheus
 * rules file (`weir alerts`), and evaluated during the run from events (an
 * `alert_firing` / `alert_resolved` warning line, and a webhook POST when set).
 */
import { stringify } from 'yaml';
import type { PipelineConfig } from '../config/pipeline.js';
import type { Redactor } from '../secrets/redactor.js';
import type { EventBus } from './events.js';

type Alert = NonNullable<PipelineConfig['alerts']>[number];
/** The metrics an alert's `when` may name: the pipeline spec validates against this list. */
export const ALERT_METRICS = [
  'error_rate',
  'batch_latency_p99',
  'batch_latency_p95',
  'throughput',
  'rows_failed',
  'retries',
  'rate_limit_wait_ratio',
  'lag',
  'idle_seconds',
] as const;
type Metric = (typeof ALERT_METRICS)[number];

/** `METRIC OP VALUE[unit]`, as `when` is written. */
export const ALERT_WHEN = new RegExp(`^\\s*(${ALERT_METRICS.join('|')})\\s*(>=|<=|>|<)\\s*(\\d+(?:\\.\\d+)?)(ms|s|m)?\\s*$`);

export interface Condition {
  metric: Metric;
  op: '>' | '<' | '>=' | '<=';
  /** Threshold; latencies in seconds. */
  value: number;
}

const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60 };

/** Parses `error_rate > 0.01` or `batch_latency_p99 > 2s` (validated by the pipeline spec). */
export function parseCondition(when: string): Condition {
  const m = ALERT_WHEN.exec(when);
  if (!m) throw new Error(`cannot parse alert condition ${JSON.stringify(when)}`);
  const unit = m[4] ? (UNIT_SECONDS[m[4]] as number) : 1;
  return { metric: m[1] as Metric, op: m[2] as Condition['op'], value: Number(m[3]) * unit };
}

const WINDOW = '5m';

/** The PromQL expression of a condition for one pipeline. */
export function promql(c: Condition, pipeline: string): string {
  const sel = `{pipeline="${pipeline.replace(/["\\]/g, '')}"}`;
  const expr: Record<Metric, string> = {
    error_rate: `sum(rate(weir_rows_failed_total${sel}[${WINDOW}])) / clamp_min(sum(rate(weir_rows_read_total${sel}[${WINDOW}])), 1e-9)`,
    batch_latency_p99: `histogram_quantile(0.99, sum by (le) (rate(weir_batch_duration_seconds_bucket${sel}[${WINDOW}])))`,
    batch_latency_p95: `histogram_quantile(0.95, sum by (le) (rate(weir_batch_duration_seconds_bucket${sel}[${WINDOW}])))`,
    throughput: `sum(rate(weir_rows_written_total${sel}[${WINDOW}]))`,
    rows_failed: `sum(increase(weir_rows_failed_total${sel}[${WINDOW}]))`,
    retries: `sum(increase(weir_batch_retries_total${sel}[${WINDOW}]))`,
    rate_limit_wait_ratio: `sum(rate(weir_rate_limit_wait_seconds_total${sel}[${WINDOW}]))`,
    lag: `sum(weir_source_lag_messages${sel})`,
    idle_seconds: `time() - max(weir_source_last_message_timestamp_seconds${sel})`,
  };
  return `${expr[c.metric]} ${c.op} ${c.value}`;
}

/** A Prometheus rules file for the pipeline's alerts. */
export function prometheusRules(config: PipelineConfig): string {
  const rules = (config.alerts ?? []).map((a: Alert) => ({
    alert: a.name,
    expr: promql(parseCondition(a.when), config.pipeline),
    for: `${Math.round(a.for / 1000)}s`,
    labels: { severity: a.severity, pipeline: config.pipeline },
    annotations: { summary: `${config.pipeline}: ${a.when}` },
  }));
  return stringify({ groups: [{ name: `weir-${config.pipeline}`, rules }] });
}

interface Sample {
  t: number;
  read: number;
  failed: number;
  written: number;
  retries: number;
  waitMs: number;
  latencies: number[];
}

/** What the evaluator knows now, beside the window's samples: the source's lag and when it last gave a row. */
interface Gauges {
  lag: Map<string, number>;
  lastRowAt: number;
}

/** The current value of a metric over the evaluation window. */
function measure(metric: Metric, window: Sample[], spanSeconds: number, gauges: Gauges): number | undefined {
  const sum = (k: 'read' | 'failed' | 'written' | 'retries' | 'waitMs') => window.reduce((a, s) => a + s[k], 0);
  const quantile = (q: number) => {
    const all = window.flatMap((s) => s.latencies).sort((a, b) => a - b);
    return all.length ? all[Math.min(all.length - 1, Math.floor(q * all.length))] : undefined;
  };
  switch (metric) {
    case 'error_rate': {
      const read = sum('read');
      return read > 0 ? sum('failed') / read : undefined;
    }
    case 'batch_latency_p99':
      return quantile(0.99);
    case 'batch_latency_p95':
      return quantile(0.95);
    case 'throughput':
      return spanSeconds > 0 ? sum('written') / spanSeconds : undefined;
    case 'rows_failed':
      return sum('failed');
    case 'retries':
      return sum('retries');
    case 'rate_limit_wait_ratio':
      return spanSeconds > 0 ? sum('waitMs') / 1000 / spanSeconds : undefined;
    case 'lag': {
      if (gauges.lag.size === 0) return undefined;
      let total = 0;
      for (const v of gauges.lag.values()) total += v;
      return total;
    }
    case 'idle_seconds':
      return (Date.now() - gauges.lastRowAt) / 1000;
  }
}

const holds = (v: number, c: Condition) =>
  c.op === '>' ? v > c.value : c.op === '<' ? v < c.value : c.op === '>=' ? v >= c.value : v <= c.value;

export interface AlertEvaluatorOptions {
  /** How often conditions are evaluated. */
  intervalMs?: number;
  /** Sliding window the metrics are computed over. */
  windowMs?: number;
  redactor: Redactor;
  /** Called for log lines; the CLI passes a logger. */
  log: (level: 'warn' | 'info', fields: Record<string, unknown>, msg: string) => void;
}

/**
 * Evaluates the alert rules during a run. An alert fires after its condition has
 * held for `for`, and resolves when it no longer holds; both are logged and, with
 * `notify.webhook`, POSTed as JSON.
 */
export function evaluateAlerts(bus: EventBus, config: PipelineConfig, o: AlertEvaluatorOptions): () => Promise<void> {
  const alerts = (config.alerts ?? []).map((a: Alert) => ({ alert: a, cond: parseCondition(a.when), since: 0, firing: false }));
  if (alerts.length === 0) return async () => {};
  const intervalMs = o.intervalMs ?? 1000;
  const windowMs = o.windowMs ?? 60_000;
  const samples: Sample[] = [];
  let current: Sample = { t: Date.now(), read: 0, failed: 0, written: 0, retries: 0, waitMs: 0, latencies: [] };
  const pending: Promise<unknown>[] = [];
  const gauges: Gauges = { lag: new Map(), lastRowAt: Date.now() };

  const unsubscribe = bus.subscribe((e) => {
    if (e.type === 'rows_read') {
      current.read += e.rows;
      gauges.lastRowAt = Date.now();
    } else if (e.type === 'source_lag') gauges.lag.set(e.partition_id, e.lag);
    else if (e.type === 'row_dead_lettered') current.failed++;
    else if (e.type === 'batch_written') {
      current.written += e.rows;
      current.latencies.push(e.duration_ms / 1000);
    } else if (e.type === 'batch_retry') current.retries++;
    else if (e.type === 'rate_limit_wait') current.waitMs += e.wait_ms;
  });

  const notify = (a: (typeof alerts)[number], status: 'firing' | 'resolved', value: number | undefined) => {
    const fields = { event: `alert_${status}`, alert: a.alert.name, severity: a.alert.severity, when: a.alert.when, value };
    o.log(status === 'firing' ? 'warn' : 'info', fields, `alert ${a.alert.name} ${status}: ${a.alert.when} (value ${value})`);
    const url = a.alert.notify?.webhook;
    if (url) {
      const body = JSON.stringify({ pipeline: config.pipeline, status, ...fields, time: new Date().toISOString() });
      pending.push(
        fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(5000) }).catch(
          (error: unknown) =>
            o.log(
              'warn',
              {
                event: 'alert_notify_failed',
                alert: a.alert.name,
                error_message: o.redactor.scrub(String((error as Error)?.message ?? error)),
              },
              'alert webhook failed',
            ),
        ),
      );
    }
  };

  const tick = () => {
    const now = Date.now();
    samples.push(current);
    current = { t: now, read: 0, failed: 0, written: 0, retries: 0, waitMs: 0, latencies: [] };
    // the sample just closed always counts, even when the event loop was stalled longer than the window
    while (samples.length > 1 && (samples[0] as Sample).t < now - windowMs) samples.shift();
    const span = samples.length ? (now - (samples[0] as Sample).t) / 1000 : 0;
    for (const a of alerts) {
      const value = measure(a.cond.metric, samples, span, gauges);
      if (value !== undefined && holds(value, a.cond)) {
        if (!a.since) a.since = now;
        if (!a.firing && now - a.since >= a.alert.for) {
          a.firing = true;
          notify(a, 'firing', value);
        }
      } else {
        a.since = 0;
        if (a.firing) {
          a.firing = false;
          notify(a, 'resolved', value);
        }
      }
    }
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    tick();
    unsubscribe();
    await Promise.allSettled(pending);
  };
}
