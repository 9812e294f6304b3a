/** The connector's {@link HttpClient} from its options (worker and planner). */
import type { Log } from '../../sdk/connector.js';
import { type HttpAuth, HttpClient } from '../../sdk/http.js';
import { tlsConfig } from '../../sdk/tls.js';
import type { HttpOptions } from './spec.js';

export function httpAuth(opts: HttpOptions): HttpAuth {
  const a = opts.auth;
  switch (a?.type) {
    case 'bearer':
      return { type: 'bearer', token: a.token as string };
    case 'basic':
      return { type: 'basic', username: a.username as string, password: a.password as string };
    case 'api_key':
      return { type: 'api_key', header: a.header, value: a.api_key as string };
    case 'oauth2_client_credentials':
      return {
        type: 'oauth2_client_credentials',
        token_url: a.token_url as string,
        client_id: a.client_id as string,
        client_secret: a.client_secret as string,
        scope: a.scope,
      };
    default:
      return { type: 'none' };
  }
}

export function openClient(
  opts: HttpOptions,
  ctx: {
    log: Log;
    signal?: AbortSignal;
    baseDir: string;
    rateLimit?: { observe(h: { limit: number; remaining: number; resetMs?: number }): void };
  },
): HttpClient {
  const tls = opts.url.startsWith('https:')
    ? tlsConfig({ ssl_enabled: true, ssl_ca_cert: opts.ssl_ca_cert, ssl_verify: opts.ssl_verify }, ctx.baseDir, ctx.log)
    : undefined;
  const query = [...new URL(opts.url).searchParams.values()];
  return new HttpClient(
    {
      auth: httpAuth(opts),
      headers: opts.headers,
      timeoutMs: opts.timeout,
      tls,
      connections: opts.connections,
      secrets: query,
      excerptChars: opts.excerpt_chars,
      onHeadroom: ctx.rateLimit ? (h) => ctx.rateLimit?.observe(h) : undefined,
    },
    ctx,
  );
}
