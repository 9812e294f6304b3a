import { createWriteStream } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import { connectorJsonSchema, pipelineJsonSchema } from '../config/jsonschema.js';
import { type LoadedFile, loadPipelineFile } from '../config/load.js';
import { createRegistry, openPipeline } from '../config/open.js';
import { parseOverride } from '../config/overrides.js';
import type { ValidatedPipeline } from '../config/pipeline.js';
import type { Registry } from '../config/registry.js';
import { evaluateAlerts, prometheusRules } from '../observe/alerts.js';
import { EventBus } from '../observe/events.js';
import type { LogFormat, LogLevel } from '../observe/logger.js';
import { createLogger, logEvents, toLog } from '../observe/logger.js';
import { trackProgress } from '../observe/progress.js';
import { formatSummary, writeSummaryJson } from '../observe/summary.js';
import { Terminal } from '../observe/terminal.js';
import { formatPlan, planDryRun } from '../runtime/dry-run.js';
import { runPipeline } from '../runtime/run.js';
import { Closers } from '../runtime/shutdown.js';
import { errorMessage, WeirError } from '../sdk/errors.js';
import { suggest } from '../sdk/options.js';
import { redactor } from '../secrets/redactor.js';
import { type EngineFlags, engineFromFlags } from './distributed-commands.js';
import { EXIT, printError } from './exit.js';
import { onOutputClosed } from './output.js';
import { weirVersion } from './version.js';

export interface RunFlags extends EngineFlags {
  /** `--set PATH=VALUE` overrides of the pipeline file. */
  set?: string[];
  logFormat?: LogFormat;
  logLevel: LogLevel;
  /** Also append every log line as JSON to this file. */
  logFile?: string;
  /** The summary and errors only: no progress line, log level error. */
  quiet?: boolean;
  summaryJson?: string;
  metricsPort?: number;
  /** Serve the live run page on this port. */
  uiPort?: number;
  /** Export traces and metrics over OTLP/HTTP to this collector (overrides `telemetry.otlp_endpoint`). */
  otlpEndpoint?: string;
  fresh?: boolean;
  keepCommitted?: boolean;
  dryRun?: boolean;
}

interface Loaded {
  file: LoadedFile;
  registry: Registry;
  pipeline: ValidatedPipeline;
}

/** load → plugins → resolve → validate; throws ConfigError with every issue. */
export async function load(path: string, sets: readonly string[] = []): Promise<Loaded> {
  const file = loadPipelineFile(path, sets.map(parseOverride));
  const registry = await createRegistry();
  return { file, registry, pipeline: await openPipeline(file, dirname(resolve(path)), registry, redactor) };
}

function defaultFormat(flags: { logFormat?: 'json' | 'pretty' }) {
  return flags.logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json');
}

/** The run's logger and, on a terminal, the screen it shares with the progress line. */
function runLogger(flags: RunFlags): { logger: Logger; terminal: Terminal; closeFile: () => void } {
  const terminal = new Terminal({ out: process.stdout, status: process.stderr.isTTY && !flags.quiet ? process.stderr : undefined });
  const file = flags.logFile ? createWriteStream(resolve(flags.logFile), { flags: 'a' }) : undefined;
  const logger = createLogger({
    format: defaultFormat(flags),
    level: flags.quiet ? 'error' : flags.logLevel,
    redactor,
    terminal,
    ...(file ? { file } : {}),
  });
  return { logger, terminal, closeFile: () => file?.end() };
}

export async function runCommand(path: string, flags: RunFlags): Promise<number> {
  const { pipeline } = await load(path, flags.set);
  const { logger, terminal, closeFile } = runLogger(flags);
  try {
    return await runLoaded(pipeline, flags, logger, terminal);
  } finally {
    closeFile();
  }
}

