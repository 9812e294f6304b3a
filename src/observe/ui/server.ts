/**
 * The live run page behind `weir run --ui-port PORT`: an event-bus subscriber that
 * keeps a bounded snapshot of the run (status, totals, a rows/s history, progress and
 * ETA, the partitions table, the latest errors and dead-letter messages, firing
 * alerts), and a `node:http` server with the page (`/`), the snapshot as JSON
 * (`/state.json`) and a Server-Sent Events stream of snapshots (`/events`).
 *
 * Everything the page receives is scrubbed twice: each string when it enters the
 * snapshot, and the whole serialised snapshot before it is written. Memory is bounded:
 * at most {@link UiLimits.history} chart points (older ones are merged pairwise, so the
 * chart always covers the whole run), {@link UiLimits.samples} errors and dead-letter
 * messages, and {@link UiLimits.partitions} rows of the partitions table (running
 * partitions first; the oldest finished ones leave first; counts by state stay exact).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redactor } from '../../secrets/redactor.js';
import type { EventBus, RunStatus } from '../events.js';
import { pageHtml } from './page.js';

export interface UiLimits {
  /** Chart points kept (default 240). */
  history: number;
  /** Errors and dead-letter messages kept, each (default 20). */
  samples: number;
  /** Rows of the partitions table (default 200). */
  partitions: number;
  /** How often a snapshot is taken and pushed to the pages, in ms (default 1000). */
  intervalMs: number;
}

const DEFAULTS: UiLimits = { history: 240, samples: 20, partitions: 200, intervalMs: 1000 };
/** Longest string kept from an event (after scrubbing). */
const MAX_TEXT = 500;

type PartitionState = 'running' | 'retrying' | 'committed' | 'failed' | 'skipped';

interface PartitionRow {
  id: string;
  state: PartitionState;
  attempt: number;
  rows: number;
  failed: number;
  retries: number;
  started_at?: number;
  duration_seconds?: number;
}

interface Sample {
  time: string;
  partition_id?: string;
  kind: string;
  error_type: string;
  message: string;
}

interface Alert {
  name: string;
  severity: string;
  when: string;
  value?: number;
  since: string;
}

export type UiStatus = 'starting' | 'running' | 'committing' | RunStatus;

export interface UiSnapshot {
  run: {
    run_id?: string;
    pipeline?: string;
    source?: string;
    sink?: string;
    delivery?: string;
    resumed?: boolean;
    started_at?: string;
    finished_at?: string;
    status: UiStatus;
    error?: string;
  };
  elapsed_seconds: number;
  totals: {
    rows_read: number;
    rows_written: number;
    rows_dead_lettered: number;
    bytes_sent: number;
    batches: number;
    batch_retries: number;
    partition_retries: number;
  };
  progress: { rows: number; rows_per_second: number; estimated_rows?: number; percent?: number; eta_seconds?: number; lag?: number };
  /** Seconds since the start, rows written per second and rows read per second over the step before. */
  history: { step_seconds: number; points: [number, number, number][] };
  partitions: {
    planned: number;
    by_state: Record<PartitionState | 'pending', number>;
    rows: PartitionRow[];
    /** Rows left out of `rows` (finished partitions beyond the table's bound). */
    hidden: number;
  };
  errors: Sample[];
  dead_letters: Sample[];
  alerts: Alert[];
}

export interface RunUi {
  /** The current snapshot, scrubbed. */
  snapshot(): UiSnapshot;
  /** The snapshot as the page receives it: serialised, then scrubbed once more. */
  json(): string;
  /** For the alert evaluator's log callback: an alert fired or resolved. */
  alert(status: 'firing' | 'resolved', fields: Record<string, unknown>): void;
  stop(): void;
  /** Subscribes to snapshots (pushed every interval and when the run ends). */
  onSnapshot(listener: (json: string) => void): () => void;
}

