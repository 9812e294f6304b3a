/**
 * Writers with `prepareBatch` and `sendPrepared` (the http sink): when no row can be
 * dead-lettered, the runtime prepares each batch once, lets its rows go (the batch's
 * array is emptied before the send), and retries the send with the same prepared
 * value; with `errors.tolerance: all` it writes through `write`, keeping the rows
 * for isolation and dead letters.
 */
import { describe, expect, it } from 'vitest';
import { runYaml } from '../../test/reliability/harness.js';
import { defineConnector, type Writer } from '../sdk/connector.js';
import { RowError, WeirError } from '../sdk/errors.js';
import { testSource } from '../sdk/testing.js';
import type { Row } from '../sdk/types.js';

interface Prepared {
  batch: number;
  ids: number[];
  /** The array the runtime handed to prepareBatch, to see whether it still holds the rows at the send. */
  rows: Row[];
}

function preparedSink(o: { failFirstSends?: number; badId?: number } = {}) {
  const state = { target: [] as number[], prepared: 0, viaWrite: 0, sends: [] as number[], heldAtSend: [] as number[] };
  let failures = o.failFirstSends ?? 0;
  const connector = defineConnector({
    name: 'prepared-sink',
    description: 'Prepares batches and sends them; the first sends may fail.',
    options: {},
    sink: () => ({
      writer(): Writer {
        let batches = 0;
        const prepareBatch = (rows: Row[]): Prepared => {
          state.prepared++;
          const ids = rows.map((r) => r.id as number);
          if (o.badId !== undefined && ids.includes(o.badId)) throw new RowError(`id ${o.badId} cannot be encoded`, { code: 'bad_field' });
          return { batch: batches++, ids, rows };
        };
        const sendPrepared = async (prepared: unknown) => {
          const p = prepared as Prepared;
          state.sends.push(p.batch);
          state.heldAtSend.push(p.rows.length);
          if (failures-- > 0) throw new WeirError('503 from the API', { code: 'http_503', retryable: true });
          state.target.push(...p.ids);
        };
        return {
          async write(rows) {
            state.viaWrite++;
            await sendPrepared(prepareBatch(rows));
          },
          prepareBatch,
          sendPrepared,
        };
      },
    }),
  });
  return { state, connector };
}

const yaml = (errors = '') => `
pipeline: prepared-test
source: { type: test-source, rows: 100, partitions: 1 }
sink: { type: prepared-sink }
batch: { rows: 25 }
retry: { max_attempts: 3, initial_delay: 1ms, max_delay: 2ms }
${errors}`;

describe('writers that prepare a batch, then send it', () => {
  it('each batch is prepared once, its rows let go before the send, and a retry sends the same prepared batch', async () => {
    const { state, connector } = preparedSink({ failFirstSends: 2 });
    const { summary } = await runYaml(yaml(), { connectors: [testSource, connector] });
    expect(summary.status).toBe('succeeded');
    expect(state.target.sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(state.prepared).toBe(4);
    expect(state.viaWrite).toBe(0);
    expect(state.sends).toEqual([0, 0, 0, 1, 2, 3]);
    expect(state.heldAtSend).toEqual([0, 0, 0, 0, 0, 0]);
    expect(summary.totals).toMatchObject({ rows_written: 100, retries: 2 });
  });

  it('a row prepareBatch cannot encode fails the run without tolerance; with tolerance all, write isolates it', async () => {
    const strict = preparedSink({ badId: 30 });
    const failed = await runYaml(yaml(), { connectors: [testSource, strict.connector] });
    expect(failed.summary.status).toBe('failed');
    expect(JSON.stringify(failed.summary)).toContain('id 30 cannot be encoded');
    expect(strict.state.target).not.toContain(30);

    const tolerant = preparedSink({ badId: 30 });
    const { summary } = await runYaml(yaml('errors: { tolerance: all, dead_letter: { type: jsonl, path: dead.jsonl } }'), {
      connectors: [testSource, tolerant.connector],
    });
    expect(summary.status).toBe('succeeded');
    expect(tolerant.state.viaWrite).toBeGreaterThan(0);
    expect(tolerant.state.target.sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i).filter((i) => i !== 30));
    expect(summary.totals).toMatchObject({ rows_written: 99, rows_failed: 1 });
  });
});
