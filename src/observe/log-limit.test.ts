import { describe, expect, it } from 'vitest';
import { LogLimiter } from './log-limit.js';

function fakeClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const printed = (limit: LogLimiter, n: number, type = 'row_dead_lettered', partition = '0') =>
  Array.from({ length: n }, () => limit.admit(type, partition)).filter((d) => d.print).length;

describe('LogLimiter', () => {
  it('prints the first lines of a key, then one per interval, and counts what it held back', () => {
    const clock = fakeClock();
    const limit = new LogLimiter({ burst: 3, intervalMs: 5000, now: clock.now });
    expect(printed(limit, 100)).toBe(3);
    clock.advance(4999);
    expect(limit.admit('row_dead_lettered', '0')).toEqual({ print: false });
    clock.advance(1);
    expect(limit.admit('row_dead_lettered', '0')).toEqual({ print: true, suppressed: 98 });
    expect(limit.admit('row_dead_lettered', '0')).toEqual({ print: false });
    clock.advance(5000);
    expect(limit.admit('row_dead_lettered', '0')).toEqual({ print: true, suppressed: 1 });
  });

  it('keeps event types and partitions apart', () => {
    const clock = fakeClock();
    const limit = new LogLimiter({ burst: 2, intervalMs: 5000, now: clock.now });
    expect(printed(limit, 10, 'row_dead_lettered', '0')).toBe(2);
    expect(printed(limit, 10, 'row_dead_lettered', '1')).toBe(2);
    expect(printed(limit, 10, 'batch_retry', '0')).toBe(2);
    expect(limit.drain('0')).toEqual([
      { type: 'row_dead_lettered', partition_id: '0', suppressed: 8 },
      { type: 'batch_retry', partition_id: '0', suppressed: 8 },
    ]);
    expect(limit.drain('0')).toEqual([]);
    expect(limit.drainAll()).toEqual([{ type: 'row_dead_lettered', partition_id: '1', suppressed: 8 }]);
  });

  it('tells a line outside any partition from a partition with an empty id', () => {
    const limit = new LogLimiter({ burst: 1, intervalMs: 5000, now: fakeClock().now });
    expect(limit.admit('warning').print).toBe(true);
    expect(limit.admit('warning', '').print).toBe(true);
    expect(limit.admit('warning').print).toBe(false);
  });

  it('starts a drained key afresh: a retried partition gets its first lines again', () => {
    const limit = new LogLimiter({ burst: 2, intervalMs: 5000, now: fakeClock().now });
    expect(printed(limit, 5)).toBe(2);
    expect(limit.drain('0')).toHaveLength(1);
    expect(printed(limit, 5)).toBe(2);
  });

  it('reports nothing for keys that held nothing back', () => {
    const limit = new LogLimiter({ burst: 5, now: fakeClock().now });
    printed(limit, 5);
    expect(limit.drainAll()).toEqual([]);
  });

  it('refuses a negative burst or interval', () => {
    expect(() => new LogLimiter({ burst: -1 })).toThrow(/burst must be an integer ≥ 0, got -1/);
    expect(() => new LogLimiter({ intervalMs: Number.NaN })).toThrow(/intervalMs must be ≥ 0/);
  });
});

describe('LogLimiter.due', () => {
  it('returns keys quiet for an interval with lines held back, once, and looks at most once per interval', () => {
    const clock = fakeClock(0);
    const limit = new LogLimiter({ burst: 1, intervalMs: 5000, now: clock.now });
    expect(limit.due()).toEqual([]);
    printed(limit, 4, 'row_dead_lettered', '0');
    clock.advance(1);
    printed(limit, 3, 'batch_retry', '0');
    clock.advance(4998);
    expect(limit.due()).toEqual([]);
    clock.advance(1); // 5000: row_dead_lettered was quiet for an interval, batch_retry not yet
    expect(limit.due()).toEqual([{ type: 'row_dead_lettered', partition_id: '0', suppressed: 3 }]);
    clock.advance(1); // 5001: batch_retry is due, but the last look was less than an interval ago
    expect(limit.due()).toEqual([]);
    clock.advance(4999);
    expect(limit.due()).toEqual([{ type: 'batch_retry', partition_id: '0', suppressed: 2 }]);
    clock.advance(10_000);
    expect(limit.due()).toEqual([]);
    expect(limit.drainAll()).toEqual([]);
  });

  it('leaves a key alone whose last line printed less than an interval ago', () => {
    const clock = fakeClock();
    const limit = new LogLimiter({ burst: 1, intervalMs: 5000, now: clock.now });
    limit.due();
    clock.advance(4000);
    printed(limit, 3);
    clock.advance(2000);
    expect(limit.due()).toEqual([]);
    expect(limit.drain('0')).toEqual([{ type: 'row_dead_lettered', partition_id: '0', suppressed: 2 }]);
  });
});
