import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Redactor } from '../secrets/redactor.js';
import { EventBus, type PartitionMetrics, type WeirEvent } from './events.js';
import { LogLimiter } from './log-limit.js';
import { createLogger, logEvents } from './logger.js';
import { collectMetrics } from './metrics.js';

function setup(level: 'info' | 'trace' = 'info') {
  let t = 0;
  const clock = { now: () => t, advance: (ms: number) => (t += ms) };
  const out: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      out.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  const redactor = new Redactor();
  const bus = new EventBus();
  logEvents(bus, createLogger({ format: 'json', level, redactor, destination }), {
    limiter: new LogLimiter({ burst: 5, intervalMs: 5000, now: clock.now }),
  });
  const lines = () => out.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { bus, clock, lines, redactor };
}

const deadLetter = (partition_id: string): WeirEvent => ({
  type: 'row_dead_lettered',
  partition_id,
  stage: 'read',
  error_type: 'bad_json',
  error_message: 'line is not valid JSON',
});

const metrics = (partition_id: string): PartitionMetrics => ({
  partition_id,
  attempt: 1,
  rows_read: 0,
  rows_processed: 0,
  rows_failed: 0,
  bytes_sent: 0,
  batches_sent: 0,
  retry_count: 0,
  rate_limit_wait_seconds: 0,
  duration_seconds: 1,
  throughput: 0,
  errors: {},
});

const emitTimes = (bus: EventBus, n: number, e: WeirEvent) => {
  for (let i = 0; i < n; i++) bus.emit(e);
};
const ofEvent = (lines: Record<string, unknown>[], event: string) => lines.filter((l) => l.event === event);

describe('logEvents rate-limits lines that repeat per row or per batch', () => {
  it('prints the first lines of a kind, then one per interval with the count of those held back', () => {
    const { bus, clock, lines } = setup();
    emitTimes(bus, 1000, deadLetter('0'));
    expect(ofEvent(lines(), 'row_dead_lettered')).toHaveLength(5);
    expect(ofEvent(lines(), 'row_dead_lettered').every((l) => l.suppressed === undefined)).toBe(true);
    clock.advance(5000);
    bus.emit(deadLetter('0'));
    const last = ofEvent(lines(), 'row_dead_lettered').at(-1);
    expect(last).toMatchObject({ level: 'warn', partition_id: '0', suppressed: 995 });
    expect(last?.msg).toBe('row dead-lettered (995 more row_dead_lettered lines suppressed before this one)');
  });

  it('reports what is still held back at partition end, before the partition line', () => {
    const { bus, lines } = setup();
    emitTimes(bus, 100, deadLetter('0'));
    bus.emit({ type: 'partition_complete', metrics: metrics('0') });
    const tail = lines().slice(-2);
    expect(tail[0]).toMatchObject({
      level: 'warn',
      event: 'log_suppressed',
      suppressed_event: 'row_dead_lettered',
      partition_id: '0',
      suppressed: 95,
      msg: '95 more row_dead_lettered lines suppressed',
    });
    expect(tail[1]).toMatchObject({ event: 'partition_complete', partition_id: '0' });
    // the partition's keys start afresh (a partition attempt that runs again logs its first lines)
    emitTimes(bus, 10, deadLetter('0'));
    expect(ofEvent(lines(), 'row_dead_lettered')).toHaveLength(10);
  });

  it('reports held-back lines of a failed partition too, and at run end whatever is left', () => {
    const { bus, lines } = setup();
    emitTimes(bus, 8, deadLetter('a'));
    emitTimes(bus, 9, deadLetter('b'));
    bus.emit({ type: 'partition_failed', metrics: metrics('a'), error_type: 'x', error_message: 'boom' });
    expect(ofEvent(lines(), 'log_suppressed')).toMatchObject([{ partition_id: 'a', suppressed: 3 }]);
    bus.emit({ type: 'run_failed', summary: {} as never, error_type: 'x', error_message: 'boom' });
    expect(ofEvent(lines(), 'log_suppressed')).toMatchObject([
      { partition_id: 'a', suppressed: 3 },
      { partition_id: 'b', suppressed: 4 },
    ]);
  });

  it('reports a count held back by a kind that went quiet within two intervals, not only at partition end', () => {
    const { bus, clock, lines } = setup();
    emitTimes(bus, 30, deadLetter('0'));
    const tick = () => bus.emit({ type: 'progress', rows: 1, rows_per_second: 1 });
    clock.advance(4000);
    tick();
    expect(ofEvent(lines(), 'log_suppressed')).toEqual([]);
    clock.advance(6000);
    tick();
    expect(ofEvent(lines(), 'log_suppressed')).toMatchObject([
      { suppressed_event: 'row_dead_lettered', partition_id: '0', suppressed: 25 },
    ]);
    // reported once: nothing is left for the partition end, and the next line starts a fresh count
    clock.advance(10_000);
    tick();
    bus.emit({ type: 'partition_complete', metrics: metrics('0') });
    expect(ofEvent(lines(), 'log_suppressed')).toHaveLength(1);
  });

  it('keeps partitions and event types apart', () => {
    const { bus, lines } = setup();
    for (let i = 0; i < 100; i++) {
      bus.emit(deadLetter(String(i % 4)));
      bus.emit({
        type: 'batch_retry',
        partition_id: String(i % 4),
        batch_id: i,
        attempt: 1,
        delay_ms: 10,
        error_type: 'ECONNRESET',
        error_message: 'reset',
      });
    }
    const dl = ofEvent(lines(), 'row_dead_lettered');
    const retries = ofEvent(lines(), 'batch_retry');
    expect(dl).toHaveLength(20);
    expect(retries).toHaveLength(20);
    for (const p of ['0', '1', '2', '3']) expect(dl.filter((l) => l.partition_id === p)).toHaveLength(5);
  });

  it('limits rate-limit waits and written batches as well, at their own level', () => {
    const { bus, lines } = setup('trace');
    emitTimes(bus, 50, { type: 'rate_limit_wait', partition_id: '0', wait_ms: 3 });
    emitTimes(bus, 50, { type: 'batch_written', partition_id: '0', batch_id: 1, rows: 1, bytes: 1, duration_ms: 1 });
    bus.emit({ type: 'partition_complete', metrics: metrics('0') });
    expect(ofEvent(lines(), 'rate_limit_wait')).toHaveLength(5);
    expect(ofEvent(lines(), 'batch_written')).toHaveLength(5);
    expect(ofEvent(lines(), 'log_suppressed')).toMatchObject([
      { level: 'trace', suppressed_event: 'rate_limit_wait', suppressed: 45 },
      { level: 'debug', suppressed_event: 'batch_written', suppressed: 45 },
    ]);
  });

  it('never limits the lines of one-off events', () => {
    const { bus, lines } = setup();
    emitTimes(bus, 20, { type: 'warning', message: 'careful', partition_id: '0' });
    emitTimes(bus, 20, { type: 'partition_skipped', partition_id: '0', reason: 'committed' });
    expect(ofEvent(lines(), 'warning')).toHaveLength(20);
    expect(ofEvent(lines(), 'partition_skipped')).toHaveLength(20);
  });

  it('leaves the metrics counting every event', async () => {
    const { bus, lines, redactor } = setup();
    const m = collectMetrics(bus, redactor, false);
    emitTimes(bus, 1000, deadLetter('0'));
    const text = await m.registry.metrics();
    m.stop();
    expect(ofEvent(lines(), 'row_dead_lettered')).toHaveLength(5);
    expect(text).toContain('weir_rows_failed_total{pipeline="",stage="read",error_type="bad_json"} 1000');
  });
});
