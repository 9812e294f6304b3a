/**
 * Graceful stop and resume, in process: a stopped run keeps its committed
 * partitions (checkpoint store), publishes nothing and aborts nothing; `weir run`
 * again resumes it under the same run id; `fresh` abandons it.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { CheckpointStore } from '../../src/runtime/checkpoints.js';
import { recordingSinkConnector, testSource } from '../../src/sdk/testing.js';
import { tempDir } from '../helpers/cli.js';
import { ofType, runYaml } from './harness.js';

const slow = (extra = '') => `
pipeline: resume-test
concurrency: 2
source: { type: test-source, rows: 600, partitions: 6, delay_ms: 1 }
sink: { type: test-sink }
batch: { rows: 20 }
${extra}`;

const stopAfter = (partitions: number, controller: AbortController) => (e: { type: string }) => {
  if (e.type === 'partition_complete' && --partitions === 0) controller.abort();
};

const storeOf = (dir: string) => CheckpointStore.open(join(dir, '.weir', 'checkpoints.db'));
const ids = (messages: unknown[] | undefined) => (messages ?? []).map((m) => (m as { partition_id: string }).partition_id).sort();

describe('stop and resume', () => {
  it('a stop drains: committed partitions are kept for resume, the job is neither committed nor aborted, every writer is closed', async () => {
    const dir = tempDir('weir-resume-');
    const first = recordingSinkConnector();
    const stop = new AbortController();
    const r1 = await runYaml(slow(), { connectors: [testSource, first.connector], dir, signal: stop.signal, onEvent: stopAfter(2, stop) });
    expect(r1.summary.status).toBe('stopped');
    expect(r1.summary.error?.error_type).toBe('cancelled');
    const committed = r1.summary.totals.partitions_committed;
    expect(committed).toBeGreaterThanOrEqual(2);
    expect(committed).toBeLessThan(6);
    expect(r1.summary.totals.partitions_failed).toBe(0); // interrupted partitions are pending, not failed
    expect(first.record.jobCommits).toHaveLength(0);
    expect(first.record.jobAborts).toHaveLength(0);
    expect(first.record.writersClosed.sort()).toEqual(first.record.writersOpened.sort());
    expect(r1.logs).toContain('run it again to resume');
    const store = storeOf(dir);
    expect(store.lastRun('resume-test')).toMatchObject({ run_id: r1.summary.run_id, status: 'stopped' });
    expect(store.committedPartitions(r1.summary.run_id)).toHaveLength(committed);
    store.close();

    const second = recordingSinkConnector();
    const r2 = await runYaml(slow(), { connectors: [testSource, second.connector], dir });
    expect(r2.summary).toMatchObject({ status: 'succeeded', resumed: true, run_id: r1.summary.run_id });
    expect(r2.summary.totals).toMatchObject({ partitions: 6, partitions_committed: 6, partitions_skipped: committed });
    expect(second.record.writersOpened).toHaveLength(6 - committed);
    expect(ofType(r2.events, 'partition_skipped')).toHaveLength(committed);
    expect(ofType(r2.events, 'run_start')[0]?.resumed).toBe(true);
    expect(ids(second.record.jobCommits[0])).toEqual(['0', '1', '2', '3', '4', '5']);

    // a finished run is not resumed: the next run is a new one
    const r3 = await runYaml(slow(), { connectors: [testSource, recordingSinkConnector().connector], dir });
    expect(r3.summary.resumed).toBe(false);
    expect(r3.summary.run_id).not.toBe(r1.summary.run_id);
  });

  it("dead letters of partitions committed before a stop are published once, together with the resumed run's", async () => {
    const dir = tempDir('weir-resume-dlq-');
    const yaml = `
pipeline: resume-dlq
concurrency: 2
source: { type: test-source, rows: 600, partitions: 6, delay_ms: 1, reject_every: 7 }
sink: { type: test-sink }
batch: { rows: 20 }
errors: { tolerance: all, dead_letter: { type: jsonl, path: out/rejected.jsonl } }
`;
    const stop = new AbortController();
    const r1 = await runYaml(yaml, {
      connectors: [testSource, recordingSinkConnector().connector],
      dir,
      signal: stop.signal,
      onEvent: stopAfter(2, stop),
    });
    expect(r1.summary.status).toBe('stopped');
    expect(r1.summary.totals.partitions_committed).toBeGreaterThanOrEqual(2);
    expect(existsSync(join(dir, 'out', 'rejected.jsonl'))).toBe(false); // nothing published while the run can resume
    const r2 = await runYaml(yaml, { connectors: [testSource, recordingSinkConnector().connector], dir });
    expect(r2.summary.status).toBe('succeeded');
    expect(r2.summary.resumed).toBe(true);
    const ids = readFileSync(join(dir, 'out', 'rejected.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => Number(String((JSON.parse(l) as { record: { raw: string } }).record.raw).slice(1)))
      .sort((a, b) => a - b);
    expect(ids).toEqual([...Array(600).keys()].filter((i) => i % 7 === 0)); // every unreadable row once: none lost, none twice
  });

  it('in-flight writes may finish within shutdown_timeout, then are aborted: a stop during a long Retry-After ends at once', async () => {
    const { record, connector } = recordingSinkConnector({ failFirstWrites: 100, retryAfterMs: 60_000 });
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 300);
    const t0 = performance.now();
    const { summary } = await runYaml(slow('shutdown_timeout: 200ms\nretry: { max_attempts: 5 }'), {
      connectors: [testSource, connector],
      signal: stop.signal,
    });
    const took = performance.now() - t0;
    expect(summary.status).toBe('stopped');
    expect(took).toBeLessThan(1500);
    // the stop came at 300 ms; a retry wait ends at once on the drain, a write in flight may take the 200 ms of shutdown_timeout
    expect(took).toBeGreaterThanOrEqual(290);
    expect(record.writersClosed.sort()).toEqual(record.writersOpened.sort());
  });

  it('a write in flight when the stop comes finishes (within the timeout); no new batch is read after it', async () => {
    const { record, connector } = recordingSinkConnector({ writeDelayMs: 250 });
    const stop = new AbortController();
    let written = 0;
    const { summary } = await runYaml(slow('concurrency: 1\nshutdown_timeout: 5s').replace('concurrency: 2\n', ''), {
      connectors: [testSource, connector],
      signal: stop.signal,
      onEvent: (e) => {
        if (e.type === 'rows_read' && ++written === 2) setTimeout(() => stop.abort(), 50); // during the 2nd write
      },
    });
    expect(summary.status).toBe('stopped');
    expect(record.writeCalls).toBe(2);
    expect(record.written.get('0')).toHaveLength(40); // the 2nd batch was written in full
    expect(record.writersAborted).toEqual(['0']);
  });

  it('fresh abandons an interrupted run: its staged partitions are aborted, a new run starts', async () => {
    const dir = tempDir('weir-fresh-');
    const stop = new AbortController();
    const r1 = await runYaml(slow(), {
      connectors: [testSource, recordingSinkConnector().connector],
      dir,
      signal: stop.signal,
      onEvent: stopAfter(1, stop),
    });
    expect(r1.summary.status).toBe('stopped');
    const next = recordingSinkConnector();
    const r2 = await runYaml(slow(), { connectors: [testSource, next.connector], dir, fresh: true });
    expect(r2.summary).toMatchObject({ status: 'succeeded', resumed: false });
    expect(r2.summary.run_id).not.toBe(r1.summary.run_id);
    expect(next.record.jobAborts).toHaveLength(1);
    expect(next.record.jobAborts[0]).toHaveLength(r1.summary.totals.partitions_committed);
    expect(ofType(r2.events, 'warning').some((w) => w.message.includes(`run ${r1.summary.run_id} was abandoned (--fresh)`))).toBe(true);
    const store = storeOf(dir);
    expect(store.lastRun('resume-test')?.status).toBe('succeeded');
    store.close();
  });

  it('fresh after a stop refuses when the sink cannot take back what the stopped run committed, unless --keep-committed', async () => {
    const dir = tempDir('weir-fresh-append-');
    const stop = new AbortController();
    // a sink that publishes each partition as it commits (as postgres append does): nothing a later abort can take back
    const publishing = () => ({ ...recordingSinkConnector().connector, transactional: false });
    const r1 = await runYaml(slow(), { connectors: [testSource, publishing()], dir, signal: stop.signal, onEvent: stopAfter(1, stop) });
    expect(r1.summary.status).toBe('stopped');
    const committed = r1.summary.totals.partitions_committed;
    const refused = await runYaml(slow(), { connectors: [testSource, publishing()], dir, fresh: true });
    expect(refused.summary.status).toBe('failed');
    expect(refused.summary.error).toMatchObject({ kind: 'config', error_type: 'fresh_would_duplicate' });
    expect(refused.summary.error?.error_message).toContain(`--fresh would load ${committed} partition(s) again`);
    expect(refused.summary.error?.error_message).toContain('--keep-committed');
    const kept = await runYaml(slow(), { connectors: [testSource, publishing()], dir, fresh: true, keepCommitted: true });
    expect(kept.summary).toMatchObject({ status: 'succeeded', resumed: false });
    const warning = ofType(kept.events, 'warning').find((w) => w.message.includes(`run ${r1.summary.run_id} was abandoned (--fresh)`));
    expect(warning?.message).toContain(`the rows of its ${committed} committed partition(s) stay in the`);
    expect(warning?.message).not.toContain('discarded');
  });

  it('refuses to start while another live process runs the same pipeline (overlapping runs would share a run id)', async () => {
    const dir = tempDir('weir-overlap-');
    const stop = new AbortController();
    const r1 = await runYaml(slow(), {
      connectors: [testSource, recordingSinkConnector().connector],
      dir,
      signal: stop.signal,
      onEvent: stopAfter(1, stop),
    });
    const other = spawn('sleep', ['30']);
    try {
      const db = new Database(join(dir, '.weir', 'checkpoints.db'));
      db.prepare("UPDATE runs SET status = 'running', owner = ? WHERE run_id = ?").run(`${hostname()}:${other.pid}`, r1.summary.run_id);
      db.close();
      const r2 = await runYaml(slow(), { connectors: [testSource, recordingSinkConnector().connector], dir });
      expect(r2.summary.status).toBe('failed');
      expect(r2.summary.error).toMatchObject({ error_type: 'already_running' });
      expect(r2.summary.error?.error_message).toContain(`process ${hostname()}:${other.pid}`);
    } finally {
      other.kill('SIGKILL');
    }
    await new Promise((r) => other.once('exit', r));
    // once that process is gone the run is resumed
    const r3 = await runYaml(slow(), { connectors: [testSource, recordingSinkConnector().connector], dir });
    expect(r3.summary).toMatchObject({ status: 'succeeded', resumed: true, run_id: r1.summary.run_id });
  });

  it('a different plan (source partitions changed) starts over instead of resuming', async () => {
    const dir = tempDir('weir-plan-');
    const stop = new AbortController();
    await runYaml(slow(), {
      connectors: [testSource, recordingSinkConnector().connector],
      dir,
      signal: stop.signal,
      onEvent: stopAfter(1, stop),
    });
    const r2 = await runYaml(slow().replace('rows: 600', 'rows: 700'), {
      connectors: [testSource, recordingSinkConnector().connector],
      dir,
    });
    expect(r2.summary).toMatchObject({ status: 'succeeded', resumed: false });
    expect(ofType(r2.events, 'warning').some((w) => w.message.includes('its plan (source partitions) differs'))).toBe(true);
  });
});

describe('delivery: exactly-once', () => {
  it('is accepted for sqlite and refused at validation for a sink that cannot commit rows and checkpoints atomically', async () => {
    const ok = `pipeline: eo\ndelivery: exactly-once\nsource: { type: generator, rows: 10 }\nsink: { type: sqlite, path: out.db, table: t }\n`;
    expect((await runYaml(ok)).summary.status).toBe('succeeded');
    await expect(runYaml(ok.replace('{ type: sqlite, path: out.db, table: t }', '{ type: jsonl, path: out.jsonl }'))).rejects.toThrow(
      /delivery.*exactly-once needs a sink that commits rows and checkpoints atomically; jsonl cannot.*sqlite/s,
    );
  });
});

describe('exactly-once resume with the sqlite sink', () => {
  const yaml = `
pipeline: eo-resume
concurrency: 2
delivery: exactly-once
source: { type: generator, rows: 60000, partitions: 6 }
sink: { type: sqlite, path: out.db, table: events, batch_size: 500 }
rate_limit: { rows_per_second: 100000 }
`;
  const count = (dir: string) => {
    const db = new Database(join(dir, 'out.db'), { readonly: true });
    try {
      return db.prepare('SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM events').get();
    } finally {
      db.close();
    }
  };

  it('trusts the target over the local store: a partition the target does not hold is redone; every row lands once', async () => {
    const dir = tempDir('weir-eo-');
    const stop = new AbortController();
    const r1 = await runYaml(yaml, { dir, signal: stop.signal, onEvent: stopAfter(3, stop) });
    expect(r1.summary.status).toBe('stopped');
    const committed = r1.summary.totals.partitions_committed;
    expect(committed).toBeGreaterThanOrEqual(3);
    // the target loses one checkpoint (its stage stays): the local store still lists it
    const db = new Database(join(dir, 'out.db'));
    const lost = db.prepare('SELECT partition_id FROM _weir_checkpoints ORDER BY partition_id LIMIT 1').get() as { partition_id: string };
    db.prepare('DELETE FROM _weir_checkpoints WHERE partition_id = ?').run(lost.partition_id);
    db.close();

    const r2 = await runYaml(yaml, { dir });
    expect(r2.summary).toMatchObject({ status: 'succeeded', resumed: true, run_id: r1.summary.run_id });
    expect(r2.summary.totals.partitions_skipped).toBe(committed - 1);
    expect(r2.summary.partitions.map((p) => p.partition_id)).toContain(lost.partition_id);
    expect(count(dir)).toEqual({ n: 60000, d: 60000, lo: 1, hi: 60000 });
  });

  it('a job commit that happened before the process died is recognised: the resumed run publishes nothing twice', async () => {
    const dir = tempDir('weir-eo2-');
    const r1 = await runYaml(yaml, { dir });
    expect(r1.summary.status).toBe('succeeded');
    // simulate a kill between the target's job commit and the local store's update
    const store = storeOf(dir);
    store.setStatus(r1.summary.run_id, 'running');
    store.close();
    const r2 = await runYaml(yaml, { dir });
    expect(r2.summary).toMatchObject({ status: 'succeeded', resumed: true, run_id: r1.summary.run_id });
    expect(r2.summary.totals).toMatchObject({ partitions_skipped: 6, rows_written: 0 });
    expect(count(dir)).toEqual({ n: 60000, d: 60000, lo: 1, hi: 60000 });
  });

  it('a failed exactly-once run is resumed too; what its abort discarded is redone, nothing is doubled', async () => {
    const dir = tempDir('weir-eo3-');
    const eo = (extra: string) => `
pipeline: eo-failed
delivery: exactly-once
concurrency: 2
source: { type: test-source, rows: 3000, partitions: 6${extra} }
sink: { type: sqlite, path: out.db, table: events, batch_size: 100 }
`;
    const r1 = await runYaml(eo(', fail_partition: "4", fail_after: 250'), { dir, connectors: [testSource] });
    expect(r1.summary.status).toBe('failed');
    const db = new Database(join(dir, 'out.db'), { readonly: true });
    expect(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'events' OR name LIKE '_weir_stage_%'").get()).toEqual({
      n: 0,
    });
    db.close();
    const r2 = await runYaml(eo(''), { dir, connectors: [testSource] });
    expect(r2.summary).toMatchObject({ status: 'succeeded', resumed: true, run_id: r1.summary.run_id });
    expect(r2.summary.totals.partitions_skipped).toBe(0);
    const after = new Database(join(dir, 'out.db'), { readonly: true });
    expect(after.prepare('SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM events').get()).toEqual({
      n: 3000,
      d: 3000,
      lo: 0,
      hi: 2999,
    });
    after.close();
  });
});
