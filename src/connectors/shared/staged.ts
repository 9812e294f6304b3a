/**
 * The commit protocol of the file sinks (csv, jsonl), after Spark's file writers:
 *
 * 1. Each partition's writer (worker) writes to its own temporary file
 *    `<path>.<partition id>.<run tag>-<random>.tmp` beside the target (a CSV
 *    writer starts it with the header), and its commit returns `{ partition, tmp,
 *    rows, bytes }` (and `headerBytes` after a header).
 * 2. The job commit (planner) concatenates the temporary files in partition-id
 *    order into a staging file `<path>.<run tag>-<random>.weir-tmp` (after the
 *    existing target's bytes in append mode), records the list of files and the
 *    staging file in `<path>.weir-commit`, renames the staging file over the
 *    target, then deletes the temporary files and the record. A new or replaced
 *    target is not copied from the first file: the staging file is a hard link to
 *    it, the others appended (their headers skipped), so a one-partition export
 *    costs a rename, not a second copy of every byte and its fsync.
 *
 * The target is only ever replaced by a rename, so it never appears half-written.
 * A job commit that is repeated — or resumed after a crash — finishes the work of
 * the first one and never appends twice. In a distributed run the directory must
 * be shared by the planner and the workers.
 *
 * Whoever can write into the target's directory must not be able to redirect weir:
 * every file weir creates there has a random name and is created with
 * `O_CREAT | O_EXCL` (a planted symlink or file at that name fails the create instead
 * of being followed), files are read back with `O_NOFOLLOW`, and the paths that
 * commit messages and the record name — read back from the checkpoint store, so
 * untrusted — must be staging files of this target and this run, or nothing is read
 * or deleted ({@link checkParts}).
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, type FileHandle, link, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Log } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import type { JsonValue } from '../../sdk/types.js';
import { fileError, isNotFound } from './files.js';

/** The commit message of one partition's writer. Plain JSON; connectors may add fields. */
export interface StagedMessage {
  partition: string;
  tmp: string;
  rows: number;
  /** The file's length as its writer committed it. */
  bytes: number;
  /** `headerBytes` (optional, see {@link headerBytesOf}) and the connector's own fields. */
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

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The names of the files weir creates beside a target, all of one shape:
 * `<target>.[<partition>.]<run tag>-<16 random hex>.<kind>`. The random part comes
 * from the crypto RNG, so nobody can plant something at a name before weir uses it.
 */
export const STAGING_KINDS = {
  /** A partition's temporary file (a writer's output). */
  part: 'tmp',
  /** The job commit's staging file, renamed over the target. */
  job: 'weir-tmp',
  /** The commit record while it is written, renamed to `<target>.weir-commit`. */
  record: 'weir-commit-tmp',
} as const;
type StagingKind = keyof typeof STAGING_KINDS;

/** A new staging name for `target` (planner or worker). */
export function stagingName(target: string, runId: string, kind: StagingKind, partition?: string): string {
  const id = partition === undefined ? '' : `${safeId(partition)}.`;
  return `${target}.${id}${runTag(runId)}-${randomBytes(8).toString('hex')}.${STAGING_KINDS[kind]}`;
}

/** The pattern of the base names {@link stagingName} gives; `partition` undefined: any partition. */
function stagingPattern(target: string, runId: string, kind: StagingKind, partition?: string | null): RegExp {
  const id = partition === null ? '' : partition === undefined ? '[A-Za-z0-9_-]{1,64}\\.' : `${escapeRegExp(safeId(partition))}\\.`;
  return new RegExp(`^${escapeRegExp(basename(target))}\\.${id}${runTag(runId)}-[0-9a-f]{16}\\.${escapeRegExp(STAGING_KINDS[kind])}$`);
}

/** Whether `path` is a staging file of `target` in run `runId`: beside it, with weir's naming. */
export function isStagingPath(path: unknown, target: string, runId: string, kind: StagingKind, partition?: string): path is string {
  if (typeof path !== 'string' || resolve(path) !== path || dirname(path) !== dirname(target)) return false;
  return stagingPattern(target, runId, kind, kind === 'part' ? partition : null).test(basename(path));
}

/** The error for a path read back from state that is not one of this run's staging files: nothing is read or deleted. */
function foreignPath(who: string, target: string, what: string, path: unknown): WeirError {
  return new WeirError(
    `${who}: ${what} names ${JSON.stringify(path)}, which is not a staging file of ${target} in this run (they are \`${basename(target)}.<partition>.<run tag>-<random>.tmp\` in ${dirname(target)}); the checkpoint store (checkpoint.path, .weir/checkpoints.db by default) was changed outside weir or belongs to another pipeline. Nothing was read or deleted: inspect the store, and delete it to start over`,
    { kind: 'connector', code: 'foreign_staging_path' },
  );
}

/**
 * Checks that every message names a temporary file of this target and run (planner,
 * before the job commit or abort touches any of them). Throws {@link foreignPath}'s error.
 */
export function checkParts(who: string, target: string, runId: string, parts: readonly StagedMessage[]): void {
  for (const p of parts)
    if (!isStagingPath(p.tmp, target, runId, 'part', p.partition))
      throw foreignPath(who, target, `the commit message of partition ${JSON.stringify(p.partition)}`, p.tmp);
}

/** Creates a new file for writing; fails when anything (a file, a symlink) is at `path` already. */
export function createExclusive(path: string, ownerOnly = false): Promise<FileHandle> {
  return open(path, 'wx', ownerOnly ? 0o600 : 0o666);
}

/**
 * Opens a file weir created, without following a symlink, and checks it is still the
 * one file it made (a regular file with one link: not a hard link to someone else's).
 */
export async function openOwn(path: string, flags: number): Promise<FileHandle> {
  const handle = await open(path, flags | constants.O_NOFOLLOW);
  const st = await handle.stat();
  if (!st.isFile() || st.nlink !== 1) {
    await handle.close();
    throw new WeirError(`${path} was replaced by a link or a special file while weir was writing it; nothing more was written to it`, {
      kind: 'connector',
      code: 'staging_replaced',
    });
  }
  return handle;
}

/** Copies `from` to a new file `to` (a reflink where the file system can); never follows or replaces anything at `to`. */
export function copyExclusive(from: string, to: string): Promise<void> {
  return copyFile(from, to, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
}

/** Writes a small file durably under a new random name, then renames it to `path` (a link at `path` is replaced, not followed). */
export async function replaceDurably(path: string, tmp: string, text: string, ownerOnly = false): Promise<void> {
  const handle = await createExclusive(tmp, ownerOnly);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(tmp, { force: true });
    throw error;
  }
  await handle.close();
  await rename(tmp, path);
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
  private headerLength = 0;

  private constructor(
    readonly tmp: string,
    private readonly partition: string,
    private readonly who: string,
  ) {}

  /**
   * Creates the parent directory if needed and a new temporary file beside `target`
   * (random name, `O_EXCL`). `ownerOnly`: mode 0600 (the dead-letter sink's rows).
   */
  static async open(target: string, partition: string, runId: string, who: string, { ownerOnly = false } = {}): Promise<StagedFile> {
    const tmp = stagingName(target, runId, 'part', partition);
    const file = new StagedFile(tmp, partition, who);
    try {
      await mkdir(dirname(target), { recursive: true });
      file.handle = await createExclusive(tmp, ownerOnly);
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

  /** Writes the header the target starts with (a CSV header), before any batch: the job commit keeps only the first part's. */
  async writeHeader(data: Uint8Array): Promise<void> {
    if (this.position !== 0) throw new WeirError(`${this.who}: a header after the first batch`, { kind: 'internal', code: 'late_header' });
    await this.append(data, 0);
    this.headerLength = data.length;
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
    const message: StagedMessage = { partition: this.partition, tmp: this.tmp, rows: this.rowCount, bytes: this.position };
    if (this.headerLength) message.headerBytes = this.headerLength;
    return message;
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

const validLength = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

/** Bytes of a header at the start of a part's file (`headerBytes`: a CSV header, each part has one), which only the target's start keeps; 0 when none. */
const headerBytesOf = (p: StagedMessage): number => (typeof p.headerBytes === 'number' ? p.headerBytes : 0);

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
      typeof m.rows !== 'number' ||
      !validLength(m.bytes) ||
      (m.headerBytes !== undefined && !(validLength(m.headerBytes) && m.headerBytes <= (m.bytes as number)))
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
  /** A new target is readable by its owner only (0600): the dead-letter sink's rows. */
  ownerOnly?: boolean;
  /** Written first when the target is new, empty or overwritten (a CSV header). */
  header?: Uint8Array;
  /** Checks the first bytes of a non-empty target before appending to it; throws when they do not fit. */
  checkExisting?: (head: Buffer) => void;
}

/** The commit record: the temp files a job commit is publishing and its staging file, so a repeated commit finishes it. */
export interface Journal {
  tmps: string[];
  staging: string;
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

const journalPath = (target: string) => `${target}.weir-commit`;

/**
 * The commit record of `target`, when it is one of this job's (planner): undefined
 * when there is none, or it is torn, a symlink, or another job's. A record for
 * exactly these temporary files whose staging file is not one of this run's is
 * tampering: an error, before anything is read or deleted.
 */
export async function readJournal(
  plan: Pick<CommitPlan, 'who' | 'target' | 'runId' | 'log'>,
  tmps: readonly string[],
): Promise<Journal | undefined> {
  const path = journalPath(plan.target);
  let text: string;
  try {
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (isNotFound(error)) return undefined;
    const code = (error as { code?: string }).code;
    if (code !== 'ELOOP' && code !== 'EISDIR') throw error;
    plan.log.warn('ignoring a commit record that is not a regular file (weir never makes one)', { file: path });
    return undefined;
  }
  let j: Partial<Journal>;
  try {
    j = JSON.parse(text) as Partial<Journal>;
  } catch {
    return undefined; // torn write: stale, the commit starts over
  }
  if (!Array.isArray(j?.tmps) || !sameList(j.tmps, tmps)) return undefined; // another job's
  if (!isStagingPath(j.staging, plan.target, plan.runId, 'job'))
    throw foreignPath(plan.who, plan.target, `the commit record ${path}`, j.staging);
  return j as Journal;
}

export const sameList = (a: readonly unknown[], b: readonly unknown[]) => a.length === b.length && a.every((x, i) => x === b[i]);

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

/**
 * Copies a part's rows — its bytes after its header, up to the length its writer
 * committed — to `out` at `position` (null: at its end). Returns the bytes copied.
 */
async function appendPart(out: FileHandle, part: StagedMessage, buffer: Buffer, position: number | null): Promise<number> {
  const src = await openOwn(part.tmp, constants.O_RDONLY);
  try {
    const start = headerBytesOf(part);
    const end = part.bytes;
    for (let at = start; at < end; ) {
      const { bytesRead } = await src.read(buffer, 0, Math.min(buffer.length, end - at), at);
      if (bytesRead === 0) throw changedPart(part, at);
      await writeAll(out, buffer.subarray(0, bytesRead), position === null ? null : position + at - start);
      at += bytesRead;
    }
    return end - start;
  } finally {
    await src.close();
  }
}

/** A temporary file shorter than its writer committed: changed by someone else since. */
function changedPart(part: StagedMessage, size: number): WeirError {
  return new WeirError(
    `the temporary file ${part.tmp} holds ${size} bytes, fewer than the ${part.bytes} its writer committed (it was changed outside weir); nothing was published: run the pipeline again`,
    { kind: 'connector', code: 'commit_file_changed' },
  );
}

/**
 * What a job commit does first (planner): checks the messages' paths, then finds
 * out whether an earlier commit of this job finished or got as far as its record.
 * `done`: nothing is left to publish (the caller cleans up).
 */
export async function resumeCommit(plan: Pick<CommitPlan, 'who' | 'target' | 'runId' | 'log' | 'parts'>): Promise<'done' | 'todo'> {
  const { who, target, parts } = plan;
  checkParts(who, target, plan.runId, parts);
  const tmps = parts.map((p) => p.tmp);
  const journal = await readJournal(plan, tmps);
  if (journal) {
    // A previous commit of this job got as far as the record: finish it.
    if (await exists(journal.staging)) await rename(journal.staging, target);
    await syncDir(dirname(target));
    return 'done';
  }
  await rm(journalPath(target), { force: true });
  const present = await Promise.all(tmps.map(exists));
  if (tmps.length > 0 && present.every((p) => !p) && (await exists(target))) {
    plan.log.debug('job already committed', { path: target });
    return 'done';
  }
  const missing = tmps.filter((_, i) => !present[i]);
  if (missing.length)
    throw new WeirError(
      `${who}: cannot commit ${target}: temporary file(s) ${missing.join(', ')} of this run are gone (deleted by someone else, or not on a directory shared with the workers); run the pipeline again`,
      { kind: 'connector', code: 'commit_files_missing' },
    );
  return 'todo';
}

/**
 * Publishes a job's staging file (planner): records it with the temporary files it
 * holds, renames it over the target, and makes the rename durable.
 */
export async function publishStaging(plan: Pick<CommitPlan, 'target' | 'runId' | 'parts' | 'ownerOnly'>, staging: string): Promise<void> {
  const record: Journal = { tmps: plan.parts.map((p) => p.tmp), staging };
  await replaceDurably(journalPath(plan.target), stagingName(plan.target, plan.runId, 'record'), JSON.stringify(record), plan.ownerOnly);
  await rename(staging, plan.target);
  await syncDir(dirname(plan.target));
}

/**
 * The job commit (planner): atomically replaces (or extends) the target with the
 * partitions' temporary files in partition-id order. Idempotent: when the
 * temporary files are gone and the target exists, the job was committed already.
 */
export async function commitStaged(plan: CommitPlan): Promise<void> {
  const { who, target, parts } = plan;
  try {
    if ((await resumeCommit(plan)) === 'done') return await cleanUp(plan);
    await mkdir(dirname(target), { recursive: true });
    // what a commit that crashed before its record left: a copy, or a second link to the
    // first part, which would otherwise make that part look like someone else's link (openOwn)
    await sweep(plan, ['job']);
    const existing = plan.mode === 'append' ? await existingData(plan) : undefined;
    const staging = (existing === undefined && (await onFirstPart(plan))) || (await concatenated(plan, existing));
    await publishStaging(plan, staging);
    await cleanUp(plan);
    plan.log.debug('job committed', { path: target, partitions: parts.length, rows: parts.reduce((n, p) => n + p.rows, 0) });
  } catch (error) {
    throw fileError(error, { who, path: target, action: 'write' });
  }
}

/** In append mode, whether the target holds bytes to keep (checked by `checkExisting`), and whether they end without a line feed. */
async function existingData(plan: CommitPlan): Promise<{ needsNewline: boolean } | undefined> {
  if (!(await exists(plan.target))) return undefined;
  const { head, last, size } = await headAndTail(plan.target, 64 * 1024);
  if (size === 0) return undefined;
  plan.checkExisting?.(head);
  return { needsNewline: last !== 0x0a };
}

/**
 * The staging file as a copy: the target's bytes (`existing`, append mode) or the
 * header, then every part's rows.
 */
async function concatenated(plan: CommitPlan, existing: { needsNewline: boolean } | undefined): Promise<string> {
  const staging = stagingName(plan.target, plan.runId, 'job');
  if (existing) await copyExclusive(plan.target, staging);
  const out = existing ? await openOwn(staging, constants.O_WRONLY | constants.O_APPEND) : await createExclusive(staging, plan.ownerOnly);
  try {
    if (existing?.needsNewline) await writeAll(out, Buffer.from('\n'), null);
    if (!existing && plan.header?.length) await writeAll(out, plan.header, null);
    const buffer = Buffer.allocUnsafe(1024 * 1024);
    for (const p of plan.parts) await appendPart(out, p, buffer, null);
    await out.sync();
  } finally {
    await out.close();
  }
  return staging;
}

/** Errors of link(2) where the file system has no hard links for this file: the commit copies instead. */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EMLINK', 'ENOSYS']);

/**
 * The staging file made of the first part itself, for a new or replaced target: a
 * hard link to it under a staging name, the other parts' rows written after its
 * own. Taken only when the first part starts with exactly the header the target
 * needs (none, or the CSV header); else, or without hard links, undefined. A commit
 * that crashed here left the first part longer than its writer committed: it is
 * cut back to that length first, so a repeated commit writes the rest once.
 */
async function onFirstPart(plan: CommitPlan): Promise<string | undefined> {
  const first = plan.parts[0];
  const header = plan.header ?? new Uint8Array(0);
  if (!first || headerBytesOf(first) !== header.length) return undefined;
  const out = await openOwn(first.tmp, constants.O_RDWR);
  let staging: string | undefined;
  try {
    const { size } = await out.stat();
    if (size < first.bytes) throw changedPart(first, size);
    if (header.length) {
      const head = Buffer.alloc(header.length);
      await out.read(head, 0, head.length, 0);
      if (!head.equals(header)) return undefined;
    }
    await out.truncate(first.bytes);
    const name = stagingName(plan.target, plan.runId, 'job');
    try {
      await link(first.tmp, name);
    } catch (error) {
      if (NO_HARD_LINKS.has((error as { code?: string }).code ?? '')) return undefined;
      throw error;
    }
    staging = name;
    const buffer = Buffer.allocUnsafe(1024 * 1024);
    let position = first.bytes;
    for (const p of plan.parts.slice(1)) position += await appendPart(out, p, buffer, position);
    await out.sync();
    return staging;
  } catch (error) {
    if (staging) await rm(staging, { force: true });
    throw error;
  } finally {
    await out.close();
  }
}

/**
 * The job abort (planner): deletes the temporary files of the run. Idempotent. A
 * message naming anything but a temporary file of this run is an error: nothing is deleted.
 */
export async function abortStaged(plan: Pick<CommitPlan, 'who' | 'target' | 'parts' | 'runId' | 'log'>): Promise<void> {
  checkParts(plan.who, plan.target, plan.runId, plan.parts);
  await Promise.all(plan.parts.map((p) => rm(p.tmp, { force: true })));
  await sweep(plan);
}

/** After a job commit (planner): deletes its temporary files, the record, and what crashed writers of the run left. */
export async function cleanUp(plan: Pick<CommitPlan, 'target' | 'parts' | 'runId' | 'log'>): Promise<void> {
  await Promise.all(plan.parts.map((p) => rm(p.tmp, { force: true })));
  await rm(journalPath(plan.target), { force: true });
  await sweep(plan);
}

/**
 * Deletes the temporary and staging files (`only` these kinds) this run left beside
 * the target (writers and job commits that crashed), found by their names; the
 * staging file a commit record names is kept, since a repeated commit publishes it.
 */
async function sweep(
  plan: Pick<CommitPlan, 'target' | 'runId' | 'log'>,
  only: readonly StagingKind[] = ['part', 'job', 'record'],
): Promise<void> {
  const dir = dirname(plan.target);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return;
  }
  const kinds = only.map((kind) => stagingPattern(plan.target, plan.runId, kind, kind === 'part' ? undefined : null));
  const keep = await recordedStaging(plan.target);
  for (const e of entries.filter((e) => kinds.some((k) => k.test(e)))) {
    const path = join(dir, e);
    if (path === keep) continue;
    plan.log.debug('deleting a temporary file left by a failed writer or commit', { file: path });
    await rm(path, { force: true });
  }
}

/** The staging file the commit record names, if there is a readable record. */
async function recordedStaging(target: string): Promise<string | undefined> {
  try {
    const handle = await open(journalPath(target), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const staging = (JSON.parse(await handle.readFile('utf8')) as Partial<Journal>)?.staging;
      return typeof staging === 'string' ? staging : undefined;
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
}

/**
 * The staging files of runs `runIds` beside `target` — partitions' temporary files, job
 * staging files and records being written — found by their names (`Sink.leftovers` of
 * the file sinks); with `drop`, deleted. The staging file a commit record names is
 * kept: a resumed commit publishes it.
 */
export async function stagingLeftovers(target: string, runIds: readonly string[], drop: boolean, log?: Log): Promise<string[]> {
  const dir = dirname(target);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return [];
  }
  const patterns = runIds.flatMap((runId) => [
    stagingPattern(target, runId, 'part'),
    stagingPattern(target, runId, 'job', null),
    stagingPattern(target, runId, 'record', null),
  ]);
  const keep = await recordedStaging(target);
  const found = entries
    .filter((e) => patterns.some((p) => p.test(e)))
    .map((e) => join(dir, e))
    .filter((path) => path !== keep);
  if (drop)
    for (const path of found) {
      log?.debug('deleting a staging file left by an earlier run', { file: path });
      await rm(path, { force: true });
    }
  return found;
}

/** A file sink's `Sink.leftovers`: the staging files of those runs beside the sink's target. */
export const fileLeftovers =
  (targetOf: (ctx: { baseDir: string }) => string) =>
  (runIds: readonly string[], ctx: { baseDir: string; log: Log }, drop: boolean): Promise<string[]> =>
    stagingLeftovers(targetOf(ctx), runIds, drop, ctx.log);

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
  await abortStaged({ who, target, parts: parseMessages(messages, who, { lenient: true }), runId: ctx.runId, log: ctx.log });
}
