/**
 * The run page's state and server, in process: memory stays bounded over a long run
 * with many partitions and errors, secrets are scrubbed, and the server refuses a
 * non-loopback Host (DNS rebinding) and serves its SSE stream.
 */
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { EventBus, type PartitionMetrics } from '../../src/observe/events.js';
import { collectUi, startUiServer } from '../../src/observe/ui/server.js';
import { Redactor } from '../../src/secrets/redactor.js';

const SECRET = 'wcanUiStateSecret0123456789';

function metrics(id: string, attempt = 1): PartitionMetrics {
  return {
    partition_id: id,
    attempt,
    rows_read: 10,
    rows_processed: 10,
    rows_failed: 0,
    bytes_sent: 100,
    batches_sent: 1,
    retry_count: 0,
    rate_limit_wait_seconds: 0,
    duration_seconds: 0.1,
    throughput: 100,
    errors: {},
  };
}

function setup(limits = {}) {
  const bus = new EventBus();
  const redactor = new Redactor();
  redactor.addValue(SECRET);
  const ui = collectUi(bus, redactor, { intervalMs: 60_000, ...limits });
  bus.emit({
    type: 'run_start',
    run_id: 'r1',
    pipeline: 'p',
    source: 'generator',
    sink: 'jsonl',
    partitions: 5000,
    delivery: 'at-least-once',
    resumed: false,
    estimated_rows: 50_000,
  });
  return { bus, ui };
}

describe('the run page state', () => {
  it('stays bounded over thousands of partitions and errors, and holds no secret', () => {
    const { bus, ui } = setup({ history: 16, samples: 5, partitions: 50 });
    for (let i = 0; i < 5000; i++) {
      const id = `part-${i}`;
      bus.emit({ type: 'partition_start', partition_id: id, attempt: 1 });
      bus.emit({ type: 'batch_written', partition_id: id, batch_id: 1, rows: 10, bytes: 100, duration_ms: 1 });
      bus.emit({
        type: 'row_dead_lettered',
        partition_id: id,
        stage: 'write',
        error_type: 'bad_row',
        error_message: `refused with key ${SECRET}`,
      });
      bus.emit({
        type: 'batch_retry',
        partition_id: id,
        batch_id: 1,
        attempt: 1,
        delay_ms: 1,
        error_type: 'timeout',
        error_message: `token=${SECRET}`,
      });
      bus.emit({ type: 'partition_complete', metrics: metrics(id) });
    }
    bus.emit({ type: 'partition_start', partition_id: 'still-running', attempt: 1 });
    const s = ui.snapshot();
    expect(s.partitions.rows.length).toBeLessThanOrEqual(51);
    expect(s.partitions.rows[0]?.id).toBe('still-running');
    expect(s.partitions.by_state.committed).toBe(5000);
    expect(s.partitions.hidden).toBeGreaterThan(4900);
    expect(s.errors).toHaveLength(5);
    expect(s.dead_letters).toHaveLength(5);
    expect(s.totals.rows_written).toBe(50_000);
    expect(s.progress.percent).toBe(100);
    expect(ui.json()).not.toContain(SECRET);
    expect(ui.json()).toContain('***REDACTED***');
    ui.stop();
  });

  it('keeps at most `history` chart points, merging neighbours', async () => {
    const { bus, ui } = setup({ history: 8, intervalMs: 5 });
    for (let i = 0; i < 40; i++) {
      bus.emit({ type: 'batch_written', partition_id: 'a', batch_id: i, rows: 100, bytes: 1, duration_ms: 1 });
      await new Promise((r) => setTimeout(r, 6));
    }
    const h = ui.snapshot().history;
    expect(h.points.length).toBeGreaterThan(0);
    expect(h.points.length).toBeLessThanOrEqual(9);
    expect(h.step_seconds).toBeGreaterThan(0.005);
    ui.stop();
  });
});

function get(port: number, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
        if (path === '/events' && body.includes('\n\n')) res.destroy();
      });
      res.on('close', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the run page server', () => {
  it('serves the page and the stream to loopback names only', async () => {
    const { ui } = setup();
    const server = await startUiServer(ui, 0);
    const port = Number(new URL(server.url).port);
    try {
      const page = await get(port, '/', `127.0.0.1:${port}`);
      expect(page.status).toBe(200);
      expect(page.body).toContain('new EventSource');
      const stream = await get(port, '/events', `localhost:${port}`);
      expect(stream.body).toContain('event: snapshot');
      expect(stream.body).toContain('"run_id":"r1"');
      const rebound = await get(port, '/state.json', `evil.example:${port}`);
      expect(rebound.status).toBe(421);
      expect(rebound.body).not.toContain('r1');
    } finally {
      await server.close();
      ui.stop();
    }
  });
});
