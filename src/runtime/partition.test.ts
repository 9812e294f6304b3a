/**
 * Partition retries through the runtime: a sink whose partitions fail with a
 * retryable error a given number of times, a sink that cannot take rows back
 * (at-least-once), and the errors that must not be retried.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/cli.js';
import { ofType, runYaml } from '../../test/reliability/harness.js';
import { EventBus } from '../observe/events.js';
import { collectMetrics } from '../observe/metrics.js';
import { trackProgress } from '../observe/progress.js';
import { formatSummary } from '../observe/summary.js';
import { defineConnector, type Writer } from '../sdk/connector.js';
import { WeirError } from '../sdk/errors.js';
import { testSource } from '../sdk/testing.js';
import type { Row } from '../sdk/types.js';
import { Redactor } from '../secrets/redactor.js';
import { isPartitionRetryable } from './policies.js';

interface Flaky {
  /** Attempts seen by writers: `partition/attempt`. */
  attempts: string[];
  aborted: string[];
  /** Rows visible in the target. */
  target: Row[];
}

/**
 * A sink whose writer of partition `failPartition` loses its "transaction" after
 * `failAfterWrites` writes, on the first `failAttempts` attempts. `atLeastOnce`:
 * rows are visible as soon as they are written (abort cannot take them back).
 */
function flakySink(o: {
  failPartition: string;
  failAttempts: number;
  failAfterWrites: number;
  error: () => unknown;
  atLeastOnce?: boolean;
}) {
  const state: Flaky = { attempts: [], aborted: [], target: [] };
  const connector = defineConnector({
    name: 'flaky-sink',
    description: 'Loses the transaction of one partition on its first attempts.',
    options: {},
    exactlyOnce: !o.atLeastOnce,
    sink: () => ({
      writer(partition, ctx): Writer {
        state.attempts.push(`${partition.id}/${ctx.attempt}`);
        ctx.log.info('flaky writer opened');
        const rows: Row[] = [];
        let writes = 0;
        const failing = partition.id === o.failPartition && ctx.attempt <= o.failAttempts;
        return {
          async write(batch) {
            if (failing && ++writes > o.failAfterWrites) throw o.error();
            if (o.atLeastOnce) state.target.push(...batch);
            else rows.push(...batch);
          },
          commit() {
            state.target.push(...rows);
            return { partition_id: partition.id, rows: rows.length };
          },
          abort() {
            state.aborted.push(`${partition.id}/${ctx.attempt}`);
          },
        };
      },
    }),
  });
  return { state, connector };
}

const lost = () =>
  new WeirError('connection lost mid-transaction; the partition must be redone', {
    code: 'connection_lost',
    retryable: false, // not batch by batch: the transaction's earlier batches are gone
    cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
  });

const yaml = (extra = '') => `
pipeline: partition-retry-test
concurrency: 2
source: { type: test-source, rows: 400, partitions: 4 }
sink: { type: flaky-sink }
batch: { rows: 20 }
retry: { max_attempts: 3, initial_delay: 1ms, max_delay: 2ms${extra} }
`;

