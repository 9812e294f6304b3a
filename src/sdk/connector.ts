/**
 * The connector author's API, modelled on Spark's Python Data Source API.
 *
 * A connector is one {@link defineConnector} call: an option spec plus a source
 * factory, a sink factory, or both. Factories are cheap and do no I/O; they run
 * on the planner and on every worker with the same validated options.
 *
 * Roles and where they run:
 * - `Source.schema()`      planner, once per run
 * - `Source.partitions()`  planner, once per run — default: one partition `{ id: "0" }`
 * - `Source.read()`        worker, once per partition attempt
 * - `Sink.setup()`         planner, once per run before any writer
 * - `Sink.writer()`        worker, once per partition attempt
 * - `Writer.write()`       worker, once per batch; may be retried with the same batch
 * - `Writer.commit()`      worker, once per partition (per epoch of an unbounded source), after its last batch
 * - `Writer.abort()`       worker, after a failure; must be idempotent
 * - `Writer.close()`       worker, always, after commit or abort
 * - `Sink.commit()`        planner, once when every partition committed; must be idempotent
 * - `Sink.abort()`         planner, once when any partition failed; must be idempotent
 */

import type { RowLocation } from './errors.js';
import { type OptionsOf, type Rule, type Spec, type ValidationResult, validateOptions } from './options.js';
import type { EncodedRows, EncodingHints, JsonValue, Partition, Row, Schema } from './types.js';

