/** The http sink in whole runs (in process) against a local API that misbehaves on request. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { tempDir } from '../../../test/helpers/cli.js';
import { echoBadRequest, startTestApi, type TestApi } from '../../../test/helpers/http-api.js';
import { validateOptions } from '../../sdk/options.js';
import { silentLog } from '../../sdk/testing.js';
import { httpCheck } from './check.js';
import { type HttpOptions, httpOptions } from './spec.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(() => api.close());
afterEach(() => {
  api.requests.length = 0;
  api.rows.length = 0;
  api.stored.clear();
  api.behaviour = undefined;
  api.extraHeaders = {};
});

const RETRY = 'retry: { max_attempts: 6, initial_delay: 10ms, max_delay: 50ms }';

/** A secret that must appear in no output: set in the environment, referenced by the pipeline. */
function canary(): string {
  const value = `cAnArY${randomBytes(9).toString('hex')}`;
  process.env.WEIR_HTTP_CANARY = value;
  return value;
}

/** The first and last sending of each Idempotency-Key. */
function byKey(): Map<string, { at: number; status: number }[]> {
  const out = new Map<string, { at: number; status: number }[]>();
  for (const r of api.requests) {
    if (!r.key) continue;
    const list = out.get(r.key) ?? [];
    list.push({ at: r.at, status: r.status });
    out.set(r.key, list);
  }
  return out;
}

describe('http sink: bodies and formats', () => {
  it.each([
    ['json', 'none', 'application/json'],
    ['ndjson', 'gzip', 'application/x-ndjson'],
    ['json_per_row', 'none', 'application/json'],
  ])('%s with compression %s: every row arrives once, with one key per request', async (format, compression, type) => {
    const { summary } = await runYaml(
      `
pipeline: http-${format}
source: { type: generator, rows: 600, partitions: 2 }
sink: { type: http, url: "${api.url}/events", format: ${format}, compression: ${compression}, batch_size: 100, max_in_flight: 4 }
`,
      [],
      tempDir(),
    );
    expect(summary.status).toBe('succeeded');
    expect(summary.totals.rows_written).toBe(600);
    expect(new Set(api.rows.map((r) => r.id)).size).toBe(600);
    expect(api.requests).toHaveLength(format === 'json_per_row' ? 600 : 6);
    expect(new Set(api.requests.map((r) => r.key)).size).toBe(api.requests.length);
    for (const r of api.requests) expect(r.headers['content-type']).toBe(type);
    if (compression === 'gzip') expect(api.requests[0]?.headers['content-encoding']).toBe('gzip');
  });

  it('batch_bytes cuts a batch into smaller requests', async () => {
    const { summary } = await runYaml(
      `
pipeline: http-bytes
source: { type: generator, rows: 200 }
sink: { type: http, url: "${api.url}/events", batch_size: 200, batch_bytes: 4KB }
`,
      [],
      tempDir(),
    );
    expect(summary.totals.rows_written).toBe(200);
    expect(api.requests.length).toBeGreaterThan(3);
    for (const r of api.requests) expect(r.body.length).toBeLessThan(4096 + 600);
    expect(new Set(api.rows.map((r) => r.id)).size).toBe(200);
  });
});

