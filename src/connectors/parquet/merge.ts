/**
 * The parquet job commit (planner): merges the partitions' temporary Parquet
 * files into one file without decoding them. A Parquet file is `PAR1`, then
 * row groups (and their page indexes and bloom filters), then a thrift footer
 * that locates them by byte offset. Merging copies each input's bytes between
 * its header and its footer, shifts every offset of its row groups by where
 * those bytes landed, and writes one footer listing all row groups.
 *
 * The merged file is written to a new staging file beside the target (random
 * name, `O_EXCL`, see `../shared/staged.ts`), made durable, recorded in
 * `<path>.weir-commit` and then renamed over the target, so the target is never
 * half-written; a commit that is repeated or resumed after a crash finishes the
 * first one's work and never appends twice.
 */
import { constants } from 'node:fs';
import { type FileHandle, mkdir, open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Log } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import { fileError } from '../shared/files.js';
import {
  cleanUp,
  copyExclusive,
  createExclusive,
  exists,
  openOwn,
  publishStaging,
  resumeCommit,
  type StagedMessage,
  stagingName,
  syncDir,
} from '../shared/staged.js';
import { MAGIC_BYTES, readFooter, readRange } from './file.js';
import { decodeStruct, encodeStruct, field, removeField, setField, T, type TList, type TStruct } from './thrift.js';

// FileMetaData, RowGroup, ColumnChunk and ColumnMetaData field ids (parquet.thrift).
const FMD = { schema: 2, numRows: 3, rowGroups: 4, encryption: 8 } as const;
const RG = { columns: 1, numRows: 3, fileOffset: 5, ordinal: 7 } as const;
const CC = { filePath: 1, fileOffset: 2, metaData: 3, offsetIndexOffset: 4, columnIndexOffset: 6, crypto: 8, encrypted: 9 } as const;
const CMD_OFFSETS = [9, 10, 11, 14] as const; // data page, index page, dictionary page, bloom filter

interface Input {
  path: string;
  footerStart: number;
  meta: TStruct;
  rows: bigint;
}

async function loadInput(path: string, who: string): Promise<Input> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const { footerStart, footer } = await readFooter(handle, path, who);
    let meta: TStruct;
    try {
      meta = decodeStruct(footer);
    } catch (error) {
      throw new WeirError(`${who}: the footer of ${path} is damaged (${(error as Error).message})`, { code: 'not_parquet', cause: error });
    }
    const rows = field(meta, FMD.numRows)?.value;
    return { path, footerStart, meta, rows: typeof rows === 'bigint' ? rows : 0n };
  } finally {
    await handle.close();
  }
}

const rowGroupsOf = (meta: TStruct): TStruct[] => ((field(meta, FMD.rowGroups)?.value as TList | undefined)?.items ?? []) as TStruct[];
const schemaOf = (meta: TStruct): Buffer => Buffer.from(encodeStruct({ fields: meta.fields.filter((f) => f.id === FMD.schema) }));

/** Column names of a raw footer's schema (top-level elements after the root), for messages. */
function columnNames(meta: TStruct): string[] {
  const elements = ((field(meta, FMD.schema)?.value as TList | undefined)?.items ?? []) as TStruct[];
  return elements.slice(1).map((e) => Buffer.from(field(e, 4)?.value as Uint8Array).toString('utf8'));
}

function shift(s: TStruct | undefined, id: number, delta: bigint): void {
  const f = s && field(s, id);
  if (f && typeof f.value === 'bigint' && f.value > 0n) f.value += delta;
}

/** Moves one row group's byte offsets by `delta`; refuses what cannot be moved. */
function relocate(rg: TStruct, delta: bigint, input: Input, who: string): void {
  shift(rg, RG.fileOffset, delta);
  for (const cc of ((field(rg, RG.columns)?.value as TList | undefined)?.items ?? []) as TStruct[]) {
    if (field(cc, CC.filePath) || field(cc, CC.crypto) || field(cc, CC.encrypted))
      throw new WeirError(`${who}: cannot merge ${input.path}: it has encrypted or external column chunks`, {
        code: 'parquet_unmergeable',
      });
    shift(cc, CC.fileOffset, delta);
    shift(cc, CC.offsetIndexOffset, delta);
    shift(cc, CC.columnIndexOffset, delta);
    const md = field(cc, CC.metaData)?.value as TStruct | undefined;
    for (const id of CMD_OFFSETS) shift(md, id, delta);
  }
}

/** Appends bytes `[from, to)` of `src` to `out` at `position`. */
async function copyRange(src: FileHandle, out: FileHandle, from: number, to: number, position: number): Promise<void> {
  const chunk = 4 * 1024 * 1024;
  for (let at = from; at < to; at += chunk) {
    const bytes = new Uint8Array(await readRange(src, at, Math.min(chunk, to - at)));
    let written = 0;
    while (written < bytes.length) {
      const r = await out.write(bytes, written, bytes.length - written, position + (at - from) + written);
      written += r.bytesWritten;
    }
  }
}

async function writeAt(out: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += (await out.write(bytes, written, bytes.length - written, position + written)).bytesWritten;
}

/**
 * Writes the row groups of `paths` (in order) into one new Parquet file at `out`
 * (created with `O_EXCL`: nothing may be there). Every input with rows must have
 * exactly the same schema. Returns the total row count.
 */
