// A sink driven over stdin, one JSON command a line, so a test can kill it with SIGKILL
// between any two steps (test/conformance/recover.test.ts). Runs the built code (dist/).
// Commands: {op:'setup'} {op:'write', partition, rows} {op:'commit', partition} {op:'job', messages}.
// Each command is answered with one JSON line: {ok:true, result} or {ok:false, error}.
import { createInterface } from 'node:readline';
import { builtinConnectors } from '../../dist/connectors/index.js';
import { connectorOptions, silentLog, taskContext } from '../../dist/sdk/testing.js';

const { type, options, pipeline, runId, baseDir, schema } = JSON.parse(process.argv[2]);
const connector = builtinConnectors.find((c) => c.name === type);
const sink = connector.sink(connectorOptions(connector, options, 'sink'));
const ctx = { runId, pipeline, log: silentLog, signal: new AbortController().signal, baseDir, schema };
const writers = new Map();

const run = {
  setup: () => sink.setup?.(ctx),
  async write({ partition, rows }) {
    if (!writers.has(partition))
      writers.set(
        partition,
        await sink.writer({ id: partition }, taskContext({ runId, pipeline, baseDir, schema, partitionId: partition })),
      );
    await writers.get(partition).write(rows);
  },
  commit: ({ partition }) => writers.get(partition).commit?.(),
  job: ({ messages }) => sink.commit?.(messages, ctx),
};

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  try {
    const result = (await run[command.op](command)) ?? null;
    process.stdout.write(`${JSON.stringify({ ok: true, result })}\n`);
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: String(error?.message ?? error) })}\n`);
  }
}
