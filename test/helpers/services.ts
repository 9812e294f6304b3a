/**
 * Tests that need a real service (PostgreSQL, MariaDB, Redis, RabbitMQ, MQTT, NATS)
 * skip with a visible notice when it cannot be reached — unless
 * WEIR_REQUIRE_SERVICES=1 (CI), where a missing service fails the run.
 */
import { Socket } from 'node:net';

export const SERVICES = {
  postgres: 5432,
  mysql: 3306,
  redis: 6379,
  rabbitmq: 5672,
  mqtt: 1883,
  nats: 4222,
} as const;

export type ServiceName = keyof typeof SERVICES;

function reachable(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, host, () => done(true));
  });
}

/**
 * Resolves to true when the service is up. When it is down: throws under
 * WEIR_REQUIRE_SERVICES=1, else prints a notice and resolves to false.
 *
 * @example
 * const up = await requireService('postgres');
 * describe.skipIf(!up)('postgres sink', () => { ... });
 */
export async function requireService(name: ServiceName): Promise<boolean> {
  const ok = await reachable(SERVICES[name]);
  if (ok) return true;
  const message = `${name} is not reachable on 127.0.0.1:${SERVICES[name]}`;
  if (process.env.WEIR_REQUIRE_SERVICES === '1') throw new Error(`${message} and WEIR_REQUIRE_SERVICES=1: start it (see .ci/run)`);
  process.stderr.write(`\n[weir tests] SKIPPED: ${message}; its tests are skipped (set WEIR_REQUIRE_SERVICES=1 to fail instead)\n`);
  return false;
}