async function runLoaded(pipeline: ValidatedPipeline, flags: RunFlags, logger: Logger, terminal: Terminal): Promise<number> {
  for (const w of pipeline.warnings) logger.warn({ event: 'warning' }, w);
  if (flags.dryRun) {
    const controller = new AbortController();
    process.stdout.write(formatPlan(await planDryRun(pipeline, toLog(logger), controller.signal)));
    return EXIT.ok;
  }
  const bus = new EventBus();
  logEvents(bus, logger);
  // prom-client loads only when metrics are served
  const observe = flags.metricsPort !== undefined ? await import('../observe/metrics.js') : undefined;
  const metrics = observe?.collectMetrics(bus, redactor, true, weirVersion());
  const server =
    observe && metrics && flags.metricsPort !== undefined ? await observe.startHealthServer(metrics, flags.metricsPort) : undefined;
  if (server) logger.info({ event: 'metrics_server', address: server.address() }, 'serving /metrics, /healthz and /readyz');
  // the run page and OpenTelemetry load only when asked for
  const uiMod = flags.uiPort !== undefined ? await import('../observe/ui/server.js') : undefined;
  const ui = uiMod?.collectUi(bus, redactor);
  const uiServer = uiMod && ui && flags.uiPort !== undefined ? await uiMod.startUiServer(ui, flags.uiPort) : undefined;
  if (uiServer) logger.info({ event: 'ui_server', url: uiServer.url }, `run page on ${uiServer.url}`);
  const telemetry = pipeline.config.telemetry;
  const otlpEndpoint = flags.otlpEndpoint ?? telemetry?.otlp_endpoint;
  const otel = otlpEndpoint
    ? await (await import('../observe/otel.js')).startOtel(bus, redactor, {
        endpoint: otlpEndpoint,
        ...(telemetry?.headers ? { headers: telemetry.headers } : {}),
        serviceName: telemetry?.service_name ?? 'weir',
        metricsIntervalMs: telemetry?.metrics_interval ?? 10_000,
        weirVersion: weirVersion(),
        warn: (message) => logger.warn({ event: 'otel_export_failed' }, message),
      })
    : undefined;
  const stopAlerts = evaluateAlerts(bus, pipeline.config, {
    redactor,
    log: (level, fields, msg) => {
      logger[level](fields, msg);
      if (fields.event === 'alert_firing' || fields.event === 'alert_resolved')
        ui?.alert(fields.event === 'alert_firing' ? 'firing' : 'resolved', fields);
    },
  });
  const stopProgress = trackProgress(bus, {
    ...(process.stderr.isTTY && !flags.quiet ? { terminal } : {}),
    intervalMs: pipeline.config.progress_interval,
  });

  // first signal: drain (in-flight batches get shutdown_timeout), summary, exit 130/143;
  // second signal: close what is still open (at most 2 s), exit at once
  const stop = new AbortController();
  let detached: string | undefined;
  const engine = await engineFromFlags(flags, (runId) => {
    if (!flags.detach) return logger.info({ event: 'run_submitted', run_id: runId }, `run ${runId} submitted; following it`);
    detached = runId;
    stop.abort(); // the run is the workers' now: this process only leaves it (no job commit, no abort)
  });
  if (typeof engine === 'number') return engine;
  const closers = new Closers();
  let signalCode: number | undefined;
  let exiting = false;
  const onSignal = (signal: NodeJS.Signals | 'SIGPIPE') => {
    const code = signal === 'SIGINT' ? EXIT.sigint : signal === 'SIGPIPE' ? EXIT.sigpipe : EXIT.sigterm;
    if (signalCode !== undefined) {
      if (exiting) return;
      exiting = true;
      process.stderr.write(`\n${signal} again: closing ${closers.size} open resource(s) and exiting now; the run stays resumable\n`);
      void closers.closeAll(2000).finally(() => process.exit(code));
      return;
    }
    signalCode = code;
    bus.emit({ type: 'shutdown_requested', signal });
    stop.abort(
      signal === 'SIGPIPE'
        ? new WeirError('run abandoned: the reader of its output went away (closed pipe); nothing it staged was kept', {
            kind: 'cancelled',
            code: 'abandoned',
          })
        : `run stopped by ${signal}`,
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // a reader that went away (`weir run … | head -1`) stops the run as SIGTERM does
  const offClosed = onOutputClosed(() => {
    if (signalCode === undefined) onSignal('SIGPIPE');
  });
  try {
    const summary = await runPipeline(pipeline, {
      bus,
      logger,
      redactor,
      signal: stop.signal,
      fresh: Boolean(flags.fresh),
      keepCommitted: Boolean(flags.keepCommitted),
      closers,
      ...(engine ? { engine } : {}),
    });
    stopProgress();
    await stopAlerts();
    if (detached) {
      process.stdout.write(`${detached}\n`);
      process.stderr.write(`run ${detached} submitted; follow it with weir status ${detached} --redis URL\n`);
      return EXIT.ok;
    }
    process.stderr.write(formatSummary(summary, redactor));
    if (flags.summaryJson) writeSummaryJson(flags.summaryJson, summary, redactor);
    if (summary.status === 'succeeded') return EXIT.ok;
    if ((summary.status === 'stopped' || signalCode === EXIT.sigpipe) && signalCode !== undefined) return signalCode;
    return summary.error?.kind === 'config' ? EXIT.usage : EXIT.failed;
  } finally {
    offClosed();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    server?.close();
    metrics?.stop();
    await uiServer?.close();
    ui?.stop();
    await otel?.shutdown();
  }
}

export async function validateCommand(path: string, flags: { set?: string[] } = {}): Promise<number> {
  try {
    const { pipeline } = await load(path, flags.set);
    for (const w of pipeline.warnings) process.stderr.write(`warning: ${w}\n`);
    const c = pipeline.config;
    process.stdout.write(`${path} is valid: ${c.source.type} → ${c.sink.type}, delivery ${c.delivery}\n`);
    return EXIT.ok;
  } catch (error) {
    return printError(error);
  }
}

export async function checkCommand(path: string, flags: RunFlags): Promise<number> {
  const { pipeline } = await load(path, flags.set);
  const logger = createLogger({ format: defaultFormat(flags), level: flags.logLevel, redactor });
  const c = pipeline.config;
  const controller = new AbortController();
  const ctx = { runId: 'check', pipeline: c.pipeline, log: toLog(logger), signal: controller.signal, baseDir: pipeline.baseDir };
  let failed = 0;
  const sections = [
    ['source', c.source],
    ['sink', c.sink],
    ...(c.errors.dead_letter ? [['errors.dead_letter', c.errors.dead_letter] as const] : []),
  ] as const;
  for (const [role, section] of sections) {
    const results = section.connector.check
      ? await section.connector
          .check(section.options, { ...ctx, role: role === 'source' ? 'source' : 'sink' })
          .catch((error: unknown) => [{ name: 'connection', ok: false, message: errorMessage(error) }])
      : [{ name: 'connection', ok: true, message: 'no network connection needed' }];
    for (const r of results) {
      if (!r.ok) failed++;
      process.stdout.write(`${r.ok ? 'PASS' : 'FAIL'}  ${role} (${section.type}) ${r.name}: ${r.message}\n`);
    }
  }
  // the source's columns against the target, once both answered: what the run would do, or why it cannot
  if (failed === 0) {
    const plan = await planDryRun(pipeline, toLog(logger), controller.signal).then(
      (p) => ({ ok: true, message: p.sink.action }),
      (error: unknown) => ({ ok: false, message: errorMessage(error) }),
    );
    if (!plan.ok) failed++;
    process.stdout.write(`${plan.ok ? 'PASS' : 'FAIL'}  plan (${c.source.type} → ${c.sink.type}): ${plan.message}\n`);
  }
  return failed ? EXIT.check : EXIT.ok;
}

export async function connectorsCommand(): Promise<number> {
  const registry = await createRegistry();
  const rows = registry.list().map(({ connector, origin }) => ({
    name: connector.name,
    source: connector.source ? 'yes' : '-',
    sink: connector.sink ? 'yes' : '-',
    once: connector.exactlyOnce ? 'yes' : '-',
    transactional: connector.sink ? (connector.transactional ? 'yes' : 'no') : '-',
    origin,
    description: connector.description,
  }));
  process.stdout.write(
    `${'connector'.padEnd(12)}${'source'.padEnd(8)}${'sink'.padEnd(6)}${'exactly-once'.padEnd(14)}${'transactional'.padEnd(15)}${'origin'.padEnd(10)}description\n`,
  );
  for (const r of rows)
    process.stdout.write(
      `${r.name.padEnd(12)}${r.source.padEnd(8)}${r.sink.padEnd(6)}${r.once.padEnd(14)}${r.transactional.padEnd(15)}${r.origin.padEnd(10)}${r.description}\n`,
    );
  return EXIT.ok;
}

export function unknownConnector(name: string, registry: Registry): number {
  const near = suggest(name, registry.names());
  process.stderr.write(
    `error: no connector named ${JSON.stringify(name)}${near ? ` (did you mean "${near}"?)` : ''}; run weir connectors for the list\n`,
  );
  return EXIT.usage;
}

export async function specCommand(name: string): Promise<number> {
  const registry = await createRegistry();
  const connector = registry.get(name);
  if (!connector) return unknownConnector(name, registry);
  process.stdout.write(`${JSON.stringify(connectorJsonSchema(connector), null, 2)}\n`);
  return EXIT.ok;
}

export async function schemaCommand(): Promise<number> {
  const registry = await createRegistry();
  process.stdout.write(`${JSON.stringify(pipelineJsonSchema(registry), null, 2)}\n`);
  return EXIT.ok;
}

export async function alertsCommand(path: string): Promise<number> {
  const { pipeline } = await load(path);
  if (!pipeline.config.alerts?.length) process.stderr.write(`${path} has no alerts section; the rules file is empty\n`);
  process.stdout.write(prometheusRules(pipeline.config));
  return EXIT.ok;
}
