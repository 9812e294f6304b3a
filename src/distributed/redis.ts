/**
 * The Redis side of a distributed run (BullMQ engine, `weir worker`, `weir status`,
 * `weir cancel`): the connection checked once with one clear error, the key names of
 * what weir keeps beside BullMQ's own keys, and the run record.
 *
 * Nothing here ever holds a resolved secret: job data carries the pipeline text with
 * its references, results and events are redacted by the worker that made them.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { WeirError } from '../sdk/errors.js';

/** BullMQ's key prefix for weir's queues: every key of a distributed run starts with it. */
export const PREFIX = 'weir';
export const DEFAULT_QUEUE = 'weir';
/** Redis' own recommendation for BullMQ: older versions lack commands its scripts use. */
const MIN_REDIS = [6, 2];

/** Checks a `--redis` URL (planner or worker, once); the error names the flag, the value without its password, and the fix. */
export function parseRedisUrl(value: string | undefined, flag = '--redis'): URL {
  if (!value)
    throw new WeirError(`${flag} is required: the Redis server of the distributed run, e.g. redis://127.0.0.1:6379`, {
      kind: 'config',
      code: 'redis_url',
    });
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new WeirError(`${flag} must be a URL such as redis://host:6379 or rediss://host:6380, got ${JSON.stringify(safeUrl(value))}`, {
      kind: 'config',
      code: 'redis_url',
    });
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
    throw new WeirError(`${flag} must start with redis:// or rediss://, got ${JSON.stringify(safeUrl(value))}`, {
      kind: 'config',
      code: 'redis_url',
    });
  if (!url.hostname) throw new WeirError(`${flag} has no host: ${JSON.stringify(safeUrl(value))}`, { kind: 'config', code: 'redis_url' });
  return url;
}

/** A Redis URL as it may be printed: its password replaced. */
export function safeUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return value.replace(/\/\/([^@/]*)@/, '//***@');
  }
}

/** Checks a `--queue` name: BullMQ's key names must not contain a colon. */
export function parseQueueName(value: string | undefined): string {
  const name = value ?? DEFAULT_QUEUE;
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(name))
    throw new WeirError(`--queue must be 1-100 letters, digits, "_", "." or "-", got ${JSON.stringify(name)}`, {
      kind: 'config',
      code: 'queue_name',
    });
  return name;
}

/** The options every weir connection to Redis uses (BullMQ needs `maxRetriesPerRequest: null`: commands wait out a reconnect). */
export function redisOptions(url: URL): RedisOptions {
  return { maxRetriesPerRequest: null, connectionName: 'weir', ...(url.protocol === 'rediss:' ? { tls: {} } : {}) };
}

/**
 * Closes a BullMQ object (Queue, QueueEvents), waiting at most `ms`: a close that meets its
 * connection reconnecting after a Redis restart may never settle (measured: 3 of 8
 * QueueEvents closes hung after a restart; ioredis#2169). The caller disconnects the
 * connections after it in any case.
 */
export async function closeWithin(close: () => Promise<void>, ms = 2000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([close().catch(() => {}), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

export function connect(url: URL): Redis {
  return new Redis(url.toString(), redisOptions(url));
}

/**
 * Connects once, without retrying, and checks the server (planner or worker, at
 * start): unreachable is one line naming the URL (exit 3); an old Redis or an
 * eviction policy other than `noeviction` is a warning (BullMQ's keys must never be
 * evicted).
 */
export async function probeRedis(url: URL, timeoutMs = 3000): Promise<{ version: string; warnings: string[] }> {
  const probe = new Redis(url.toString(), {
    ...redisOptions(url),
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  probe.on('error', () => {});
  try {
    await probe.connect();
    const info = await probe.info('server');
    const version = /redis_version:([^\r\n]+)/.exec(info)?.[1]?.trim() ?? 'unknown';
    const warnings: string[] = [];
    const [major = 0, minor = 0] = version.split('.').map(Number);
    if (major < (MIN_REDIS[0] as number) || (major === MIN_REDIS[0] && minor < (MIN_REDIS[1] as number)))
      warnings.push(`Redis ${version} is older than ${MIN_REDIS.join('.')}, the oldest version weir's distributed runs are tested with`);
    try {
      const policy = ((await probe.config('GET', 'maxmemory-policy')) as string[])[1];
      if (policy && policy !== 'noeviction')
        warnings.push(`Redis maxmemory-policy is ${policy}: set it to noeviction, or Redis may evict the run's jobs under memory pressure`);
    } catch {
      // CONFIG may be disabled (managed Redis): the docs say what to set
    }
    return { version, warnings };
  } catch (error) {
    throw new WeirError(
      `cannot reach Redis at ${safeUrl(url.toString())}: ${/connection is closed/i.test((error as Error).message) || !(error as Error).message ? 'connection refused or closed' : (error as Error).message}; check --redis and that the server runs`,
      {
        kind: 'connector',
        code: 'redis_unreachable',
      },
    );
  } finally {
    probe.disconnect();
  }
}

/** weir's own keys of one run, beside BullMQ's (`weir:<queue>:<job id>`); job ids never hold a colon, so these cannot clash. */
export function runKeys(queue: string, runId: string) {
  const base = `${PREFIX}:${queue}:_run:${runId}`;
  return {
    /** The run record (hash). */
    record: base,
    /** Present once the run was cancelled or failed: workers stop its partitions. */
    cancel: `${base}:cancel`,
    /** The shared rate limits (GCRA theoretical arrival times). */
    rows: `${base}:limit:rows`,
    requests: `${base}:limit:requests`,
    /** The run's concurrency slots (sorted set of job ids, scored by lease expiry). */
    slots: `${base}:slots`,
    /** Present while the shared circuit breaker is open (expires when a probe may go). */
    breaker: `${base}:breaker`,
  };
}

/** A job id for BullMQ: the run id and the partition's index (partition ids are arbitrary text; job ids must not hold a colon). */
export const partitionJobId = (runId: string, index: number) => `${runId}-p${index}`;

export interface RunRecord {
  run_id: string;
  pipeline: string;
  queue: string;
  status: string;
  created_at: string;
  /** `[job id, partition id]` of every partition the flow holds, in plan order. */
  partitions: [string, string][];
  concurrency: number;
  commit_by: 'submitter' | 'worker';
}

/** Reads a run record back: untrusted input, checked before use. */
export async function readRunRecord(redis: Redis, queue: string, runId: string): Promise<RunRecord | undefined> {
  const raw = await redis.hget(runKeys(queue, runId).record, 'json');
  if (raw === null) return undefined;
  try {
    const r = JSON.parse(raw) as RunRecord;
    if (r.run_id !== runId || !Array.isArray(r.partitions)) throw new Error('not a run record');
    const status = await redis.hget(runKeys(queue, runId).record, 'status');
    return { ...r, status: status ?? r.status };
  } catch (error) {
    throw new WeirError(`the record of run ${runId} in Redis is malformed (${(error as Error).message})`, { kind: 'internal' });
  }
}

/** Run records are kept this long after the run ends (BullMQ's finished jobs too). */
export const KEEP_SECONDS = 7 * 24 * 3600;
