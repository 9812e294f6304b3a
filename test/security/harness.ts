/**
 * The canary harness: a unique secret per scenario, the CLI run as a subprocess, and a
 * scan of everything the run left behind (stdout, stderr, every file under its working
 * directory: logs, dead letters, summaries, checkpoints) for any trace of the secret.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { type CliResult, runCli, tempDir } from '../helpers/cli.js';

export const FIXTURES = join(import.meta.dirname, 'fixtures');

export interface Canary {
  /** The secret: a random core plus characters that every encoding changes. */
  value: string;
  /** The random part; any 10 characters of it in a row count as a leak. */
  core: string;
}

export function newCanary(plain = false): Canary {
  const core = `wcan${randomBytes(8).toString('hex')}`;
  return { core, value: plain ? core : `${core}-S3cr/t+&"q y` };
}

/** Where a trace of the canary was found, or nothing. */
export function findLeaks(canary: Canary, outputs: Record<string, string>): string[] {
  const windows: string[] = [];
  for (let i = 0; i + 10 <= canary.core.length; i++) windows.push(canary.core.slice(i, i + 10));
  const leaks: string[] = [];
  for (const [name, text] of Object.entries(outputs)) {
    // ASCII written as UTF-16 reads as the text with a NUL after (or before) each character
    const haystacks = [text, text.replace(/\0/g, ''), ...base64Decodings(text)];
    for (const h of haystacks) {
      const hit = windows.find((w) => h.includes(w));
      if (hit) {
        const at = text.indexOf(hit);
        leaks.push(`${name}: ${at >= 0 ? JSON.stringify(text.slice(Math.max(0, at - 60), at + 60)) : '(inside base64 text)'}`);
        break;
      }
    }
  }
  return leaks;
}

/** Every base64 run of the text, decoded at each alignment (a secret hidden in a Basic header or an encoded blob). */
function base64Decodings(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/[A-Za-z0-9+/_-]{12,}={0,2}/g)) {
    for (let skip = 0; skip < 4; skip++) {
      const token = m[0].slice(skip);
      out.push(Buffer.from(token, 'base64').toString('latin1'), Buffer.from(token, 'base64url').toString('latin1'));
    }
  }
  return out;
}

function readTree(dir: string, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) Object.assign(out, readTree(p, `${prefix}${name}/`));
    else if (st.isFile()) out[`file ${prefix}${name}`] = readFileSync(p).toString('latin1');
  }
  return out;
}

export interface Scenario {
  /** Holds the pipeline file (not scanned: a literal secret may be written in it) and, beside it, the run's state in `.weir/` (scanned). */
  root: string;
  /** Secret files (not scanned). */
  secrets: string;
  /** The CLI's working directory; everything in it is scanned. Pipeline paths such as work/out/x.jsonl land here. */
  work: string;
}

const created: string[] = [];

