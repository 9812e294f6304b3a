/**
 * TLS options shared by network connectors. `ssl_enabled: true` requires a CA
 * certificate file and verifies the server (certificate and host name) by default;
 * turning verification off takes an explicit option and logs a warning.
 *
 * @example
 * options: { ...connectionOptions, ...tlsOptions }, rules: [...tlsRules]
 * // at connect time (worker):
 * const ssl = tlsConfig(opts, ctx.baseDir, ctx.log);  // undefined when TLS is off
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import type { Log } from './connector.js';
import { WeirError } from './errors.js';
import { o, rules } from './options.js';

export const tlsOptions = {
  ssl_enabled: o.bool().describe('Connect with TLS.').default(false),
  ssl_ca_cert: o
    .path()
    .describe('PEM file with the CA certificate(s) that signed the server certificate. Required when ssl_enabled is true.'),
  ssl_cert: o.path().describe('PEM client certificate, for servers that require client authentication.').advanced(),
  ssl_key: o.path().describe('PEM private key of ssl_cert.').advanced(),
  ssl_verify: o
    .bool()
    .describe('Verify the server certificate and host name. Setting false is insecure and logs a warning.')
    .default(true)
    .advanced(),
};

export const tlsRules = [
  rules.requiredWhen('ssl_ca_cert', 'ssl_enabled', true),
  rules.custom('ssl_cert and ssl_key go together', ['ssl_cert', 'ssl_key'], (x) =>
    Boolean(x.ssl_cert) !== Boolean(x.ssl_key) ? 'ssl_cert and ssl_key must be given together' : undefined,
  ),
];

export interface TlsSettings {
  ssl_enabled: boolean;
  ssl_ca_cert?: string;
  ssl_cert?: string;
  ssl_key?: string;
  ssl_verify: boolean;
}

function readPem(path: string, option: string, baseDir: string): string {
  const file = isAbsolute(path) ? path : resolve(baseDir, path);
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new WeirError(`${option}: cannot read ${file} (${(error as { code?: string }).code ?? 'error'}); give a readable PEM file`, {
      kind: 'config',
      code: 'tls_file_unreadable',
      cause: error,
    });
  }
}

/** Node TLS options for a connection, or undefined when TLS is off. */
export function tlsConfig(opts: TlsSettings, baseDir: string, log?: Log): ConnectionOptions | undefined {
  if (!opts.ssl_enabled) return undefined;
  if (!opts.ssl_verify) log?.warn('TLS certificate verification is OFF (ssl_verify: false): the connection can be intercepted');
  return {
    ca: opts.ssl_ca_cert ? readPem(opts.ssl_ca_cert, 'ssl_ca_cert', baseDir) : undefined,
    cert: opts.ssl_cert ? readPem(opts.ssl_cert, 'ssl_cert', baseDir) : undefined,
    key: opts.ssl_key ? readPem(opts.ssl_key, 'ssl_key', baseDir) : undefined,
    rejectUnauthorized: opts.ssl_verify,
  };
}