/** Subscribes to the bus and keeps the page's bounded state. */
export function collectUi(bus: EventBus, redactor: Redactor, limits: Partial<UiLimits> = {}): RunUi {
  const lim = { ...DEFAULTS, ...limits };
  const text = (v: unknown) => redactor.truncate(String(v ?? ''), MAX_TEXT);
  const run: UiSnapshot['run'] = { status: 'starting' };
  const totals: UiSnapshot['totals'] = {
    rows_read: 0,
    rows_written: 0,
    rows_dead_lettered: 0,
    bytes_sent: 0,
    batches: 0,
    batch_retries: 0,
    partition_retries: 0,
  };
  let startedAt = 0;
  let finishedAt = 0;
  let estimate: number | undefined;
  let planned = 0;
  /** Rows that count for progress: written, less what retried attempts wrote (their next attempt writes them again). */
  let progressRows = 0;
  const lag = new Map<string, number>();
  const counts = new Map<string, PartitionState>();
  const table = new Map<string, PartitionRow>();
  const finishedOrder: string[] = [];
  let hidden = 0;
  const errors: Sample[] = [];
  const deadLetters: Sample[] = [];
  const alerts = new Map<string, Alert>();
  let points: [number, number, number][] = [];
  let step = lim.intervalMs / 1000;
  let lastTick = { t: 0, written: 0, read: 0 };
  const listeners = new Set<(json: string) => void>();

  const push = (list: Sample[], s: Omit<Sample, 'time'>) => {
    list.unshift({ time: new Date().toISOString(), ...s });
    if (list.length > lim.samples) list.length = lim.samples;
  };
  const row = (id: string): PartitionRow => {
    let r = table.get(id);
    if (!r) {
      r = { id: text(id), state: 'running', attempt: 1, rows: 0, failed: 0, retries: 0 };
      table.set(id, r);
    }
    return r;
  };
  const finish = (id: string) => {
    finishedOrder.push(id);
    // the table stays bounded: the oldest finished partitions leave first
    while (table.size > lim.partitions && finishedOrder.length) {
      const old = finishedOrder.shift() as string;
      const r = table.get(old);
      if (r && r.state !== 'running' && r.state !== 'retrying') {
        table.delete(old);
        hidden++;
      }
    }
  };
  const setState = (id: string, state: PartitionState) => {
    counts.set(id, state);
    row(id).state = state;
  };
  const now = () => performance.now();

  const unsubscribe = bus.subscribe((e) => {
    switch (e.type) {
      case 'run_start':
        Object.assign(run, {
          run_id: text(e.run_id),
          pipeline: text(e.pipeline),
          source: text(e.source),
          sink: text(e.sink),
          delivery: text(e.delivery),
          resumed: e.resumed,
          started_at: new Date().toISOString(),
          status: 'running',
        });
        startedAt = now();
        lastTick = { t: startedAt, written: 0, read: 0 };
        estimate = e.estimated_rows;
        planned = e.partitions;
        break;
      case 'partition_start': {
        const r = row(e.partition_id);
        r.attempt = e.attempt;
        r.started_at = now();
        r.duration_seconds = undefined;
        setState(e.partition_id, 'running');
        break;
      }
      case 'partition_skipped':
        if (estimate !== undefined && e.rows !== undefined) estimate = Math.max(0, estimate - e.rows);
        setState(e.partition_id, 'skipped');
        if (e.rows !== undefined) row(e.partition_id).rows = e.rows;
        finish(e.partition_id);
        break;
      case 'rows_read':
        totals.rows_read += e.rows;
        break;
      case 'batch_written': {
        totals.rows_written += e.rows;
        totals.bytes_sent += e.bytes;
        totals.batches++;
        progressRows += e.rows;
        const r = table.get(e.partition_id);
        if (r) r.rows += e.rows;
        break;
      }
      case 'batch_retry': {
        totals.batch_retries++;
        const r = table.get(e.partition_id);
        if (r) r.retries++;
        push(errors, {
          partition_id: text(e.partition_id),
          kind: 'batch retry',
          error_type: text(e.error_type),
          message: text(e.error_message),
        });
        break;
      }
      case 'row_dead_lettered': {
        totals.rows_dead_lettered++;
        const r = table.get(e.partition_id);
        if (r) r.failed++;
        push(deadLetters, {
          partition_id: text(e.partition_id),
          kind: `${e.stage} stage`,
          error_type: text(e.error_type),
          message: text(e.error_message),
        });
        break;
      }
      case 'source_lag':
        lag.set(e.partition_id, e.lag);
        break;
      case 'partition_complete':
      case 'partition_failed':
      case 'partition_retry': {
        const m = e.metrics;
        const r = row(m.partition_id);
        r.attempt = m.attempt;
        r.rows = m.rows_processed;
        r.failed = m.rows_failed;
        r.duration_seconds = m.duration_seconds;
        if (e.type === 'partition_complete') {
          setState(m.partition_id, 'committed');
          finish(m.partition_id);
        } else if (e.type === 'partition_failed') {
          setState(m.partition_id, 'failed');
          push(errors, {
            partition_id: text(m.partition_id),
            kind: 'partition failed',
            error_type: text(e.error_type),
            message: text(e.error_message),
          });
          finish(m.partition_id);
        } else {
          totals.partition_retries++;
          r.retries++;
          progressRows -= m.rows_processed;
          setState(m.partition_id, 'retrying');
          push(errors, {
            partition_id: text(m.partition_id),
            kind: `attempt ${m.attempt} failed, retried`,
            error_type: text(e.error_type),
            message: text(e.error_message),
          });
        }
        break;
      }
      case 'close_error':
        push(errors, {
          ...(e.partition_id ? { partition_id: text(e.partition_id) } : {}),
          kind: `closing ${text(e.resource)}`,
          error_type: text(e.error_type),
          message: text(e.error_message),
        });
        break;
      case 'warning':
        push(errors, {
          ...(e.partition_id ? { partition_id: text(e.partition_id) } : {}),
          kind: 'warning',
          error_type: 'warning',
          message: text(e.message),
        });
        break;
      case 'job_committing':
        run.status = 'committing';
        emitNow();
        break;
      case 'shutdown_requested':
        push(errors, { kind: 'shutdown', error_type: 'signal', message: `${text(e.signal)}: draining in-flight batches` });
        break;
      case 'run_complete':
      case 'run_failed': {
        const s = e.summary;
        run.status = s.status;
        run.finished_at = new Date().toISOString();
        finishedAt = now();
        if (e.type === 'run_failed') run.error = text(`${e.error_message} [${e.error_type}]`);
        tick();
        break;
      }
      default:
        break;
    }
  });

  const progress = (): UiSnapshot['progress'] => {
    const elapsed = startedAt ? ((finishedAt || now()) - startedAt) / 1000 : 0;
    const rate = elapsed > 0 ? Math.round(progressRows / elapsed) : 0;
    const p: UiSnapshot['progress'] = { rows: progressRows, rows_per_second: rate };
    if (estimate !== undefined) {
      p.estimated_rows = estimate;
      p.percent = estimate > 0 ? Math.min(100, Math.round((progressRows / estimate) * 1000) / 10) : 100;
      if (rate > 0 && !finishedAt) p.eta_seconds = Math.max(0, Math.round((estimate - progressRows) / rate));
    }
    if (lag.size) p.lag = [...lag.values()].reduce((a, b) => a + b, 0);
    return p;
  };

  const snapshot = (): UiSnapshot => {
    const byState = { pending: 0, running: 0, retrying: 0, committed: 0, failed: 0, skipped: 0 };
    for (const s of counts.values()) byState[s]++;
    byState.pending = Math.max(0, planned - counts.size);
    const t = now();
    const rows = [...table.values()].map((r) => ({
      ...r,
      started_at: undefined,
      duration_seconds: r.duration_seconds ?? (r.started_at !== undefined ? Math.round((t - r.started_at) / 100) / 10 : undefined),
    }));
    const order = (r: PartitionRow) => (r.state === 'running' || r.state === 'retrying' ? 0 : 1);
    rows.sort((a, b) => order(a) - order(b));
    const snap: UiSnapshot = {
      run: { ...run },
      elapsed_seconds: startedAt ? Math.round(((finishedAt || t) - startedAt) / 100) / 10 : 0,
      totals: { ...totals },
      progress: progress(),
      history: { step_seconds: step, points: points.map((p) => [...p] as [number, number, number]) },
      partitions: { planned, by_state: byState, rows, hidden },
      errors: errors.slice(),
      dead_letters: deadLetters.slice(),
      alerts: [...alerts.values()],
    };
    // every string of it was scrubbed on the way in; scrub the whole once more (a key, a joined value)
    return redactor.scrubValue(snap) as UiSnapshot;
  };

  const serialise = () => redactor.scrub(JSON.stringify(snapshot()));
  function emitNow() {
    if (!listeners.size) return;
    const json = serialise();
    for (const l of listeners) l(json);
  }
  /** Closes one chart step; when the history is full, merges neighbours so it covers the whole run at half the resolution. */
  function tick() {
    if (!startedAt) return emitNow();
    const t = finishedAt || now();
    const dt = (t - lastTick.t) / 1000;
    if (dt >= step * 0.5 || finishedAt) {
      const w = dt > 0 ? Math.round((totals.rows_written - lastTick.written) / dt) : 0;
      const r = dt > 0 ? Math.round((totals.rows_read - lastTick.read) / dt) : 0;
      points.push([Math.round((t - startedAt) / 100) / 10, w, r]);
      lastTick = { t, written: totals.rows_written, read: totals.rows_read };
      if (points.length > lim.history) {
        const merged: [number, number, number][] = [];
        for (let i = 0; i < points.length; i += 2) {
          const a = points[i] as [number, number, number];
          const b = points[i + 1];
          merged.push(b ? [b[0], Math.round((a[1] + b[1]) / 2), Math.round((a[2] + b[2]) / 2)] : a);
        }
        points = merged;
        step *= 2;
      }
    }
    emitNow();
  }
  let elapsedSinceStep = 0;
  const timer = setInterval(() => {
    // a point every `step` (which doubles as the history is merged); snapshots every interval
    elapsedSinceStep += lim.intervalMs / 1000;
    if (elapsedSinceStep + 1e-9 >= step) {
      elapsedSinceStep = 0;
      tick();
    } else emitNow();
  }, lim.intervalMs);
  timer.unref();

  return {
    snapshot,
    json: serialise,
    alert(status, fields) {
      const name = text(fields.alert);
      if (status === 'resolved') alerts.delete(name);
      else
        alerts.set(name, {
          name,
          severity: text(fields.severity),
          when: text(fields.when),
          ...(typeof fields.value === 'number' ? { value: fields.value } : {}),
          since: new Date().toISOString(),
        });
      emitNow();
    },
    onSnapshot(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stop() {
      clearInterval(timer);
      unsubscribe();
    },
  };
}

const LOOPBACK_NAMES = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** Whether the Host header names this machine (a page elsewhere that rebinds its DNS name to 127.0.0.1 sends its own name). */
function loopbackHost(req: IncomingMessage): boolean {
  const host = (req.headers.host ?? '').toLowerCase();
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
  return LOOPBACK_NAMES.has(name ?? '');
}

export interface UiServer {
  server: Server;
  url: string;
  /** Sends the last snapshot, ends every event stream and closes the server. */
  close(): Promise<void>;
}

/**
 * Serves the page on `host:port` (127.0.0.1 by default; port 0 picks a free one).
 * Bound to a loopback address, it answers only requests whose Host is a loopback name.
 */
export async function startUiServer(ui: RunUi, port: number, host = '127.0.0.1'): Promise<UiServer> {
  const streams = new Set<ServerResponse>();
  const nonce = randomBytes(16).toString('base64');
  const html = pageHtml(nonce);
  const loopback = host === '127.0.0.1' || host === 'localhost' || host === '::1';
  const security = {
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'cache-control': 'no-store',
  };
  const offSnapshot = ui.onSnapshot((json) => {
    for (const res of streams) res.write(`event: snapshot\ndata: ${json}\n\n`);
  });

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (loopback && !loopbackHost(req)) {
      res.writeHead(421, { 'content-type': 'text/plain' }).end('this page answers on 127.0.0.1 or localhost only\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/') {
      res
        .writeHead(200, {
          ...security,
          'content-type': 'text/html; charset=utf-8',
          // the page's one script carries the nonce; nothing is loaded from anywhere else
          'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
        })
        .end(html);
    } else if (path === '/state.json') {
      res.writeHead(200, { ...security, 'content-type': 'application/json' }).end(ui.json());
    } else if (path === '/events') {
      res.writeHead(200, { ...security, 'content-type': 'text/event-stream', connection: 'keep-alive' });
      res.write(`retry: 2000\nevent: snapshot\ndata: ${ui.json()}\n\n`);
      streams.add(res);
      req.on('close', () => streams.delete(res));
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the run page is /, its data /state.json and /events\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  server.unref();
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `http://${shown}:${address.port}/`,
    close: async () => {
      offSnapshot();
      const last = ui.json();
      for (const res of streams) res.end(`event: snapshot\ndata: ${last}\n\nevent: end\ndata: {}\n\n`);
      streams.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => {
          server.closeAllConnections();
          resolve();
        }, 500).unref();
      });
    },
  };
}
