/**
 * File helpers shared by the file connectors (csv, jsonl): path resolution and
 * turning Node's file-system errors into {@link WeirError}s that name the option
 * and the fix. Used on the planner and on workers alike.
 */
import { constants } from 'node:fs';
import { access, type FileHandle, open, stat, statfs } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { CheckResult, PlanContext, Source, TaskContext } from '../../sdk/connector.js';
import { errorMessage, type RowLocator, WeirError } from '../../sdk/errors.js';
import type { Partition, Row, Schema } from '../../sdk/types.js';

/** Resolves the `path` option against the pipeline file's directory (planner and worker). */
export function resolvePath(baseDir: string, path: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

/** What a file error is about, for its message. */
export interface FileErrorContext {
  /** Who is speaking, e.g. `csv source`. */
  who: string;
  /** The absolute path that failed. */
  path: string;
  /** The option the path came from (default `path`). */
  option?: string;
  /** What was being done, e.g. `read`, `create`. */
  action: 'read' | 'write';
}

/**
 * Maps a Node file-system error to a {@link WeirError} whose message names the
 * path, the option and the fix. `ENOENT` keeps its code so callers and tests can
 * tell it apart. Errors that are already WeirErrors pass through.
 */
export function fileError(error: unknown, c: FileErrorContext): WeirError {
  if (error instanceof WeirError) return error;
  const code = (error as { code?: unknown } | undefined)?.code;
  const option = c.option ?? 'path';
  const base = `${c.who}: cannot ${c.action} ${c.path}`;
  switch (code) {
    case 'ENOENT':
      return new WeirError(
        c.action === 'read'
          ? `${c.who}: file not found: ${c.path}; check the \`${option}\` option (relative paths resolve against the pipeline file's directory) or create the file`
          : `${base}: a parent directory is missing and could not be created; check the \`${option}\` option`,
        // a missing input is the pipeline's configuration, found at run time: exit 2, as a missing table
        { code: 'ENOENT', kind: c.action === 'read' ? 'config' : 'connector', cause: error },
      );
    case 'EACCES':
    case 'EPERM':
      return new WeirError(
        `${base}: permission denied; give the weir process ${c.action} access to it or change the \`${option}\` option`,
        { code: String(code), kind: 'connector', cause: error },
      );
    case 'EISDIR':
      return new WeirError(`${base}: it is a directory; set \`${option}\` to a file path`, {
        code: 'EISDIR',
        kind: 'config',
        cause: error,
      });
    case 'ENOTDIR':
      return new WeirError(`${base}: a part of the path is a file, not a directory; fix the \`${option}\` option`, {
        code: 'ENOTDIR',
        kind: 'connector',
        cause: error,
      });
    case 'ENOSPC':
      return new WeirError(`${base}: no space left on the device; free disk space or write elsewhere`, {
        code: 'ENOSPC',
        kind: 'connector',
        cause: error,
      });
    default: {
      const message = error instanceof Error ? error.message : String(error);
      return new WeirError(`${base}: ${message}`, {
        code: typeof code === 'string' ? code : 'file_error',
        kind: 'connector',
        cause: error,
      });
    }
  }
}

/** Opens a file to read (worker); a missing file, no permission or a directory fail with {@link fileError}'s message. */
export async function openToRead(path: string, who: string): Promise<FileHandle> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, 'r');
    if ((await handle.stat()).isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    return handle;
  } catch (error) {
    await handle?.close();
    throw fileError(error, { who, path, action: 'read' });
  }
}

/** Whether an error is Node's "no such file or directory". */
export function isNotFound(error: unknown): boolean {
  return (error as { code?: unknown } | undefined)?.code === 'ENOENT';
}

/** What a source learnt from reading the start of a file. */
export interface FileSample {
  /** Rows sampled, and the bytes they span. */
  rows: number;
  bytes: number;
  /** Whether the sample reached the end of the file. */
  complete: boolean;
}

/**
 * Rows in a file, estimated from a sample of its start (planner): exact when the
 * sample read the whole file, else the file size over the sampled bytes per row.
 */
