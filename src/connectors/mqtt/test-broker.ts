/**
 * Test helpers: a publisher and a session probe on a broker, and a Mosquitto of the
 * test's own (a free port, a config file, a password file) for limits and users the
 * machine's broker does not have. Tests only.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';

export const LOCAL_URL = 'mqtt://127.0.0.1:1883';

/** A connected client (MQTT 5), for publishing and inspecting. */
export async function testClient(url = LOCAL_URL, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, ...extra });
}

/** Publishes each payload at QoS 1 and waits for every PUBACK. */
export async function publishAll(client: MqttClient, topic: string, payloads: (string | Buffer)[], retain = false): Promise<void> {
  await Promise.all(payloads.map((p) => client.publishAsync(topic, p, { qos: 1, retain })));
}

/** Ends the broker's session of `clientId` (a clean connect and a DISCONNECT). */
export async function dropSession(clientId: string, url = LOCAL_URL, extra: mqtt.IClientOptions = {}): Promise<void> {
  const c = await mqtt.connectAsync(url, { protocolVersion: 5, clientId, clean: true, reconnectPeriod: 0, ...extra });
  await c.endAsync();
}

/**
 * Connects as `clientId` to its persistent session, collects for `ms` every message
 * the broker sends (the unacknowledged ones again, then the queued ones) without
 * acknowledging any, and disconnects: the session keeps them all.
 */
export async function sessionHolds(clientId: string, url: string, ms = 1500, extra: mqtt.IClientOptions = {}): Promise<Buffer[]> {
  const got: Buffer[] = [];
  const held = new Error('held');
  const c = mqtt.connect(url, {
    protocolVersion: 5,
    clientId,
    clean: false,
    reconnectPeriod: 0,
    properties: { sessionExpiryInterval: 3600, receiveMaximum: 65535 },
    ...extra,
  });
  c.handleMessage = (packet, callback) => {
    got.push(packet.payload as Buffer);
    callback(held);
  };
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  await new Promise((r) => setTimeout(r, ms));
  c.end(true);
  await new Promise((r) => setTimeout(r, 100));
  return got;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function listening(port: number, timeoutMs = 5000): Promise<void> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = new Socket();
      s.once('error', () => resolve(false));
      s.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
    });
    if (ok) return;
    if (performance.now() > until) throw new Error(`mosquitto did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface OwnBroker {
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

/** Whether a Mosquitto binary is there to start one of the test's own. */
export function hasMosquitto(): boolean {
  try {
    execFileSync('mosquitto', ['-h'], { stdio: 'ignore' });
    return true;
  } catch (error) {
    return (error as { status?: number }).status !== undefined; // -h exits non-zero but ran
  }
}

/** Starts a Mosquitto on a free port with `lines` added to its config (and `users` in a password file). */
export async function startMosquitto(lines: string[] = [], users: Record<string, string> = {}): Promise<OwnBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'weir-mosquitto-'));
  const port = await freePort();
  const conf = [`listener ${port} 127.0.0.1`, 'persistence false', ...(process.getuid?.() === 0 ? ['user root'] : [])];
  if (Object.keys(users).length > 0) {
    const pw = join(dir, 'passwords');
    writeFileSync(pw, '');
    for (const [u, p] of Object.entries(users)) execFileSync('mosquitto_passwd', ['-b', pw, u, p]);
    conf.push('allow_anonymous false', `password_file ${pw}`);
  } else conf.push('allow_anonymous true');
  conf.push(...lines);
  writeFileSync(join(dir, 'mosquitto.conf'), `${conf.join('\n')}\n`);
  const child: ChildProcess = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  await listening(port);
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
