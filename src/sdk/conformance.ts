/**
 * The conformance suite every source runs, built-in or custom (STYLE.md lesson 9).
 *
 * {@link sourceConformance} returns named checks, each a function that throws an
 * `AssertionError` naming the broken contract; the test runner of your choice runs
 * them (no test framework is imported here, so `weir/testing` works under any):
 *
 * @example
 * import { describe, it } from 'vitest';
 * import { sourceConformance } from 'weir/testing';
 * import tickets from './tickets-connector.js';
 *
 * describe('tickets source conformance', () => {
 *   for (const check of sourceConformance(tickets, { options: () => ({ base_url: url, token }), expected: TICKETS }))
 *     it(check.name, check.run);
 * });
 *
 * What a bounded source must do: plan the same JSON-serialisable partitions every
 * time; read each partition (after a JSON round trip, in a fresh source and task
 * context, as a worker would) into rows of the declared schema's columns and types;
 * give the data set across partitions exactly once, and the same rows when a
 * partition is read again; stop and release its connections and files when the
 * consumer stops midway; answer `check()` for good and bad options without throwing;
 * keep a secret option's value (the canary) out of every partition, row, log line,
 * rejected record, check message and validation message.
 *
 * An unbounded source (`unbounded: true`) instead streams the data set once in
 * chunks whose offsets are plain JSON; stops when the signal is aborted; never
 * acknowledges by itself (a message whose chunk was not acknowledged comes again in
 * the next attempt) and a message whose chunk was acknowledged does not; a source
 * that promises exactly-once skips what `ctx.resumeFrom` says was committed.
 */
import { AssertionError, deepStrictEqual, ok } from 'node:assert/strict';
import type { AnyConnector, CheckResult, ConnectorDefinition, Log, PlanContext, Source, StreamChunk, TaskContext } from './connector.js';
import { validateConnectorOptions } from './connector.js';
import { type Spec, secretPaths } from './options.js';
import { type ColumnType, type JsonValue, type Partition, planIdentity, type Row, type Schema } from './types.js';
import { Decimal } from './values.js';

/** One named check of a conformance suite; `run` throws when the connector breaks the contract. */
export interface ConformanceCheck {
  name: string;
  run(): Promise<void>;
}

type RawOptions = Record<string, unknown>;

export interface SourceConformanceTarget {
  /**
   * The source's options as a pipeline file gives them (references resolved), over a
   * known data set. A function is called once per check, when it runs: an unbounded
   * source needs a fresh queue or stream holding `expected` for every check.
   */
  options: RawOptions | (() => RawOptions | Promise<RawOptions>);
  /** Every row of the data set once, in any order, with values exactly as the source yields them. */
  expected: Row[] | (() => Row[]);
  /** Directory relative paths resolve against (default: the current directory). */
  baseDir?: string;
  /** A secret that is part of `options` (a password, a token): it must appear in no output. */
  secret?: string;
  /** Options whose health check must fail (a closed port, a wrong password): `check()` answers without throwing. */
  badOptions?: RawOptions | (() => RawOptions | Promise<RawOptions>);
  /**
   * Present for an unbounded source (`unbounded: true`): the stream checks run instead of
   * the read checks. `idleMs`: how long the stream must stay quiet to count as drained
   * (default 400 ms).
   */
  stream?: { idleMs?: number };
  /** What the last succeeded run saved (`PlanContext.sourceState`), for a source with incremental state. */
  sourceState?: Record<string, JsonValue>;
  /** Columns left out before rows are compared: values that differ from one read to the next (an entry id, a receive time). */
  ignoreColumns?: string[];
  /** Bound on each wait: for a read to stop, a check to answer, handles to be released (default 3000 ms). */
  timeoutMs?: number;
}

