import { describe, expect, it } from 'vitest';
import { type AnyConnector, defineConnector } from '../../src/sdk/connector.js';
import { recordingSinkConnector, testSource } from '../../src/sdk/testing.js';
import { runYaml } from './harness.js';

const pipeline = (source: string, extra = '') => `
pipeline: runtime-test
concurrency: 3
source: { type: test-source, ${source} }
sink: { type: test-sink }
batch: { rows: 7 }
retry: { max_attempts: 3, initial_delay: 1ms, max_delay: 5ms }
${extra}`;

const connectors = (sink: AnyConnector) => [testSource as unknown as AnyConnector, sink];

describe('commit protocol', () => {
  it('commits every partition, then the job once with every commit message', async () => {
    const { record, connector } = recordingSinkConnector();
    const { summary, events } = await runYaml(pipeline('rows: 100, partitions: 5'), connectors(connector as unknown as AnyConnector));
    expect(summary.status).toBe('succeeded');
    expect(record.jobCommits).toHaveLength(1);
    expect(record.jobAborts).toHaveLength(0);
    const messages = record.jobCommits[0] ?? [];
    expect(messages.map((m) => (m as { partition_id: string }).partition_id).sort()).toEqual(['0', '1', '2', '3', '4']);
    expect(JSON.parse(JSON.stringify(messages))).toEqual(messages);
    expect(record.committed.map((r) => r.id).sort((a, b) => (a as number) - (b as number))).toEqual([...Array(100).keys()]);
    expect(record.writersClosed.sort()).toEqual(record.writersOpened.sort());
    expect(summary.totals).toMatchObject({ rows_read: 100, rows_written: 100, partitions_committed: 5, partitions_failed: 0 });
    const complete = events.filter((e) => e.type === 'partition_complete');
    expect(complete).toHaveLength(5);
    for (const e of complete) {
      if (e.type !== 'partition_complete') continue;
      expect(e.metrics).toMatchObject({ rows_processed: 20, rows_failed: 0, retry_count: 0, batches_sent: 3 });
      expect(e.metrics.bytes_sent).toBeGreaterThan(0);
      expect(e.metrics.duration_seconds).toBeGreaterThanOrEqual(0);
    }
  });

  it('a partition that throws aborts the job: job abort runs, nothing is committed, every writer is closed', async () => {
    const { record, connector } = recordingSinkConnector();
    const { summary, events } = await runYaml(
      pipeline('rows: 200, partitions: 6, fail_partition: "2", fail_after: 10'),
      connectors(connector as unknown as AnyConnector),
    );
    expect(summary.status).toBe('failed');
    expect(summary.error?.error_type).toBe('test_failure');
    expect(record.jobCommits).toHaveLength(0);
    expect(record.jobAborts).toHaveLength(1);
    expect(record.committed).toHaveLength(0);
    expect(record.writersAborted).toContain('2');
    expect(record.writersClosed.sort()).toEqual(record.writersOpened.sort());
    const failed = events.find((e) => e.type === 'partition_failed');
    expect(failed).toMatchObject({ type: 'partition_failed', error_type: 'test_failure' });
    expect(events.some((e) => e.type === 'run_failed')).toBe(true);
  });

  it('an error while closing is reported and never hides the real error', async () => {
    const { record, connector } = recordingSinkConnector({ failOnClose: true });
    const { summary, events } = await runYaml(
      pipeline('rows: 50, partitions: 2, fail_partition: "1", fail_after: 3'),
      connectors(connector as unknown as AnyConnector),
    );
    expect(summary.status).toBe('failed');
    expect(summary.error?.error_type).toBe('test_failure');
    expect(events.filter((e) => e.type === 'close_error').length).toBeGreaterThan(0);
    expect(record.writersClosed.sort()).toEqual(record.writersOpened.sort());
  });

  it('retries retryable write errors and counts them per partition', async () => {
    const { record, connector } = recordingSinkConnector({ failFirstWrites: 2 });
    const { summary, events } = await runYaml(pipeline('rows: 30, partitions: 1'), connectors(connector as unknown as AnyConnector));
    expect(summary.status).toBe('succeeded');
    expect(summary.totals.retries).toBe(2);
    expect(record.committed).toHaveLength(30);
    const retries = events.filter((e) => e.type === 'batch_retry');
    expect(retries).toHaveLength(2);
    expect(retries[0]).toMatchObject({ attempt: 1, error_type: 'http_503' });
  });

  it('with tolerance none the first bad row fails the run; with tolerance all the counts add up', async () => {
    const strict = recordingSinkConnector({ rejectValue: 'BAD' });
    const failed = await runYaml(pipeline('rows: 40, bad_every: 9'), connectors(strict.connector as unknown as AnyConnector));
    expect(failed.summary.status).toBe('failed');
    expect(strict.record.committed).toHaveLength(0);

    const lenient = recordingSinkConnector({ rejectValue: 'BAD' });
    const dir = (await import('../helpers/cli.js')).tempDir();
    const ok = await runYaml(
      pipeline('rows: 40, bad_every: 9', `errors: { tolerance: all, dead_letter: { type: test-sink } }`),
      connectors(lenient.connector as unknown as AnyConnector),
      dir,
    );
    expect(ok.summary.status).toBe('succeeded');
    const t = ok.summary.totals;
    expect(t.rows_dead_lettered).toBe(5); // ids 0, 9, 18, 27, 36
    expect(t.rows_read).toBe(t.rows_written + t.rows_dead_lettered);
    expect(lenient.record.committed.filter((r) => r.value === 'BAD')).toHaveLength(0);
  });
});

describe('encoded fast path', () => {
  it("hands the writer's encoding hints to the source's readEncoded, then the encoded batches to writeEncoded", async () => {
    const hintsSeen: unknown[] = [];
    const written: string[] = [];
    const source = defineConnector({
      name: 'enc-source',
      description: 'one encoded chunk',
      options: {},
      source: () => ({
        schema: () => [{ name: 'x', type: 'boolean' as const }],
        async *read() {},
        readEncoded(_partition, _ctx, _format, hints) {
          hintsSeen.push(hints);
          return (async function* () {
            yield {
              kind: 'encoded',
              format: 'csv',
              columns: ['x'],
              delimiter: ',',
              quote: '"',
              nullText: '',
              data: Buffer.from('true\n'),
              rows: 1,
              decode: async () => [{ x: true }],
            } as const;
          })();
        },
      }),
    });
    const sink = defineConnector({
      name: 'enc-sink',
      description: 'takes CSV',
      options: {},
      sink: () => ({
        accepts: ['csv'],
        writer: () => ({
          write: () => {},
          writeEncoded: async (batch) => {
            written.push(batch.data.toString());
            return true;
          },
          encodingHints: () => ({ valueColumns: ['x'] }),
        }),
      }),
    });
    const { summary } = await runYaml('pipeline: enc\nsource: { type: enc-source }\nsink: { type: enc-sink }\n', [
      source,
      sink,
    ] as unknown as AnyConnector[]);
    expect(summary.status).toBe('succeeded');
    expect(hintsSeen).toEqual([{ valueColumns: ['x'] }]);
    expect(written).toEqual(['true\n']);
    expect(summary.totals).toMatchObject({ rows_read: 1, rows_written: 1 });
  });
});
