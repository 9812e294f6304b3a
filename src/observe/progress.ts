/**
 * Progress: a live line on a terminal (rows, rows/s, percent and ETA when the size is
 * known, a stream's lag; "committing…" while the job commits), periodic `progress`
 * events otherwise. Percent and ETA count the rows still to read: a resumed run's
 * skipped partitions are taken off the estimate.
 */
import type { EventBus } from './events.js';
import type { Terminal } from './terminal.js';

export interface ProgressOptions {
  /** Draw the line on this terminal; when absent, emit `progress` events every `intervalMs`. */
  terminal?: Terminal;
  intervalMs: number;
}

export function trackProgress(bus: EventBus, options: ProgressOptions): () => void {
  let rows = 0;
  let estimate: number | undefined;
  let started = 0;
  let timer: NodeJS.Timeout | undefined;
  let committing = false;
  const lagByPartition = new Map<string, number>();
  const { terminal } = options;

  const snapshot = () => {
    const elapsed = (performance.now() - started) / 1000;
    const rate = elapsed > 0 ? Math.round(rows / elapsed) : 0;
    const percent = estimate ? Math.min(100, Math.round((rows / estimate) * 1000) / 10) : undefined;
    const eta = estimate && rate > 0 ? Math.max(0, Math.round((estimate - rows) / rate)) : undefined;
    let lag: number | undefined;
    for (const v of lagByPartition.values()) lag = (lag ?? 0) + v;
    return { rows, rate, percent, eta, lag };
  };
  const tick = () => {
    const s = snapshot();
    if (terminal) {
      const parts = [`${s.rows.toLocaleString('en-US')} rows`, `${s.rate.toLocaleString('en-US')} rows/s`];
      if (committing) parts.push('committing…');
      else {
        if (s.percent !== undefined) parts.push(`${s.percent}%`);
        if (s.eta !== undefined) parts.push(`ETA ${s.eta}s`);
      }
      if (s.lag !== undefined) parts.push(`lag ${s.lag.toLocaleString('en-US')}`);
      terminal.status(parts.join(' · '));
    } else {
      bus.emit({
        type: 'progress',
        rows: s.rows,
        rows_per_second: s.rate,
        ...(s.percent !== undefined ? { percent: s.percent } : {}),
        ...(s.eta !== undefined ? { eta_seconds: s.eta } : {}),
        ...(s.lag !== undefined ? { lag: s.lag } : {}),
      });
    }
  };
  const stop = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
    terminal?.clearStatus();
  };
  const unsubscribe = bus.subscribe((e) => {
    if (e.type === 'run_start') {
      estimate = e.estimated_rows;
      started = performance.now();
      timer = setInterval(tick, terminal ? 250 : options.intervalMs);
      timer.unref();
    } else if (e.type === 'partition_skipped') {
      if (estimate !== undefined && e.rows !== undefined) estimate = Math.max(0, estimate - e.rows);
    } else if (e.type === 'batch_written') rows += e.rows;
    else if (e.type === 'source_lag') lagByPartition.set(e.partition_id, e.lag);
    else if (e.type === 'partition_retry')
      rows -= e.metrics.rows_processed; // its next attempt writes them again
    else if (e.type === 'job_committing') {
      committing = true;
      if (terminal && timer) tick();
    } else if (e.type === 'run_complete' || e.type === 'run_failed') stop();
  });
  return () => {
    stop();
    unsubscribe();
  };
}
