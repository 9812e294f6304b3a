/**
 * The pipeline file's own spec, written with the same option builders as the
 * connectors', so `weir schema`, `weir docs` and validation come from one place.
 */
import { createHash } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { ALERT_METRICS, ALERT_WHEN } from '../observe/alerts.js';
import { type AnyConnector, validateConnectorOptions } from '../sdk/connector.js';
import { ConfigError, type ConfigIssue } from '../sdk/errors.js';
import {
  base,
  isPlainObject,
  joinPath,
  Opt,
  type OptionsOf,
  o,
  type ParseIssues,
  type ParseResult,
  rules,
  secretPaths,
  suggest,
  validateOptions,
} from '../sdk/options.js';
import { PROVIDERS } from '../secrets/providers.js';
import { protect, type Redactor } from '../secrets/redactor.js';
import { type ExpressionIssue, isExpressionIssue, literalSecrets, transformsOption } from '../transforms/index.js';
import { type LoadedFile, withLines } from './load.js';
import type { Registry } from './registry.js';
import { type ResolveResult, resolveReferences } from './resolve.js';

/** A validated `{ type, ... }` section. `options` is protected: printing it shows secrets redacted. */
export interface ConnectorSection {
  type: string;
  connector: AnyConnector;
  options: Record<string, unknown>;
}

function connectorSection(registry: Registry, role: 'source' | 'sink'): Opt<ConnectorSection> {
  return new Opt<ConnectorSection>(base('connector', { role }), (value, _meta, path): ParseResult<ConnectorSection> | ParseIssues => {
    if (!isPlainObject(value)) return { ok: false, message: `must be a mapping with a type, such as { type: csv, path: data.csv }` };
    const type = value.type;
    const names = registry.names(role);
    if (typeof type !== 'string' || type === '') {
      return { ok: false, issues: [{ path: joinPath(path, 'type'), message: `is required; one of ${names.join(', ')}` }] };
    }
    const connector = registry.get(type);
    if (!connector?.[role]) {
      const near = suggest(type, names);
      const other = connector ? ` (${type} has no ${role})` : '';
      return {
        ok: false,
        issues: [
          {
            path: joinPath(path, 'type'),
            message: `${JSON.stringify(type)} is not a ${role} connector${other}${near ? `; did you mean "${near}"?` : ''}; available: ${names.join(', ')}`,
          },
        ],
      };
    }
    const r = validateConnectorOptions(connector, value, role, path, ['type']);
    if (r.issues.length) return { ok: false, issues: r.issues };
    const options = protect(r.value as Record<string, unknown>, secretPaths(connector.options));
    return { ok: true, value: { type, connector, options } };
  });
}

const retrySpec = {
  max_attempts: o.int({ min: 1, max: 100 }).describe('Total tries of a batch write, the first included. 1 turns retries off.').default(5),
  initial_delay: o
    .duration({ min: 0, max: 3_600_000 })
    .describe('Ceiling of the first backoff; each retry doubles it (full jitter).')
    .default('100ms'),
  max_delay: o.duration({ min: 0, max: 3_600_000 }).describe('Largest ceiling of one backoff delay.').default('30s'),
  max_elapsed: o
    .duration({ min: 0 })
    .describe(
      'Stop retrying a batch once this much time has passed since its first try (a `Retry-After` that would pass it gives up at once).',
    )
    .advanced(),
  breaker_threshold: o
    .int({ min: 0, max: 10_000 })
    .describe(
      'Consecutive failed writes, all partitions together, that open the circuit breaker: writes then pause instead of hammering the sink. 0 turns it off.',
    )
    .default(10)
    .advanced(),
  breaker_half_open_after: o
    .duration({ min: 1, max: 3_600_000 })
    .describe('How long the open circuit breaker pauses writes before one probe write may go through.')
    .default('5s')
    .advanced(),
  partition_attempts: o
    .int({ min: 1, max: 100 })
    .describe(
      'Total tries of a partition, the first included: a partition that fails with a retryable error (connection lost, server restarting, deadlock, serialization failure, timeout) is aborted and run again from its start, after the same backoff as a batch. An exactly-once sink keeps nothing of a failed attempt; an at-least-once sink may keep what it had written (counted as `rows_replayed` in the summary). 1 turns partition retries off.',
    )
    .default(4),
};

