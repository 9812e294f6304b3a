/**
 * Tests that need a real service (PostgreSQL, MariaDB, Redis, RabbitMQ, MQTT, NATS)
 * skip with a visible notice when it cannot be reached — unless
 * WEIR_REQUIRE_SERVICES=1 (CI), where a missing service fails the run.
 */
import { spawnSync } from 'node:child_process';
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

/**
 * Resolves to true when a command-line tool the tests compare with is installed
 * (promtool, …). When it is missing: throws under WEIR_REQUIRE_SERVICES=1 (`.ci/run`
 * installs it), else prints a notice naming the Debian package and resolves to false.
 */
export function requireTool(command: string, debianPackage: string): boolean {
  const found = spawnSync(command, ['--version'], { stdio: 'ignore' });
  if (!found.error) return true;
  const message = `${command} is not installed (Debian package ${debianPackage})`;
  if (process.env.WEIR_REQUIRE_SERVICES === '1') throw new Error(`${message} and WEIR_REQUIRE_SERVICES=1: install it (see .ci/run)`);
  process.stderr.write(`\n[weir tests] SKIPPED: ${message}; its checks are skipped (set WEIR_REQUIRE_SERVICES=1 to fail instead)\n`);
  return false;
}
