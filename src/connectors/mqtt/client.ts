/**
 * MQTT connections (mqtt.js 5, MQTT 5) and error classification, shared by the
 * source, the sink and the checks. Runs on the planner and on workers.
 *
 * Acknowledging after the commit: mqtt.js 5 sends a QoS 1 message's PUBACK as soon
 * as `handleMessage` calls back, and handles incoming packets one at a time until it
 * does, so deferring that callback to the epoch's commit would stall the connection
 * (pings, further messages) for the whole epoch; `customHandleAcks` only chooses the
 * PUBACK's reason code. So the source's `handleMessage` calls back with a marker
 * error — mqtt.js then sends no PUBACK and goes on with the next packet — and the
 * chunk's `ack` sends each PUBACK itself ({@link sendPuback}) on the connection the
 * message came on. How many messages the broker sends unacknowledged is the client's
 * MQTT 5 Receive Maximum (`receive_maximum`).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Log } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import { tlsConfig } from '../../sdk/tls.js';
import type { MqttOptions } from './spec.js';

/** The broker as logs and errors name it: the URL without credentials or query. */
export function where(opts: MqttOptions): string {
  try {
    const u = new URL(opts.url);
    return `${opts.username ? `${opts.username}@` : ''}${u.host}${u.pathname && u.pathname !== '/' ? u.pathname : ''}`;
  } catch {
    return 'the broker';
  }
}

/** A client id from text of any kind: the safe characters kept, long or altered ones shortened with a hash. */
export function clientIdFrom(text: string): string {
  const safe = text.replace(/[^A-Za-z0-9._:-]/g, '_');
  if (safe === text && safe.length <= 64) return safe;
  return `${safe.slice(0, 48)}-${createHash('sha256').update(text).digest('hex').slice(0, 12)}`;
}

/** The source's client id: the option, or `weir-<pipeline>` — stable across runs, so each run resumes the session. */
export function sourceClientId(opts: MqttOptions, pipeline: string): string {
  return opts.client_id ?? clientIdFrom(`weir-${pipeline}`);
}

/** A sink writer's client id: unique per connection (two clients with one id would disconnect each other). */
export function sinkClientId(opts: MqttOptions, pipeline: string, partitionId: string): string {
  return `${opts.client_id ?? clientIdFrom(`weir-${pipeline}-pub`)}-${clientIdFrom(partitionId)}-${randomBytes(4).toString('hex')}`;
}

export interface ConnectSettings {
  clientId: string;
  /** A persistent session (source) or a clean one (sink, checks). */
  persistent: boolean;
  /** Reconnect automatically every `reconnect_period` (source), or never (sink, checks). */
  reconnect: boolean;
}

/** mqtt.js client options for these settings (no I/O). */
export function clientOptions(opts: MqttOptions, settings: ConnectSettings, ctx: { baseDir: string; log?: Log }): IClientOptions {
  const tls = tlsConfig(opts, ctx.baseDir, ctx.log);
  return {
    protocolVersion: 5,
    clientId: settings.clientId,
    clean: !settings.persistent,
    ...(opts.username !== undefined ? { username: opts.username } : {}),
    ...(opts.password !== undefined ? { password: opts.password } : {}),
    keepalive: Math.max(1, Math.round(opts.keepalive / 1000)),
    connectTimeout: opts.connect_timeout,
    reconnectPeriod: settings.reconnect ? opts.reconnect_period : 0,
    resubscribe: true,
    queueQoSZero: false,
    properties: {
      ...(settings.persistent
        ? { sessionExpiryInterval: Math.round(opts.session_expiry / 1000), receiveMaximum: opts.receive_maximum }
        : {}),
    },
    ...(tls
      ? {
          ca: tls.ca as string | undefined,
          cert: tls.cert as string | undefined,
          key: tls.key as string | undefined,
          rejectUnauthorized: tls.rejectUnauthorized,
          servername: new URL(opts.url).hostname,
        }
      : {}),
  };
}

/**
 * Connects and waits for the CONNACK (within `connect_timeout`). A refusal or a
 * network error is a {@link WeirError} (classified); the client is closed then.
 */
