/**
 * Lazy sources and sinks: the connector's code (and its driver) loads on first
 * use, so a run that does not use the connector never pays its start-up cost.
 *
 * @example
 * source: lazySource(async () => (await import('./source.js')).parquetSource),
 * sink: lazySink(async () => (await import('./sink.js')).parquetSink),
 */
import type { CommitContext, PlanContext, Sink, Source, TaskContext } from './connector.js';
import type { EncodedRows, EncodingHints, JsonValue, Partition, Row } from './types.js';

type Loader<O, T> = () => Promise<(options: O) => T>;

function once<O, T>(load: Loader<O, T>, options: O): () => Promise<T> {
  let instance: Promise<T> | undefined;
  return () => {
    instance ??= load().then((factory) => factory(options));
    return instance;
  };
}

/**
 * A source factory whose implementation is imported when the source is first used.
 * `encodes`: the source has `readEncoded` (the runtime asks before loading it); where
 * the loaded source declines, its `read` rows are handed on instead.
 */
export function lazySource<O>(load: Loader<O, Source>, encodes = false): (options: O) => Source {
  return (options) => {
    const get = once(load, options);
    return {
      ...(encodes
        ? {
            readEncoded: (partition: Partition, ctx: TaskContext, format: EncodedRows['format'], hints?: EncodingHints) =>
              // whether the loaded source encodes is known only once it loaded: where it declines, its
              // rows pass instead, which the runtime's batcher takes as it takes any source's rows
              (async function* () {
                const source = await get();
                yield* source.readEncoded?.(partition, ctx, format, hints) ?? source.read(partition, ctx);
              })() as AsyncIterable<EncodedRows>,
          }
        : {}),
      schema: async (ctx: PlanContext) => (await get()).schema?.(ctx),
      partitions: async (ctx: PlanContext) => (await (await get()).partitions?.(ctx)) ?? [{ id: '0' }],
      estimate: async (ctx: PlanContext) => (await get()).estimate?.(ctx),
      async *read(partition: Partition, ctx: TaskContext): AsyncIterable<Row | Row[]> {
        yield* (await get()).read(partition, ctx);
      },
      close: async () => (await get()).close?.(),
    };
  };
}

/**
 * What the runtime reads of a sink before it is loaded (the planner asks), or whether
 * the loaded sink has a method the runtime treats as optional. Given as functions of
 * the options where the answer depends on them.
 */
export interface LazySinkTraits<O> {
  /** The encodings its writers take (`Sink.accepts`). */
  accepts?: (options: O) => readonly EncodedRows['format'][];
  /** Whether it takes an unbounded source (`Sink.streaming`). */
  streaming?: (options: O) => Sink['streaming'];
  /** It has `describeTarget` (dry runs). */
  describesTarget?: boolean;
  /** It has `leftovers` (staging of abandoned runs). */
  leftovers?: boolean;
}

/**
 * A sink factory whose implementation is imported when the sink is first used.
 * `traits` says what the runtime reads before loading it; `accepts` alone may be
 * given as the function.
 */
export function lazySink<O>(load: Loader<O, Sink>, traits: LazySinkTraits<O> | LazySinkTraits<O>['accepts'] = {}): (options: O) => Sink {
  const t: LazySinkTraits<O> = typeof traits === 'function' ? { accepts: traits } : traits;
  return (options) => {
    const get = once(load, options);
    const streaming = t.streaming?.(options);
    return {
      ...(t.accepts ? { accepts: t.accepts(options) } : {}),
      ...(streaming !== undefined ? { streaming } : {}),
      setup: async (ctx: CommitContext) => (await get()).setup?.(ctx),
      ...(t.describesTarget
        ? {
            describeTarget: async (ctx: CommitContext) => {
              const sink = await get();
              if (!sink.describeTarget)
                throw new Error('a lazy sink declared describesTarget, and the sink it loaded has no describeTarget');
              return sink.describeTarget(ctx);
            },
          }
        : {}),
      writer: async (partition: Partition, ctx: TaskContext) => (await get()).writer(partition, ctx),
      commit: async (messages: JsonValue[], ctx: CommitContext) => (await get()).commit?.(messages, ctx),
      abort: async (messages: JsonValue[], ctx: CommitContext) => (await get()).abort?.(messages, ctx),
      recover: async (ctx: CommitContext) => {
        const sink = await get();
        return sink.recover ? sink.recover(ctx) : { jobCommitted: false, partitions: [] };
      },
      ...(t.leftovers
        ? {
            leftovers: async (runIds: readonly string[], ctx: CommitContext, drop: boolean) =>
              (await (await get()).leftovers?.(runIds, ctx, drop)) ?? [],
          }
        : {}),
      close: async () => (await get()).close?.(),
    };
  };
}
