/**
 * The engine conformance suite: every engine passes the same runtime tests — commit,
 * abort, cleanup, dead letters, resume — on real connectors. The child-process engine
 * runs each task in a child process started with only the task's JSON, so passing
 * here proves that a task crosses a process boundary with nothing else.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { parsePipelineText } from '../../src/config/load.js';
import { createRegistry, openPipeline } from '../../src/config/open.js';
import { EventBus, type RunSummary, type WeirEvent } from '../../src/observe/events.js';
import { createLogger } from '../../src/observe/logger.js';
import type { Engine } from '../../src/runtime/engine.js';
import { childProcessEngine } from '../../src/runtime/engines/child.js';
import { localEngine } from '../../src/runtime/engines/local.js';
import { runPipeline } from '../../src/runtime/run.js';
import { Redactor } from '../../src/secrets/redactor.js';
import { tempDir } from '../helpers/cli.js';

const FIXTURE = resolve(import.meta.dirname, 'fixtures/engine-connectors.mjs');

interface Run {
  summary: RunSummary;
  events: WeirEvent[];
  logs: string;
}

async function run(engine: Engine, dir: string, body: string, options: { stopAfterCommits?: number } = {}): Promise<Run> {
  const text = `pipeline: engine-suite\nconnectors: [${JSON.stringify(FIXTURE)}]\n${body}`;
  writeFileSync(join(dir, 'pipeline.yaml'), text);
  const redactor = new Redactor();
  const pipeline = await openPipeline(parsePipelineText(text, join(dir, 'pipeline.yaml')), dir, await createRegistry(), redactor);
  let logs = '';
  const destination = new Writable({
    write(chunk, _enc, cb) {
      logs += chunk.toString();
      cb();
    },
  });
  const bus = new EventBus();
  const events: WeirEvent[] = [];
  const stop = new AbortController();
  bus.subscribe((e) => {
    events.push(e);
    if (
      options.stopAfterCommits !== undefined &&
      e.type === 'partition_complete' &&
      events.filter((x) => x.type === 'partition_complete').length >= options.stopAfterCommits
    )
      stop.abort();
  });
  const logger = createLogger({ format: 'json', level: 'info', redactor, destination });
  const summary = await runPipeline(pipeline, { bus, logger, redactor, cwd: dir, engine, signal: stop.signal });
  return { summary, events, logs };
}

const sqliteRows = (file: string, table: string): Record<string, unknown>[] => {
  const db = new Database(file, { readonly: true });
  try {
    const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
    return exists ? (db.prepare(`SELECT * FROM "${table}" ORDER BY id`).all() as Record<string, unknown>[]) : [];
  } finally {
    db.close();
  }
};

const tablesOf = (file: string): string[] => {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name);
  } finally {
    db.close();
  }
};

const ENGINES: [string, () => Engine][] = [
  ['local', () => localEngine],
  ['child-process', () => childProcessEngine()],
];

for (const [name, engine] of ENGINES) {
  describe(`engine ${name}`, () => {
    it('commits every partition: each row once in the target, the job committed', async () => {
      const dir = tempDir('weir-engine-');
      const r = await run(
        engine(),
        dir,
        `source: { type: test-source, rows: 900, partitions: 3 }
sink: { type: sqlite, path: out.db, table: items }
delivery: exactly-once
concurrency: 2
`,
      );
      expect(r.summary.status, r.logs).toBe('succeeded');
      expect(r.summary.totals).toMatchObject({ partitions_committed: 3, rows_written: 900, rows_read: 900 });
      const rows = sqliteRows(join(dir, 'out.db'), 'items');
      expect(rows).toHaveLength(900);
      expect(new Set(rows.map((x) => x.id)).size).toBe(900);
      expect(rows[5]).toMatchObject({ id: 5, value: 'v5' });
      expect(r.events.filter((e) => e.type === 'job_commit')).toHaveLength(1);
    });

    it('aborts the job when a partition fails: nothing published, nothing staged, every writer closed', async () => {
      const dir = tempDir('weir-engine-');
      const closeLog = join(dir, 'close.log');
      const db = join(dir, 'out.db');
      const r = await run(
        engine(),
        dir,
        `source: { type: test-source, rows: 600, partitions: 3, fail_partition: "2", fail_after: 50 }
sink: { type: sqlite, path: out.db, table: items, mode: replace }
concurrency: 1
`,
      );
      expect(r.summary.status).toBe('failed');
      expect(r.summary.error?.error_message).toContain('partition 2 failed on purpose');
      expect(r.summary.totals.partitions_failed).toBe(1);
      expect(r.events.filter((e) => e.type === 'job_abort')).toHaveLength(1);
      expect(sqliteRows(db, 'items')).toHaveLength(0);
      expect(tablesOf(db).filter((t) => t.startsWith('_weir_stage'))).toEqual([]);

      const r2 = await run(
        engine(),
        tempDir('weir-engine-'),
        `source: { type: test-source, rows: 300, partitions: 3, fail_partition: "1", fail_after: 5 }
sink: { type: test-sink, close_log: ${JSON.stringify(closeLog)} }
concurrency: 3
`,
      );
      expect(r2.summary.status).toBe('failed');
      const lines = readFileSync(closeLog, 'utf8').trim().split('\n');
      const opened = lines.filter((l) => l.startsWith('open ')).map((l) => l.slice(5));
      const closed = lines.filter((l) => l.startsWith('close ')).map((l) => l.slice(6));
      expect(opened.length).toBeGreaterThan(0);
      expect(closed.sort()).toEqual(opened.sort());
    });

    it('dead-letters unreadable rows and writes the others', async () => {
      const dir = tempDir('weir-engine-');
      const r = await run(
        engine(),
        dir,
        `source: { type: test-source, rows: 400, partitions: 2, reject_every: 10 }
sink: { type: sqlite, path: out.db, table: items }
errors:
  tolerance: all
  dead_letter: { type: jsonl, path: dead.jsonl }
`,
      );
      expect(r.summary.status, r.logs).toBe('succeeded');
      expect(r.summary.totals.rows_dead_lettered).toBe(40);
      expect(sqliteRows(join(dir, 'out.db'), 'items')).toHaveLength(360);
      const dead = readFileSync(join(dir, 'dead.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(dead).toHaveLength(40);
      expect(dead.map((d) => d.record.line).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i * 10));
      expect(dead[0]).toMatchObject({ pipeline: 'engine-suite', stage: 'read', error_type: 'unreadable' });
    });

    it('a stopped run resumes: committed partitions are skipped, every row lands once', async () => {
      const dir = tempDir('weir-engine-');
      const body = `source: { type: test-source, rows: 400, partitions: 4, delay_ms: 2 }
sink: { type: sqlite, path: out.db, table: items }
delivery: exactly-once
concurrency: 1
`;
      const first = await run(engine(), dir, body, { stopAfterCommits: 1 });
      expect(first.summary.status, first.logs).toBe('stopped');
      const committed = first.summary.totals.partitions_committed;
      expect(committed).toBeGreaterThanOrEqual(1);
      expect(committed).toBeLessThan(4);
      const second = await run(engine(), dir, body);
      expect(second.summary.status, second.logs).toBe('succeeded');
      expect(second.summary.resumed).toBe(true);
      expect(second.summary.run_id).toBe(first.summary.run_id);
      expect(second.summary.totals.partitions_skipped).toBe(committed);
      const rows = sqliteRows(join(dir, 'out.db'), 'items');
      expect(rows).toHaveLength(400);
      expect(new Set(rows.map((x) => x.id)).size).toBe(400);
    });
  });
}

describe('engine child-process', () => {
  it('runs every task in another process, from its JSON alone; a worker that dies is retried as a new attempt', async () => {
    const dir = tempDir('weir-engine-');
    const canary = `canary-${Math.random().toString(36).slice(2)}-secret`;
    process.env.WEIR_ENGINE_CANARY = canary;
    const sent: string[] = [];
    try {
      const r = await run(
        childProcessEngine({ onTask: (json) => sent.push(json) }),
        dir,
        `description: \${env:WEIR_ENGINE_CANARY}
source: { type: pid-source, rows: 40, partitions: 3, crash_partition: "1" }
sink: { type: sqlite, path: out.db, table: items }
delivery: exactly-once
retry: { initial_delay: 10 }
`,
      );
      expect(r.summary.status, r.logs).toBe('succeeded');
      expect(r.summary.totals.partition_retries).toBe(1);
      expect(r.summary.retried_attempts[0]?.partition_id).toBe('1');
      const rows = sqliteRows(join(dir, 'out.db'), 'items');
      expect(rows).toHaveLength(120);
      expect(new Set(rows.map((x) => x.id)).size).toBe(120);
      const pids = new Set(rows.map((x) => x.pid));
      expect(pids.has(process.pid)).toBe(false);
      expect(pids.size).toBe(3); // one process per task
      expect(rows.filter((x) => x.attempt === 2).map((x) => Math.floor(Number(x.id) / 40))).toEqual(Array(40).fill(1));
      // the tasks' JSON carries the reference, never its value
      expect(sent).toHaveLength(4);
      for (const json of sent) {
        expect(json).toContain('${env:WEIR_ENGINE_CANARY}');
        expect(json).not.toContain(canary);
      }
      expect(r.logs).not.toContain(canary);
      expect(existsSync(join(dir, 'out.db'))).toBe(true);
    } finally {
      delete process.env.WEIR_ENGINE_CANARY;
    }
  });

  it('a reference the worker cannot resolve fails the partition with a config error naming it', async () => {
    const dir = tempDir('weir-engine-');
    process.env.WEIR_ENGINE_ONLY_HERE = 'planner-side';
    try {
      const env = { ...process.env };
      delete env.WEIR_ENGINE_ONLY_HERE;
      const r = await run(
        childProcessEngine({ env }),
        dir,
        `description: \${env:WEIR_ENGINE_ONLY_HERE}
source: { type: test-source, rows: 10 }
sink: { type: sqlite, path: out.db, table: items }
`,
      );
      expect(r.summary.status).toBe('failed');
      expect(r.summary.error?.kind).toBe('config');
      expect(r.summary.error?.error_message).toContain('WEIR_ENGINE_ONLY_HERE');
      expect(r.summary.totals.partition_retries).toBe(0);
    } finally {
      delete process.env.WEIR_ENGINE_ONLY_HERE;
    }
  });
});