export async function estimateRows(path: string, sample: FileSample): Promise<number | undefined> {
  if (sample.complete) return sample.rows;
  if (sample.rows === 0 || sample.bytes === 0) return undefined;
  try {
    const { size } = await stat(path);
    return Math.round((size * sample.rows) / sample.bytes);
  } catch {
    return undefined;
  }
}

/**
 * A one-file source: one partition for the file, the schema and the row estimate
 * from a sample taken once per path (planner), and `read` streaming the file (worker).
 * Shared by the csv and jsonl sources.
 */
export function singleFileSource<O extends { path: string }, S extends FileSample & { schema: Schema }>(
  opts: O,
  takeSample: (path: string, opts: O) => Promise<S>,
  read: (path: string, opts: O, ctx: TaskContext) => AsyncIterable<Row[]>,
): Source {
  let sample: Promise<S> | undefined;
  let samplePath: string | undefined;
  const sampleOf = (ctx: PlanContext) => {
    const path = resolvePath(ctx.baseDir, opts.path);
    if (!sample || samplePath !== path) {
      samplePath = path;
      sample = takeSample(path, opts);
    }
    return sample;
  };
  return {
    async schema(ctx) {
      const { schema } = await sampleOf(ctx);
      return schema.length ? schema : undefined;
    },
    partitions(ctx): Partition[] {
      return [{ id: '0', path: resolvePath(ctx.baseDir, opts.path) }];
    },
    /** Exact for small files, else the file size over the sampled bytes per row. */
    async estimate(ctx) {
      const s = await sampleOf(ctx);
      return estimateRows(samplePath as string, s);
    },
    read(partition, ctx) {
      const path = typeof partition.path === 'string' ? partition.path : resolvePath(ctx.baseDir, opts.path);
      return read(path, opts, ctx);
    },
  };
}

/** Below this much free space the disk_space check fails. */
export const MIN_FREE_BYTES = 256 * 1024 * 1024;

const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;

/** The nearest directory on the way up from `dir` that exists. */
export async function existingAncestor(dir: string): Promise<string> {
  let current = dir;
  for (;;) {
    try {
      if ((await stat(current)).isDirectory()) return current;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const up = dirname(current);
    if (up === current) return current;
    current = up;
  }
}

/** `disk_space`: free space where a file lives or would be created (planner, `weir check`). */
export async function diskCheck(path: string): Promise<CheckResult> {
  try {
    const dir = await existingAncestor(dirname(path));
    const fs = await statfs(dir);
    const free = Number(fs.bavail) * Number(fs.bsize);
    return free >= MIN_FREE_BYTES
      ? { name: 'disk_space', ok: true, message: `${mib(free)} free in ${dir}` }
      : {
          name: 'disk_space',
          ok: false,
          message: `only ${mib(free)} free in ${dir} (at least ${mib(MIN_FREE_BYTES)} wanted); free disk space or write elsewhere`,
        };
  } catch (error) {
    return { name: 'disk_space', ok: false, message: errorMessage(error) };
  }
}

/**
 * Health checks of a file connector (planner, `weir check`): a source's file must
 * exist and be readable; a sink's directory must be writable; and disk space.
 */
export async function fileChecks(path: string, role: 'source' | 'sink'): Promise<CheckResult[]> {
  const target = async (): Promise<CheckResult> => {
    if (role === 'source') {
      try {
        await access(path, constants.R_OK);
        return { name: 'target', ok: true, message: `${path} is readable` };
      } catch (error) {
        return {
          name: 'target',
          ok: false,
          message: isNotFound(error) ? `${path} does not exist; check the path option` : `${path} is not readable`,
        };
      }
    }
    const dir = await existingAncestor(dirname(path));
    try {
      await access(dir, constants.W_OK);
      return { name: 'target', ok: true, message: `${dir} is writable` };
    } catch {
      return { name: 'target', ok: false, message: `${dir} is not writable; choose another path or fix its permissions` };
    }
  };
  return Promise.all([target(), diskCheck(path)]);
}

/**
 * The locator of a chunk of rows read from `file` (`withLocations`): row i is on
 * line `lines[i]`. Filled with one number per row; the locations are made only for
 * rows a sink refuses.
 */
export function lineLocator(file: string, lines: readonly number[]): RowLocator {
  return (index) => {
    const line = lines[index];
    return line === undefined ? undefined : { file, line };
  };
}