export async function connect(
  opts: MqttOptions,
  settings: ConnectSettings,
  ctx: { baseDir: string; log?: Log },
  /** Called with the client before it connects: listeners set here see the first packet after the CONNACK. */
  prepare?: (client: MqttClient) => void,
): Promise<MqttClient> {
  const options = clientOptions(opts, settings, ctx);
  // the library loads on first use: a run that does not touch MQTT does not pay for it
  const { default: mqtt } = await import('mqtt');
  const client = mqtt.connect(opts.url, options); // the socket opens on a later tick
  prepare?.(client);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new WeirError(
              `cannot connect to MQTT broker ${where(opts)}: no CONNACK within connect_timeout (${opts.connect_timeout} ms); check url and that the broker runs, or raise connect_timeout`,
              { code: 'ETIMEDOUT', kind: 'connector', retryable: true },
            ),
          ),
        opts.connect_timeout,
      );
      const done = (error?: unknown) => {
        clearTimeout(timer);
        client.off('connect', onConnect);
        client.off('error', onError);
        client.off('close', onClose);
        if (error) reject(error);
        else resolve();
      };
      const onConnect = () => done();
      const onError = (error: Error) => done(error);
      // without reconnect, a refused TCP connection ends in close, sometimes without an error event
      const onClose = () => done(new Error('connection closed before CONNACK (ECONNRESET)'));
      client.on('connect', onConnect);
      client.on('error', onError);
      if (!settings.reconnect) client.on('close', onClose);
    });
  } catch (error) {
    client.end(true);
    throw classify(error, `cannot connect to MQTT broker ${where(opts)}`);
  }
  client.on('error', () => {}); // reported where it matters (the source's watcher, a publish)
  return client;
}

/** Ends the connection (DISCONNECT, the session kept when it is persistent), within 2 s. Never throws. */
export async function release(client: MqttClient | undefined): Promise<void> {
  if (!client) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      client.end(true);
      resolve();
    }, 2000);
    timer.unref();
    client.end(false, {}, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

interface PacketSender {
  _sendPacket(packet: { cmd: 'puback'; messageId: number; reasonCode?: number }, cb?: (error?: Error) => void): void;
}

/** Whether this mqtt.js sends packets the way {@link sendPuback} relies on (checked when a source connects). */
export function canSendPuback(client: MqttClient): boolean {
  return typeof (client as unknown as PacketSender)._sendPacket === 'function';
}

/** Sends the PUBACK of one received QoS 1 message (see the module comment for why this is not mqtt.js's own). */
export function sendPuback(client: MqttClient, messageId: number): void {
  (client as unknown as PacketSender)._sendPacket({ cmd: 'puback', messageId, reasonCode: 0 });
}

/** MQTT 5 CONNACK reason codes (and MQTT 3.1.1 return codes 4 and 5) that refuse the credentials. */
const AUTH_CODES = new Set([4, 5, 0x86, 0x87, 0x8c]);
const NETWORK = /ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|ENOTFOUND|closed|socket hang up/i;
/** Reason codes a broker sends when it is busy or going away: try again later. */
const RETRYABLE_CODES = new Set([0x80, 0x83, 0x88, 0x89, 0x8b, 0x8d, 0x93, 0x97, 0x9f]);

export function isAuthError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' && AUTH_CODES.has(code);
}

/**
 * An MQTT or network error as a {@link WeirError}: refused credentials are
 * configuration errors (they refuse every attempt alike); network errors, timeouts
 * and a busy broker are retryable. The message never holds the password: mqtt.js
 * errors name reason codes, not the CONNECT packet.
 */
export function classify(error: unknown, context: string): WeirError {
  if (error instanceof WeirError) return error;
  const message = (error as Error | undefined)?.message ?? String(error);
  const code = (error as { code?: unknown } | undefined)?.code;
  if (isAuthError(error))
    return new WeirError(`${context}: ${message}; check username and password, and that the broker lets this user connect`, {
      code: 'auth_failed',
      kind: 'config',
      cause: error,
    });
  const retryable =
    (typeof code === 'number' && RETRYABLE_CODES.has(code)) || NETWORK.test(message) || (typeof code === 'string' && NETWORK.test(code));
  return new WeirError(`${context}: ${message}`, {
    code: typeof code === 'string' ? code : typeof code === 'number' ? `mqtt_${code}` : 'mqtt_error',
    kind: 'connector',
    retryable,
    cause: error,
  });
}