/** Checks a source against the SDK contract; see the module's documentation for what each checks. */
export function sourceConformance<S extends Spec>(connector: ConnectorDefinition<S>, target: SourceConformanceTarget): ConformanceCheck[] {
  const suite = new SourceSuite(connector as unknown as AnyConnector, target);
  const checks: ConformanceCheck[] = [
    { name: 'options validate, unknown keys are refused by name, secret values are never displayed', run: () => suite.options() },
    { name: 'the plan is deterministic plain JSON', run: () => suite.plan() },
  ];
  if (suite.unbounded) {
    checks.push(
      { name: 'streams the data set exactly once with JSON offsets, and stops when the signal is aborted', run: () => suite.streamOnce() },
      {
        name: 'acknowledges only what the caller acknowledges: unacknowledged messages come again, acknowledged ones do not',
        run: () => suite.acks(),
      },
    );
    checks.push({ name: 'skips what ctx.resumeFrom says was committed, or declares itself at-least-once', run: () => suite.resume() });
  } else {
    checks.push(
      {
        name: 'every partition, read in a fresh context, gives the data set exactly once in the declared schema',
        run: () => suite.readAll(),
      },
      { name: 're-reading a partition gives the same rows', run: () => suite.reread() },
      { name: 'a read stopped midway releases its connections and files', run: () => suite.stopMidway() },
    );
  }
  if (connector.check) checks.push({ name: 'check() answers for good and bad options without throwing', run: () => suite.check() });
  return checks;
}

/** A log that keeps every line, for the secret canary. */
function recordingLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  const add = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    lines.push(`${level} ${msg} ${safeStringify(fields)}`);
  };
  return { lines, debug: add('debug'), info: add('info'), warn: add('warn'), error: add('error') };
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Error ? errorText(v) : v)) ?? '';
  } catch {
    return String(value);
  }
}

function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  return `${error.name}: ${error.message}\n${error.stack ?? ''}${cause ? `\ncaused by ${errorText(cause)}` : ''}`;
}

/**
 * A value's exact identity as text: 5, 5n and Decimal 5 differ; so do '' and null;
 * keys in any order are one row.
 */
