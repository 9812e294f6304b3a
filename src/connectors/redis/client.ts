/**
 * Redis connections (ioredis) and error classification, shared by the source,
 * the sink and the checks. Runs on the planner and on workers.
 *
 * weir retries whole batches itself, so ioredis is told not to: no offline
 * queue, no automatic re-sending after a reconnect, no reconnect at all — a
 * lost connection fails the pending pipeline (retryable) and the next write
 * opens a new connection.
 */
import type { Redis } from 'ioredis';
import type { Log } from '../../sdk/connector.js';
import { RowError, WeirError } from '../../sdk/errors.js';
import { tlsConfig } from '../../sdk/tls.js';
import type { RedisOptions } from './spec.js';

export function where(opts: RedisOptions): string {
  return `${opts.username ? `${opts.username}@` : ''}${opts.host}:${opts.port}/${opts.db}`;
}

/** Opens a connection and waits until it is ready (AUTH and SELECT done). */
export async function connect(opts: RedisOptions, ctx: { baseDir: string; log?: Log }, name = 'weir'): Promise<Redis> {
  const tls = tlsConfig(opts, ctx.baseDir, ctx.log);
  // the driver loads on first use: a run that does not touch Redis does not pay for it
  const { Redis: RedisClient } = await import('ioredis');
  const client = new RedisClient({
    host: opts.host,
    port: opts.port,
    db: opts.db,
    ...(opts.username ? { username: opts.username } : {}),
    ...(opts.password !== undefined ? { password: opts.password } : {}),
    ...(tls ? { tls: { ...tls, servername: opts.host } } : {}),
    connectTimeout: opts.connect_timeout,
    connectionName: name,
    lazyConnect: true,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let lastError: unknown;
  const onError = (error: unknown) => {
    lastError = error;
  };
  client.on('error', onError); // the command that fails reports it; during connect() it says why (AUTH refused…)
  // ioredis's connectTimeout ends at the TCP connect; a peer that accepts and never
  // answers AUTH/SELECT/INFO would hold the run forever: the whole handshake gets the time
  let timer: NodeJS.Timeout | undefined;
  const handshake = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new WeirError(
            `cannot connect to Redis at ${where(opts)}: no answer to the connection handshake within connect_timeout (${opts.connect_timeout} ms); check that this address is a Redis server, or raise connect_timeout`,
            { code: 'ETIMEDOUT', kind: 'connector', retryable: true },
          ),
        ),
      opts.connect_timeout,
    );
  });
  try {
    await Promise.race([client.connect(), handshake]);
  } catch (error) {
    client.disconnect();
    throw classify(error instanceof WeirError ? error : (lastError ?? error), `cannot connect to Redis at ${where(opts)}`);
  } finally {
    clearTimeout(timer);
  }
  client.off('error', onError);
  client.on('error', () => {});
  return client;
}

/** Closes politely (QUIT), or drops the socket when that does not work. Never throws. */
export async function release(client: Redis | undefined): Promise<void> {
  if (!client) return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await Promise.race([client.quit(), new Promise((_, reject) => setTimeout(() => reject(new Error('quit timed out')), 2000).unref())]);
  } catch {
    client.disconnect();
  }
}

const RETRYABLE_REPLIES = ['LOADING', 'BUSY', 'TRYAGAIN', 'MASTERDOWN', 'CLUSTERDOWN', 'READONLY', 'OOM', 'MISCONF'];
const AUTH_REPLIES = ['WRONGPASS', 'NOAUTH', 'NOPERM'];
const NETWORK =
  /ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|Connection is closed|Stream isn't writeable|Command timed out|connect ETIMEDOUT|Connection lost/i;

function replyPrefix(message: string): string {
  return /^[A-Z]+/.exec(message)?.[0] ?? '';
}

export function isAuthError(error: unknown): boolean {
  const message = (error as Error | undefined)?.message ?? '';
  const p = replyPrefix(message);
  return p === 'WRONGPASS' || p === 'NOAUTH' || /invalid password|invalid username-password/i.test(message);
}

/**
 * A Redis or network error as a {@link WeirError}: WRONGTYPE is a bad row; network
 * errors, timeouts and LOADING/BUSY/OOM… are retryable; authentication and ACL
 * refusals are configuration errors (they would refuse every row alike).
 */
export function classify(error: unknown, context: string): WeirError {
  if (error instanceof WeirError) return error;
  const message = (error as Error | undefined)?.message ?? String(error);
  const code = (error as { code?: string } | undefined)?.code;
  const prefix = replyPrefix(message);
  if (prefix === 'WRONGTYPE') return new RowError(`${context}: ${message}`, { code: 'WRONGTYPE', cause: error });
  if (AUTH_REPLIES.includes(prefix) || isAuthError(error))
    return new WeirError(`${context}: ${message}; check username, password and the user's ACL`, {
      code: prefix || 'auth_failed',
      kind: 'config',
      cause: error,
    });
  const retryable = RETRYABLE_REPLIES.includes(prefix) || NETWORK.test(message) || (typeof code === 'string' && NETWORK.test(code));
  return new WeirError(`${context}: ${message}`, { code: prefix || code || 'redis_error', kind: 'connector', retryable, cause: error });
}
