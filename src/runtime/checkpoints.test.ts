import { readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
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

  it('a reserved run id is a leftover until it becomes a run, is cleaned, or is dropped; never a run', () => {
    const store = CheckpointStore.open(join(tempDir(), 'cp.db'));
    const partitions = [{ id: '0' }];
    store.reserveRun('killed', 'p');
    store.reserveRun('recorded', 'p');
    store.reserveRun('failed', 'p');
    store.reserveRun('elsewhere', 'other');
    store.startRun({ run_id: 'recorded', pipeline: 'p', plan_hash: planHash('a', 'b', partitions), partitions });
    store.dropReservation('failed');
    expect(store.lastRun('p')?.run_id).toBe('recorded');
    expect(store.runs('p').map((r) => r.run_id)).toEqual(['recorded']);
    expect(store.leftoverRuns('p', 'recorded')).toEqual([
      {
        run_id: 'killed',
        pipeline: 'p',
        status: 'running',
        plan_hash: '',
        partitions: [],
        started_at: expect.any(String),
        finished_at: null,
        owner: expect.stringMatching(/:\d+$/),
      },
    ]);
    expect(store.leftoverRuns('p', 'killed').map((r) => r.run_id)).toEqual(['recorded']);
    store.markCleaned(['killed']);
    expect(store.leftoverRuns('p', 'recorded')).toEqual([]);
    expect(store.forget('other')).toBe(0);
    expect(store.leftoverRuns('other')).toEqual([]);
    store.close();
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

  it('plan hashes differ when partitions differ, less their run-only facts; relative paths resolve against the working directory', () => {
    expect(planHash('g', 's', [{ id: '0', start: 1 }])).not.toBe(planHash('g', 's', [{ id: '0', start: 2 }]));
    // a run-only fact (an exported snapshot's id) is planned afresh by a resumed run: not part of the plan's identity
    const snapshot = (id: string) => [{ id: '0', blocks: [0, 9], run_only: { snapshot: id } }];
    expect(planHash('g', 's', snapshot('00000003-1'))).toBe(planHash('g', 's', snapshot('00000007-2')));
    expect(planHash('g', 's', snapshot('00000003-1'))).toBe(planHash('g', 's', [{ id: '0', blocks: [0, 9] }]));
    expect(planHash('g', 's', snapshot('x'))).not.toBe(planHash('g', 's', [{ id: '0', blocks: [0, 8], run_only: { snapshot: 'x' } }]));
    expect(checkpointFile(undefined, '/work')).toBe('/work/.weir/checkpoints.db');
    expect(checkpointFile('/abs/cp.db', '/work')).toBe('/abs/cp.db');
  });

  it('an unusable path is a config error naming checkpoint.path', () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'not a directory');
    expect(() => CheckpointStore.open(join(file, 'cp.db'))).toThrow(/checkpoint\.path/);
  });

  it('creates its directory 0700 and its files 0600; refuses a symlink at its path', () => {
    const dir = join(tempDir(), 'state');
    const store = CheckpointStore.open(join(dir, 'cp.db'));
    store.startRun({ run_id: 'r', pipeline: 'p', plan_hash: 'h', partitions: [{ id: '0' }] });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(dir)) expect([f, statSync(join(dir, f)).mode & 0o777]).toEqual([f, 0o600]);
    store.close();
    const victim = join(dir, 'victim');
    writeFileSync(victim, '');
    symlinkSync(victim, join(dir, 'link.db'));
    expect(() => CheckpointStore.open(join(dir, 'link.db'))).toThrow(/is a symbolic link; .*checkpoint\.path/);
    expect(statSync(victim).size).toBe(0);
  });

  it('a damaged row read back is a clear error naming the store, not a JSON stack', () => {
    const file = join(tempDir(), 'cp.db');
    const store = CheckpointStore.open(file);
    store.startRun({ run_id: 'r', pipeline: 'p', plan_hash: 'h', partitions: [{ id: '0' }] });
    store.commitPartition('r', '0', { ok: true });
    const db = new Database(file);
    const tamper = (sql: string) => db.prepare(sql).run();
    tamper(`UPDATE partitions SET message = '{"tmp":'`);
    expect(() => store.committedPartitions('r')).toThrow(/checkpoint store .*cp\.db is damaged: partitions\.message of run r is not JSON/);
    tamper(`UPDATE runs SET status = 'owned'`);
    expect(() => store.lastRun('p')).toThrow(/damaged: the runs row of run "r" has an unknown status "owned"/);
    tamper(`UPDATE runs SET status = 'stopped', partitions = '[{"id": 7}]'`);
    expect(() => store.lastRun('p')).toThrow(/damaged: the partitions of .* are not a list of partitions with text ids/);
    tamper(`UPDATE runs SET partitions = '[{"id": "0"}]'`);
    expect(store.lastRun('p')?.partitions).toEqual([{ id: '0' }]);
    db.close();
    store.close();
  });
});