const rateLimitSpec = {
  rows_per_second: o.number({ min: 0.001 }).describe('Most rows written per second, across all partitions (and all workers).'),
  requests_per_second: o.number({ min: 0.001 }).describe('Most batch writes per second, across all partitions (and all workers).'),
  burst: o
    .int({ min: 1 })
    .describe('Tokens that may be spent at once after an idle period. Default: a tenth of a second of the rate.')
    .advanced(),
};

const alertSpec = {
  name: o
    .string({
      pattern: /^[A-Za-z][A-Za-z0-9_]*$/,
      patternHint: 'must be a Prometheus alert name: letters, digits and underscores, starting with a letter',
    })
    .describe('Name of the alert (Prometheus `alert:`).')
    .required(),
  when: o
    .string({
      pattern: ALERT_WHEN,
      patternHint: `must be METRIC OP VALUE with METRIC one of ${ALERT_METRICS.join(', ')} and OP one of > < >= <=; e.g. error_rate > 0.01`,
    })
    .describe('The condition, e.g. `error_rate > 0.01`, `batch_latency_p99 > 2s`, or for a stream `lag > 10000` and `idle_seconds > 300`.')
    .required(),
  for: o.duration().describe('How long the condition must hold before the alert fires.').default('0s'),
  severity: o
    .enum(['info', 'warning', 'critical'] as const)
    .describe('Severity label of the alert.')
    .default('warning'),
  notify: o
    .object({
      webhook: o
        .url({ schemes: ['http', 'https'] })
        .secret()
        .describe('URL that receives a JSON POST when the alert fires and resolves.'),
    })
    .describe('Where to send the alert besides the log.'),
};

/** `telemetry:`: OpenTelemetry export (src/observe/otel.ts); `--otlp-endpoint` overrides `otlp_endpoint`. */
const telemetrySpec = {
  otlp_endpoint: o
    .url({ schemes: ['http', 'https'] })
    .describe(
      'Base URL of an OTLP/HTTP collector: traces go to `/v1/traces`, metrics to `/v1/metrics` (JSON). Setting it turns OpenTelemetry export on.',
    )
    .example('http://localhost:4318'),
  headers: o
    .map(o.string())
    .secret()
    .describe('Headers sent with every export (a vendor API key: `${env:OTLP_TOKEN}`); secret, scrubbed from every output.'),
  service_name: o.string({ minLength: 1 }).describe('`service.name` of the exported resource.').default('weir'),
  metrics_interval: o.duration({ min: 100 }).describe('How often metrics are exported.').default('10s').advanced(),
};

const errorsSpec = (registry: Registry) => ({
  tolerance: o
    .enum(['none', 'all'] as const)
    .describe('`none`: the first bad row fails the run. `all`: bad rows go to `dead_letter` and the run goes on.')
    .default('none'),
  dead_letter: connectorSection(registry, 'sink').describe(
    'A sink (jsonl is the usual) that receives each rejected row with its error and context.',
  ),
  max_failed_rows: o.int({ min: 0 }).describe('Fail the run once more rows than this were rejected.'),
  max_error_rate: o
    .number({ min: 0, max: 1 })
    .describe('Fail the run once the share of rejected rows exceeds this (checked after 1000 rows).'),
});

