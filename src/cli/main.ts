/**
 * The `weir` command. Thin: parses arguments, calls config/runtime/observe, and
 * maps error kinds to exit codes (0 ok · 1 run failed · 2 invalid config or usage ·
 * 3 health check failed · 130/143 stopped by SIGINT/SIGTERM).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { LOG_LEVELS } from '../observe/logger.js';
import { WeirError } from '../sdk/errors.js';
import { guardProcessOutput } from '../secrets/guard.js';
import { redactor } from '../secrets/redactor.js';
import {
  alertsCommand,
  checkCommand,
  connectorsCommand,
  docsCommand,
  type RunFlags,
  runCommand,
  schemaCommand,
  specCommand,
  validateCommand,
} from './commands.js';
import { addDistributedCommands } from './distributed-commands.js';
import { EXIT, printError } from './exit.js';

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('weir')
    .description('weir: production-grade data movement')
    .version(version())
    .showHelpAfterError('(run weir --help for usage)')
    .exitOverride();

  const logOptions = (cmd: Command) =>
    cmd
      .addOption(new Option('--log-format <format>', 'log format (json when stdout is not a terminal)').choices(['json', 'pretty']))
      .addOption(new Option('--log-level <level>', 'log level').choices([...LOG_LEVELS]).default('info'));

  logOptions(
    program
      .command('run')
      .description('run a pipeline to completion (batch) or until stopped (stream)')
      .argument('<pipeline>', 'pipeline YAML file'),
  )
    .option('--summary-json <file>', 'write the run summary as JSON to this file')
    .option('--metrics-port <port>', 'serve Prometheus /metrics, /healthz and /readyz on this port', (v) => parsePort(v))
    .option('--fresh', 'start over instead of resuming an interrupted run')
    .option('--dry-run', 'validate and plan, then stop before writing anything')
    .addOption(new Option('--engine <engine>', 'where the partitions run').choices(['local', 'bullmq']).default('local'))
    .option('--redis <url>', 'bullmq engine: the Redis server the workers share (redis://host:6379)')
    .option('--queue <name>', 'bullmq engine: the queue the workers listen on (default weir)')
    .option('--detach', 'bullmq engine: submit the run, print its id and exit; a worker commits it')
    .action(async (file: string, flags: RunFlags) => setExit(await runCommand(file, flags)));

  addDistributedCommands(program, logOptions, setExit);

  program
    .command('validate')
    .description('check the whole pipeline file without connecting to anything; prints every error at once')
    .argument('<pipeline>', 'pipeline YAML file')
    .action(async (file: string) => setExit(await validateCommand(file)));

  logOptions(
    program
      .command('check')
      .description('health checks per connector: connection, authentication, rate-limit headroom, disk space')
      .argument('<pipeline>', 'pipeline YAML file'),
  ).action(async (file: string, flags: RunFlags) => setExit(await checkCommand(file, flags)));

  program
    .command('connectors')
    .description('list built-in and installed connectors')
    .action(async () => setExit(await connectorsCommand()));

  program
    .command('docs')
    .description('Markdown reference of every option, generated from the option specs')
    .argument('[connector]', 'one connector, or "pipeline" for the pipeline file')
    .action(async (name?: string) => setExit(await docsCommand(name)));

  program
    .command('spec')
    .description("a connector's options as JSON Schema")
    .argument('<connector>', 'connector name')
    .action(async (name: string) => setExit(await specCommand(name)));

  program
    .command('alerts')
    .description("the pipeline's alert rules as a Prometheus rules file")
    .argument('<pipeline>', 'pipeline YAML file')
    .action(async (file: string) => setExit(await alertsCommand(file)));

  program
    .command('schema')
    .description('JSON Schema of the whole pipeline file, for editors')
    .action(async () => setExit(await schemaCommand()));

  return program;
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new WeirError(`--metrics-port must be a port 0-65535, got ${JSON.stringify(v)}`, { kind: 'config' });
  return n;
}

export async function main(argv: string[]): Promise<number> {
  guardProcessOutput(redactor);
  let code: number = EXIT.ok;
  const program = buildProgram((c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return EXIT.ok;
      return EXIT.usage;
    }
    return printError(error);
  }
  return code;
}

process.on('uncaughtException', (error) => {
  process.exitCode = printError(error);
  process.exit();
});
process.on('unhandledRejection', (error) => {
  process.exitCode = printError(error);
  process.exit();
});

const code = await main(process.argv);
process.exitCode = code;
// Exit once stdout and stderr are flushed (a pipe may still hold output); lingering
// handles such as idle connection pools must not keep a finished run alive.
const flushed = (stream: NodeJS.WriteStream) =>
  new Promise<void>((resolve) => {
    if (stream.writableLength === 0) resolve();
    else stream.once('drain', () => resolve());
  });
await Promise.race([Promise.all([flushed(process.stdout), flushed(process.stderr)]), new Promise((r) => setTimeout(r, 5000).unref())]);
process.exit(code);