describe('http sink: responses', () => {
  it.each([
    ['seconds', () => '1'],
    ['an HTTP date', () => new Date(Date.now() + 2000).toUTCString()],
  ])('429 with Retry-After in %s: no batch is resent before its Retry-After passed; every row once', async (_kind, after) => {
    const refusedAt = new Map<string, number>();
    api.behaviour = (r) => {
      if (r.key && !refusedAt.has(r.key)) {
        const header = after();
        // an HTTP date has whole seconds: the wait is until that second
        refusedAt.set(r.key, header === '1' ? r.at + 1000 : Date.parse(header) - Date.now() + r.at);
        return { status: 429, headers: { 'retry-after': header }, body: '{"error":"slow down"}' };
      }
      return undefined;
    };
    const { summary, events } = await runYaml(
      `
pipeline: http-429
source: { type: generator, rows: 300, partitions: 3 }
sink: { type: http, url: "${api.url}/events", batch_size: 50 }
${RETRY}
`,
      [],
      tempDir(),
    );
    expect(summary.status).toBe('succeeded');
    const keys = byKey();
    expect(keys.size).toBe(6);
    for (const [key, sends] of keys) {
      expect(sends.map((s) => s.status)).toEqual([429, 200]);
      // the server's clock and the client's are the same performance.now() here
      expect(sends[1]?.at ?? 0).toBeGreaterThanOrEqual((refusedAt.get(key) ?? Infinity) - 1);
    }
    expect(new Set(api.rows.map((r) => r.id)).size).toBe(300);
    expect(api.rows).toHaveLength(300);
    expect(events.filter((e) => e.type === 'batch_retry')).toHaveLength(6);
  });

  it('503, connection resets and slow answers are retried with the same Idempotency-Key; the API stores each batch once', async () => {
    const seen = new Map<string, number>();
    api.behaviour = (r) => {
      if (!r.key) return undefined;
      const n = (seen.get(r.key) ?? 0) + 1;
      seen.set(r.key, n);
      if (n === 1) return { status: 503 };
      if (n === 2) return { status: 0, reset: true };
      if (n === 3) return { status: 200, delayMs: 1500 };
      return undefined;
    };
    const { summary } = await runYaml(
      `
pipeline: http-flaky
source: { type: generator, rows: 120, partitions: 2 }
sink: { type: http, url: "${api.url}/events", batch_size: 40, timeout: 400ms }
${RETRY}
`,
      [],
      tempDir(),
    );
    expect(summary.status).toBe('succeeded');
    expect(api.rows).toHaveLength(120);
    expect(new Set(api.rows.map((r) => r.id)).size).toBe(120);
    expect([...seen.values()]).toEqual([4, 4, 4, 4]);
    expect(summary.totals.rows_written).toBe(120);
  });

  it('a batch cut into several requests is retried from the refused one: the requests the API accepted are not sent again', async () => {
    const seen = new Map<string, number>();
    api.behaviour = (r) => {
      if (!r.key) return undefined;
      const n = (seen.get(r.key) ?? 0) + 1;
      seen.set(r.key, n);
      // the batch's third request is refused once (one partition: its requests arrive in order)
      return seen.size === 3 && n === 1 ? { status: 503 } : undefined;
    };
    const { summary } = await runYaml(
      `
pipeline: http-pieces
source: { type: generator, rows: 200 }
sink: { type: http, url: "${api.url}/events", batch_size: 200, batch_bytes: 4KB }
${RETRY}
`,
      [],
      tempDir(),
    );
    expect(summary.status).toBe('succeeded');
    const counts = [...seen.values()];
    expect(counts.length).toBeGreaterThan(3);
    expect(counts).toEqual(counts.map((_, i) => (i === 2 ? 2 : 1)));
    expect(api.rows).toHaveLength(200);
    expect(summary.totals).toMatchObject({ rows_written: 200, retries: 1 });
  });

  it('rate-limit headers slow the run before the API refuses', async () => {
    api.extraHeaders = { 'x-ratelimit-limit': '100', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '0.4' };
    const started = performance.now();
    const { summary } = await runYaml(
      `
pipeline: http-headroom
source: { type: generator, rows: 40 }
sink: { type: http, url: "${api.url}/events", batch_size: 10 }
`,
      [],
      tempDir(),
    );
    expect(summary.status).toBe('succeeded');
    const gaps = api.requests.slice(1).map((r, i) => r.at - (api.requests[i]?.at ?? 0));
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(390);
    expect(performance.now() - started).toBeGreaterThanOrEqual(1200);
  });
});