export function pipelineSpec(registry: Registry) {
  return {
    pipeline: o
      .string({
        pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/,
        patternHint: 'must be letters, digits, dots, hyphens and underscores (at most 128), starting with a letter or digit',
      })
      .describe('Id of the pipeline: names its metrics, logs and checkpoints.')
      .required()
      .example('events-to-pg'),
    description: o.string().describe('Free text shown in `weir check` and the summary.'),
    connectors: o
      .list(o.string({ minLength: 1 }))
      .describe('Extra connector modules to load: paths relative to this file, or package names.')
      .advanced(),
    secrets: o
      .map(
        o.object(
          {
            provider: o
              .enum(Object.keys(PROVIDERS))
              .describe(
                '`env`: environment variables; `file`: one JSON or dotenv file; `dir`: one file per key (Docker/Kubernetes secrets); or a registered provider.',
              )
              .required(),
            path: o.path().describe('File (`file`) or directory (`dir`) holding the secrets.'),
            prefix: o.string().describe('Prefix added to keys (`env` provider).'),
          },
          [
            rules.custom('path is required for the file and dir providers', ['provider', 'path'], (x) =>
              x.provider !== 'env' && !x.path ? 'path is required for the file and dir providers' : undefined,
            ),
          ],
        ),
      )
      .describe('Named secret scopes, used as `${secret:scope/key}`.'),
    source: connectorSection(registry, 'source')
      .describe("Where rows come from: `type` plus that connector's options (`weir docs TYPE`).")
      .required(),
    sink: connectorSection(registry, 'sink').describe("Where rows go: `type` plus that connector's options (`weir docs TYPE`).").required(),
    delivery: o
      .enum(['at-least-once', 'exactly-once'] as const)
      .describe('`exactly-once` is accepted only for sinks that commit rows and checkpoints atomically.')
      .default('at-least-once'),
    concurrency: o.int({ min: 1, max: 1024 }).describe('Partitions processed at the same time.').default(4),
    batch: o
      .object({
        rows: o.int({ min: 1, max: 10_000_000 }).describe("Most rows per batch. A sink's own `batch_size` wins.").default(5000),
        bytes: o.bytes({ min: 1024 }).describe('Most (estimated) bytes per batch.').default('8MB'),
      })
      .describe('How rows are grouped into batch writes.')
      .default({}),
    errors: o
      .object(errorsSpec(registry), [rules.requiredWhen('dead_letter', 'tolerance', 'all')])
      .describe('What happens to bad rows.')
      .default({}),
    retry: o.object(retrySpec).describe('Retries of failed batch writes and of failed partitions (retryable errors only).').default({}),
    rate_limit: o.object(rateLimitSpec).describe('Limits that hold across all partitions of the run.'),
    stream: o
      .object({
        epoch_rows: o
          .int({ min: 1, max: 10_000_000 })
          .describe(
            'Unbounded sources: most rows in one epoch (one commit of the sink, then the acknowledgements). Bounds what a crash redelivers.',
          )
          .default(10_000),
        epoch_interval: o
          .duration({ min: 10 })
          .describe(
            'Unbounded sources: longest time an epoch stays open, so a message is committed and acknowledged within about this long.',
          )
          .default('1s'),
        epoch_linger: o
          .duration({ min: 0 })
          .describe(
            'Unbounded sources: end an epoch early once the source had nothing new for this long (it has caught up), so what arrived is committed now and not at `epoch_interval`. 0: epochs end only by `epoch_rows` or `epoch_interval`.',
          )
          .default('50ms'),
        stop_when_idle: o
          .duration({ min: 10 })
          .describe('Unbounded sources: end the run (exit 0) once no message arrived for this long. Absent: run until SIGINT/SIGTERM.'),
      })
      .describe('How an unbounded source (a queue, a stream) is committed: in epochs.')
      .default({}),
    shutdown_timeout: o
      .duration({ min: 0 })
      .describe('On SIGINT/SIGTERM, how long in-flight batches may take to finish before they are aborted.')
      .default('30s'),
    checkpoint: o
      .object({
        path: o
          .path()
          .describe(
            "SQLite file recording committed partitions; a relative path is relative to the pipeline file's directory, as every other path.",
          )
          .default('.weir/checkpoints.db'),
      })
      .describe('Where committed partitions are recorded, for resume.')
      .default({}),
    transforms: transformsOption(registry).describe(
      'Steps applied in order to every row between the source and the sink, inside the task (wherever the partition runs): `rename`, `select`, `drop`, `cast`, `filter`, `set`, `mask`, `timestamp`, or a custom step (`defineTransform`) from a `connectors:` module. See docs/transforms.md.',
    ),
    alerts: o.list(o.object(alertSpec)).describe('Alert rules, evaluated during the run and exported by `weir alerts`.'),
    telemetry: o.object(telemetrySpec).describe('OpenTelemetry export of traces and metrics (off unless an endpoint is set).'),
    progress_interval: o
      .duration({ min: 100 })
      .describe('How often a progress line is logged when stdout is not a terminal.')
      .default('10s')
      .advanced(),
  };
}

