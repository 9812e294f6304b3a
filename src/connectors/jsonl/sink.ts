import type { Sink, TaskContext, Writer } from '../../sdk/connector.js';
import { RowError } from '../../sdk/errors.js';
import type { JsonValue, Partition, Row } from '../../sdk/types.js';
import { stringifyJson } from '../../sdk/values.js';
import { resolvePath } from '../shared/files.js';
import { abortStagedMessages, commitStaged, fileLeftovers, makeTargetDir, parseMessages, StagedFile } from '../shared/staged.js';
import type { JsonlOptions } from './spec.js';

const WHO = 'jsonl sink';

/** Bytes as base64 (JSON has no bytes); the rest as it is. */
function bytesAsBase64(row: Row): Row {
  let out: Row | undefined;
  for (const key in row) {
    const v = row[key];
    if (v instanceof Uint8Array) {
      out ??= { ...row };
      out[key] = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
    }
  }
  return out ?? row;
}

/** One row as a JSON line (without the newline): decimals and bigints as exact number literals, bytes as base64. */
export function jsonLine(row: Row): string {
  try {
    return stringifyJson(bytesAsBase64(row));
  } catch (error) {
    throw new RowError(`row cannot be written as JSON: ${(error as Error).message}`, { code: 'bad_row', cause: error });
  }
}

/** Opens the writer of one partition (worker). Works without a schema. */
async function openWriter(partition: Partition, opts: JsonlOptions, ctx: TaskContext): Promise<Writer> {
  const target = resolvePath(ctx.baseDir, opts.path);
  const file = await StagedFile.open(target, partition.id, ctx.runId, WHO, { ownerOnly: ctx.ownerOnly });
  return {
    async write(batch) {
      if (batch.length === 0) return;
      let text = '';
      for (const row of batch) text += `${jsonLine(row)}\n`;
      const bytes = await file.append(Buffer.from(text, 'utf8'), batch.length);
      ctx.count('bytes_sent', bytes);
    },
    commit: () => file.commit(),
    abort: () => file.abort(),
    close: () => file.close(),
  };
}

/** Creates the jsonl sink for validated options. No I/O: runs on the planner and on every worker. */
export function jsonlSink(opts: JsonlOptions): Sink {
  return {
    /** Planner: creates the target's directory so a bad path fails before any row is read. */
    async setup(ctx) {
      const target = resolvePath(ctx.baseDir, opts.path);
      await makeTargetDir(WHO, target);
    },
    /** Worker: a writer to a temporary file beside the target. */
    writer: (partition, ctx) => openWriter(partition, opts, ctx),
    /** Planner: concatenates the partitions into the target atomically. Idempotent. */
    async commit(messages: JsonValue[], ctx) {
      await commitStaged({
        who: WHO,
        target: resolvePath(ctx.baseDir, opts.path),
        mode: opts.mode,
        parts: parseMessages(messages, WHO),
        runId: ctx.runId,
        log: ctx.log,
        ownerOnly: ctx.ownerOnly,
      });
    },
    /** Planner: deletes the run's temporary files. Idempotent. */
    async abort(messages: JsonValue[], ctx) {
      await abortStagedMessages(WHO, resolvePath(ctx.baseDir, opts.path), messages, ctx);
    },
    leftovers: fileLeftovers((ctx) => resolvePath(ctx.baseDir, opts.path)),
  };
}
