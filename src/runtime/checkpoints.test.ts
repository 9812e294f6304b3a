import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/cli.js';
import { CheckpointStore, checkpointFile, planHash } from './checkpoints.js';

describe('CheckpointStore', () => {
  it('records runs and committed partitions, and survives reopening', () => {
    const file = join(tempDir(), 'nested', 'cp.db');
    const store = CheckpointStore.open(file);
    const partitions = [{ id: '0' }, { id: '1' }];
    store.startRun({ run_id: 'r1', pipeline: 'p', plan_hash: planHash('a', 'b', partitions), partitions });
    store.commitPartition('r1', '0', { rows: 5 });
    store.commitPartition('r1', '0', { rows: 6 }); // a redo replaces
    store.close();

    const again = CheckpointStore.open(file);
    expect(again.lastRun('p')).toMatchObject({ run_id: 'r1', status: 'running', partitions, finished_at: null });
    expect(again.committedPartitions('r1')).toEqual([{ partition_id: '0', message: { rows: 6 } }]);
    again.setStatus('r1', 'succeeded');
    expect(again.lastRun('p')?.finished_at).not.toBeNull();
    again.replacePartitions('r1', [{ partition_id: '1', message: null }]);
    expect(again.committedPartitions('r1')).toEqual([{ partition_id: '1', message: null }]);
    expect(again.lastRun('other')).toBeUndefined();
    again.close();
    again.close();
  });

  it('the last run is the newest; prune keeps the newest finished runs', () => {
    const store = CheckpointStore.open(join(tempDir(), 'cp.db'));
    for (let i = 0; i < 5; i++) {
      store.startRun({ run_id: `r${i}`, pipeline: 'p', plan_hash: 'h', partitions: [] });
      store.setStatus(`r${i}`, 'succeeded');
    }
    expect(store.lastRun('p')?.run_id).toBe('r4');
    store.prune('p', 2);
    expect(store.lastRun('p')?.run_id).toBe('r4');
    store.close();
  });

  it('plan hashes differ when partitions differ; relative paths resolve against the working directory', () => {
    expect(planHash('g', 's', [{ id: '0', start: 1 }])).not.toBe(planHash('g', 's', [{ id: '0', start: 2 }]));
    expect(checkpointFile(undefined, '/work')).toBe('/work/.weir/checkpoints.db');
    expect(checkpointFile('/abs/cp.db', '/work')).toBe('/abs/cp.db');
  });

  it('an unusable path is a config error naming checkpoint.path', () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'not a directory');
    expect(() => CheckpointStore.open(join(file, 'cp.db'))).toThrow(/checkpoint\.path/);
  });
});