export type PipelineSpec = ReturnType<typeof pipelineSpec>;
export type PipelineConfig = OptionsOf<PipelineSpec>;

/**
 * The pipeline as written, to rebuild it in another process (a task's JSON): the
 * file's text with its references unresolved (never a resolved secret) and the
 * directory its relative paths start at.
 */
export interface PipelineDocument {
  path: string;
  text: string;
  base_dir: string;
}

export interface ValidatedPipeline {
  config: PipelineConfig;
  document: PipelineDocument;
  warnings: string[];
  baseDir: string;
  /** The pipeline's id in state (checkpoint stores, a sink's checkpoints): see {@link pipelineStateId}. */
  stateId: string;
}

/**
 * The pipeline's id as state keeps it: `pipeline:` as written; when it holds a
 * reference (`${env:NAME}`), what was written plus a hash of the resolved value, so
 * that state never holds a resolved value and two values are two pipelines.
 *
 * @example
 * pipelineStateId('${env:TEAM}-load', 'sales-load') // '${env:TEAM}-load@<16 hex digits>'
 */
export function pipelineStateId(written: unknown, resolved: string): string {
  if (typeof written !== 'string' || written === resolved) return resolved;
  return `${written}@${createHash('sha256').update(resolved).digest('hex').slice(0, 16)}`;
}

/**
 * resolve → validate. Throws one {@link ConfigError} with every issue found.
 * Registers resolved and literal secret values with the redactor.
 */
export function validatePipeline(
  file: LoadedFile,
  registry: Registry,
  redactor: Redactor,
  baseDir: string,
  /** References already resolved (and registered) by the caller; resolved here when absent. */
  resolved: ResolveResult = resolveReferences(file.data, baseDir, redactor),
): ValidatedPipeline {
  const spec = pipelineSpec(registry);
  const r = validateOptions(spec, resolved.data, '');
  registerSecrets(resolved.data, registry, redactor);
  const issues: ConfigIssue[] = [...resolved.issues, ...r.issues.filter((i) => !resolved.issues.some((x) => x.path === i.path))];
  if (r.value && r.value.delivery === 'exactly-once' && !r.value.sink.connector.exactlyOnce) {
    const able = registry
      .list()
      .filter((c) => c.connector.sink && c.connector.exactlyOnce)
      .map((c) => c.connector.name);
    issues.push({
      path: 'delivery',
      message: `exactly-once needs a sink that commits rows and checkpoints atomically; ${r.value.sink.type} cannot. Use at-least-once, or one of: ${able.join(', ')}`,
    });
  }
  if (r.value) issues.push(...tlsFileIssues(r.value, baseDir));
  if (issues.length || !r.value) {
    const isSecretKey = (key: string) => redactor.isSecretKey(key);
    const located = issues.map((i) =>
      isExpressionIssue(i) ? locateExpressionIssue(i, file, isSecretKey) : (withLines([i], file, isSecretKey)[0] as ConfigIssue),
    );
    throw new ConfigError(located, `${file.path} has ${issues.length} problem(s)`);
  }
  const written = isPlainObject(file.data) ? file.data.pipeline : undefined;
  return {
    config: r.value,
    document: { path: file.path, text: file.text, base_dir: baseDir },
    warnings: resolved.warnings,
    baseDir,
    stateId: pipelineStateId(written, r.value.pipeline),
  };
}

