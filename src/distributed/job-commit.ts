/**
 * The job-level commit or abort of a detached run (`weir run --detach`), done where the
 * submitter is not: by the worker that processes the run's parent job (commit), or by
 * `weir cancel` (abort). It opens the pipeline from the job's text, resolving the
 * references from this process's own environment, and calls the sink's `commit` or
 * `abort` with the partitions' commit messages in plan order.
 */
import type { Logger } from 'pino';
import { parsePipelineText } from '../config/load.js';
import { createRegistry, openPipeline } from '../config/open.js';
import { toLog } from '../observe/logger.js';
import type { CommitContext } from '../sdk/connector.js';
import type { JsonValue } from '../sdk/types.js';
import { Redactor } from '../secrets/redactor.js';
import type { RunJobData } from './jobs.js';

export async function finishDetachedJob(
  how: 'commit' | 'abort',
  data: RunJobData,
  messages: JsonValue[],
  logger: (redactor: Redactor) => Logger,
): Promise<void> {
  if (!data.pipeline) return;
  const redactor = new Redactor();
  const file = parsePipelineText(data.pipeline.text, data.pipeline.path);
  const pipeline = await openPipeline(file, data.pipeline.base_dir, await createRegistry(), redactor);
  const { config } = pipeline;
  const sink = (config.sink.connector.sink as NonNullable<typeof config.sink.connector.sink>)(config.sink.options);
  const log = logger(redactor).child({ run_id: data.run_id, pipeline: config.pipeline });
  const ctx: CommitContext = {
    runId: data.run_id,
    pipeline: data.state_id ?? config.pipeline,
    log: toLog(log),
    signal: new AbortController().signal,
    baseDir: pipeline.baseDir,
    schema: data.schema ?? undefined,
  };
  try {
    if (how === 'commit') await sink.commit?.(messages, ctx);
    else await sink.abort?.(messages, ctx);
    log.info({ event: how === 'commit' ? 'job_commit' : 'job_abort', partitions: messages.length }, `job ${how} of a detached run`);
  } finally {
    await sink.close?.();
  }
}
