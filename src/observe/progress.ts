/**
 * Progress: a live line on a terminal (rows, rows/s, percent and ETA when the
 * size is known), periodic `progress` events otherwise.
 */
import type { EventBus } from './events.js';

export interface ProgressOptions {
  /** Draw on this terminal stream; when absent, emit `progress` events every `intervalMs`. */
  tty?: NodeJS.WriteStream;
  intervalMs: number;
}

export function trackProgress(bus: EventBus, options: ProgressOptions): () => void {
  let rows = 0;
  let estimate: number | undefined;
  let started = 0;
  let timer: NodeJS.Timeout | undefined;
  let drawn = false;
  const lagByPartition = new Map<string, number>();

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
    if (options.tty) {
      const parts = [`${s.rows.toLocaleString('en-US')} rows`, `${s.rate.toLocaleString('en-US')} rows/s`];
      if (s.percent !== undefined) parts.push(`${s.percent}%`);
      if (s.eta !== undefined) parts.push(`ETA ${s.eta}s`);
      if (s.lag !== undefined) parts.push(`lag ${s.lag.toLocaleString('en-US')}`);
      options.tty.write(`\r\x1b[2K  ${parts.join(' · ')}`);
      drawn = true;
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
    if (drawn && options.tty) options.tty.write('\r\x1b[2K');
  };
  const unsubscribe = bus.subscribe((e) => {
    if (e.type === 'run_start') {
      estimate = e.estimated_rows;
      started = performance.now();
      timer = setInterval(tick, options.tty ? 250 : options.intervalMs);
      timer.unref();
    } else if (e.type === 'batch_written') rows += e.rows;
    else if (e.type === 'source_lag') lagByPartition.set(e.partition_id, e.lag);
    else if (e.type === 'partition_retry')
      rows -= e.metrics.rows_processed; // its next attempt writes them again
    else if (e.type === 'run_complete' || e.type === 'run_failed') stop();
  });
  return () => {
    stop();
    unsubscribe();
  };
}
