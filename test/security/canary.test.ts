/**
 * The canary suite: each scenario runs the CLI as a subprocess with a unique secret
 * and asserts that no trace of it (raw, URL-encoded, JSON- or HTML-escaped, base64,
 * or any 10 characters of it in a row) appears in stdout, stderr, or any file the run
 * left behind: log output, dead-letter files, summary files, checkpoints.
 *
 * Each scenario also asserts that it did what it claims (the secret really reached
 * the peer, the error really happened), so a clean result is not a vacuous one.
 */
import { chmodSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { requireService } from '../helpers/services.js';
import {
  type Canary,
  closedPort,
  type EchoServer,
  FAST_RETRY,
  FIXTURES,
  newCanary,
  newScenario,
  removeScenarios,
  runAndScan,
  type ScannedRun,
  type Scenario,
  scrapeMetrics,
  startEchoServer,
  startFakePostgres,
  writePipeline,
} from './harness.js';

const pgUp = await requireService('postgres');
/** The http sink, once it exists: its JSON Schema (secret options are writeOnly). */
const httpSpec = await runCli(['spec', 'http']).then((r) =>
  r.code === 0 ? (JSON.parse(r.stdout) as { properties: Record<string, { writeOnly?: boolean; type?: string }> }) : undefined,
);
const mysqlUp = await requireService('mysql');

/** Occurrences per scenario, printed at the end (all must be 0). */
const tally: [string, number][] = [];

/**
 * State files are left out where a scenario puts the secret in what the run must keep to
 * resume (a partition id a custom connector made of it): that scenario is about what is
 * printed and served. (A pipeline id from a reference is stored hashed, and is scanned.)
 */
function withoutState(run: ScannedRun): ScannedRun {
  return { ...run, leaks: run.leaks.filter((l) => !l.startsWith('file .weir/')) };
}

function expectClean(name: string, run: ScannedRun): void {
  tally.push([name, run.leaks.length]);
  expect(run.leaks, `${name}: the canary leaked`).toEqual([]);
}

/** A scenario whose pipeline can load the echo fixture as `./fixtures/echo.mjs`. */
function echoScenario(): Scenario {
  const s = newScenario();
  symlinkSync(FIXTURES, join(s.root, 'fixtures'));
  return s;
}

const ECHO = ['./fixtures/echo.mjs'];
const freePort = () => 20000 + Math.floor(Math.random() * 20000);
const env = (c: Canary, extra: Record<string, string> = {}) => ({ WEIR_CANARY: c.value, ...extra });

let echo: EchoServer;
beforeAll(async () => {
  echo = await startEchoServer();
});
afterAll(async () => {
  await echo?.close();
  removeScenarios();
  process.stdout.write(`\n[canary] ${tally.length} scenario runs, occurrences: ${tally.map(([n, k]) => `${n}=${k}`).join(', ')}\n`);
});

describe('a peer that echoes headers, URL and body in its errors', () => {
  it.each(['json', 'html', 'text'])('HTTP %s error body, debug log level, summary file', async (kind) => {
    const c = newCanary();
    const s = echoScenario();
    const p = writePipeline(s, {
      pipeline: 'canary-echo',
      connectors: ECHO,
      source: { type: 'generator', rows: 5 },
      sink: { type: 'echo', behaviour: 'http-echo', url: `${echo.url}/${kind}`, api_key: '${env:WEIR_CANARY}' },
      retry: FAST_RETRY,
    });
    const run = await runAndScan(s, c, ['run', p, '--log-level', 'debug', '--summary-json', 'out/summary.json'], env(c));
    expect(run.result.code).toBe(1);
    expect(run.output).toMatch(/HTTP 40[013]/);
    expect(echo.received.some((r) => r.includes(c.core))).toBe(true);
    expect(run.output).toContain('***REDACTED***');
    expectClean(`http-echo-${kind}`, run);
  });

  it('row errors echoing the peer go to the dead-letter file clean', async () => {
    const c = newCanary();
    const s = echoScenario();
    const p = writePipeline(s, {
      pipeline: 'canary-dead-letter',
      connectors: ECHO,
      source: { type: 'generator', rows: 4 },
      sink: { type: 'echo', behaviour: 'row-echo', url: `${echo.url}/json`, api_key: '${env:WEIR_CANARY}' },
      errors: { tolerance: 'all', dead_letter: { type: 'jsonl', path: 'work/out/dead.jsonl' } },
      retry: FAST_RETRY,
    });
    const run = await runAndScan(s, c, ['run', p, '--log-level', 'debug', '--summary-json', 'out/summary.json'], env(c));
    expect(run.output).toContain('dead-lettered');
    const { readFileSync } = await import('node:fs');
    const dead = readFileSync(join(s.work, 'out/dead.jsonl'), 'utf8').trim().split('\n');
    expect(dead).toHaveLength(4);
    expect(dead[0]).toContain('HTTP 401');
    expect(dead[0]).toContain('***REDACTED***');
    expectClean('dead-letter', run);
  });

  it('weir check output of a peer that echoes', async () => {
    const c = newCanary();
    const s = echoScenario();
    const p = writePipeline(s, {
      pipeline: 'canary-check',
      connectors: ECHO,
      source: { type: 'echo', url: `${echo.url}/json`, api_key: '${env:WEIR_CANARY}' },
      sink: { type: 'echo', behaviour: 'http-echo', url: `${echo.url}/text`, api_key: '${env:WEIR_CANARY}' },
    });
    const run = await runAndScan(s, c, ['check', p, '--log-level', 'debug'], env(c));
    expect(run.result.code).toBe(3);
    expect(run.result.stdout).toContain('FAIL');
    expect(run.result.stdout).toContain('invalid credentials');
    expectClean('check-echo', run);
  });
});

describe.skipIf(!httpSpec)('the http sink against a peer that echoes', () => {
  it.each(['json', 'html', 'text'])('HTTP %s error body', async (kind) => {
    const c = newCanary();
    const s = newScenario();
    const props = httpSpec?.properties ?? {};
    const sink: Record<string, unknown> = { type: 'http', url: `${echo.url}/${kind}?api_key=\${env:WEIR_CANARY_URL}` };
    for (const [name, prop] of Object.entries(props)) if (prop.writeOnly && name !== 'url') sink[name] = '${env:WEIR_CANARY}';
    if ('headers' in props) sink.headers = { Authorization: 'Bearer ${env:WEIR_CANARY}', 'X-Api-Key': '${env:WEIR_CANARY}' };
    const p = writePipeline(s, { pipeline: 'canary-http', source: { type: 'generator', rows: 5 }, sink, retry: FAST_RETRY });
    const run = await runAndScan(
      s,
      c,
      ['run', p, '--log-level', 'debug', '--summary-json', 'out/summary.json'],
      env(c, { WEIR_CANARY_URL: encodeURIComponent(c.value) }),
    );
    expect(run.result.code, run.output).toBe(1);
    expect(echo.received.some((r) => r.includes(c.core))).toBe(true);
    expectClean(`http-sink-${kind}`, run);
  });

  /** The credential in each auth type, sent by the sink as the peer then echoes it (base64 of user:password, the OAuth2 client secret at the token URL). */
  const AUTH: Record<string, (url: string) => Record<string, string>> = {
    bearer: () => ({ type: 'bearer', token: '${env:WEIR_CANARY}' }),
    basic: () => ({ type: 'basic', username: 'loader', password: '${env:WEIR_CANARY}' }),
    api_key: () => ({ type: 'api_key', header: 'X-Api-Key', api_key: '${env:WEIR_CANARY}' }),
    oauth2_client_credentials: (url) => ({
      type: 'oauth2_client_credentials',
      token_url: `${url}/json`,
      client_id: 'weir',
      client_secret: '${env:WEIR_CANARY}',
    }),
  };

  it.each(Object.keys(AUTH))('auth %s: a peer that echoes the credential, a dead-letter file, weir check', async (type) => {
    const c = newCanary();
    const s = newScenario();
    const sink = { type: 'http', url: `${echo.url}/json`, auth: AUTH[type]?.(echo.url) };
    const p = writePipeline(s, {
      pipeline: `canary-http-${type}`,
      source: { type: 'generator', rows: 5 },
      sink,
      errors: { tolerance: 'all', dead_letter: { type: 'jsonl', path: 'work/out/dead.jsonl' } },
      retry: FAST_RETRY,
    });
    const run = await runAndScan(s, c, ['run', p, '--log-level', 'debug', '--summary-json', 'out/summary.json'], env(c));
    const received = echo.received.filter(
      (r) =>
        r.includes(c.core) ||
        r.includes(Buffer.from(`loader:${c.value}`).toString('base64')) ||
        r.includes(Buffer.from(`weir:${encodeURIComponent(c.value)}`).toString('base64')),
    );
    expect(received.length, 'the credential reached the peer').toBeGreaterThan(0);
    expectClean(`http-auth-${type}`, run);
    const check = await runAndScan(s, c, ['check', p, '--log-level', 'debug'], env(c));
    expect(check.result.code).toBe(3);
    expectClean(`http-auth-${type}-check`, check);
  });
});

describe('connection URLs with a password in driver errors', () => {
  it('a driver error that echoes the connection string (registered secret)', async () => {
    const c = newCanary();
    const s = echoScenario();
    const p = writePipeline(s, {
      pipeline: 'canary-driver-url',
      connectors: ECHO,
      source: { type: 'generator', rows: 2 },
      sink: { type: 'echo', behaviour: 'driver-url', api_key: '${env:WEIR_CANARY}' },
      retry: FAST_RETRY,
    });
    const run = await runAndScan(s, c, ['run', p, '--summary-json', 'out/summary.json'], env(c));
    expect(run.result.code).toBe(1);
    expect(run.output).toContain('ENOTFOUND');
    expect(run.output).toContain('postgres://loader:***REDACTED***@db.example');
    expectClean('driver-url', run);
  });

  it('a password written literally in a URL option (never registered) is masked by pattern', async () => {
    const c = newCanary(true);
    const s = echoScenario();
    const p = writePipeline(s, {
      pipeline: 'canary-literal-url',
      connectors: ECHO,
      source: { type: 'generator', rows: 2 },
      sink: { type: 'echo', behaviour: 'literal-url', url: `postgres://loader:${c.value}@127.0.0.1:9/app` },
      retry: FAST_RETRY,
    });
    const run = await runAndScan(s, c, ['run', p, '--log-level', 'trace', '--summary-json', 'out/summary.json'], {});
    expect(run.result.code).toBe(1);
    expect(run.output).toContain('postgres://loader:***REDACTED***@127.0.0.1:9/app');
    expectClean('literal-url', run);
  });
});

describe('validation errors about options whose value came from a secret', () => {
  const long = (c: Canary) => `${'x'.repeat(70)}${c.value}`;

  it('weir validate, run and check report the bad options without the value (exit 2)', async () => {
    const c = newCanary();
    const s = echoScenario();
    const p = writePipeline(s, {
      pipeline: 'canary-validation',
      connectors: ECHO,
      source: { type: 'echo', rows: '${env:WEIR_CANARY}', column: '${env:WEIR_CANARY}' },
      sink: {
        type: 'sqlite',
        path: 'work/out/x.db',
        table: '${env:WEIR_CANARY}',
        mode: '${env:WEIR_CANARY}',
        batch_size: '${env:WEIR_LONG}',
        busy_timeout: '${env:WEIR_LONG}',
      },
      retry: { max_attempts: '${env:WEIR_CANARY}' },
    });
    for (const cmd of ['validate', 'run', 'check']) {
      const run = await runAndScan(s, c, [cmd, p], env(c, { WEIR_LONG: long(c) }));
      expect(run.result.code, `${cmd} exit code`).toBe(2);
      for (const path of ['source.rows', 'sink.table', 'sink.mode', 'sink.batch_size', 'sink.busy_timeout', 'retry.max_attempts'])
        expect(run.result.stderr).toContain(path);
      expectClean(`validation-${cmd}`, run);
    }
  });

  it.skipIf(!pgUp)('postgres: host, port and database from secrets', async () => {
    const c = newCanary();
    const s = newScenario();
    const p = writePipeline(s, {
      pipeline: 'canary-validation-pg',
      source: { type: 'generator', rows: 1 },
      sink: {
        type: 'postgres',
        host: '${env:WEIR_CANARY}',
        port: '${env:WEIR_CANARY}',
        database: '${env:WEIR_LONG}',
        user: '${env:WEIR_LONG}',
        table: 't',
        password: '${env:WEIR_CANARY}',
      },
    });
    const run = await runAndScan(s, c, ['validate', p], env(c, { WEIR_LONG: long(c) }));
    expect(run.result.code).toBe(2);
    for (const path of ['sink.host', 'sink.port', 'sink.database', 'sink.user']) expect(run.result.stderr).toContain(path);
    expectClean('validation-postgres', run);
  });
});

describe('logs at debug and trace level', () => {
  it.each(['json', 'pretty'])('a connector that logs and prints its options every way it can (%s)', async (format) => {
    const c = newCanary();
    const s = echoScenario();
    const p = writePipeline(s, {
      pipeline: 'canary-logs',
      connectors: ECHO,
      source: { type: 'generator', rows: 3 },
      sink: { type: 'echo', behaviour: 'log', url: `${echo.url}/json`, api_key: '${env:WEIR_CANARY}' },
    });
    const run = await runAndScan(
      s,
      c,
      ['run', p, '--log-level', 'trace', '--log-format', format, '--summary-json', 'out/summary.json'],
      env(c),
    );
    expect(run.result.code).toBe(0);
    expect(run.output).toContain('console.log of options');
    expect(run.output).toContain('raw buffer write');
    expectClean(`debug-logs-${format}`, run);
  });
});

describe('unexpected crashes with stack traces', () => {
  it.each(['uncaught', 'unhandled', 'internal'])('%s error with WEIR_DEBUG=1', async (behaviour) => {
    const c = newCanary();
    const s = echoScenario();
    const p = writePipeline(s, {
      pipeline: 'canary-crash',
      connectors: ECHO,
      source: { type: 'generator', rows: 3 },
      sink: { type: 'echo', behaviour, api_key: '${env:WEIR_CANARY}' },
      retry: FAST_RETRY,
    });
    const run = await runAndScan(
      s,
      c,
      ['run', p, '--log-level', 'debug', '--summary-json', 'out/summary.json'],
      env(c, { WEIR_DEBUG: '1' }),
    );
    expect(run.result.code).toBe(1);
    if (behaviour !== 'internal') expect(run.result.stderr).toMatch(/internal error: .*\*\*\*REDACTED\*\*\*[\s\S]*\n\s+at /);
    else expect(run.output).toContain("reading '***REDACTED***'");
    expectClean(`crash-${behaviour}`, run);
  });
});

describe('secrets from files and scopes', () => {
  it('${file:…}, ${file:…#key} and ${secret:scope/key} values are scrubbed like env values', async () => {
    const c = newCanary();
    const s = echoScenario();
    writeFileSync(join(s.secrets, 'api_key'), `${c.value}\n`, { mode: 0o600 });
    writeFileSync(join(s.secrets, 'app.json'), JSON.stringify({ echo: { key: c.value } }), { mode: 0o600 });
    writeFileSync(join(s.secrets, 'loose.env'), `API_KEY="${c.value.replace(/"/g, '\\"')}"\n`);
    chmodSync(join(s.secrets, 'loose.env'), 0o644);
    const p = writePipeline(s, {
      pipeline: 'canary-files',
      connectors: ECHO,
      secrets: { k8s: { provider: 'dir', path: 'secrets' } },
      source: { type: 'echo', rows: 2, api_key: '${file:secrets/app.json#echo.key}' },
      sink: {
        type: 'echo',
        behaviour: 'http-echo',
        url: `${echo.url}/json`,
        api_key: '${secret:k8s/api_key}',
        user: '${file:secrets/loose.env#API_KEY}',
      },
      retry: FAST_RETRY,
    });
    const run = await runAndScan(s, c, ['run', p, '--log-level', 'debug', '--summary-json', 'out/summary.json'], {});
    expect(run.result.code).toBe(1);
    expect(run.output).toContain('is readable by group or others (mode 644)');
    expect(echo.received.some((r) => r.includes(c.core))).toBe(true);
    expectClean('file-and-scope-secrets', run);
  });
});

describe.skipIf(!pgUp)('PostgreSQL', () => {
  const pgSink = (extra: Record<string, unknown>) => ({
    type: 'postgres',
    database: 'test',
    user: 'postgres',
    table: 'canary_t',
    password: '${env:WEIR_CANARY}',
    connect_timeout: '3s',
    ...extra,
  });

  it.each([false, true])('wrong password (a server with password authentication; echoing its input: %s)', async (echoing) => {
    const fake = await startFakePostgres(echoing);
    try {
      const c = newCanary();
      const s = newScenario();
      const p = writePipeline(s, {
        pipeline: 'canary-pg-password',
        source: { type: 'generator', rows: 3 },
        sink: pgSink({ port: fake.port, user: 'loader' }),
        retry: FAST_RETRY,
      });
      const run = await runAndScan(s, c, ['run', p, '--log-level', 'debug', '--summary-json', 'out/summary.json'], env(c));
      expect(run.result.code).toBe(1);
      expect(run.output).toMatch(/authentication failed/);
      expect(fake.passwords).toContain(c.value);
      expectClean(`pg-wrong-password${echoing ? '-echo' : ''}`, run);
      const check = await runAndScan(s, c, ['check', p], env(c));
      expect(check.result.code).toBe(3);
      expectClean(`pg-wrong-password-check${echoing ? '-echo' : ''}`, check);
    } finally {
      await fake.close();
    }
  });

  it('unreachable host: closed port and unresolvable name, run and check', async () => {
    const c = newCanary();
    const s = newScenario();
    for (const [name, extra] of [
      ['closed-port', { host: '127.0.0.1', port: await closedPort() }],
      ['unresolvable', { host: 'weir-canary-host.invalid' }],
    ] as const) {
      const p = writePipeline(
        s,
        { pipeline: `canary-pg-${name}`, source: { type: 'generator', rows: 3 }, sink: pgSink(extra), retry: FAST_RETRY },
        `${name}.yaml`,
      );
      const run = await runAndScan(s, c, ['run', p, '--log-level', 'debug', '--summary-json', `out/${name}.json`], env(c));
      expect(run.result.code).toBe(1);
      expectClean(`pg-unreachable-${name}`, run);
      const check = await runAndScan(s, c, ['check', p], env(c));
      expect(check.result.code).toBe(3);
      expectClean(`pg-unreachable-${name}-check`, check);
    }
  });

  it('a real server: unknown database, then a successful load at trace level (pretty and json)', async () => {
    const c = newCanary();
    const s = newScenario();
    const bad = writePipeline(
      s,
      {
        pipeline: 'canary-pg-nodb',
        source: { type: 'generator', rows: 3 },
        sink: pgSink({ database: `nope_${Date.now().toString(36)}` }),
        retry: FAST_RETRY,
      },
      'bad.yaml',
    );
    const run = await runAndScan(s, c, ['run', bad, '--log-level', 'debug'], env(c));
    expect(run.result.code).toBe(2); // an unknown database is a configuration error
    expectClean('pg-unknown-database', run);
    const table = `canary_${c.core}`;
    for (const format of ['json', 'pretty']) {
      const good = writePipeline(
        s,
        { pipeline: 'canary-pg-ok', source: { type: 'generator', rows: 50, partitions: 2 }, sink: pgSink({ table, mode: 'replace' }) },
        'good.yaml',
      );
      const ok = await runAndScan(
        s,
        c,
        ['run', good, '--log-level', 'trace', '--log-format', format, '--summary-json', 'out/ok.json'],
        env(c),
      );
      expect(ok.result.code, ok.output).toBe(0);
      expectClean(`pg-success-trace-${format}`, ok);
    }
    const pg = await import('pg');
    const client = new pg.default.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
    await client.connect();
    try {
      await client.query(`DROP TABLE IF EXISTS ${table}`);
    } finally {
      await client.end();
    }
  });
});

describe.skipIf(!mysqlUp)('MariaDB', () => {
  const mySink = (extra: Record<string, unknown>) => ({
    type: 'mysql',
    database: 'test',
    user: 'root',
    table: 'canary_t',
    password: '${env:WEIR_CANARY}',
    connect_timeout: '3s',
    ...extra,
  });

  it('wrong password, run and check', async () => {
    const c = newCanary();
    const s = newScenario();
    const p = writePipeline(s, {
      pipeline: 'canary-my-password',
      source: { type: 'generator', rows: 3 },
      sink: mySink({}),
      retry: FAST_RETRY,
    });
    const run = await runAndScan(s, c, ['run', p, '--log-level', 'debug', '--summary-json', 'out/summary.json'], env(c));
    expect(run.result.code).toBe(1);
    expect(run.output).toContain('Access denied');
    expectClean('mariadb-wrong-password', run);
    const check = await runAndScan(s, c, ['check', p], env(c));
    expect(check.result.code).toBe(3);
    expectClean('mariadb-wrong-password-check', check);
  });

  it('unreachable host: closed port and unresolvable name, run and check', async () => {
    const c = newCanary();
    const s = newScenario();
    for (const [name, extra] of [
      ['closed-port', { host: '127.0.0.1', port: await closedPort() }],
      ['unresolvable', { host: 'weir-canary-host.invalid' }],
    ] as const) {
      const p = writePipeline(
        s,
        { pipeline: `canary-my-${name}`, source: { type: 'generator', rows: 3 }, sink: mySink(extra), retry: FAST_RETRY },
        `${name}.yaml`,
      );
      const run = await runAndScan(s, c, ['run', p, '--log-level', 'debug', '--summary-json', `out/${name}.json`], env(c));
      expect(run.result.code).toBe(1);
      expectClean(`mariadb-unreachable-${name}`, run);
      const check = await runAndScan(s, c, ['check', p], env(c));
      expect(check.result.code).toBe(3);
      expectClean(`mariadb-unreachable-${name}-check`, check);
    }
  });
});

describe('issue 10: secrets cut short, cased, re-encoded, in names and in YAML errors', () => {
  it('a custom connector printing the secret upper- and lower-cased', async () => {
    const c = newCanary();
    const s = echoScenario();
    const p = writePipeline(s, {
      pipeline: 'canary-cased',
      connectors: ECHO,
      source: { type: 'generator', rows: 2 },
      sink: { type: 'echo', behaviour: 'cased', api_key: '${env:WEIR_CANARY}' },
      retry: FAST_RETRY,
    });
    const run = await runAndScan(s, c, ['run', p, '--log-level', 'debug', '--summary-json', 'out/summary.json'], env(c));
    expect(run.result.code).toBe(1);
    expect(run.output).toContain('upper ***REDACTED***');
    expect(run.output).toContain('peer refused');
    expectClean('cased', run);
  });

  it('a custom connector writing the secret as UTF-16, latin1 and UTF-16 bytes', async () => {
    const c = newCanary();
    const s = echoScenario();
    const p = writePipeline(s, {
      pipeline: 'canary-encodings',
      connectors: ECHO,
      source: { type: 'generator', rows: 2 },
      sink: { type: 'echo', behaviour: 'encodings', api_key: '${env:WEIR_CANARY}' },
    });
    const run = await runAndScan(s, c, ['run', p], env(c));
    expect(run.result.code, run.output).toBe(0);
    expect(run.output.replace(/\0/g, '')).toContain('utf16le string');
    expectClean('encodings', run);
  });

  it('partition ids made from a secret, cut short in the human summary', async () => {
    const c = newCanary(true);
    const s = echoScenario();
    const p = writePipeline(s, {
      pipeline: 'canary-partition-ids',
      connectors: ECHO,
      source: { type: 'echo', behaviour: 'partition-ids', rows: 2, api_key: '${env:WEIR_CANARY}' },
      sink: { type: 'jsonl', path: 'work/out/rows.jsonl' },
    });
    const run = await runAndScan(s, c, ['run', p, '--summary-json', 'out/summary.json'], env(c));
    expect(run.result.code, run.output).toBe(0);
    expect(run.result.stderr).toContain('partition');
    expectClean('partition-ids', withoutState(run));
  });

  it('a pipeline id read from a reference, with /metrics scraped during the run', async () => {
    const c = newCanary(true); // a valid pipeline id
    const s = newScenario();
    const p = writePipeline(s, {
      pipeline: '${env:WEIR_CANARY}',
      source: { type: 'generator', rows: 3000 },
      sink: { type: 'jsonl', path: 'work/out/x.jsonl' },
      rate_limit: { rows_per_second: 1500 },
    });
    const port = freePort();
    const scrape = scrapeMetrics(port);
    const run = await runAndScan(
      s,
      c,
      ['run', p, '--log-format', 'json', '--metrics-port', String(port), '--summary-json', 'out/summary.json'],
      env(c),
      60_000,
      scrape,
    );
    expect(run.result.code, run.output).toBe(0);
    expect(scrape.scraped()).toContain('weir_rows_written_total');
    expectClean('pipeline-id-metrics', run);
  });

  it.each(['!<', '!', '*'])('a literal secret after %s in a YAML file: validate, run and check', async (sigil) => {
    const c = newCanary(true);
    const s = echoScenario();
    const close = sigil === '!<' ? '>' : '';
    const files = {
      'block-secret-option.yaml': `pipeline: canary-yaml\nconnectors: [./fixtures/echo.mjs]\nsource: { type: generator, rows: 1 }\nsink:\n  type: echo\n  api_key: ${sigil}${c.value}${close}\n`,
      'flow-credential-name.yaml': `pipeline: canary-yaml\nsource: { type: generator, rows: 1 }\nsink: { type: postgres, table: t, password: ${sigil}${c.value}${close} }\n`,
    };
    for (const [name, text] of Object.entries(files)) {
      writeFileSync(join(s.root, name), text);
      for (const cmd of ['validate', 'run', 'check']) {
        const run = await runAndScan(s, c, [cmd, join(s.root, name)], {});
        expect(run.result.code, `${name} ${cmd}`).toBe(2);
        expect(run.result.stderr).toMatch(/Unresolved (tag|alias)/);
        expectClean(`yaml-${sigil}-${name}-${cmd}`, run);
      }
    }
  });
});

describe.skipIf(!mysqlUp)('issue 10: a 400-character secret echoed cut short by MariaDB', () => {
  it('in a mysql query: weir run, weir check and --summary-json', async () => {
    const random = Buffer.from(Array.from({ length: 300 }, () => Math.floor(Math.random() * 256))).toString('base64url');
    const jwt = `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.${random}`.slice(0, 400);
    const c: Canary = { value: jwt, core: jwt.slice(37) };
    const s = newScenario();
    const p = writePipeline(s, {
      pipeline: 'canary-my-long',
      // a syntax error right before the secret: MariaDB echoes the query from there, cut to 80 characters
      source: { type: 'mysql', database: 'test', user: 'root', query: "SELECT FROM t WHERE note = '${env:WEIR_JWT}'" },
      sink: { type: 'jsonl', path: 'work/out/rows.jsonl' },
      retry: FAST_RETRY,
    });
    const prefixes = (text: string) => {
      let n = 0;
      for (let len = 12; len <= jwt.length; len++) if (text.includes(jwt.slice(0, len))) n++;
      return n;
    };
    for (const args of [
      ['run', p, '--log-level', 'debug', '--summary-json', 'out/summary.json'],
      ['check', p],
    ]) {
      const run = await runAndScan(s, c, args, { WEIR_JWT: jwt });
      expect(run.output, args[0]).toMatch(/SQL syntax/);
      const summary = args[0] === 'run' ? (await import('node:fs')).readFileSync(join(s.work, 'out/summary.json'), 'utf8') : '';
      expect(prefixes(run.output + summary), `${args[0]}: prefixes of 12+ characters`).toBe(0);
      expectClean(`mariadb-long-secret-${args[0]}`, run);
    }
  });
});
