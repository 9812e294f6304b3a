/**
 * The rate limit holds across all partitions of a run (one token bucket shared by
 * every task), within 5% over a 10 s window, and the time spent waiting is counted.
 */
import { describe, expect, it } from 'vitest';
import { recordingSinkConnector, testSource } from '../../src/sdk/testing.js';
import { ofType, runYaml } from './harness.js';

describe('rate limit', () => {
  it('2000 rows/s over 4 partitions holds within 5% over 10 s', async () => {
    const rate = 2000;
    const { record, connector } = recordingSinkConnector();
    // the sink records when each batch arrives; count rows by arrival time
    const arrivals: { t: number; rows: number }[] = [];
    const sink = connector.sink as NonNullable<typeof connector.sink>;
    const timed = {
      ...connector,
      sink: (opts: never) => {
        const inner = sink(opts);
        return {
          ...inner,
          writer: async (p: never, ctx: never) => {
            const w = await inner.writer(p, ctx);
            const write = (batch: never[]) => {
              arrivals.push({ t: performance.now(), rows: batch.length });
              return w.write(batch);
            };
            return { ...w, write };
          },
        };
      },
    };
    const { summary, events } = await runYaml(
      `
pipeline: rate-test
concurrency: 4
source: { type: test-source, rows: 22400, partitions: 4 }
sink: { type: test-sink }
rate_limit: { rows_per_second: ${rate} }
`,
      { connectors: [testSource, timed] },
    );
    expect(summary.status).toBe('succeeded');
    expect(record.committed).toHaveLength(22400);
    // batches are capped to a tenth of a second of the rate, so the rate is smooth
    expect(Math.max(...arrivals.map((a) => a.rows))).toBeLessThanOrEqual(rate / 10);
    const t0 = arrivals[0]?.t as number;
    const windowMs = 10_000;
    const inWindow = arrivals.filter((a) => a.t - t0 < windowMs).reduce((n, a) => n + a.rows, 0);
    const achieved = inWindow / (windowMs / 1000);
    const error = (achieved - rate) / rate;
    process.stdout.write(
      `[rate] target ${rate} rows/s, 4 partitions: ${inWindow} rows in the first 10 s = ${achieved.toFixed(0)} rows/s (${(error * 100).toFixed(2)}%)\n`,
    );
    expect(Math.abs(error)).toBeLessThan(0.05);
    // every partition took part: the bucket is shared, not per partition
    for (const p of summary.partitions) {
      expect(p.rows_processed).toBe(5600);
      expect(p.rate_limit_wait_seconds).toBeGreaterThan(1);
    }
    expect(ofType(events, 'rate_limit_wait').length).toBeGreaterThan(50);
  }, 30_000);

  it('requests_per_second limits write calls (retries included) across partitions', async () => {
    const rps = 50;
    const { record, connector } = recordingSinkConnector();
    const { summary } = await runYaml(
      `
pipeline: rps-test
concurrency: 3
source: { type: test-source, rows: 1500, partitions: 3 }
sink: { type: test-sink }
batch: { rows: 10 }
rate_limit: { requests_per_second: ${rps} }
`,
      { connectors: [testSource, connector] },
    );
    expect(summary.status).toBe('succeeded');
    const times = record.writeTimes;
    expect(times).toHaveLength(150);
    const span = ((times[times.length - 1] as number) - (times[0] as number)) / 1000;
    const burst = rps / 10;
    const achieved = (times.length - burst) / span;
    process.stdout.write(
      `[rate] target ${rps} requests/s: ${times.length} writes in ${span.toFixed(2)} s = ${achieved.toFixed(1)} requests/s\n`,
    );
    expect(Math.abs(achieved - rps) / rps).toBeLessThan(0.05);
  }, 20_000);
});
