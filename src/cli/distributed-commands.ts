/**
 * The distributed commands' arguments (`weir worker`, `weir status`, `weir cancel`) and
 * `weir run`'s engine flags; their bodies are in distributed.ts, loaded only when one is
 * used: BullMQ and its dependencies are most of the CLI's code, and a local run would
 * otherwise carry them in memory (about 20 MB resident) and parse them at every start.
 */
import type { Command } from 'commander';
import type { Engine } from '../runtime/engine.js';
import { WeirError } from '../sdk/errors.js';
import type { RedisFlags, WorkerFlags } from './distributed.js';

export interface EngineFlags {
  engine?: string;
  redis?: string;
  queue?: string;
  detach?: boolean;
}

const distributed = () => import('./distributed.js');

/**
 * The engine `weir run` uses: local unless `--engine bullmq`; the flags checked
 * together. Returns `undefined` for local, or a number when Redis is unreachable
 * (the exit code).
 */
export async function engineFromFlags(flags: EngineFlags, onSubmitted: (runId: string) => void): Promise<Engine | undefined | number> {
  if ((flags.engine ?? 'local') === 'bullmq') return (await distributed()).bullmqFromFlags(flags, onSubmitted);
  for (const [flag, set] of [
    ['--redis', flags.redis !== undefined],
    ['--queue', flags.queue !== undefined],
    ['--detach', Boolean(flags.detach)],
  ] as const)
    if (set)
      throw new WeirError(`${flag} needs --engine bullmq (the local engine runs every partition in this process)`, { kind: 'config' });
  return undefined;
}

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new WeirError(`--metrics-port must be a port 0-65535, got ${JSON.stringify(v)}`, { kind: 'config' });
  return n;
}

export function addDistributedCommands(program: Command, logOptions: (cmd: Command) => Command, setExit: (code: number) => void): void {
  logOptions(program.command('worker').description('a distributed worker: runs the partitions of runs submitted with --engine bullmq'))
    .requiredOption('--redis <url>', 'the Redis server of the queue (redis://host:6379)')
    .option('--queue <name>', 'the queue to take partitions from (default weir)')
    .option('--concurrency <n>', 'partitions this worker runs at once (default 1)')
    .option('--metrics-port <port>', 'serve Prometheus /metrics, /healthz and /readyz on this port', port)
    .option(
      '--lock-duration <ms>',
      "how long a partition's lock lasts without renewal; a dead worker's partition runs elsewhere after about this long (default 15000)",
    )
    .option('--shutdown-grace <ms>', 'on SIGTERM: how long running partitions get to finish before they are handed back (default 30000)')
    .action(async (flags: WorkerFlags) => setExit(await (await distributed()).workerCommand(flags)));

  program
    .command('status')
    .description("a distributed run's partitions and counts")
    .argument('<run-id>', 'the run id weir run printed')
    .requiredOption('--redis <url>', 'the Redis server of the run')
    .option('--queue <name>', 'the queue of the run (default weir)')
    .option('--json', 'print JSON')
    .action(async (runId: string, flags: RedisFlags & { json?: boolean }) =>
      setExit(await (await distributed()).statusCommand(runId, flags)),
    );

  program
    .command('cancel')
    .description('abort a distributed run: its partitions stop on every worker and nothing of it is committed')
    .argument('<run-id>', 'the run id weir run printed')
    .requiredOption('--redis <url>', 'the Redis server of the run')
    .option('--queue <name>', 'the queue of the run (default weir)')
    .option('--wait <seconds>', 'detached runs: how long to wait for running partitions to stop before the job abort (default 60)')
    .action(async (runId: string, flags: RedisFlags & { wait?: string }) =>
      setExit(await (await distributed()).cancelCommand(runId, flags)),
    );
}
