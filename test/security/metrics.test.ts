/**
 * Metric labels are an output too: an error type that carries a secret (a connector
 * that puts a server's reply in an error code) and a pipeline id read from a reference
 * never become label values. (In-process; canary.test.ts scrapes `/metrics` of a run.)
 */
import { describe, expect, it } from 'vitest';
import { EventBus } from '../../src/observe/events.js';
import { collectMetrics } from '../../src/observe/metrics.js';
import { Redactor } from '../../src/secrets/redactor.js';
import { findLeaks, newCanary } from './harness.js';

describe('metric labels', () => {
  it('are scrubbed by value and by pattern', async () => {
    const c = newCanary();
    const r = new Redactor();
    r.addValue(c.value);
    const bus = new EventBus();
    const metrics = collectMetrics(bus, r, false);
    bus.emit({
      type: 'run_start',
      run_id: 'r1',
      pipeline: c.value,
      source: 'generator',
      sink: 'echo',
      partitions: 1,
      delivery: 'at-least-once',
      resumed: false,
    });
    const types = [`auth_${c.value}`, `http_401_${encodeURIComponent(c.value)}`, `e_${c.value.slice(0, 12)}`];
    for (const error_type of types) {
      bus.emit({ type: 'batch_retry', partition_id: '0', batch_id: 1, attempt: 1, delay_ms: 1, error_type, error_message: c.value });
      bus.emit({ type: 'row_dead_lettered', partition_id: '0', stage: 'write', error_type, error_message: c.value });
    }
    const text = await metrics.registry.metrics();
    metrics.stop();
    expect(text).toContain('weir_batch_retries_total');
    expect(text).toContain('weir_run_running{pipeline="***REDACTED***"} 1');
    expect(findLeaks(c, { metrics: text })).toEqual([]);
  });
});