export function canonicalValue(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (Decimal.is(value)) return `decimal(${value.text})`;
  if (value instanceof Date) return `date(${Number.isNaN(value.getTime()) ? 'invalid' : value.toISOString()})`;
  if (value instanceof Uint8Array) return `bytes(${Buffer.from(value).toString('hex')})`;
  if (Array.isArray(value)) return `[${value.map(canonicalValue).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalValue((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return value === undefined ? 'undefined' : JSON.stringify(value);
}

/** Rows as a sorted list of canonical texts: equal lists are equal multisets. */
function multiset(rows: Row[]): string[] {
  return rows.map(canonicalValue).sort();
}

function sameRows(actual: Row[], expected: Row[], what: string): void {
  const a = multiset(actual);
  const e = multiset(expected);
  if (a.length === e.length && a.every((v, i) => v === e[i])) return;
  const expectedSet = new Map<string, number>();
  for (const v of e) expectedSet.set(v, (expectedSet.get(v) ?? 0) + 1);
  const extra: string[] = [];
  for (const v of a) {
    const n = expectedSet.get(v) ?? 0;
    if (n > 0) expectedSet.set(v, n - 1);
    else extra.push(v);
  }
  const missing = [...expectedSet].flatMap(([v, n]) => Array<string>(n).fill(v));
  throw new AssertionError({
    message: `${what}: ${a.length} rows, expected ${e.length}; ${missing.length} missing (e.g. ${missing.slice(0, 2).join(' ')}), ${extra.length} unexpected or duplicated (e.g. ${extra.slice(0, 2).join(' ')})`,
  });
}

const TYPE_TEST: Record<ColumnType, (v: unknown) => boolean> = {
  integer: (v) => (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint',
  decimal: (v) => Decimal.is(v),
  number: (v) => typeof v === 'number',
  string: (v) => typeof v === 'string',
  boolean: (v) => typeof v === 'boolean',
  // a Date, or the ISO text files and some databases carry it as
  timestamp: (v) => (v instanceof Date && !Number.isNaN(v.getTime())) || (typeof v === 'string' && !Number.isNaN(Date.parse(v))),
  json: () => true,
};

function assertSchema(rows: Row[], schema: Schema | undefined, where: string): void {
  if (!schema) return;
  const columns = new Map(schema.map((c) => [c.name, c]));
  for (const row of rows) {
    for (const key of Object.keys(row))
      ok(columns.has(key), `${where}: column ${JSON.stringify(key)} of a row is not in the declared schema`);
    for (const column of schema) {
      const v = Object.hasOwn(row, column.name) ? row[column.name] : undefined;
      if (v === null || v === undefined) {
        ok(column.nullable !== false, `${where}: column ${column.name} is declared not nullable, a row has ${String(v)}`);
        continue;
      }
      ok(TYPE_TEST[column.type](v), `${where}: column ${column.name} is declared ${column.type}, a row has ${canonicalValue(v)}`);
    }
  }
}

function noCanary(secret: string | undefined, text: string, where: string): void {
  if (secret && text.includes(secret)) throw new AssertionError({ message: `the secret canary appears in ${where}` });
}

/** Resolves with the promise's value, or throws after `ms` naming what did not finish. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AssertionError({ message: `${what} did not finish within ${ms} ms` })), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Connections and files the process holds open (Node's active resources, without timers). */
function openHandles(): number {
  const kinds = new Set(['TCPSocketWrap', 'TCPWrap', 'PipeConnectWrap', 'FileHandle', 'UDPWrap', 'TLSWrap']);
  return process.getActiveResourcesInfo().filter((k) => kinds.has(k)).length;
}

async function handlesBackTo(baseline: number, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (openHandles() > baseline && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
  ok(openHandles() <= baseline, `${what}: ${openHandles() - baseline} connection(s) or file(s) still open after ${ms} ms`);
}

const flatten = (item: Row | Row[]): Row[] => (Array.isArray(item) ? item : [item]);

class SourceSuite {
  readonly unbounded: boolean;
  private readonly timeoutMs: number;

  constructor(
    private readonly connector: AnyConnector,
    private readonly target: SourceConformanceTarget,
  ) {
    ok(connector.source, `connector ${connector.name} has no source`);
    this.unbounded = target.stream !== undefined;
    this.timeoutMs = target.timeoutMs ?? 3000;
  }

  private async raw(): Promise<RawOptions> {
    return typeof this.target.options === 'function' ? await this.target.options() : this.target.options;
  }

  private same(actual: Row[], expected: Row[], what: string): void {
    sameRows(this.comparable(actual), this.comparable(expected), what);
  }

  /** Rows without {@link SourceConformanceTarget.ignoreColumns}. */
  private comparable(rows: Row[]): Row[] {
    const ignore = this.target.ignoreColumns;
    if (!ignore?.length) return rows;
    return rows.map((row) => Object.fromEntries(Object.entries(row).filter(([k]) => !ignore.includes(k))));
  }

  private expected(): Row[] {
    return typeof this.target.expected === 'function' ? this.target.expected() : this.target.expected;
  }

  private newSource(raw: RawOptions): Source {
    const r = validateConnectorOptions(this.connector, raw, 'source');
    if (!r.value)
      throw new AssertionError({
        message: `the target's options are invalid: ${r.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      });
    return (this.connector.source as NonNullable<AnyConnector['source']>)(r.value);
  }

  private planContext(log: Log = recordingLog(), signal = new AbortController().signal): PlanContext {
    return {
      runId: `conformance-${process.pid}`,
      pipeline: 'conformance',
      log,
      signal,
      baseDir: this.target.baseDir ?? process.cwd(),
      ...(this.target.sourceState ? { sourceState: this.target.sourceState } : {}),
    };
  }

  private taskContext(
    partition: Partition,
    schema: Schema | undefined,
    log: Log,
    extra: Partial<TaskContext> = {},
  ): TaskContext & { rejected: unknown[]; acks: number } {
    const ctx = {
      ...this.planContext(log),
      partitionId: partition.id,
      attempt: 1,
      schema,
      rejected: [] as unknown[],
      acks: 0,
      async reject(record: unknown, error: unknown) {
        ctx.rejected.push({ record, error: errorText(error) });
      },
      count() {},
      onCommit() {},
      setState(state: JsonValue) {
        deepStrictEqual(
          JSON.parse(JSON.stringify(state)),
          state,
          `the state partition ${partition.id} sets is plain JSON (it is saved with the checkpoint)`,
        );
      },
      ...extra,
    };
    return ctx;
  }

  /**
   * `use` of the plan as a worker receives it: planned by one source and passed
   * through JSON, while that planner stays open — the runtime closes it when the
   * run ends (a planner may hold what the partitions share, such as a snapshot).
   */
  private async planned<T>(
    raw: RawOptions,
    log: Log,
    use: (plan: { schema: Schema | undefined; partitions: Partition[] }) => Promise<T>,
  ): Promise<T> {
    const source = this.newSource(raw);
    try {
      const ctx = this.planContext(log);
      const schema = await source.schema?.(ctx);
      const partitions = (await source.partitions?.(ctx)) ?? [{ id: '0' }];
      return await use({ schema, partitions: JSON.parse(JSON.stringify(partitions)) as Partition[] });
    } finally {
      await source.close?.();
    }
  }

  /** Reads one partition in a fresh source and task context, as a worker would. */
  private async readPartition(
    raw: RawOptions,
    partition: Partition,
    schema: Schema | undefined,
    log: Log,
  ): Promise<{ rows: Row[]; rejected: unknown[] }> {
    const source = this.newSource(raw);
    const ctx = this.taskContext(partition, schema, log);
    const rows: Row[] = [];
    try {
      for await (const item of source.read(partition, ctx)) rows.push(...flatten(item));
    } finally {
      await source.close?.();
    }
    return { rows, rejected: ctx.rejected };
  }

  async options(): Promise<void> {
    const raw = await this.raw();
    const good = validateConnectorOptions(this.connector, raw, 'source');
    ok(good.value, `the target's options are invalid: ${good.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    const unknown = validateConnectorOptions(this.connector, { ...raw, no_such_option_xyz: 1 }, 'source');
    ok(
      unknown.issues.some((i) => `${i.path} ${i.message}`.includes('no_such_option_xyz')),
      'an unknown option is refused with an issue that names it',
    );
    const secret = this.target.secret ?? `canary-${process.pid}-${Date.now()}`;
    for (const path of secretPaths(this.connector.options)) {
      const bad = withPath(raw, path, { not: `a string ${secret}` });
      const issues = validateConnectorOptions(this.connector, bad, 'source').issues;
      ok(issues.length > 0, `the secret option ${path} accepts an object`);
      noCanary(secret, JSON.stringify(issues), `the validation message of the secret option ${path}`);
    }
  }

  async plan(): Promise<void> {
    const raw = await this.raw();
    const log = recordingLog();
    const source = this.newSource(raw);
    try {
      const ctx = this.planContext(log);
      const first = (await source.partitions?.(ctx)) ?? [{ id: '0' }];
      const second = (await source.partitions?.(ctx)) ?? [{ id: '0' }];
      deepStrictEqual(second.map(planIdentity), first.map(planIdentity), 'partitions() plans the same partitions every time');
      deepStrictEqual(JSON.parse(JSON.stringify(first)), first, 'partitions survive a JSON round trip (they cross processes)');
      ok(first.length > 0, 'partitions() plans at least one partition');
      const ids = first.map((p) => p.id);
      ok(
        ids.every((id) => typeof id === 'string' && id !== ''),
        'every partition id is a non-empty string',
      );
      deepStrictEqual(new Set(ids).size, ids.length, `partition ids are unique: ${ids.join(', ')}`);
      deepStrictEqual(
        source.unbounded === true,
        this.unbounded,
        `the source is ${source.unbounded ? 'unbounded: give the target a stream entry' : 'bounded: the target has a stream entry'}`,
      );
      const schema = await source.schema?.(ctx);
      if (schema) deepStrictEqual(JSON.parse(JSON.stringify(schema)), schema, 'the schema is plain JSON');
      const estimate = await source.estimate?.(ctx);
      ok(estimate === undefined || (Number.isFinite(estimate) && estimate >= 0), `estimate() is a count of rows, got ${String(estimate)}`);
      noCanary(this.target.secret, `${JSON.stringify(first)} ${JSON.stringify(schema)} ${log.lines.join('\n')}`, 'the plan or its log');
    } finally {
      await source.close?.();
    }
  }

  async readAll(): Promise<void> {
    const raw = await this.raw();
    const log = recordingLog();
    const all: Row[] = [];
    const count = await this.planned(raw, log, async ({ schema, partitions }) => {
      for (const partition of partitions) {
        const { rows, rejected } = await this.readPartition(raw, partition, schema, log);
        assertSchema(rows, schema, `partition ${partition.id}`);
        deepStrictEqual(rejected, [], `partition ${partition.id} rejected rows of a good data set`);
        all.push(...rows);
      }
      return partitions.length;
    });
    this.same(all, this.expected(), `the rows of all ${count} partition(s)`);
    noCanary(this.target.secret, `${all.map(canonicalValue).join('\n')}\n${log.lines.join('\n')}`, 'the rows or the log');
  }

  async reread(): Promise<void> {
    const raw = await this.raw();
    const log = recordingLog();
    await this.planned(raw, log, async ({ schema, partitions }) => {
      for (const partition of partitions) {
        const first = await this.readPartition(raw, partition, schema, log);
        const again = await this.readPartition(raw, partition, schema, log);
        this.same(again.rows, first.rows, `partition ${partition.id} read again`);
      }
    });
  }

  async stopMidway(): Promise<void> {
    const raw = await this.raw();
    const baseline = openHandles();
    const log = recordingLog();
    await this.planned(raw, log, async ({ schema, partitions }) => {
      const partition = partitions.find(Boolean) as Partition;
      const controller = new AbortController();
      const source = this.newSource(raw);
      const ctx = this.taskContext(partition, schema, log, { signal: controller.signal });
      const iterator = source.read(partition, ctx)[Symbol.asyncIterator]();
      try {
        await within(this.timeoutMs, 'the first item of a read', iterator.next());
        // the runtime stops a read this way: the signal is aborted and the consumer stops pulling
        controller.abort(new Error('conformance: stopped'));
        await within(this.timeoutMs, 'a read stopped by its consumer (iterator.return())', Promise.resolve(iterator.return?.()));
      } finally {
        await source.close?.();
      }
    });
    await handlesBackTo(baseline, this.timeoutMs, 'a read stopped midway and closed');
  }

  async check(): Promise<void> {
    const run = async (raw: RawOptions) => {
      const log = recordingLog();
      const r = validateConnectorOptions(this.connector, raw, 'source');
      ok(r.value, `check options are invalid: ${r.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
      const check = this.connector.check as NonNullable<AnyConnector['check']>;
      let results: CheckResult[];
      try {
        results = await within(this.timeoutMs * 2, 'check()', check(r.value, { ...this.planContext(log), role: 'source' }));
      } catch (error) {
        if (error instanceof AssertionError) throw error;
        throw new AssertionError({
          message: `check() threw instead of answering with a failed result: ${errorText(error).split('\n')[0]}`,
        });
      }
      ok(Array.isArray(results) && results.length > 0, 'check() answers with at least one result');
      for (const result of results)
        ok(
          typeof result.name === 'string' && typeof result.ok === 'boolean' && typeof result.message === 'string',
          `a check result has a name, ok and a message: ${safeStringify(result)}`,
        );
      noCanary(this.target.secret, `${safeStringify(results)}\n${log.lines.join('\n')}`, 'a check result or its log');
      return results;
    };
    const good = await run(await this.raw());
    deepStrictEqual(
      good.filter((r) => !r.ok),
      [],
      'every check passes for the good options',
    );
    if (this.target.badOptions) {
      const bad = await run(typeof this.target.badOptions === 'function' ? await this.target.badOptions() : this.target.badOptions);
      ok(
        bad.some((r) => !r.ok),
        `a check fails for the bad options: ${safeStringify(bad)}`,
      );
    }
  }

  // unbounded sources

  /** Streams until `want` rows arrived and the source was then quiet for `idleMs`, then aborts the signal. */
  private async drain(
    raw: RawOptions,
    want: number,
    extra: Partial<TaskContext> = {},
    ack = false,
  ): Promise<{ rows: Row[]; chunks: StreamChunk[]; ctx: TaskContext & { rejected: unknown[] } }> {
    const log = recordingLog();
    return this.planned(raw, log, async ({ schema, partitions }) => {
      ok(partitions.length > 0, 'an unbounded source plans at least one partition');
      const controller = new AbortController();
      const source = this.newSource(raw);
      ok(source.stream, `${this.connector.name}'s unbounded source has no stream()`);
      const partition = partitions[0] as Partition;
      const ctx = this.taskContext(partition, schema, log, { signal: controller.signal, ...extra });
      const rows: Row[] = [];
      const chunks: StreamChunk[] = [];
      const iterator = source.stream(partition, ctx)[Symbol.asyncIterator]();
      const idleMs = this.target.stream?.idleMs ?? 400;
      const deadline = Date.now() + this.timeoutMs * 3;
      let lastRowAt = Date.now();
      let pending = iterator.next();
      try {
        // drained: every expected row came and no row for idleMs since (heartbeats do not count)
        while (Date.now() < deadline && !(rows.length >= want && Date.now() - lastRowAt >= idleMs)) {
          const wait = rows.length >= want ? idleMs - (Date.now() - lastRowAt) : deadline - Date.now();
          const next = await Promise.race([pending, new Promise<'idle'>((r) => setTimeout(() => r('idle'), Math.max(1, wait)))]);
          if (next === 'idle') continue;
          if (next.done) break;
          chunks.push(next.value);
          if (next.value.rows.length > 0) lastRowAt = Date.now();
          rows.push(...next.value.rows);
          if (ack) await next.value.ack?.();
          pending = iterator.next();
        }
        controller.abort(new Error('conformance: stopped'));
        // a stream ends by itself once its signal is aborted
        const end = (async () => {
          for (let r = await pending; !r.done; r = await iterator.next()) rows.push(...r.value.rows);
        })();
        await within(this.timeoutMs, 'a stream whose signal was aborted', end);
      } finally {
        await source.close?.();
      }
      noCanary(this.target.secret, `${rows.map(canonicalValue).join('\n')}\n${log.lines.join('\n')}`, 'the rows or the log');
      return { rows, chunks, ctx };
    });
  }

  async streamOnce(): Promise<void> {
    const raw = await this.raw();
    const baseline = openHandles();
    const expected = this.expected();
    const { rows, chunks } = await this.drain(raw, expected.length);
    this.same(rows, expected, 'the rows streamed');
    for (const chunk of chunks) deepStrictEqual(JSON.parse(JSON.stringify(chunk.offsets)), chunk.offsets, 'chunk offsets are plain JSON');
    await handlesBackTo(baseline, this.timeoutMs, 'a stream stopped and closed');
  }

  async acks(): Promise<void> {
    const raw = await this.raw();
    const expected = this.expected();
    const first = await this.drain(raw, expected.length);
    this.same(first.rows, expected, 'the rows streamed');
    const again = await this.drain(raw, expected.length, { attempt: 2 }, true);
    this.same(again.rows, expected, 'the next attempt after no acknowledgement (every message comes again)');
    const after = await this.drain(raw, 0, { attempt: 3 });
    this.same(after.rows, [], 'the next attempt after every chunk was acknowledged (nothing comes again)');
  }

  async resume(): Promise<void> {
    const raw = await this.raw();
    const atLeastOnce = this.newSource(raw).atLeastOnce;
    if (atLeastOnce !== undefined) {
      ok(atLeastOnce.length > 10, 'atLeastOnce says why the source cannot give exactly-once');
      return;
    }
    const expected = this.expected();
    const first = await this.drain(raw, expected.length);
    this.same(first.rows, expected, 'the rows streamed');
    const last = first.chunks.filter((c) => c.rows.length > 0).at(-1);
    ok(last, 'the stream yielded chunks with rows');
    const resumed = await this.drain(raw, 0, { attempt: 2, resumeFrom: JSON.parse(JSON.stringify(last.offsets)) as JsonValue });
    this.same(resumed.rows, [], "a stream resumed from the last chunk's offsets (everything was committed)");
  }
}

/** A copy of `raw` with the dotted `path` set to `value`. */
function withPath(raw: RawOptions, path: string, value: unknown): RawOptions {
  const [head, ...rest] = path.split('.');
  const key = head as string;
  if (rest.length === 0) return { ...raw, [key]: value };
  const inner = raw[key];
  return { ...raw, [key]: withPath(typeof inner === 'object' && inner !== null ? (inner as RawOptions) : {}, rest.join('.'), value) };
}