export async function mergeParquet(
  paths: readonly string[],
  out: string,
  who: string,
  describe: (path: string) => string,
  { ownerOnly = false } = {},
): Promise<bigint> {
  const inputs = await Promise.all(paths.map((p) => loadInput(p, who)));
  const withRows = inputs.filter((i) => i.rows > 0n);
  const reference = withRows[0] ?? inputs[0];
  if (!reference) throw new WeirError(`${who}: nothing to merge`, { kind: 'internal', code: 'merge_empty' });
  const refSchema = schemaOf(reference.meta);
  for (const input of withRows) {
    if (field(input.meta, FMD.encryption))
      throw new WeirError(`${who}: cannot merge ${input.path}: it is encrypted`, { code: 'parquet_unmergeable' });
    if (!schemaOf(input.meta).equals(refSchema))
      throw new WeirError(
        `${who}: ${describe(input.path)} has different columns or column types than ${describe(reference.path)} (${columnNames(input.meta).join(', ')} vs ${columnNames(reference.meta).join(', ')}); all rows of one Parquet file must share one schema: use mode: overwrite, another path, or give the source a schema`,
        { kind: 'config', code: 'schema_mismatch' },
      );
  }

  const first = withRows[0];
  let position: number;
  if (first) {
    // The first input keeps its offsets: clone it (a kernel copy or reflink) and cut off its footer.
    await copyExclusive(first.path, out);
    position = first.footerStart;
  } else position = 4;
  const handle = first ? await openOwn(out, constants.O_RDWR) : await createExclusive(out, ownerOnly);
  try {
    if (first) await handle.truncate(position);
    else await writeAt(handle, MAGIC_BYTES, 0);
    const rowGroups: TStruct[] = [];
    for (const input of withRows) {
      const delta = input === first ? 0n : BigInt(position - 4);
      for (const rg of rowGroupsOf(input.meta)) {
        relocate(rg, delta, input, who);
        rowGroups.push(rg);
      }
      if (input === first) continue;
      const src = await open(input.path, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        await copyRange(src, handle, 4, input.footerStart, position);
      } finally {
        await src.close();
      }
      position += input.footerStart - 4;
    }
    rowGroups.forEach((rg, i) => {
      if (field(rg, RG.ordinal)) {
        if (i <= 0x7fff) setField(rg, RG.ordinal, T.I16, i);
        else removeField(rg, RG.ordinal);
      }
    });
    const total = withRows.reduce((n, i) => n + i.rows, 0n);
    const meta: TStruct = { fields: reference.meta.fields.map((f) => ({ ...f })) };
    setField(meta, FMD.numRows, T.I64, total);
    setField(meta, FMD.rowGroups, T.LIST, { elemType: T.STRUCT, items: rowGroups } satisfies TList);
    const footer = encodeStruct(meta);
    const tail = new Uint8Array(8);
    new DataView(tail.buffer).setUint32(0, footer.length, true);
    tail.set(MAGIC_BYTES, 4);
    await writeAt(handle, footer, position);
    await writeAt(handle, tail, position + footer.length);
    await handle.truncate(position + footer.length + 8);
    await handle.sync();
    return total;
  } finally {
    await handle.close();
  }
}

// ---------------------------------------------------------------------------
// The job commit

export interface ParquetCommitPlan {
  who: string;
  target: string;
  mode: 'overwrite' | 'append';
  /** The partitions' commit messages, checked and sorted by `parseMessages`. */
  parts: StagedMessage[];
  runId: string;
  log: Log;
  /** A new target is readable by its owner only (0600). */
  ownerOnly?: boolean;
}

/**
 * The job commit (planner): publishes the partitions' files as the target,
 * atomically. One partition in overwrite mode is a plain rename; otherwise the
 * inputs (the existing target first, in append mode) are merged. Idempotent.
 */
export async function commitParquet(plan: ParquetCommitPlan): Promise<void> {
  const { who, target, parts, log } = plan;
  try {
    if (parts.length === 0) {
      log.debug('no partitions to commit', { path: target });
      return;
    }
    if ((await resumeCommit(plan)) === 'done') return await cleanUp(plan);
    await mkdir(dirname(target), { recursive: true });
    const tmps = parts.map((p) => p.tmp);
    const rows = parts.reduce((n, p) => n + p.rows, 0);
    if (plan.mode === 'overwrite' && parts.length === 1) {
      await rename(tmps[0] as string, target);
      await syncDir(dirname(target));
      await cleanUp(plan);
      log.debug('job committed', { path: target, partitions: 1, rows });
      return;
    }
    const inputs = [...tmps];
    if (plan.mode === 'append' && (await exists(target))) inputs.unshift(target);
    const partOf = new Map(parts.map((p) => [p.tmp, p.partition]));
    const describe = (path: string) =>
      path === target ? `the existing file ${target}` : `the rows of partition ${partOf.get(path) ?? path}`;
    const staging = stagingName(target, plan.runId, 'job');
    await mergeParquet(inputs, staging, who, describe, { ownerOnly: plan.ownerOnly });
    await publishStaging(plan, staging);
    await cleanUp(plan);
    log.debug('job committed', { path: target, partitions: parts.length, rows });
  } catch (error) {
    if (error instanceof WeirError) throw error;
    throw fileError(error, { who, path: target, action: 'write' });
  }
}
