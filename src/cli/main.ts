/**
 * The `weir` command. Thin: parses arguments, calls config/runtime/observe, and
 * maps error kinds to exit codes (0 ok · 1 run failed · 2 invalid config or usage ·
 * 3 health check failed · 130/143 stopped by SIGINT/SIGTERM).
 */
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { createRegistry } from '../config/open.js';
import { LOG_LEVELS } from '../observe/logger.js';
import { WeirError } from '../sdk/errors.js';
import { suggest } from '../sdk/options.js';
import { guardProcessOutput } from '../secrets/guard.js';
import { redactor } from '../secrets/redactor.js';
import {
  alertsCommand,
  checkCommand,
  connectorsCommand,
  type RunFlags,
  runCommand,
  schemaCommand,
  specCommand,
  validateCommand,
} from './commands.js';
import { completionCommand, SHELLS, type Shell } from './completion.js';
import { type DiscoverFlags, discoverCommand } from './discover.js';
import { addDistributedCommands } from './distributed-commands.js';
import { type DocsFlags, docsCommand } from './docs.js';
import { EXIT, printError } from './exit.js';
import { initCommand } from './init.js';
import { watchOutput } from './output.js';
import { stateListCommand, stateResetCommand, stateShowCommand } from './state.js';
import { weirVersion } from './version.js';

function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('weir')
    .description('weir: production-grade data movement')
    .version(weirVersion())
    .showHelpAfterError('(run weir --help for usage)')
    .exitOverride();

  // `.choices()` then `.argParser()`: help and `weir completion` see the choices, and a typo gets oneOf's did-you-mean
  const logOptions = (cmd: Command) =>
    cmd
      .addOption(
        new Option('--log-format <format>', 'log format (json when stdout is not a terminal)')
          .choices(['json', 'pretty'])
          .argParser(oneOf('--log-format', ['json', 'pretty']))
          .env('WEIR_LOG_FORMAT'),
      )
      .addOption(
        new Option('--log-level <level>', 'log level')
          .choices(LOG_LEVELS)
          .argParser(oneOf('--log-level', LOG_LEVELS))
          .default('info')
          .env('WEIR_LOG_LEVEL'),
      )
      .option('--log-file <file>', 'also append every log line as JSON to this file')
      .option('--set <path=value>', 'change the pipeline file, e.g. --set sink.batch_size=10000 (repeatable)', collect, []);

  logOptions(
    program
      .command('run')
      .description('run a pipeline to completion (batch) or until stopped (stream)')
      .argument('<pipeline>', 'pipeline YAML file'),
  )
    .option('--summary-json <file>', 'write the run summary as JSON to this file')
    .option('--metrics-port <port>', 'serve Prometheus /metrics, /healthz and /readyz on this port', (v) => parsePort('--metrics-port', v))
    .option('--ui-port <port>', 'serve a live page of the run on http://127.0.0.1:PORT/', (v) => parsePort('--ui-port', v))
    .option(
      '--otlp-endpoint <url>',
      'export traces and metrics over OTLP/HTTP to this collector (e.g. http://localhost:4318)',
      parseEndpoint,
    )
    .option('--fresh', 'start over instead of resuming an interrupted run')
    .option('--keep-committed', "with --fresh: start over even when the interrupted run's committed rows cannot be taken back (they stay)")
    .option('-q, --quiet', 'print only the summary and errors (no progress line, log level error)')
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
    .option('--set <path=value>', 'change the pipeline file, e.g. --set sink.batch_size=10000 (repeatable)', collect, [])
    .action(async (file: string, flags: { set?: string[] }) => setExit(await validateCommand(file, flags)));

  logOptions(
    program
      .command('check')
      .description('health checks per connector: connection, authentication, rate-limit headroom, disk space')
      .argument('<pipeline>', 'pipeline YAML file'),
  ).action(async (file: string, flags: RunFlags) => setExit(await checkCommand(file, flags)));

  program
    .command('discover')
    .description("the source's columns and exact types, estimated rows and partitions (read-only; the sink is not contacted)")
    .argument('<pipeline>', 'pipeline YAML file')
    .option('--json', 'print the discovery as JSON')
    .option('--set <path=value>', 'change the pipeline file, e.g. --set source.table=orders (repeatable)', collect, [])
    .addOption(
      new Option('--log-level <level>', 'connector log lines on stderr from this level').argParser(oneOf('--log-level', LOG_LEVELS)),
    )
    .action(async (file: string, flags: DiscoverFlags) => setExit(await discoverCommand(file, flags)));

  program
    .command('init')
    .description('write a starter pipeline that validates; without a template, list them')
    .argument('[template]', 'template name (weir init lists them)')
    .argument('[file]', 'pipeline file to write (default TEMPLATE.yaml)')
    .option('--force', 'overwrite the file if it exists')
    .action(async (name?: string, file?: string, flags: { force?: boolean } = {}) => setExit(await initCommand(name, file, flags)));

  const state = program.command('state').description('the checkpoint store: what was run, what the next run resumes; reset it');
  state
    .command('list')
    .description("pipelines recorded in DIR's .weir/checkpoints.db, with their last run")
    .argument('[dir]', 'directory of the pipeline files', '.')
    .action((dir: string) => setExit(stateListCommand(dir)));
  state
    .command('show')
    .description("a pipeline's recent runs and what its next run will do")
    .argument('<pipeline>', 'pipeline YAML file')
    .option('--set <path=value>', 'change the pipeline file, e.g. --set checkpoint.path=… (repeatable)', collect, [])
    .action(async (file: string, flags: { set?: string[] }) => setExit(await stateShowCommand(file, flags)));
  state
    .command('reset')
    .description("forget a pipeline's state (refused while it runs, or after an interrupted run unless --force)")
    .argument('<pipeline>', 'pipeline YAML file')
    .option('--set <path=value>', 'change the pipeline file (repeatable)', collect, [])
    .option('--force', 'also forget an interrupted run (what it staged stays in the target)')
    .action(async (file: string, flags: { set?: string[]; force?: boolean }) => setExit(await stateResetCommand(file, flags)));

  program
    .command('connectors')
    .description('list built-in and installed connectors')
    .action(async () => setExit(await connectorsCommand()));

  program
    .command('docs')
    .description('Markdown reference of every option, generated from the option specs')
    .argument('[connector]', 'one connector, "pipeline" for the pipeline file, or the path of a connector module (./my-api.mjs)')
    .option('--connector <module>', 'also document the connectors of this module, e.g. ./my-api.mjs (repeatable)', collect, [])
    .action(async (name: string | undefined, flags: DocsFlags) => setExit(await docsCommand(name, flags)));

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

  program
    .command('completion')
    .description('a shell completion script of these commands, options and connectors: source <(weir completion bash)')
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .action(async (shell: Shell) => setExit(completionCommand(program, shell, await createRegistry(), weirVersion())));

  // an error in a subcommand's options points at that subcommand's help
  for (const cmd of program.commands) cmd.showHelpAfterError(`(run weir ${cmd.name()} --help for usage)`);
  return program;
}