describe('http sink: a 400 that echoes the Authorization header and a ?token= URL', () => {
  const pipeline = (secretRef: string, tolerance: boolean, dir: string) => `
pipeline: http-echo
source: { type: generator, rows: 30 }
sink:
  type: http
  url: "${api.url}/events?token=${secretRef}"
  batch_size: 10
  headers: { X-Trace: "t-${secretRef}" }
  auth: { type: bearer, token: "${secretRef}" }
${tolerance ? `errors: { tolerance: all, dead_letter: { type: jsonl, path: ${join(dir, 'dead.jsonl')} } }` : ''}
${RETRY}
checkpoint: { path: ${join(dir, 'state.db')} }
`;

  it('with tolerance all: the run succeeds, every row is dead-lettered once with the status and a redacted excerpt, never resent', async () => {
    const secret = canary();
    api.behaviour = echoBadRequest;
    const dir = tempDir();
    const { summary, logs } = await runYaml(pipeline('${env:WEIR_HTTP_CANARY}', true, dir), [], dir);
    expect(summary.status).toBe('succeeded');
    expect(summary.totals.rows_dead_lettered).toBe(30);
    expect(api.requests).toHaveLength(3);
    expect(api.requests[0]?.headers.authorization).toBe(`Bearer ${secret}`);
    expect(api.requests[0]?.url).toContain(secret);
    const dead = readFileSync(join(dir, 'dead.jsonl'), 'utf8');
    expect(dead.trim().split('\n')).toHaveLength(30);
    expect(dead).toContain('HTTP 400');
    expect(dead).toContain('invalid payload');
    expect(dead).toContain('REDACTED');
    const all = `${logs}\n${dead}\n${JSON.stringify(summary)}`;
    expect(all.includes(secret)).toBe(false);
    expect(all.includes(secret.slice(4, 16))).toBe(false);
    expect(all.includes(Buffer.from(secret).toString('base64').slice(0, 16))).toBe(false);
  });

  it('without tolerance: the run fails, the batch is not resent, and the secret appears nowhere', async () => {
    const secret = canary();
    api.behaviour = echoBadRequest;
    const dir = tempDir();
    const { summary, logs } = await runYaml(pipeline('${env:WEIR_HTTP_CANARY}', false, dir), [], dir);
    expect(summary.status).toBe('failed');
    expect(api.requests).toHaveLength(1);
    expect(JSON.stringify(summary)).toContain('HTTP 400');
    const all = `${logs}\n${JSON.stringify(summary)}`;
    expect(all.includes(secret)).toBe(false);
    expect(all.includes(secret.slice(4, 16))).toBe(false);
  });
});

describe('http sink: authentication', () => {
  it('basic and api_key send their credentials', async () => {
    const secret = canary();
    for (const auth of [
      `{ type: basic, username: loader, password: "\${env:WEIR_HTTP_CANARY}" }`,
      `{ type: api_key, header: X-Api-Key, api_key: "\${env:WEIR_HTTP_CANARY}" }`,
    ]) {
      const { summary, logs } = await runYaml(
        `
pipeline: http-auth
source: { type: generator, rows: 5 }
sink: { type: http, url: "${api.url}/events", auth: ${auth} }
`,
        [],
        tempDir(),
      );
      expect(summary.status).toBe('succeeded');
      expect(logs.includes(secret)).toBe(false);
    }
    expect(api.requests[0]?.headers.authorization).toBe(`Basic ${Buffer.from(`loader:${secret}`).toString('base64')}`);
    expect(api.requests[1]?.headers['x-api-key']).toBe(secret);
  });

  it('oauth2 client credentials: one token for the run, fetched again once on a 401 after it expired', async () => {
    const secret = canary();
    api.oauth.clientSecret = secret;
    api.oauth.issued.length = 0;
    let posts = 0;
    api.behaviour = (r) => {
      if (r.method === 'POST' && r.url.startsWith('/oauth/') && ++posts === 3) api.oauth.valid.clear(); // the token expires mid-run
      return undefined;
    };
    const { summary, logs } = await runYaml(
      `
pipeline: http-oauth
source: { type: generator, rows: 60 }
sink:
  type: http
  url: "${api.url}/oauth/events"
  batch_size: 10
  auth: { type: oauth2_client_credentials, token_url: "${api.url}/oauth/token", client_id: weir-client, client_secret: "\${env:WEIR_HTTP_CANARY}", scope: write }
`,
      [],
      tempDir(),
    );
    expect(summary.status).toBe('succeeded');
    expect(api.oauth.issued).toHaveLength(2);
    expect(api.rows).toHaveLength(60);
    expect(api.requests.filter((r) => r.status === 401)).toHaveLength(1);
    for (const token of api.oauth.issued) expect(logs.includes(token)).toBe(false);
    expect(logs.includes(secret)).toBe(false);
  });

  it('a wrong client secret fails the run with a message naming the option', async () => {
    api.oauth.clientSecret = 'the-right-one';
    canary();
    const { summary, logs } = await runYaml(
      `
pipeline: http-oauth-bad
source: { type: generator, rows: 5 }
sink:
  type: http
  url: "${api.url}/oauth/events"
  auth: { type: oauth2_client_credentials, token_url: "${api.url}/oauth/token", client_id: weir-client, client_secret: "\${env:WEIR_HTTP_CANARY}" }
`,
      [],
      tempDir(),
    );
    expect(summary.status).toBe('failed');
    const text = JSON.stringify(summary);
    expect(text).toContain('auth.token_url: HTTP 401');
    expect(text).toContain('check auth.client_id and auth.client_secret');
    expect(logs.includes(String(process.env.WEIR_HTTP_CANARY))).toBe(false);
  });
});

