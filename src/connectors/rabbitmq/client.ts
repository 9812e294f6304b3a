/**
 * RabbitMQ connections (amqplib) and error classification, shared by the source,
 * the sink and the checks. Runs on the planner and on workers.
 *
 * amqplib does not reconnect: a lost connection closes every channel on it, fails
 * what is pending (a confirm, a consume) and is reported here as a retryable error;
 * the partition's next attempt (or the writer's next batch) opens a new connection,
 * and the broker has put every unacknowledged message back in the queue.
 */
import type { ChannelModel } from 'amqplib';
import type { Log } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import { tlsConfig } from '../../sdk/tls.js';
import type { RabbitmqOptions } from './spec.js';

/** Where the connector connects to, without the password. */
export interface Broker {
  protocol: 'amqp' | 'amqps';
  hostname: string;
  port: number;
  username: string;
  password: string | undefined;
  vhost: string;
}

const decode = (text: string): string => {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
};

/** The broker of these options: from `url` when given (validated as an amqp/amqps URL), else from host/port/user/password/vhost. */
export function brokerOf(opts: RabbitmqOptions): Broker {
  if (opts.url === undefined)
    return {
      protocol: opts.ssl_enabled ? 'amqps' : 'amqp',
      hostname: opts.host,
      port: opts.port,
      username: opts.user,
      password: opts.password,
      vhost: opts.vhost,
    };
  const u = new URL(opts.url);
  const protocol = u.protocol === 'amqps:' || opts.ssl_enabled ? 'amqps' : 'amqp';
  const path = u.pathname.replace(/^\//, '');
  return {
    protocol,
    hostname: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port ? Number(u.port) : protocol === 'amqps' ? 5671 : 5672,
    username: u.username ? decode(u.username) : 'guest',
    password: u.password ? decode(u.password) : undefined,
    vhost: path ? decode(path) : '/',
  };
}

/** `user@host:port vhost /`, for messages (never the password). */
export function where(opts: RabbitmqOptions): string {
  const b = brokerOf(opts);
  return `${b.username}@${b.hostname}:${b.port} (vhost ${b.vhost})`;
}

/** Opens a connection (AMQP handshake and authentication done, within `connect_timeout`). */
export async function connect(opts: RabbitmqOptions, ctx: { baseDir: string; log?: Log }, name = 'weir'): Promise<ChannelModel> {
  const b = brokerOf(opts);
  const tls = b.protocol === 'amqps' ? (tlsConfig({ ...opts, ssl_enabled: true }, ctx.baseDir, ctx.log) ?? {}) : undefined;
  const amqp = await import('amqplib');
  try {
    const model = await amqp.connect(
      {
        protocol: b.protocol,
        hostname: b.hostname,
        port: b.port,
        username: b.username,
        // the broker's built-in guest account has the password guest, as amqplib assumes
        password: b.password ?? (b.username === 'guest' ? 'guest' : ''),
        vhost: b.vhost,
        heartbeat: Math.round(opts.heartbeat / 1000),
      },
      {
        timeout: opts.connect_timeout,
        noDelay: true,
        clientProperties: { connection_name: name },
        ...(tls ? { ...tls, servername: b.hostname } : {}),
      },
    );
    model.on('error', () => {}); // reported by the 'close' event and the operation that fails
    return model;
  } catch (error) {
    throw classify(error, `cannot connect to RabbitMQ at ${where(opts)}`);
  }
}

/** Closes politely, or gives up after 2 s. Never throws. */
export async function release(model: ChannelModel | undefined): Promise<void> {
  if (!model) return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      model.close(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('close timed out')), 2000);
        timer.unref();
      }),
    ]);
  } catch {
    // already closed, or the broker is gone: nothing is left to release
    (model as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream?.destroy?.();
  } finally {
    clearTimeout(timer);
  }
}

const AUTH = /ACCESS[-_]REFUSED|Login was refused|authentication mechanism/i;
const NETWORK =
  /ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|Socket closed|Connection closed|Unexpected close|Heartbeat timeout|Channel closed|channel ended|CONNECTION_FORCED|connect ETIMEDOUT|Frame size exceeds/i;

/** The AMQP reply code of a channel or connection error (404 NOT_FOUND, 403 ACCESS_REFUSED, 406 PRECONDITION_FAILED…). */
export function replyCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'number') return code;
  const m = /\b(\d{3}) \(([A-Z-]+)\)/.exec((error as Error | undefined)?.message ?? '');
  return m ? Number(m[1]) : undefined;
}

export function isAuthError(error: unknown): boolean {
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  const message = (error as Error | undefined)?.message ?? '';
  return AUTH.test(message) || (cause !== undefined && cause !== error && isAuthError(cause));
}

/**
 * An amqplib or network error as a {@link WeirError}: authentication and vhost
 * refusals and missing queues or exchanges are configuration errors (every retry
 * would meet them again); lost connections, timeouts, a closed channel and a
 * broker shutting down are retryable.
 */
export function classify(error: unknown, context: string): WeirError {
  if (error instanceof WeirError) return error;
  const message = (error as Error | undefined)?.message ?? String(error);
  const code = (error as { code?: unknown } | undefined)?.code;
  const reply = replyCode(error);
  if (AUTH.test(message))
    return new WeirError(`${context}: the broker refused the login (ACCESS_REFUSED); check user and password (or the url)`, {
      code: 'auth_failed',
      kind: 'config',
      cause: error,
    });
  if (reply === 530 || /NOT_ALLOWED|access to vhost/i.test(message))
    return new WeirError(`${context}: ${message}; check vhost and the user's permissions on it`, {
      code: 'vhost_refused',
      kind: 'config',
      cause: error,
    });
  if (reply === 403)
    return new WeirError(`${context}: ${message}; the user lacks a permission (configure, write or read) on this resource`, {
      code: 'access_refused',
      kind: 'config',
      cause: error,
    });
  if (reply === 404) return new WeirError(`${context}: ${message}`, { code: 'not_found', kind: 'config', cause: error });
  if (reply === 406) return new WeirError(`${context}: ${message}`, { code: 'precondition_failed', kind: 'config', cause: error });
  const retryable = reply === 320 || reply === 541 || NETWORK.test(message) || (typeof code === 'string' && NETWORK.test(code));
  return new WeirError(`${context}: ${message}`, {
    code: typeof code === 'string' ? code : reply ? `amqp_${reply}` : 'amqp_error',
    kind: 'connector',
    retryable,
    cause: error,
  });
}
