/**
 * NATS connections (nats.js v3) and error classification, shared by the source, the
 * sink and the checks. Runs on the planner and on workers.
 *
 * The client reconnects by itself (`reconnect_attempts`, `reconnect_wait`); the
 * source watches the connection's status to know when deliveries may have been lost
 * in transit. Credentials go to the client's authenticators only: they never appear
 * in a message weir builds (`where` names servers, never users).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Authenticator, NatsConnection } from '@nats-io/nats-core';
import type { Log } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import { tlsConfig } from '../../sdk/tls.js';
import type { NatsOptions } from './spec.js';

/** The servers, for messages (no credentials: the spec refuses them in URLs). */
export function where(opts: NatsOptions): string {
  return opts.servers.join(',');
}

export interface Nats {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

function authenticator(opts: NatsOptions, baseDir: string): Promise<Authenticator | undefined> | Authenticator | undefined {
  if (opts.creds_file !== undefined) {
    const file = isAbsolute(opts.creds_file) ? opts.creds_file : resolve(baseDir, opts.creds_file);
    let creds: Uint8Array;
    try {
      creds = readFileSync(file);
    } catch (error) {
      throw new WeirError(
        `creds_file: cannot read ${file} (${(error as { code?: string }).code ?? 'error'}); give a readable .creds file`,
        {
          kind: 'config',
          code: 'creds_unreadable',
        },
      );
    }
    return import('@nats-io/nats-core').then(({ credsAuthenticator }) => credsAuthenticator(creds));
  }
  return undefined;
}

/** Opens a connection (with its JetStream client and manager) and waits until the server accepted it. */
export async function connect(opts: NatsOptions, ctx: { baseDir: string; log?: Log }, name = 'weir'): Promise<Nats> {
  const tls = tlsConfig(opts, ctx.baseDir, ctx.log);
  const auth = await authenticator(opts, ctx.baseDir);
  // the client loads on first use: a run that does not touch NATS does not pay for it
  const [{ connect: natsConnect }, { jetstream, jetstreamManager }] = await Promise.all([
    import('@nats-io/transport-node'),
    import('@nats-io/jetstream'),
  ]);
  let nc: NatsConnection;
  try {
    nc = await natsConnect({
      servers: opts.servers,
      name,
      timeout: opts.connect_timeout,
      ...(opts.user !== undefined ? { user: opts.user, pass: opts.password } : {}),
      ...(opts.token !== undefined ? { token: opts.token } : {}),
      ...(auth ? { authenticator: auth } : {}),
      ...(tls ? { tls: { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.rejectUnauthorized } as never } : {}),
      maxReconnectAttempts: opts.reconnect_attempts,
      reconnectTimeWait: opts.reconnect_wait,
      waitOnFirstConnect: false,
    });
  } catch (error) {
    throw classify(error, `cannot connect to NATS at ${where(opts)}`);
  }
  const js = jetstream(nc, { timeout: opts.request_timeout });
  try {
    const jsm = await jetstreamManager(nc, { timeout: opts.request_timeout, checkAPI: true });
    return { nc, js, jsm };
  } catch (error) {
    await release(nc);
    throw classify(error, `NATS at ${where(opts)} answered, but JetStream is not available`);
  }
}

/** Drains politely, or closes when that does not work in time. Never throws. */
export async function release(nc: NatsConnection | undefined): Promise<void> {
  if (!nc || nc.isClosed()) return;
  try {
    await Promise.race([nc.drain(), new Promise((_, reject) => setTimeout(() => reject(new Error('drain timed out')), 2000).unref())]);
  } catch {
    await nc.close().catch(() => undefined);
  }
}

const NETWORK =
  /ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|timeout|timed out|disconnect|connection closed|closed connection|no responders|503|reconnect/i;

/** Whether a nats.js error is an authentication or authorization refusal. */
export function isAuthError(error: unknown): boolean {
  for (let e = error as { name?: string; message?: string; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (e.name === 'AuthorizationError' || e.name === 'UserAuthenticationExpiredError') return true;
    if (/authorization violation|authentication (expired|timeout)|user authentication/i.test(e.message ?? '')) return true;
  }
  return false;
}

function firstMessage(error: unknown): string {
  const e = error as { message?: string; cause?: { message?: string } } | undefined;
  const message = e?.message ?? String(error);
  const cause = e?.cause?.message;
  return cause && !message.includes(cause) ? `${message} (${cause})` : message;
}

/**
 * A nats.js error as a {@link WeirError}: authentication refusals and permission
 * violations are configuration errors (they would refuse every message alike);
 * network errors, timeouts and "no responders" (JetStream not there yet) are retryable.
 */
export function classify(error: unknown, context: string): WeirError {
  if (error instanceof WeirError) return error;
  const message = firstMessage(error);
  const name = (error as { name?: string } | undefined)?.name ?? '';
  if (isAuthError(error))
    return new WeirError(`${context}: authentication refused (${message}); check user and password, token or creds_file`, {
      code: 'auth_failed',
      kind: 'config',
      cause: error,
    });
  if (name === 'PermissionViolationError' || /permissions violation/i.test(message))
    return new WeirError(`${context}: ${message}; the user is not allowed this subject: grant it in the server's permissions`, {
      code: 'permission_denied',
      kind: 'config',
      cause: error,
    });
  const code = (error as { code?: unknown } | undefined)?.code;
  const retryable = NETWORK.test(message) || NETWORK.test(name) || (typeof code === 'string' && NETWORK.test(code));
  return new WeirError(`${context}: ${message}`, {
    code: typeof code === 'string' ? code : name || 'nats_error',
    kind: 'connector',
    retryable,
    cause: error,
  });
}

/** Whether a JetStream API error says the stream (or the consumer) does not exist. */
export function isNotFound(error: unknown, what: 'stream' | 'consumer'): boolean {
  const e = error as { name?: string; code?: number; message?: string } | undefined;
  if (what === 'stream') return e?.name === 'StreamNotFoundError' || e?.code === 10059 || /stream not found/i.test(e?.message ?? '');
  return e?.name === 'ConsumerNotFoundError' || e?.code === 10014 || /consumer not found/i.test(e?.message ?? '');
}

/** Stream information, or undefined when the stream does not exist. */
export async function streamInfo(jsm: JetStreamManager, stream: string) {
  try {
    return await jsm.streams.info(stream);
  } catch (error) {
    if (isNotFound(error, 'stream')) return undefined;
    throw error;
  }
}

/** The configuration error of a missing stream. */
export function missingStream(opts: NatsOptions, role: 'source' | 'sink'): WeirError {
  const fix =
    role === 'sink'
      ? 'create it (nats stream add) or set create_stream: true'
      : 'create it (nats stream add) or name an existing stream in the source';
  return new WeirError(`stream ${opts.stream} does not exist on ${where(opts)}; ${fix}`, { code: 'stream_not_found', kind: 'config' });
}