/** A repeatable option's values, in order. */
const collect = (value: string, previous: string[]) => [...previous, value];

/** An option whose value is one of `choices`; a typo gets a did-you-mean. */
function oneOf<T extends string>(flag: string, choices: readonly T[]): (v: string) => T {
  return (v) => {
    if ((choices as readonly string[]).includes(v)) return v as T;
    const hint = suggest(v, choices);
    throw new InvalidArgumentError(`${hint ? `did you mean ${JSON.stringify(hint)}? ` : ''}${flag} is one of ${choices.join(', ')}.`);
  };
}

function parsePort(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new WeirError(`${flag} must be a port 0-65535, got ${JSON.stringify(v)}`, { kind: 'config' });
  return n;
}

function parseEndpoint(v: string): string {
  let url: URL | undefined;
  try {
    url = new URL(v);
  } catch {
    // reported below
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
    throw new WeirError(
      `--otlp-endpoint must be an http:// or https:// URL of an OTLP/HTTP collector (e.g. http://localhost:4318), got ${JSON.stringify(redactor.scrub(v))}`,
      { kind: 'config' },
    );
  return v;
}

export async function main(argv: string[]): Promise<number> {
  guardProcessOutput(redactor);
  watchOutput();
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
// handles such as idle connection pools must not keep a finished run alive. A pipe whose
// reader left never drains: it closes (on Node 24 only after this wait began, which left
// nothing pending but this await: exit 13, an unsettled top-level await).
const flushed = (stream: NodeJS.WriteStream) =>
  new Promise<void>((resolve) => {
    if (stream.writableLength === 0 || stream.destroyed) return resolve();
    for (const event of ['drain', 'close', 'error']) stream.once(event, () => resolve());
  });
await Promise.race([Promise.all([flushed(process.stdout), flushed(process.stderr)]), new Promise((r) => setTimeout(r, 5000).unref())]);
process.exit(code);
