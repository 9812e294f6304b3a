/**
 * The commit protocol of the file sinks (csv, jsonl), after Spark's file writers:
 *
 * 1. Each partition's writer (worker) writes to its own temporary file
 *    `<path>.<partition id>.<run tag>-<random>.tmp` beside the target, and its
 *    commit returns `{ partition, tmp, rows, bytes }`.
 * 2. The job commit (planner) concatenates the temporary files in partition-id
 *    order into `<path>.weir-tmp` (after the existing target's bytes in append
 *    mode), records the list of files in `<path>.weir-commit`, renames the staged
 *    file over the target, then deletes the temporary files and the record.
 *
 * The target is only ever replaced by a rename, so it never appears half-written.
 * A job commit that is repeated — or resumed after a crash — finishes the work of
 * the first one and never appends twice. In a distributed run the directory must
 * be shared by the planner and the workers.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, type FileHandle, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Log } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import type { JsonValue } from '../../sdk/types.js';
import { fileError, isNotFound } from './files.js';

/** The commit message of one partition's writer. Plain JSON; connectors may add fields. */
export interface StagedMessage {
  partition: string;
  tmp: string;
  rows: number;
  bytes: number;
  [key: string]: JsonValue;
}

/** A short tag derived from the run id, so a job abort can find temporary files of crashed writers. */
function runTag(runId: string): string {
  return createHash('sha256').update(runId).digest('hex').slice(0, 8);
}

/** Partition ids become part of a file name: keep them to safe characters. */
function safeId(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64) || '_';
}

/** Every byte of `data` at `position` (a file write may be short). */
async function writeAll(handle: FileHandle, data: Uint8Array, position: number | null): Promise<number> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset, position === null ? null : position + offset);
    offset += bytesWritten;
  }
  return offset;
}

/**
 * One partition's temporary file (worker). Writes go to explicit offsets, so a
 * batch retried after a failed write overwrites its own partial bytes instead of
 * duplicating them.
 */
export class StagedFile {
  private handle: FileHandle | undefined;
  private position = 0;
  private rowCount = 0;

  private constructor(
    readonly tmp: string,
    private readonly partition: string,
    private readonly who: string,
  ) {}

  /** Creates the parent directory if needed and opens a new temporary file beside `target`. */
  static async open(target: string, partition: string, runId: string, who: string): Promise<StagedFile> {
    const tmp = `${target}.${safeId(partition)}.${runTag(runId)}-${randomBytes(4).toString('hex')}.tmp`;
    const file = new StagedFile(tmp, partition, who);
    try {
      await mkdir(dirname(target), { recursive: true });
      file.handle = await open(tmp, 'wx');
    } catch (error) {
      throw fileError(error, { who, path: tmp, action: 'write' });
    }
    return file;
  }

  /** Appends one serialized batch of `rows` rows. Returns the bytes written. */
  async append(data: Uint8Array, rows: number): Promise<number> {
    if (!this.handle) throw new WeirError(`${this.who}: write after commit, abort or close`, { kind: 'internal', code: 'writer_closed' });
    try {
      await writeAll(this.handle, data, this.position);
    } catch (error) {
      throw fileError(error, { who: this.who, path: this.tmp, action: 'write' });
    }
    this.position += data.length;
    this.rowCount += rows;
    return data.length;
  }

  get rows(): number {
    return this.rowCount;
  }

  /** Flushes the file to disk and closes it. Returns the partition's commit message. */
  async commit(): Promise<StagedMessage> {
    const handle = this.handle;
    if (!handle) throw new WeirError(`${this.who}: commit after abort or close`, { kind: 'internal', code: 'writer_closed' });
    try {
      await handle.truncate(this.position); // drop bytes of a failed partial write past the last good batch
      await handle.sync();
    } catch (error) {
      throw fileError(error, { who: this.who, path: this.tmp, action: 'write' });
    }
    this.handle = undefined;
    await handle.close();
    return { partition: this.partition, tmp: this.tmp, rows: this.rowCount, bytes: this.position };
  }