const TLS_FILES = ['ssl_ca_cert', 'ssl_cert', 'ssl_key'] as const;

/** With TLS on, the certificate files must be readable: checked at validation, not at the first connection. */
function tlsFileIssues(config: PipelineConfig, baseDir: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const sections: [string, ConnectorSection | undefined][] = [
    ['source', config.source],
    ['sink', config.sink],
    ['errors.dead_letter', config.errors.dead_letter],
  ];
  for (const [path, section] of sections) {
    if (section?.options.ssl_enabled !== true) continue;
    for (const key of TLS_FILES) {
      const file = section.options[key];
      if (typeof file !== 'string') continue;
      try {
        accessSync(resolvePath(baseDir, file), constants.R_OK);
      } catch {
        issues.push({
          path: `${path}.${key}`,
          message: `cannot read ${resolvePath(baseDir, file)}; give a readable PEM file (relative paths start at the pipeline file)`,
        });
      }
    }
  }
  return issues;
}

/**
 * An error inside an expression, located at its own line and column in the file:
 * the expression's line is looked for from its option's key on (a plain or quoted
 * scalar holds the text as written); else the option's key is shown.
 */
function locateExpressionIssue(issue: ExpressionIssue, file: LoadedFile, isSecretKey: (key: string) => boolean): ConfigIssue {
  const { expression, ...plain } = issue;
  let key: string = issue.path;
  let pos = file.positionOf(key);
  while (!pos && key.includes('.')) {
    key = key.slice(0, key.lastIndexOf('.'));
    pos = file.positionOf(key);
  }
  if (!pos) return plain;
  const lines = file.text.split('\n');
  const wanted = expression.text.split('\n')[expression.line - 1] ?? '';
  const keyName = /^["'\w$-][^:]*?(?=\s*:)/.exec((lines[pos.line - 1] ?? '').slice(pos.col - 1))?.[0] ?? '';
  for (let l = pos.line - 1; l < Math.min(lines.length, pos.line + 200); l++) {
    const from = l === pos.line - 1 ? pos.col - 1 + keyName.length : 0;
    const line = lines[l] as string;
    const trimmed = wanted.trim();
    const at = trimmed ? line.indexOf(trimmed, from) : -1;
    if (at >= 0) {
      const lead = wanted.length - wanted.trimStart().length;
      const found = { line: l + 1, col: at - lead + expression.col };
      return { ...plain, path: `${issue.path} (line ${found.line}:${found.col})`, excerpt: file.excerptAt(found, isSecretKey) };
    }
  }
  return withLines([plain], file, isSecretKey)[0] as ConfigIssue;
}

/** Literal values of options declared secret are redacted too, not only resolved references. */
function registerSecrets(data: unknown, registry: Registry, redactor: Redactor): void {
  const sections: unknown[] = [];
  if (isPlainObject(data)) {
    for (const value of literalSecrets(data.transforms, registry)) redactor.addValue(value);
    sections.push(data.source, data.sink);
    if (isPlainObject(data.errors)) sections.push(data.errors.dead_letter);
    if (Array.isArray(data.alerts))
      for (const a of data.alerts) if (isPlainObject(a) && isPlainObject(a.notify)) redactor.addValue(String(a.notify.webhook ?? ''));
  }
  for (const section of sections) {
    if (!isPlainObject(section) || typeof section.type !== 'string') continue;
    const connector = registry.get(section.type);
    if (!connector) continue;
    for (const key of secretPaths(connector.options)) {
      redactor.addKey(key.split('.').pop() as string);
      const v = section[key];
      if (typeof v === 'string') redactor.addValue(v);
    }
  }
}
