/** The human summary printed at the end of a run, and the JSON summary file. */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Redactor } from '../secrets/redactor.js';
import type { RunSummary } from './events.js';

/** 1234567 → `1,234,567` (integers without ICU, whose first use costs ~10 ms at the end of every run). */
const n = (x: number) => (Number.isInteger(x) ? String(x).replace(/\B(?=(\d{3})+(?!\d))/g, ',') : x.toLocaleString('en-US'));
const MAX_PARTITION_LINES = 12;

function bytes(x: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${x.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Peak resident set size of this process, in bytes. */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** The human summary, scrubbed before anything in it is cut short (partition ids are cut to 11 characters). */
export function formatSummary(summary: RunSummary, redactor: Redactor): string {
  const s = redactor.scrubValue(summary) as RunSummary;
  const t = s.totals;
  const mark = s.status === 'succeeded' ? '✔' : s.status === 'stopped' ? '■' : '✖';
  const lines = [
    `${mark} ${s.pipeline} ${s.status} in ${t.duration_seconds.toFixed(2)} s  (run ${s.run_id})`,
    `  ${s.source} → ${s.sink} · ${s.delivery} · ${t.partitions_committed}/${t.partitions} partitions committed${t.partitions_skipped ? ` (${t.partitions_skipped} skipped: already committed)` : ''}${t.partitions_failed ? ` · ${t.partitions_failed} failed` : ''}`,
    `  rows: ${n(t.rows_read)} read · ${n(t.rows_written)} written${t.rows_inserted !== undefined ? ` (${n(t.rows_inserted)} inserted, ${n(t.rows_updated ?? 0)} updated)` : ''} · ${n(t.rows_dead_lettered)} dead-lettered${t.rows_filtered ? ` · ${n(t.rows_filtered)} filtered` : ''} · ${n(t.rows_per_second)} rows/s`,
    `  ${bytes(t.bytes_sent)} sent in ${n(t.batches_sent)} batches · ${n(t.retries)} retries · peak memory ${bytes(s.peak_rss_bytes ?? peakRss())}`,
  ];
  if (s.transforms?.length) {
    lines.push(`  transforms: ${n(t.rows_filtered)} rows filtered`);
    lines.push(`  ${'step'.padEnd(22)}${'in'.padStart(12)}${'out'.padStart(12)}${'filtered'.padStart(10)}${'failed'.padStart(9)}`);
    for (const step of s.transforms)
      lines.push(
        `  ${`${step.step + 1}. ${step.name}`.slice(0, 21).padEnd(22)}${n(step.rows_in).padStart(12)}${n(step.rows_out).padStart(12)}${n(step.rows_filtered).padStart(10)}${n(step.rows_failed).padStart(9)}`,
      );
  }
  if (t.partition_retries)
    lines.push(
      `  ${n(t.partition_retries)} partition retries: ${n(t.rows_replayed)} rows written by failed attempts were written again${s.delivery === 'exactly-once' ? ' (the failed attempts were rolled back: no duplicates)' : `; at-least-once: sink ${s.sink} may hold some of them twice`}`,
    );
  if (s.partitions.length > 1) {
    const shown = [...s.partitions].sort((a, b) => b.duration_seconds - a.duration_seconds).slice(0, MAX_PARTITION_LINES);
    lines.push(
      `  ${'partition'.padEnd(12)}${'rows'.padStart(12)}${'failed'.padStart(9)}${'retries'.padStart(9)}${'seconds'.padStart(9)}${'rows/s'.padStart(11)}${t.partition_retries ? 'attempt'.padStart(9) : ''}`,
    );
    for (const p of shown)
      lines.push(
        `  ${p.partition_id.slice(0, 11).padEnd(12)}${n(p.rows_processed).padStart(12)}${n(p.rows_failed).padStart(9)}${n(p.retry_count).padStart(9)}${p.duration_seconds.toFixed(2).padStart(9)}${n(p.throughput).padStart(11)}${t.partition_retries ? String(p.attempt).padStart(9) : ''}`,
      );
    if (s.partitions.length > shown.length) lines.push(`  … ${s.partitions.length - shown.length} more (see --summary-json)`);
  }
  if (s.error) lines.push(`  error: ${s.error.error_message} [${s.error.error_type}]`);
  if (s.status === 'failed' && !s.sink_transactional)
    lines.push(
      `  not transactional: sink ${s.sink} can keep rows this run wrote before the failure (${t.partitions_committed} partition(s) had committed); see weir docs ${s.sink}`,
    );
  const redo = t.rows_read - t.rows_written - t.rows_dead_lettered - (t.rows_filtered ?? 0);
  if (s.status === 'stopped')
    lines.push(
      `  stopped: run the same command again to resume${redo > 0 ? `; ${n(redo)} rows of interrupted partitions will be read again` : ''}`,
    );
  return `${lines.join('\n')}\n`;
}

/**
 * Writes the JSON summary, scrubbed, mode 0600 (it may quote rejected values): to a
 * new file with a random name beside `path` (`O_EXCL`, so a planted symlink is never
 * followed), made durable, then renamed over `path` (a link there is replaced).
 */
export function writeSummaryJson(path: string, summary: RunSummary, redactor: Redactor): void {
  mkdirSync(dirname(path), { recursive: true });
  const full = { ...summary, peak_rss_bytes: summary.peak_rss_bytes ?? peakRss() };
  const tmp = `${path}.${randomBytes(8).toString('hex')}.weir-tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeFileSync(fd, `${redactor.scrub(JSON.stringify(redactor.scrubValue(full), null, 2))}\n`);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw error;
  }
  closeSync(fd);
  renameSync(tmp, path);
}
