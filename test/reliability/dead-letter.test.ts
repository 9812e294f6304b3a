/**
 * Error tolerance and the dead-letter sink: every rejected row — refused by the
 * sink at write or unreadable at the source — lands in the dead-letter sink with
 * its error and context, and the counts add up: read = written + dead-lettered.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingSinkConnector, testSource } from '../../src/sdk/testing.js';
import { tempDir } from '../helpers/cli.js';
import { ofType, runYaml } from './harness.js';

const yaml = (errors: string, rows = 1000) => `
pipeline: dlq-test
concurrency: 3
source: { type: test-source, rows: ${rows}, partitions: 4, bad_every: 7, reject_every: 11 }
sink: { type: test-sink }
batch: { rows: 50 }
errors: ${errors}
`;

const range = (n: number) => [...Array(n).keys()];

describe('dead letters', () => {
  it('sink-side and source-side rejects go to a jsonl dead-letter file with their context; the counts add up', async () => {
    const dir = tempDir('weir-dlq-');
    const { record, connector } = recordingSinkConnector({ rejectValue: 'BAD' });
    const { summary, events } = await runYaml(yaml('{ tolerance: all, dead_letter: { type: jsonl, path: out/rejected.jsonl } }'), {
      connectors: [testSource, connector],
      dir,
    });
    expect(summary.status).toBe('succeeded');
    const unreadable = range(1000).filter((i) => i % 11 === 0);
    const refused = range(1000).filter((i) => i % 7 === 0 && i % 11 !== 0);
    const t = summary.totals;
    expect(t.rows_read).toBe(1000);
    expect(t.rows_dead_lettered).toBe(unreadable.length + refused.length);
    expect(t.rows_written).toBe(1000 - unreadable.length - refused.length);
    expect(t.rows_read).toBe(t.rows_written + t.rows_dead_lettered);
    expect(record.committed).toHaveLength(t.rows_written);
    expect(record.committed.some((r) => r.value === 'BAD')).toBe(false);
    expect(ofType(events, 'row_dead_lettered')).toHaveLength(t.rows_dead_lettered);

    const lines = readFileSync(join(dir, 'out', 'rejected.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(t.rows_dead_lettered);
    const write = lines.filter((l) => l.stage === 'write');
    const read = lines.filter((l) => l.stage === 'read');
    expect(write.map((l) => l.record.id).sort((a, b) => a - b)).toEqual(refused);
    expect(read.map((l) => l.record.line).sort((a, b) => a - b)).toEqual(unreadable);
    expect(write[0]).toMatchObject({
      pipeline: 'dlq-test',
      run_id: summary.run_id,
      partition_id: expect.any(String),
      batch_id: expect.any(Number),
      attempt: 1,
      error_type: 'bad_value',
      error_message: 'value BAD refused',
    });
    expect(read[0]).toMatchObject({
      stage: 'read',
      batch_id: null,
      error_type: 'unreadable',
      error_message: expect.stringContaining('unreadable'),
    });
    expect(Number.isNaN(Date.parse(write[0].time))).toBe(false);
    // the summary shows the sum
    expect(summary.partitions.reduce((n, p) => n + p.rows_failed, 0)).toBe(t.rows_dead_lettered);
  });

  it('gives up past errors.max_failed_rows, and past errors.max_error_rate', async () => {
    const a = recordingSinkConnector({ rejectValue: 'BAD' }, 'test-sink');
    const dl = recordingSinkConnector({}, 'dead-letters');
    const byCount = await runYaml(yaml('{ tolerance: all, max_failed_rows: 10, dead_letter: { type: dead-letters } }'), {
      connectors: [testSource, a.connector, dl.connector],
    });
    expect(byCount.summary.status).toBe('failed');
    expect(byCount.summary.error?.error_type).toBe('too_many_failed_rows');
    expect(a.record.committed).toHaveLength(0);
    // the failed run still publishes the dead letters that explain it: the 10 it accepted
    expect(dl.record.jobCommits).toHaveLength(1);
    expect(dl.record.committed).toHaveLength(10);

    const b = recordingSinkConnector({ rejectValue: 'BAD' });
    const byRate = await runYaml(yaml('{ tolerance: all, max_error_rate: 0.05, dead_letter: { type: dead-letters } }', 4000), {
      connectors: [testSource, b.connector, dl.connector],
    });
    expect(byRate.summary.status).toBe('failed');
    expect(byRate.summary.error?.error_type).toBe('error_rate_exceeded');
    expect(byRate.summary.error?.error_message).toContain('errors.max_error_rate 0.05');
  });

  it('with tolerance none, a row the source cannot read fails the run', async () => {
    const { record, connector } = recordingSinkConnector();
    const { summary } = await runYaml(yaml('{ tolerance: none }'), { connectors: [testSource, connector] });
    expect(summary.status).toBe('failed');
    expect(summary.error?.error_type).toBe('unreadable');
    expect(record.committed).toHaveLength(0);
  });
});
