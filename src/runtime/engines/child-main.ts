/**
 * A task in a child process (the child-process engine's worker): reads its
 * {@link TaskSpec} as JSON from stdin — nothing else crosses —, runs it
 * (worker.ts), sends its events and its result to the parent over the IPC channel,
 * and logs JSON lines to stderr. SIGINT drains (read no new batch), SIGTERM stops now.
 */
import { createLogger } from '../../observe/logger.js';
import type { TaskSpec } from '../task-json.js';
import { runTaskJson } from '../worker.js';

const MAX_SPEC_BYTES = 16 * 1024 * 1024;

async function readSpec(): Promise<TaskSpec> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_SPEC_BYTES) throw new Error(`the task's JSON is larger than ${MAX_SPEC_BYTES} bytes`);
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as TaskSpec;
}

const send = (message: unknown) =>
  new Promise<void>((resolve) => {
    if (!process.send) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });

const stop = new AbortController();
const drain = new AbortController();
process.on('SIGTERM', () => stop.abort());
process.on('SIGINT', () => drain.abort());

const spec = await readSpec();
const result = await runTaskJson(spec, {
  emit: (event) => void send({ event }),
  logger: (redactor) => createLogger({ format: 'json', level: 'info', redactor, destination: process.stderr }),
  signal: stop.signal,
  drain: drain.signal,
  epochCommitted: (partition_id, mark) => void send({ epoch: { partition_id, mark } }),
});
await send({ result });
process.disconnect?.();