  /** Closes and deletes the temporary file. Idempotent. */
  async abort(): Promise<void> {
    await this.close();
    await rm(this.tmp, { force: true });
  }

  /** Closes the file handle, if still open. Idempotent. */
  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }
}

/**
 * Checks and sorts the commit messages of a job (planner). `lenient` skips
 * messages that are not this sink's (for abort, which must not fail).
 */
export function parseMessages(messages: readonly JsonValue[], who: string, { lenient = false } = {}): StagedMessage[] {
  const parts: StagedMessage[] = [];
  for (const m of messages) {
    if (
      m === null ||
      typeof m !== 'object' ||
      Array.isArray(m) ||
      typeof m.tmp !== 'string' ||
      typeof m.partition !== 'string' ||
      typeof m.rows !== 'number'
    ) {
      if (lenient) continue;
      throw new WeirError(`${who}: unexpected commit message ${JSON.stringify(m)}; expected one from this sink's writers`, {
        kind: 'internal',
        code: 'invalid_commit_message',
      });
    }
    parts.push(m as StagedMessage);
  }
  return parts.sort((a, b) => a.partition.localeCompare(b.partition, 'en', { numeric: true }));
}

export interface CommitPlan {
  /** Who is speaking in messages, e.g. `csv sink`. */
  who: string;
  /** Absolute path of the target file. */
  target: string;
  mode: 'append' | 'overwrite';
  /** The partitions' commit messages, already checked by {@link parseMessages}. */
  parts: StagedMessage[];
  runId: string;
  log: Log;
  /** Written first when the target is new, empty or overwritten (a CSV header). */
  header?: Uint8Array;
  /** Checks the first bytes of a non-empty target before appending to it; throws when they do not fit. */
  checkExisting?: (head: Buffer) => void;
}

/** The commit journal: the temp files a job commit is publishing, so a repeated commit finishes it. */
export interface Journal {
  tmps: string[];
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

/** The journal at `path`; undefined when there is none, empty when it was torn. */
export async function readJournal(path: string): Promise<Journal | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
  try {
    const j = JSON.parse(text) as Journal;
    return Array.isArray(j.tmps) ? j : { tmps: [] };
  } catch {
    return { tmps: [] }; // torn write: stale, the commit starts over
  }
}

export const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The first `n` bytes and the last byte of a file. */
async function headAndTail(path: string, n: number): Promise<{ head: Buffer; last: number | undefined; size: number }> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const head = Buffer.alloc(Math.min(n, size));
    if (head.length) await handle.read(head, 0, head.length, 0);
    const tail = Buffer.alloc(1);
    if (size > 0) await handle.read(tail, 0, 1, size - 1);
    return { head, last: size > 0 ? tail[0] : undefined, size };
  } finally {
    await handle.close();
  }
}

async function appendFileTo(out: FileHandle, path: string, buffer: Buffer): Promise<void> {
  const src = await open(path, 'r');
  try {
    for (;;) {
      const { bytesRead } = await src.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      await writeAll(out, buffer.subarray(0, bytesRead), null);
    }
  } finally {
    await src.close();
  }
}

/**
 * The job commit (planner): atomically replaces (or extends) the target with the
 * partitions' temporary files in partition-id order. Idempotent: when the
 * temporary files are gone and the target exists, the job was committed already.
 */
