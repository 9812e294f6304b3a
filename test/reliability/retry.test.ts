/**
 * Retries end to end: a flaky sink (fails N writes, then succeeds; may send
 * Retry-After) proves the backoff, the Retry-After wait (measured, not only
 * counted), the counts, and the circuit breaker.
 */
import { describe, expect, it } from 'vitest';
import { parseRetryAfter } from '../../src/sdk/errors.js';
import { recordingSinkConnector, testSource } from '../../src/sdk/testing.js';
import { ofType, runYaml } from './harness.js';

const yaml = (extra: string) => `
pipeline: retry-test
concurrency: 1
source: { type: test-source, rows: 40, partitions: 1 }
sink: { type: test-sink }
batch: { rows: 10 }
${extra}`;

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('reads delay-seconds and HTTP dates', () => {
    expect(parseRetryAfter('2', now)).toBe(2000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('1.5', now)).toBe(1500);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Thursday, 01-Jan-26 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0); // in the past
    expect(parseRetryAfter('99999999', now)).toBe(3_600_000); // clamped
  });
  it('returns undefined for anything else', () => {
    for (const bad of [undefined, null, '', 'soon', '-1', '1e3', 'NaN']) expect(parseRetryAfter(bad as string, now)).toBeUndefined();
  });
});

describe('retries through the runtime', () => {
  it('honours Retry-After: each retry of the batch waits at least the value the sink sent (measured)', async () => {
    const { record, connector } = recordingSinkConnector({ failFirstWrites: 3, retryAfterMs: 250 });
    const { summary, events } = await runYaml(yaml('retry: { max_attempts: 5, initial_delay: 1ms, max_delay: 5ms }'), {
      connectors: [testSource, connector],
    });
    expect(summary.status).toBe('succeeded');
    expect(record.writeCalls).toBe(4 + 3); // 4 batches, the first one tried 4 times
    const gaps = [1, 2, 3].map((i) => (record.writeTimes[i] as number) - (record.writeTimes[i - 1] as number));
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(250);
      expect(gap).toBeLessThan(600);
    }
    process.stdout.write(`[retry] Retry-After 250 ms: measured waits ${gaps.map((g) => g.toFixed(1)).join(', ')} ms\n`);
    const retries = ofType(events, 'batch_retry');
    expect(retries.map((r) => r.attempt)).toEqual([1, 2, 3]);
    expect(retries.every((r) => r.delay_ms >= 250 && r.batch_id === 1 && r.error_type === 'http_503')).toBe(true);
    expect(summary.totals.retries).toBe(3);
    expect(summary.partitions[0]?.retry_count).toBe(3);
    expect(summary.partitions[0]?.errors.http_503?.count).toBe(3);
    expect(record.committed).toHaveLength(40);
  });

  it('without Retry-After waits a jittered, growing backoff within the ceilings, and the retry log line says attempt and delay', async () => {
    const { record, connector } = recordingSinkConnector({ failFirstWrites: 4 });
    const { summary, events, logs } = await runYaml(yaml('retry: { max_attempts: 6, initial_delay: 40ms, max_delay: 100ms }'), {
      connectors: [testSource, connector],
    });
    expect(summary.status).toBe('succeeded');
    const retries = ofType(events, 'batch_retry');
    const ceilings = [40, 80, 100, 100];
    retries.forEach((r, i) => {
      expect(r.delay_ms).toBeLessThanOrEqual(ceilings[i] as number);
      const gap = (record.writeTimes[i + 1] as number) - (record.writeTimes[i] as number);
      expect(gap).toBeGreaterThanOrEqual(r.delay_ms - 1);
    });
    expect(logs).toMatch(/"event":"batch_retry".*"attempt":1.*"delay_ms":\d+/);
    expect(logs).toMatch(/retry 4 in \d+ ms/);
  });

  it('gives up after max_attempts and fails the run with the sink error; nothing is committed', async () => {
    const { record, connector } = recordingSinkConnector({ failFirstWrites: 100 });
    const { summary } = await runYaml(yaml('retry: { max_attempts: 3, initial_delay: 1ms, max_delay: 2ms, partition_attempts: 1 }'), {
      connectors: [testSource, connector],
    });
    expect(summary.status).toBe('failed');
    expect(summary.error?.error_type).toBe('http_503');
    expect(record.writeCalls).toBe(3);
    expect(summary.totals.retries).toBe(2);
    expect(record.jobAborts).toHaveLength(1);
    expect(record.committed).toHaveLength(0);
  });

  it('a batch that used up its retries fails the partition, which runs again from its start (partition_attempts)', async () => {
    const { record, connector } = recordingSinkConnector({ failFirstWrites: 3 });
    const { summary } = await runYaml(yaml('retry: { max_attempts: 2, initial_delay: 1ms, max_delay: 2ms, partition_attempts: 3 }'), {
      connectors: [testSource, connector],
    });
    expect(summary.status).toBe('succeeded');
    expect(record.writersOpened).toEqual(['0', '0']);
    expect(record.writersAborted).toEqual(['0']);
    expect(summary.totals).toMatchObject({ partition_retries: 1, retries: 1 + 1 });
    expect(record.committed).toHaveLength(40);
  });

  it('a sink that keeps failing opens the shared circuit breaker: writes pause (a warning says so) instead of hammering, then recover', async () => {
    const { record, connector } = recordingSinkConnector({ failFirstWrites: 6 });
    const { summary, events } = await runYaml(
      `${yaml('retry: { max_attempts: 10, initial_delay: 1ms, max_delay: 2ms, breaker_threshold: 4, breaker_half_open_after: 300ms }')}\nconcurrency: 2\n`
        .replace('concurrency: 1\n', '')
        .replace('partitions: 1', 'partitions: 2'),
      { connectors: [testSource, connector] },
    );
    expect(summary.status).toBe('succeeded');
    const warnings = ofType(events, 'warning').map((w) => w.message);
    expect(warnings.some((m) => m.startsWith('circuit breaker opened after 4 consecutive failed writes'))).toBe(true);
    expect(warnings.some((m) => m.startsWith('circuit breaker closed'))).toBe(true);
    // calls 5..7 are half-open probes, each at least the half-open period after the previous failure
    for (const i of [4, 5, 6]) expect((record.writeTimes[i] as number) - (record.writeTimes[i - 1] as number)).toBeGreaterThanOrEqual(290);
    expect(record.committed).toHaveLength(40);
  });
});
