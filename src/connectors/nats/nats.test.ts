/**
 * The nats connector's options and health checks: validation messages that name the
 * option and the fix, `check` passing and failing with clear lines, and a secret
 * canary (a refused password or token) absent from every error, check line and log
 * line — against the JetStream server on this machine and one of the test's own,
 * started with a user and password (nats-server must be installed).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../test/helpers/cli.js';
import { requireService } from '../../../test/helpers/services.js';
import { type CheckContext, validateConnectorOptions } from '../../sdk/connector.js';
import { connectorOptions, planContext } from '../../sdk/testing.js';
import { connect, release } from './client.js';
import nats from './index.js';
import { type Admin, admin } from './test-streams.js';

const up = await requireService('nats');
const serverBinary = (() => {
  try {
    execFileSync('nats-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    process.stderr.write('\n[weir tests] SKIPPED: nats-server is not installed; the authentication tests are skipped\n');
    return false;
  }
})();

const issues = (input: Record<string, unknown>, role: 'source' | 'sink') =>
  validateConnectorOptions(nats, input, role)
    .issues.map((i) => `${i.path}: ${i.message}`)
    .join('\n');

describe('nats options', () => {
  it('take one server or a list, and refuse credentials in a URL', () => {
    expect(connectorOptions(nats, { stream: 'S' }, 'source').servers).toEqual(['nats://127.0.0.1:4222']);
    expect(connectorOptions(nats, { stream: 'S', servers: 'nats://a:4222, nats://b:4222' }, 'source').servers).toEqual([
      'nats://a:4222',
      'nats://b:4222',
    ]);
    const bad = issues({ stream: 'S', servers: 'nats://bob:canary-url-secret@h:4222' }, 'source');
    expect(bad).toMatch(/servers\[0\].*without credentials \(put them in user\/password, token or creds_file\)/);
  });

  it('need a stream; a sink needs a valid subject template; a source refuses sink options', () => {
    expect(issues({}, 'source')).toMatch(/stream/);
    expect(issues({ stream: 'a.b' }, 'source')).toMatch(/stream: must be a JetStream stream name/);
    expect(issues({ stream: 'S' }, 'sink')).toMatch(/subject is required in a sink; .*subject: "orders\.\{region\}"/);
    expect(issues({ stream: 'S', subject: 'x.{id' }, 'sink')).toMatch(/subject template "x\.\{id" has a "\{" without its "\}"/);
    expect(issues({ stream: 'S', subject: 'x' }, 'source')).toMatch(/subject, create_stream and stream_subjects are for a sink/);
    expect(issues({ stream: 'S', subject: 'x', filter_subject: 'y' }, 'sink')).toMatch(/filter_subject is for a source/);
  });

  it('take one way of authenticating, and never echo a secret', () => {
    expect(issues({ stream: 'S', user: 'u' }, 'source')).toMatch(/user and password go together/);
    const both = issues({ stream: 'S', token: 'canary-token-1', user: 'u', password: 'canary-pass-1' }, 'source');
    expect(both).toMatch(/user\/password and token cannot be used together/);
    expect(both).not.toMatch(/canary/);
    expect(issues({ stream: 'S', password: 12 }, 'source')).not.toMatch(/12/);
  });

  it('mark password and token secret', () => {
    expect(nats.options.password.meta.secret).toBe(true);
    expect(nats.options.token.meta.secret).toBe(true);
  });
});

describe.skipIf(!up)('nats check', () => {
  let a: Admin;
  beforeAll(async () => {
    a = await admin();
  });
  afterAll(() => a?.close());
  const check = (input: Record<string, unknown>, role: 'source' | 'sink') =>
    nats.check?.(connectorOptions(nats, input, role), { ...planContext({ baseDir: '.' }), role } as CheckContext) ?? expect.unreachable();

  it('passes with the stream and says whether the consumer will be created', async () => {
    const stream = await a.stream('check');
    const r = await check({ stream }, 'source');
    expect(r.every((x) => x.ok)).toBe(true);
    expect(r.map((x) => x.name)).toEqual(['connection', 'authentication', 'jetstream', 'target']);
    expect(r[0]?.message).toMatch(/connected to 127\.0\.0\.1:4222 \(nats-server 2\./);
    expect(r[3]?.message).toMatch(new RegExp(`stream ${stream} exists .*consumer weir will be created`));
    await a.jsm.consumers.add(stream, { durable_name: 'weir', ack_policy: 'explicit' as never });
    expect((await check({ stream }, 'source'))[3]?.message).toMatch(/consumer weir exists \(0 message\(s\) pending/);
    await a.jsm.consumers.add(stream, { durable_name: 'none', ack_policy: 'none' as never });
    const wrong = (await check({ stream, durable: 'none' }, 'source'))[3];
    expect(wrong?.ok).toBe(false);
    expect(wrong?.message).toMatch(/acknowledges with policy none; weir needs acknowledgements \(policy all, or explicit\)/);
    const sinkSide = await check({ stream, subject: `${stream}.x` }, 'sink');
    expect(sinkSide[3]).toMatchObject({ ok: true, message: expect.stringMatching(new RegExp(`stream ${stream} exists \\(0 message`)) });
  });

  it('fails on a missing stream, unless a sink may create it', async () => {
    const r = await check({ stream: 'weirtest_nats_absent' }, 'source');
    expect(r[3]).toMatchObject({ name: 'target', ok: false, message: expect.stringMatching(/stream weirtest_nats_absent does not exist/) });
    const s = await check({ stream: 'weirtest_nats_absent', subject: 'weirtest_nats_absent.x', create_stream: true }, 'sink');
    expect(s[3]).toMatchObject({ ok: true, message: expect.stringMatching(/will be created/) });
  });

  it('fails the connection line when nothing listens', async () => {
    const r = await check({ stream: 'S', servers: 'nats://127.0.0.1:1', connect_timeout: '1s' }, 'source');
    expect(r).toHaveLength(1);
    expect(r[0]).toMatchObject({
      name: 'connection',
      ok: false,
      message: expect.stringMatching(/cannot connect to NATS at nats:\/\/127\.0\.0\.1:1/),
    });
  });
});

/** A free TCP port on 127.0.0.1. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe.skipIf(!up || !serverBinary)('nats authentication', () => {
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const canary = `canary-${randomBytes(8).toString('hex')}`;
  let server: ChildProcess;
  let port: number;
  let dir: string;

  beforeAll(async () => {
    port = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'weir-nats-auth-'));
    server = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '--user', 'weir', '--pass', password, '-js', '-sd', dir], {
      stdio: 'ignore',
    });
    for (let i = 0; i < 100; i++) {
      try {
        await release(
          (
            await connect(connectorOptions(nats, { stream: 'S', servers: `127.0.0.1:${port}`, user: 'weir', password }, 'source'), {
              baseDir: '.',
            })
          ).nc,
        );
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error('the test nats-server did not start');
  });
  afterAll(() => {
    if (server?.pid) process.kill(server.pid, 'SIGTERM');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('connects with user and password', async () => {
    const r = await nats.check?.(
      connectorOptions(
        nats,
        { stream: 'weirtest_nats_auth', servers: `127.0.0.1:${port}`, user: 'weir', password, subject: 'a.b', create_stream: true },
        'sink',
      ),
      { ...planContext({ baseDir: '.' }), role: 'sink' },
    );
    expect(r?.map((x) => [x.name, x.ok])).toEqual([
      ['connection', true],
      ['authentication', true],
      ['jetstream', true],
      ['target', true],
    ]);
  });

  it('says authentication failed, never showing the refused password or token', async () => {
    for (const cred of [{ user: 'weir', password: canary }, { token: canary }]) {
      const opts = connectorOptions(nats, { stream: 'S', servers: `127.0.0.1:${port}`, ...cred }, 'source');
      const r = (await nats.check?.(opts, { ...planContext({ baseDir: '.' }), role: 'source' })) ?? [];
      expect(r.map((x) => [x.name, x.ok])).toEqual([
        ['connection', true],
        ['authentication', false],
      ]);
      expect(r[1]?.message).toMatch(/authentication refused .*check user and password, token or creds_file/);
      const error = await connect(opts, { baseDir: '.' }).catch((e: unknown) => e);
      const shown = [JSON.stringify(r), String(error), (error as Error).stack ?? '', JSON.stringify(error)].join('\n');
      expect(shown).not.toContain(canary);
    }
  });

  it('weir check and weir run print no secret when authentication fails', async () => {
    const file = join(dir, 'pipeline.yaml');
    writeFileSync(
      file,
      `pipeline: nats-auth-canary
source: { type: nats, servers: "127.0.0.1:${port}", stream: weirtest_nats_auth_src, user: weir, password: "\${env:NATS_TEST_PASSWORD}" }
sink: { type: nats, servers: "127.0.0.1:${port}", stream: weirtest_nats_auth_dst, subject: dst, user: weir, password: "\${env:NATS_TEST_PASSWORD}" }
stream: { stop_when_idle: 1s }
`,
    );
    const env = { NATS_TEST_PASSWORD: canary };
    const checked = await runCli(['check', file], { cwd: dir, env });
    expect(checked.code).toBe(3);
    expect(checked.stdout + checked.stderr).toMatch(/authentication/);
    const ran = await runCli(['run', file, '--log-format', 'json'], { cwd: dir, env });
    expect(ran.code).not.toBe(0);
    expect(ran.stdout + ran.stderr).toMatch(/authentication refused \(Authorization Violation\)/);
    for (const out of [checked.stdout, checked.stderr, ran.stdout, ran.stderr]) expect(out).not.toContain(canary);
  });
});