const ids = (rows: Row[]) => rows.map((r) => r.id as number).sort((a, b) => a - b);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('partition retries', () => {
  it('a partition that loses its transaction is aborted and run again from its start, each attempt numbered: no row lost or doubled', async () => {
    const { state, connector } = flakySink({ failPartition: '2', failAttempts: 2, failAfterWrites: 3, error: lost });
    const { summary, events, logs } = await runYaml(yaml(), { connectors: [testSource, connector] });
    expect(summary.status).toBe('succeeded');
    expect(ids(state.target)).toEqual(range(400));
    expect(state.attempts.filter((a) => a.startsWith('2/'))).toEqual(['2/1', '2/2', '2/3']);
    expect(state.aborted).toEqual(['2/1', '2/2']);
    const retries = ofType(events, 'partition_retry');
    expect(retries.map((r) => [r.metrics.partition_id, r.metrics.attempt, r.error_type])).toEqual([
      ['2', 1, 'connection_lost'],
      ['2', 2, 'connection_lost'],
    ]);
    expect(
      ofType(events, 'partition_start')
        .filter((e) => e.partition_id === '2')
        .map((e) => e.attempt),
    ).toEqual([1, 2, 3]);
    expect(ofType(events, 'partition_failed')).toEqual([]);
    expect(summary.totals).toMatchObject({ partition_retries: 2, rows_replayed: 120, rows_read: 400, rows_written: 400 });
    expect(summary.partitions.find((p) => p.partition_id === '2')?.attempt).toBe(3);
    expect(summary.retried_attempts.map((m) => [m.partition_id, m.attempt, m.rows_processed, Object.keys(m.errors)])).toEqual([
      ['2', 1, 60, ['connection_lost']],
      ['2', 2, 60, ['connection_lost']],
    ]);
    expect(logs).toMatch(/"event":"partition_retry".*"attempt":1.*runs again as attempt 2 in \d+ ms/);
    expect(logs).toMatch(/"partition_id":"2","attempt":3,"msg":"flaky writer opened"/); // a connector's log lines carry the attempt
    const human = formatSummary(summary, new Redactor());
    expect(human).toContain('2 partition retries: 120 rows written by failed attempts were written again');
    expect(human).toMatch(/rows\/s {2}attempt\n/);
    expect(human).toMatch(/\n {2}2 +100 +0 +0 +[\d.]+ +[\d,]+ +3\n/);
  });

  it('a non-retryable error fails the run at once: one attempt', async () => {
    const { state, connector } = flakySink({
      failPartition: '2',
      failAttempts: 9,
      failAfterWrites: 1,
      error: () => new WeirError('no such table', { kind: 'config' }),
    });
    const { summary, events } = await runYaml(yaml(), { connectors: [testSource, connector] });
    expect(summary.status).toBe('failed');
    expect(state.attempts.filter((a) => a.startsWith('2/'))).toEqual(['2/1']);
    expect(ofType(events, 'partition_retry')).toEqual([]);
    expect(summary.totals.partition_retries).toBe(0);
  });

  it('a source error that is not retryable is not retried either', async () => {
    const { state, connector } = flakySink({ failPartition: 'none', failAttempts: 0, failAfterWrites: 0, error: lost });
    const { summary } = await runYaml(yaml().replace('partitions: 4', 'partitions: 4, fail_partition: "1", fail_after: 30'), {
      connectors: [testSource, connector],
    });
    expect(summary.status).toBe('failed');
    expect(summary.error?.error_type).toBe('test_failure');
    expect(state.attempts.filter((a) => a.startsWith('1/'))).toEqual(['1/1']);
  });

  it('partition_attempts: 1 turns partition retries off', async () => {
    const { state, connector } = flakySink({ failPartition: '2', failAttempts: 1, failAfterWrites: 1, error: lost });
    const { summary, events } = await runYaml(yaml(', partition_attempts: 1'), { connectors: [testSource, connector] });
    expect(summary.status).toBe('failed');
    expect(summary.error?.error_type).toBe('connection_lost');
    expect(state.attempts.filter((a) => a.startsWith('2/'))).toEqual(['2/1']);
    expect(ofType(events, 'partition_retry')).toEqual([]);
  });

  it('gives up after partition_attempts tries and fails the run with the last error', async () => {
    const { state, connector } = flakySink({ failPartition: '2', failAttempts: 99, failAfterWrites: 1, error: lost });
    const { summary, events } = await runYaml(yaml(', partition_attempts: 3'), { connectors: [testSource, connector] });
    expect(summary.status).toBe('failed');
    expect(state.attempts.filter((a) => a.startsWith('2/'))).toEqual(['2/1', '2/2', '2/3']);
    expect(ofType(events, 'partition_retry')).toHaveLength(2);
    expect(ofType(events, 'partition_failed').map((e) => e.metrics.attempt)).toContain(3);
    expect(summary.error?.error_type).toBe('connection_lost');
    expect(summary.error?.error_message).toMatch(
      /^partition 2 failed 3 times \(retry\.partition_attempts: 3; raise it to try more often\); last error: connection lost/,
    );
  });

  it("an at-least-once sink's replay is counted: summary, metrics and progress", async () => {
    const { state, connector } = flakySink({ failPartition: '0', failAttempts: 1, failAfterWrites: 2, error: lost, atLeastOnce: true });
    const bus = new EventBus();
    const metrics = collectMetrics(bus, new Redactor(), false);
    const { summary } = await runYaml(yaml().replace('concurrency: 2', 'concurrency: 1'), {
      connectors: [testSource, connector],
      onEvent: (e) => bus.emit(e),
    });
    expect(summary.status).toBe('succeeded');
    // the failed attempt's 40 rows stay in the target and are written again
    expect(state.target).toHaveLength(440);
    expect(new Set(ids(state.target))).toEqual(new Set(range(400)));
    expect(summary.totals).toMatchObject({ partition_retries: 1, rows_replayed: 40, rows_written: 400 });
    expect(formatSummary(summary, new Redactor())).toContain('at-least-once: sink flaky-sink may hold some of them twice');

    expect(await metrics.registry.getSingleMetricAsString('weir_partition_retries_total')).toMatch(
      /weir_partition_retries_total\{pipeline="partition-retry-test",error_type="connection_lost"\} 1/,
    );
    metrics.stop();
  });

  it('dead letters of a retried partition are those of its last attempt: each once, and the counts add up', async () => {
    const { state, connector } = flakySink({ failPartition: '1', failAttempts: 1, failAfterWrites: 2, error: lost });
    const dir = tempDir('weir-partition-retry-dl-');
    const { summary } = await runYaml(
      yaml().replace('partitions: 4', 'partitions: 4, reject_every: 7') +
        'errors: { tolerance: all, dead_letter: { type: jsonl, path: rejected.jsonl } }\n',
      { connectors: [testSource, connector], dir },
    );
    expect(summary.status).toBe('succeeded');
    const dead = readFileSync(join(dir, 'rejected.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { record: { line: number }; attempt: number; partition_id: string });
    const rejected = range(400).filter((i) => i % 7 === 0);
    expect(dead.map((d) => d.record.line).sort((x, y) => x - y)).toEqual(rejected);
    expect(dead.filter((d) => d.partition_id === '1').every((d) => d.attempt === 2)).toBe(true);
    expect(summary.totals).toMatchObject({ rows_read: 400, rows_written: 400 - rejected.length, rows_dead_lettered: rejected.length });
    expect(state.target).toHaveLength(400 - rejected.length);
  });

  it("errors.max_error_rate counts the rows of the last attempt only: a failed attempt's reads do not dilute the rate", async () => {
    // attempt 1 reads ~930 rows (below the 1000 the rate needs) before it fails; counted twice, they would dilute 25% to ~20%
    const { connector } = flakySink({ failPartition: '0', failAttempts: 1, failAfterWrites: 35, error: lost });
    const { summary } = await runYaml(
      yaml().replace('rows: 400, partitions: 4', 'rows: 4000, partitions: 1, reject_every: 4') +
        'errors: { tolerance: all, max_error_rate: 0.22, dead_letter: { type: jsonl, path: rejected.jsonl } }\n',
      { connectors: [testSource, connector] },
    );
    expect(summary.totals.partition_retries).toBe(1);
    expect(summary.error?.error_type).toBe('error_rate_exceeded'); // 25% of the rows are bad
  });

  it('a stop during the backoff before a retry ends the run as stopped (resumable), without another attempt', async () => {
    const { state, connector } = flakySink({ failPartition: '0', failAttempts: 1, failAfterWrites: 1, error: lost });
    const stop = new AbortController();
    let delay = 0;
    const { summary } = await runYaml(yaml().replace('initial_delay: 1ms, max_delay: 2ms', 'initial_delay: 20s, max_delay: 20s'), {
      connectors: [testSource, connector],
      signal: stop.signal,
      onEvent: (e) => {
        if (e.type !== 'partition_retry') return;
        delay = e.delay_ms;
        setTimeout(() => stop.abort(), 20);
      },
    });
    expect(summary.status).toBe('stopped');
    expect(state.attempts.filter((a) => a.startsWith('0/'))).toEqual(['0/1']);
    expect(summary.totals.partitions_failed).toBe(0);
    // the backoff (0–20 s, jittered) is cut short by the stop
    if (delay > 1000) expect(summary.totals.duration_seconds * 1000).toBeLessThan(delay);
  });

  it('progress does not count the rows of a failed attempt twice', async () => {
    const bus = new EventBus();
    const seen: number[] = [];
    bus.subscribe((e) => {
      if (e.type === 'progress') seen.push(e.rows);
    });
    const stop = trackProgress(bus, { intervalMs: 10 });
    const { connector } = flakySink({ failPartition: '0', failAttempts: 1, failAfterWrites: 2, error: lost });
    await runYaml(yaml(), { connectors: [testSource, connector], onEvent: (e) => e.type !== 'run_complete' && bus.emit(e) });
    await new Promise((r) => setTimeout(r, 30));
    stop();
    expect(seen.at(-1)).toBe(400);
  });
});

describe('isPartitionRetryable', () => {
  it('retries retryable errors and connector errors caused by one; never data, config, internal or cancelled ones', () => {
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    expect(isPartitionRetryable(reset)).toBe(true);
    expect(isPartitionRetryable(new WeirError('deadlock', { code: '40P01', retryable: true }))).toBe(true);
    expect(isPartitionRetryable(lost())).toBe(true);
    expect(isPartitionRetryable(new WeirError('lost', { code: 'x', cause: new WeirError('503', { retryable: true }) }))).toBe(true);
    expect(isPartitionRetryable(new WeirError('bad row', { kind: 'data', cause: reset }))).toBe(false);
    expect(isPartitionRetryable(new WeirError('no table', { kind: 'config', cause: reset }))).toBe(false);
    expect(isPartitionRetryable(new WeirError('stopped', { kind: 'cancelled', retryable: true }))).toBe(false);
    expect(isPartitionRetryable(new WeirError('permission denied', { code: '42501' }))).toBe(false);
    expect(isPartitionRetryable(new Error('boom'))).toBe(false);
  });
});