/** The logger a connector gets. Fields are structured; never put secrets in messages. */
export interface Log {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** What every planner-side call receives. */
export interface PlanContext {
  readonly runId: string;
  readonly pipeline: string;
  readonly log: Log;
  readonly signal: AbortSignal;
  /** Directory relative paths in the pipeline file resolve against. */
  readonly baseDir: string;
  /**
   * The rows are sensitive (the dead-letter sink receives rejected records): files
   * the sink creates must be readable by their owner only (mode 0600).
   */
  readonly ownerOnly?: boolean;
  /**
   * Incremental state: what each partition of the pipeline's last succeeded run
   * reported with `TaskContext.setState` (by partition id), e.g. the highest cursor
   * value it read. Planner only (`partitions()` puts what a partition needs into it).
   * Read back from the checkpoint store: untrusted, the source checks its shape.
   */
  readonly sourceState?: Readonly<Record<string, JsonValue>>;
}

/** What a connector counts through `TaskContext.count`. */
export type CountedMetric = 'bytes_sent' | 'rows_inserted' | 'rows_updated';

/** What every worker-side call receives, once per partition attempt. */
export interface TaskContext extends PlanContext {
  readonly partitionId: string;
  /** 1 for the first attempt of this partition. */
  readonly attempt: number;
  /** The source schema, when the source declared one. */
  readonly schema: Schema | undefined;
  /**
   * Hands a row the source could not read (bad CSV field, unparsable JSON) to the
   * run's error policy: dead-lettered with `errors.tolerance: all`, else the run fails.
   * `at` says where the row is in the source (file and line, table and key): the
   * error's message then names it (see `locateError`), in logs and dead letters alike.
   */
  reject(record: unknown, error: unknown, at?: RowLocation): Promise<void>;
  /**
   * Adds to this partition's counters: `bytes_sent` when the writer knows the exact
   * size; `rows_inserted` and `rows_updated`, an upsert's split of the rows it wrote
   * where the database says which (count them at the commit: they are the committed rows').
   */
  count(metric: CountedMetric, value: number): void;
  /**
   * Registers work to run once this partition's rows are committed by the sink and
   * checkpointed (worker, at most once per attempt) — e.g. acknowledging queue
   * messages or stream entries, so a failure before the commit redelivers them.
   * A callback that throws fails the partition (its rows are already committed:
   * at-least-once redelivery, never loss).
   */
  onCommit(callback: () => Promise<void> | void): void;
  /**
   * The run's rate limiter, for a target that reports its own limit (HTTP
   * `RateLimit-*` headers): `observe` slows every task of the run down before the
   * target starts refusing. Optional: absent in contexts without a limiter.
   */
  readonly rateLimit?: { observe(headroom: { limit: number; remaining: number; resetMs?: number }): void };
  /**
   * Unbounded sources: the offsets of the last epoch of this partition that was
   * committed (as the source supplied them), when the run continues after a crash, a
   * stop or a failed attempt. A message at or before them was committed already: the
   * source skips it (and may acknowledge it) instead of yielding it again.
   */
  readonly resumeFrom?: JsonValue;
  /**
   * Bounded sources: this partition's incremental state (plain JSON, e.g. the highest
   * cursor value read). The last value set is saved with the partition's checkpoint;
   * once the run's job commit succeeded, the next run's planner receives it in
   * `PlanContext.sourceState`. A failed run saves nothing. Optional: absent in
   * contexts that cannot save it.
   */
  setState?(state: JsonValue): void;
}

/**
 * What an unbounded source yields ({@link Source.stream}): rows and the source's
 * offsets just after them (plain JSON). The runtime cuts epochs only between chunks;
 * `ack` runs once the epoch holding the chunk was committed by the sink (and
 * checkpointed), never before. A chunk without rows is a heartbeat: it tells the
 * runtime the source is alive and idle.
 */
export interface StreamChunk {
  rows: Row[];
  offsets: JsonValue;
  ack?: () => Promise<void> | void;
  /**
   * Messages still waiting in the source after this chunk, when the broker says
   * (JetStream pending, queue depth, stream lag): the consumer-lag gauge
   * (`weir_source_lag_messages`), the progress line and `lag` alerts read it.
   */
  lag?: number;
}

/** An epoch of an unbounded source's partition, as the writer's commit receives it: store it with the rows (exactly-once). */
export interface EpochMark {
  /** 1, 2, … within the run and partition. */
  epoch: number;
  /** The source's offsets after the epoch's last row. */
  offsets: JsonValue;
}

/** Per-partition writer. Rows it receives become visible only through commit. */
export interface Writer {
  /** Writes one batch. May be retried with the same batch after a retryable error. */
  write(batch: Row[]): Promise<void> | void;
  /**
   * Optional fast path: writes rows still encoded by the source (e.g. CSV bytes into
   * PostgreSQL COPY). Returns false when this writer cannot take this batch as it is
   * (the runtime then writes `decode()`d rows). When it throws a non-retryable error
   * the runtime decodes the batch and writes the rows one way or the other, so a bad
   * record is isolated exactly as on the row path. Like `write`, a failed call must
   * leave nothing of the batch written.
   */
  writeEncoded?(batch: EncodedRows): Promise<boolean>;
  /**
   * Optional, with {@link sendPrepared}, for a writer whose batch waits on the network (the
   * http sink): the first half of `write` — the batch made into what is sent (request
   * bodies, with what identifies it, such as its Idempotency-Key). `sendPrepared`
   * sends it; `write(rows)` must equal `sendPrepared(await prepareBatch(rows))`. With the pair, when none of a
   * batch's rows can be dead-lettered (`errors.tolerance: none`), the runtime lets the
   * rows go once prepared, so they do not live through the request (1M rows to a
   * local API, three alternating runs each: 232k → 260k rows/s, peak RSS 217 →
   * 178 MB), and a retry sends the same prepared batch again. A row it cannot encode throws a RowError, as `write`.
   */
  prepareBatch?(batch: Row[]): Promise<unknown> | unknown;
  /** Sends what {@link prepareBatch} made of a batch. May be retried with the same value after a retryable error. */
  sendPrepared?(prepared: unknown): Promise<void>;
  /** How this writer reads encoded rows (worker, once, before the first batch), so the source can skip rewrites the target does not need. */
  encodingHints?(format: EncodedRows['format']): Promise<EncodingHints> | EncodingHints;
  /**
   * Makes the partition's rows durable (and, for exactly-once sinks, visible with the
   * checkpoint). Returns the commit message. For an epoch of an unbounded source,
   * `epoch` is given: an exactly-once sink stores it with the checkpoint, in the same
   * transaction (see `Bookkeeping.storeCheckpoint`), and puts it in its message.
   */
  commit?(epoch?: EpochMark): Promise<JsonValue> | JsonValue;
  /** Discards whatever this writer wrote. Idempotent. */
  abort?(): Promise<void> | void;
  /** Releases connections and handles. Always called, after commit or abort. */
  close?(): Promise<void> | void;
}

export interface Source {
  /** Column names and types, if known before reading. */
  schema?(ctx: PlanContext): Promise<Schema | undefined> | Schema | undefined;
  /** Splits the work. Partitions are plain JSON; they cross processes. */
  partitions?(ctx: PlanContext): Promise<Partition[]> | Partition[];
  /** Total rows, when cheap to know (for progress and ETA). */
  estimate?(ctx: PlanContext): Promise<number | undefined> | number | undefined;
  /** Reads one partition as rows or arrays of rows (arrays are faster). */
  read(partition: Partition, ctx: TaskContext): AsyncIterable<Row | Row[]>;
  /**
   * Optional fast path (worker, instead of `read`): the partition as rows still encoded
   * in `format`, used when the sink's writer takes that encoding as it is (`Sink.accepts`).
   * Returns undefined when these options do not allow it; the runtime then calls `read`.
   */
  readEncoded?(
    partition: Partition,
    ctx: TaskContext,
    format: EncodedRows['format'],
    hints?: EncodingHints,
  ): AsyncIterable<EncodedRows> | undefined;
  /**
   * An unbounded source (a queue, a stream) never ends by itself: the runtime reads it
   * through {@link stream} and commits each partition in epochs (`stream.epoch_rows`,
   * `stream.epoch_interval`) until the run is stopped or `stream.stop_when_idle` passes.
   */
  readonly unbounded?: boolean;
  /**
   * Unbounded sources whose offsets cannot tell a message an earlier epoch committed
   * from a new one (a queue without sequence numbers, such as RabbitMQ or MQTT): a
   * sentence saying why and what gives exactly-once instead. `delivery: exactly-once`
   * is then refused at the start of the run with it. Absent: what the source
   * redelivers at or before `ctx.resumeFrom` is recognised and skipped.
   */
  readonly atLeastOnce?: string;
  /**
   * Unbounded sources (worker, once per partition attempt): the partition's messages, from
   * `ctx.resumeFrom` on. Its `ctx.signal` also fires when the runtime is done reading (the
   * stream went idle, a drain, the attempt failed): a source waiting for messages should
   * then return at once, acknowledging nothing, since the runtime's `return()` waits for it.
   */
  stream?(partition: Partition, ctx: TaskContext): AsyncIterable<StreamChunk>;
  /** Releases planner-side resources. */
  close?(): Promise<void> | void;
}

export interface CommitContext extends PlanContext {
  readonly schema: Schema | undefined;
}

/** What an exactly-once sink finds in its target for a run (see {@link Sink.recover}). */
export interface RecoveredState {
  /** The job commit of this run already happened: nothing is left to do. */
  jobCommitted: boolean;
  /** Partitions whose rows and checkpoint are durably committed, with their commit messages. */
  partitions: { partition_id: string; message: JsonValue }[];
}

export interface Sink {
  /**
   * Whether the sink takes an unbounded source: `true` when each epoch's writer commit
   * makes its rows visible; a sentence saying why not otherwise (e.g. a table published
   * only at the job commit). Absent: refused.
   */
  readonly streaming?: true | string;
  /** Encodings this sink's writers take as they are (`Writer.writeEncoded`); the runtime then asks the source for them (`Source.readEncoded`). */
  readonly accepts?: readonly EncodedRows['format'][];
  /** Prepares the target once per run (planner). */
  setup?(ctx: CommitContext): Promise<void> | void;
  /**
   * What a run would do to the target, without changing it (`weir run --dry-run`): one
   * line such as `create table public.events (id bigint, …, PRIMARY KEY (id)), then append`
   * or `append to public.events (exists; 5 columns match)`. Throws as `setup` would when
   * the run cannot work (a missing table that may not be created, columns that do not match).
   */
  describeTarget?(ctx: CommitContext): Promise<string> | string;
  /** Opens the writer of one partition (worker). */
  writer(partition: Partition, ctx: TaskContext): Promise<Writer> | Writer;
  /** Job commit with every partition's commit message. Idempotent. */
  commit?(messages: JsonValue[], ctx: CommitContext): Promise<void> | void;
  /** Job abort with the messages of the partitions that did commit. Idempotent. */
  abort?(messages: JsonValue[], ctx: CommitContext): Promise<void> | void;
  /**
   * Exactly-once sinks only (planner, once per run, before any writer): what the target
   * already holds for `ctx.runId`. A resumed run skips these partitions. For this to be
   * exact, `Writer.commit()` must store a checkpoint `(pipeline, runId, partition id)` in
   * the same transaction as the partition's rows, and `Sink.commit()` must mark the run
   * committed in the same transaction that publishes it.
   */
  recover?(ctx: CommitContext): Promise<RecoveredState> | RecoveredState;
  /**
   * Staging that runs which ended without cleaning up (killed, or an abort that failed)
   * left for this target: the names of their staging files or tables; with `drop`, they
   * are deleted too. Planner: at the start of the next run of the pipeline, with the
   * ids of its runs that are over (none of them alive, none resumed), and from
   * `weir state show` without `drop`. Must touch nothing but staging that these run ids
   * name — never the target, never another run's. Idempotent.
   */
  leftovers?(runIds: readonly string[], ctx: CommitContext, drop: boolean): Promise<string[]> | string[];
  /** Releases planner-side resources. */
  close?(): Promise<void> | void;
}

/** What a health check receives: the plan context plus the role the connector plays in this pipeline. */
export interface CheckContext extends PlanContext {
  readonly role: 'source' | 'sink';
}

export type CheckName = 'connection' | 'authentication' | 'rate_limit' | 'disk_space' | 'target' | string;

export interface CheckResult {
  name: CheckName;
  ok: boolean;
  message: string;
}

export interface ConnectorDefinition<S extends Spec = Spec> {
  /** The `type:` users write, e.g. `postgres`. Lowercase letters, digits and hyphens. */
  name: string;
  /** One line shown by `weir connectors` and at the top of the docs. */
  description: string;
  options: S;
  /** Cross-field rules checked in every role. */
  rules?: Rule[];
  /** Rules checked only when the connector is used as a source. */
  sourceRules?: Rule[];
  /** Rules checked only when the connector is used as a sink. */
  sinkRules?: Rule[];
  /** Creates a source for validated options. No I/O. */
  source?: (options: OptionsOf<S>) => Source;
  /** Creates a sink for validated options. No I/O. */
  sink?: (options: OptionsOf<S>) => Sink;
  /** Whether the sink commits a partition's rows and its checkpoint atomically. */
  exactlyOnce?: boolean;
  /**
   * Whether a failed run leaves the sink's target exactly as it was before the run:
   * the writers' and the job's abort take back everything the run wrote (staged rows,
   * tables it created). `false` (the default) when rows a failed run wrote can stay;
   * `weir connectors`, the docs and a failed run's summary then say so.
   */
  transactional?: boolean;
  /** Health checks for `weir check`: connection, authentication, rate limits, disk space. */
  check?: (options: OptionsOf<S>, ctx: CheckContext) => Promise<CheckResult[]>;
}

/** A connector as the runtime sees it (options erased). */
export type AnyConnector = ConnectorDefinition<Spec>;

const NAME = /^[a-z][a-z0-9-]*$/;

/**
 * Declares a connector. Checks the definition itself (author errors) at import time.
 *
 * @example
 * export default defineConnector({
 *   name: 'hello',
 *   description: 'Says hello N times.',
 *   options: { times: o.int({ min: 1 }).describe('How many rows.').default(3) },
 *   source: (opts) => ({
 *     async *read() { for (let i = 0; i < opts.times; i++) yield { id: i, greeting: 'hello' }; },
 *   }),
 * });
 */
export function defineConnector<S extends Spec>(definition: ConnectorDefinition<S>): ConnectorDefinition<S> {
  if (!NAME.test(definition.name)) throw new Error(`connector name "${definition.name}" must match ${NAME}`);
  if (!definition.source && !definition.sink) throw new Error(`connector "${definition.name}" must define a source, a sink, or both`);
  if ('type' in definition.options) throw new Error(`connector "${definition.name}": "type" is a reserved option name`);
  return definition;
}

/**
 * Validates options for a connector in one role: its option spec, its rules and that
 * role's rules (`sourceRules` / `sinkRules`). The one place that combines them — used
 * by the pipeline validator, the conformance suite and connector tests.
 */
export function validateConnectorOptions<S extends Spec>(
  connector: ConnectorDefinition<S>,
  input: unknown,
  role: 'source' | 'sink',
  path: string = role,
  ignoreKeys: readonly string[] = [],
): ValidationResult<OptionsOf<S>> {
  const roleRules = (role === 'source' ? connector.sourceRules : connector.sinkRules) ?? [];
  return validateOptions(connector.options, input, path, [...(connector.rules ?? []), ...roleRules], ignoreKeys);
}
