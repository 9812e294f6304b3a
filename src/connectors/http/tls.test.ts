/** The http sink over TLS: verified against ssl_ca_cert, refused without it, with a message naming the option. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runYaml } from '../../../test/foundation/harness.js';
import { tempDir } from '../../../test/helpers/cli.js';

const dir = tempDir();
let server: Server;
let url = '';
let rows = 0;

beforeAll(async () => {
  // a self-signed certificate for 127.0.0.1: its own CA
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      rows += (JSON.parse(Buffer.concat(chunks).toString()) as unknown[]).length;
      res.writeHead(200);
      res.end('{}');
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
});
afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

describe('http sink over TLS', () => {
  it('sends to a server whose certificate ssl_ca_cert signed', async () => {
    const { summary } = await runYaml(
      `pipeline: http-tls\nsource: { type: generator, rows: 50 }\nsink: { type: http, url: "${url}", ssl_ca_cert: ${join(dir, 'cert.pem')} }\n`,
      [],
      dir,
    );
    expect(summary.status).toBe('succeeded');
    expect(rows).toBe(50);
  });

  it('refuses an unknown certificate, pointing at ssl_ca_cert', async () => {
    const { summary } = await runYaml(
      `pipeline: http-tls-bad\nsource: { type: generator, rows: 5 }\nsink: { type: http, url: "${url}" }\nretry: { max_attempts: 1, partition_attempts: 1 }\n`,
      [],
      dir,
    );
    expect(summary.status).toBe('failed');
    expect(JSON.stringify(summary)).toContain('check ssl_ca_cert');
  });
});