/** Removes every scenario directory of this test file (kept with WEIR_KEEP_TEMP=1, for debugging). */
export function removeScenarios(): void {
  if (process.env.WEIR_KEEP_TEMP === '1') return;
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export function newScenario(): Scenario {
  const root = tempDir('weir-canary-');
  created.push(root);
  const s = { root, secrets: join(root, 'secrets'), work: join(root, 'work') };
  mkdirSync(s.secrets, { mode: 0o700 });
  mkdirSync(join(s.work, 'out'), { recursive: true });
  return s;
}

export function writePipeline(s: Scenario, pipeline: Record<string, unknown>, name = 'pipeline.yaml'): string {
  const path = join(s.root, name);
  writeFileSync(path, stringify(pipeline));
  return path;
}

export interface ScannedRun {
  result: CliResult;
  leaks: string[];
  /** stdout + stderr, for assertions that the scenario did what it says. */
  output: string;
}

export interface ScanOptions {
  /** Sees each stdout chunk (to scrape `/metrics` once the run started). */
  onStdout?: (chunk: string) => void;
  /** More outputs to scan, collected while the run went on (a `/metrics` scrape). */
  extra?: () => Record<string, string>;
}

/** Runs the CLI in the scenario's work directory and scans everything it produced. */
export async function runAndScan(
  s: Scenario,
  canary: Canary,
  args: string[],
  env: Record<string, string | undefined> = {},
  timeoutMs = 60_000,
  scan: ScanOptions = {},
): Promise<ScannedRun> {
  const result = await runCli(args, { cwd: s.work, env: { WEIR_DEBUG: undefined, ...env }, timeoutMs, onStdout: scan.onStdout });
  // the run's state lives beside the pipeline file (root/.weir), the outputs in the working directory
  const state = join(s.root, '.weir');
  const outputs = {
    stdout: result.stdout,
    stderr: result.stderr,
    ...readTree(s.work),
    ...(existsSync(state) ? readTree(state, '.weir/') : {}),
    ...scan.extra?.(),
  };
  return { result, leaks: findLeaks(canary, outputs), output: `${result.stdout}\n${result.stderr}` };
}

// ---------------------------------------------------------------------------
// Hostile peers

export interface EchoServer {
  url: string;
  /** Raw requests received (to prove the secret really reached the peer). */
  received: string[];
  close(): Promise<void>;
}

const html = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * An HTTP peer that refuses every request and echoes it back: `/json` (401, JSON with
 * url, headers and body), `/html` (403, HTML-escaped), `/text` (400, raw header lines).
 * It also reflects the Authorization header in a response header.
 */
export async function startEchoServer(): Promise<EchoServer> {
  const received: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => {
      body += d.toString();
    });
    req.on('end', () => {
      const headerLines = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) headerLines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      const dump = `${req.method} ${req.url}\n${headerLines.join('\n')}\n\n${body}`;
      received.push(dump);
      const path = (req.url ?? '').split('?')[0];
      res.setHeader('x-echo-authorization', String(req.headers.authorization ?? ''));
      if (path === '/html') {
        res.writeHead(403, { 'content-type': 'text/html' }).end(`<html><body><h1>Forbidden</h1><pre>${html(dump)}</pre></body></html>`);
      } else if (path === '/text') {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(`bad request:\n${dump}`);
      } else {
        res
          .writeHead(401, { 'content-type': 'application/json' })
          .end(
            JSON.stringify({ error: 'invalid credentials', received: { method: req.method, url: req.url, headers: req.headers, body } }),
          );
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface FakePostgres {
  port: number;
  /** Passwords the server was sent. */
  passwords: string[];
  close(): Promise<void>;
}

/**
 * A PostgreSQL server that asks for a cleartext password and refuses it, like a server
 * with `password` authentication in pg_hba.conf (the local server trusts everyone, so a
 * wrong password cannot fail there). With `echo`, its error message and detail repeat
 * the password it was sent — a hostile or broken peer.
 */
export async function startFakePostgres(echo: boolean): Promise<FakePostgres> {
  const passwords: string[] = [];
  const server = createTcpServer((socket) => {
    let buf = Buffer.alloc(0);
    let started = false;
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (!started) {
          if (buf.length < 8) return;
          const len = buf.readInt32BE(0);
          if (buf.length < len) return;
          const code = buf.readInt32BE(4);
          buf = buf.subarray(len);
          if (code === 80877103 || code === 80877104) {
            socket.write('N'); // no SSL, no GSS encryption
            continue;
          }
          started = true;
          socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])); // AuthenticationCleartextPassword
          continue;
        }
        if (buf.length < 5) return;
        const type = String.fromCharCode(buf[0] as number);
        const len = buf.readInt32BE(1);
        if (buf.length < len + 1) return;
        const payload = buf.subarray(5, len + 1);
        buf = buf.subarray(len + 1);
        if (type !== 'p') continue;
        const password = payload.toString('utf8').replace(/\0$/, '');
        passwords.push(password);
        const message = echo
          ? `password authentication failed for user "loader" (password was "${password}")`
          : 'password authentication failed for user "loader"';
        const fields: [string, string][] = [
          ['S', 'FATAL'],
          ['V', 'FATAL'],
          ['C', '28P01'],
          ['M', message],
        ];
        if (echo) fields.push(['D', `Connection matched pg_hba.conf line 7: "host all all 0.0.0.0/0 password"; client sent ${password}`]);
        const body = Buffer.concat([...fields.map(([k, v]) => Buffer.from(`${k}${v}\0`)), Buffer.from([0])]);
        const header = Buffer.alloc(5);
        header.write('E', 0);
        header.writeInt32BE(body.length + 4, 1);
        socket.end(Buffer.concat([header, body]));
        return;
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    passwords,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A TCP port nothing listens on. */
export async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Scrapes `/metrics` (and `/readyz`) of a run on `port` half a second after its first
 * log line, for {@link runAndScan}'s `scan` option.
 */
export function scrapeMetrics(port: number): Required<ScanOptions> & { scraped: () => string } {
  let started = false;
  let scraped = '';
  const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`).then((r) => r.text());
  return {
    onStdout: () => {
      if (started) return;
      started = true;
      setTimeout(() => {
        Promise.all([get('/metrics'), get('/readyz')])
          .then((texts) => {
            scraped = texts.join('\n');
          })
          .catch(() => {});
      }, 500);
    },
    extra: () => ({ '/metrics': scraped }),
    scraped: () => scraped,
  };
}

/** Retries that cannot make a failing scenario slow. */
export const FAST_RETRY = { max_attempts: 2, initial_delay: '10ms', max_delay: '50ms' };