describe('http options', () => {
  it('an auth type without its credentials is refused with the fix', () => {
    const r = validateOptions(httpOptions, { url: 'https://api.example.com', auth: { type: 'bearer' } }, 'sink');
    expect(r.issues.length).toBe(1);
    expect(JSON.stringify(r.issues)).toContain('auth type bearer needs token; add auth.token');
  });
});

describe('weir check: rate-limit headroom', () => {
  const check = (extra: Record<string, unknown> = {}) => {
    const r = validateOptions(httpOptions, { url: `${api.url}/events`, ...extra }, 'sink');
    if (r.issues.length) throw new Error(JSON.stringify(r.issues));
    return httpCheck(r.value as HttpOptions, {
      runId: 'check',
      pipeline: 'p',
      log: silentLog,
      signal: new AbortController().signal,
      baseDir: '.',
      role: 'sink',
    });
  };

  it('fails when less than 20% of the limit is left', async () => {
    api.extraHeaders = { 'ratelimit-limit': '1000', 'ratelimit-remaining': '150', 'ratelimit-reset': '30' };
    const results = await check();
    expect(results.map((r) => [r.name, r.ok])).toEqual([
      ['connection', true],
      ['authentication', true],
      ['rate_limit', false],
    ]);
    expect(results[2]?.message).toBe(
      'only 150 of 1000 requests left (15%, under the 20% headroom_threshold), resets in 30 s; wait for the reset or lower rate_limit.requests_per_second',
    );
  });

  it('passes with enough headroom, and the threshold is configurable', async () => {
    api.extraHeaders = { 'x-ratelimit-limit': '1000', 'x-ratelimit-remaining': '300' };
    expect((await check()).every((r) => r.ok)).toBe(true);
    expect((await check({ headroom_threshold: 0.5 })).find((r) => r.name === 'rate_limit')?.ok).toBe(false);
  });

  it('a 401 on health_url fails authentication, and an unreachable URL fails the connection', async () => {
    api.oauth.valid.clear();
    const results = await check({ health_url: `${api.url}/oauth/health` });
    expect(results.find((r) => r.name === 'authentication')?.ok).toBe(false);
    const down = validateOptions(httpOptions, { url: 'http://127.0.0.1:9/x', timeout: '1s' }, 'sink');
    const r2 = await httpCheck(down.value as HttpOptions, {
      runId: 'c',
      pipeline: 'p',
      log: silentLog,
      signal: new AbortController().signal,
      baseDir: '.',
      role: 'sink',
    });
    expect(r2).toEqual([{ name: 'connection', ok: false, message: expect.stringContaining('ECONNREFUSED') }]);
  });
});
