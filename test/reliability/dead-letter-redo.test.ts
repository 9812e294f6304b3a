/**
 * A partition redone after its dead letters were committed (its own commit then failed)
 * replaces its dead letters, and only its own: the other partitions' dead letters stay.
 * Before, the replaced ones were taken back with the dead-letter sink's job abort, which
 * deleted every staged dead-letter file of the run.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AnyConnector, defineConnector } from '../../src/sdk/connector.js';
import { WeirError } from '../../src/sdk/errors.js';
import { testSource } from '../../src/sdk/testing.js';
import { runYaml } from '../foundation/harness.js';
import { tempDir } from '../helpers/cli.js';

let commits = 0;
const flakyCommit = defineConnector({
  name: 'flaky-commit',
  description: 'A sink whose first commit of partition 1 fails with a retryable error.',
  options: {},
  sink: () => ({
    writer: (partition) => ({
      write() {},
      commit() {
        if (partition.id === '1' && commits++ === 0)
          throw new WeirError('connection reset while committing', { code: 'ECONNRESET', retryable: true });
        return { partition_id: partition.id };
      },
    }),
  }),
});

describe('dead letters of a redone partition', () => {
  it('replace only that partition’s: every rejected row is in the dead-letter file exactly once', async () => {
    const dir = tempDir('weir-dl-redo-');
    const r = await runYaml(
      `pipeline: dl-redo
source: { type: test-source, rows: 300, partitions: 3, reject_every: 10 }
sink: { type: flaky-commit }
concurrency: 1
retry: { initial_delay: 1 }
errors:
  tolerance: all
  dead_letter: { type: jsonl, path: dead.jsonl }
`,
      [flakyCommit, testSource as unknown as AnyConnector],
      dir,
    );
    expect(r.summary.status, r.logs).toBe('succeeded');
    expect(r.summary.totals.partition_retries).toBe(1);
    expect(r.summary.totals.rows_dead_lettered).toBe(30);
    const lines = readFileSync(join(dir, 'dead.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.record.line).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i * 10));
    expect(lines.filter((l) => l.partition_id === '1').every((l) => l.attempt === 2)).toBe(true);
  });
});