export async function commitStaged(plan: CommitPlan): Promise<void> {
  const { who, target, parts } = plan;
  const journalPath = `${target}.weir-commit`;
  const staging = `${target}.weir-tmp`;
  const tmps = parts.map((p) => p.tmp);
  try {
    const journal = await readJournal(journalPath);
    if (journal && sameList(journal.tmps, tmps)) {
      // A previous commit of this job got as far as the record: finish it.
      if (await exists(staging)) await rename(staging, target);
      await cleanUp(plan, journalPath);
      return;
    }
    if (journal) await rm(journalPath, { force: true });

    const present = await Promise.all(tmps.map(exists));
    if (tmps.length > 0 && present.every((p) => !p) && (await exists(target))) {
      plan.log.debug('job already committed', { path: target });
      await cleanUp(plan, journalPath);
      return;
    }
    const missing = tmps.filter((_, i) => !present[i]);
    if (missing.length)
      throw new WeirError(
        `${who}: cannot commit ${target}: temporary file(s) ${missing.join(', ')} of this run are gone (deleted by someone else, or not on a directory shared with the workers); run the pipeline again`,
        { kind: 'connector', code: 'commit_files_missing' },
      );

    await mkdir(dirname(target), { recursive: true });
    let hasData = false;
    let needsNewline = false;
    if (plan.mode === 'append' && (await exists(target))) {
      const { head, last, size } = await headAndTail(target, 64 * 1024);
      if (size > 0) {
        plan.checkExisting?.(head);
        hasData = true;
        needsNewline = last !== 0x0a;
      }
    }
    if (hasData) await copyFile(target, staging, constants.COPYFILE_FICLONE);
    const out = await open(staging, hasData ? 'a' : 'w');
    try {
      if (needsNewline) await writeAll(out, Buffer.from('\n'), null);
      if (!hasData && plan.header?.length) await writeAll(out, plan.header, null);
      const buffer = Buffer.allocUnsafe(1024 * 1024);
      for (const tmp of tmps) await appendFileTo(out, tmp, buffer);
      await out.sync();
    } finally {
      await out.close();
    }
    await writeFile(journalPath, JSON.stringify({ tmps } satisfies Journal));
    await rename(staging, target);
    await syncDir(dirname(target));
    await cleanUp(plan, journalPath);
    plan.log.debug('job committed', { path: target, partitions: parts.length, rows: parts.reduce((n, p) => n + p.rows, 0) });
  } catch (error) {
    throw fileError(error, { who, path: target, action: 'write' });
  }
}

/** The job abort (planner): deletes the temporary files of the run. Idempotent. */
export async function abortStaged(plan: Pick<CommitPlan, 'target' | 'parts' | 'runId' | 'log'>): Promise<void> {
  await Promise.all(plan.parts.map((p) => rm(p.tmp, { force: true })));
  const staging = `${plan.target}.weir-tmp`;
  if (!(await exists(`${plan.target}.weir-commit`))) await rm(staging, { force: true });
  await sweep(plan);
}

async function cleanUp(plan: CommitPlan, journalPath: string): Promise<void> {
  await Promise.all(plan.parts.map((p) => rm(p.tmp, { force: true })));
  await rm(journalPath, { force: true });
  await sweep(plan);
}

/** Deletes temporary files this run left beside the target (writers that crashed before their abort). */
async function sweep(plan: Pick<CommitPlan, 'target' | 'runId' | 'log'>): Promise<void> {
  const dir = dirname(plan.target);
  const name = basename(plan.target);
  const suffix = new RegExp(`\\.${runTag(plan.runId)}-[0-9a-f]{8}\\.tmp$`);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return;
  }
  const stale = entries.filter((e) => e.startsWith(`${name}.`) && suffix.test(e));
  for (const e of stale) {
    plan.log.debug('deleting a temporary file left by a failed writer', { file: join(dir, e) });
    await rm(join(dir, e), { force: true });
  }
}

/** Makes a rename durable; not every platform can open a directory, so failures are ignored. */
export async function syncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // best effort
  } finally {
    await handle?.close().catch(() => {});
  }
}

/** Planner (`Sink.setup`): creates the target's directory, so a bad path fails before any row is read. */
export async function makeTargetDir(who: string, target: string): Promise<void> {
  try {
    await mkdir(dirname(target), { recursive: true });
  } catch (error) {
    throw fileError(error, { who, path: target, action: 'write' });
  }
}

/** Planner (`Sink.abort`): deletes the run's temporary files for `target`, also those of crashed writers. Idempotent. */
export async function abortStagedMessages(
  who: string,
  target: string,
  messages: readonly JsonValue[],
  ctx: { runId: string; log: Log },
): Promise<void> {
  await abortStaged({ target, parts: parseMessages(messages, who, { lenient: true }), runId: ctx.runId, log: ctx.log });
}
