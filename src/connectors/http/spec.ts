/**
 * Options of the `http` connector. One spec drives validation, docs, JSON Schema
 * and redaction (every credential in `auth` is a secret; header values and the URL
 * are scrubbed by value when they come from a secret reference).
 */
import { type OptionsOf, o, rules } from '../../sdk/options.js';

const auth = o
  .object(
    {
      type: o
        .enum(['none', 'bearer', 'basic', 'api_key', 'oauth2_client_credentials'] as const)
        .describe('How requests authenticate.')
        .default('none'),
      token: o.secret().describe('`bearer`: the token sent as `Authorization: Bearer <token>`.'),
      username: o.string({ minLength: 1 }).describe('`basic`: the user name.'),
      password: o.secret().describe('`basic`: the password.'),
      header: o
        .string({ minLength: 1, pattern: /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, patternHint: 'must be an HTTP header name' })
        .describe('`api_key`: the header that carries the key.')
        .default('X-Api-Key'),
      api_key: o.secret().describe('`api_key`: the key.'),
      token_url: o.url({ schemes: ['http', 'https'] }).describe('`oauth2_client_credentials`: the token endpoint.'),
      client_id: o.string({ minLength: 1 }).describe('`oauth2_client_credentials`: the client id.'),
      client_secret: o.secret().describe('`oauth2_client_credentials`: the client secret.'),
      scope: o.string({ minLength: 1 }).describe('`oauth2_client_credentials`: the scope asked for, space-separated.'),
    },
    [
      rules.custom(
        'each auth type needs its credentials',
        ['type', 'token', 'username', 'password', 'api_key', 'token_url', 'client_id', 'client_secret'],
        (a) => {
          const need: Record<string, string[]> = {
            bearer: ['token'],
            basic: ['username', 'password'],
            api_key: ['api_key'],
            oauth2_client_credentials: ['token_url', 'client_id', 'client_secret'],
          };
          const missing = (need[String(a.type)] ?? []).filter((k) => a[k] === undefined);
          return missing.length
            ? `auth type ${String(a.type)} needs ${missing.join(', ')}; add ${missing.map((m) => `auth.${m}`).join(' and ')}`
            : undefined;
        },
      ),
    ],
  )
  .describe(
    'Authentication: `bearer` (token), `basic` (username, password), `api_key` (header, api_key) or `oauth2_client_credentials` (token_url, client_id, client_secret, scope; the token is cached, fetched again before it expires and once on a 401).',
  )
  .example({ type: 'bearer', token: '${env:API_TOKEN}' });

export const httpOptions = {
  url: o
    .url({ schemes: ['http', 'https'] })
    .describe(
      'The endpoint. May hold a secret reference, e.g. a token in the query (`?token=${env:TOKEN}`); messages show it with its query values redacted.',
    )
    .required()
    .example('https://api.example.com/v1/events'),
  method: o
    .enum(['POST', 'PUT', 'PATCH'] as const)
    .describe('Sink: the request method.')
    .default('POST'),
  headers: o
    .map(o.string())
    .describe(
      'Headers sent with every request. Values may be secret references (`Authorization: Bearer ${env:TOKEN}`); they are scrubbed from every output.',
    )
    .example({ 'X-Tenant': 'acme' }),
  auth,
  format: o
    .enum(['json', 'ndjson', 'json_per_row'] as const)
    .describe(
      "Sink: the body of a request: `json`, a JSON array of the batch's rows; `ndjson`, one JSON row per line; `json_per_row`, one request per row with the row as a JSON object.",
    )
    .default('json'),
  batch_size: o.int({ min: 1, max: 100_000 }).describe('Sink: rows per request (`json`, `ndjson`).').default(500),
  batch_bytes: o.bytes({ min: 1024 }).describe('Sink: a request carries at most about this many bytes of rows.').default('4MB'),
  max_in_flight: o
    .int({ min: 1, max: 256 })
    .describe('Sink, `json_per_row`: requests of one partition awaiting their answers at once.')
    .default(8),
  compression: o
    .enum(['none', 'gzip'] as const)
    .describe('Sink: compress request bodies (`Content-Encoding: gzip`).')
    .default('none'),
  idempotency_key: o
    .bool()
    .describe(
      'Sink: send an `Idempotency-Key` header, the same on every retry of a batch (derived from run, partition and batch), so an API that honours it never stores a batch twice.',
    )
    .default(true),
  timeout: o
    .duration({ min: 100, max: 3_600_000 })
    .describe('How long one request may take, connecting and the whole answer included; a request that takes longer is retried.')
    .default('30s'),
  connections: o.int({ min: 1, max: 1024 }).describe('Keep-alive connections per partition.').default(8).advanced(),
  health_url: o
    .url({ schemes: ['http', 'https'] })
    .describe('`weir check`: the URL a GET checks connection, TLS and authentication against. Unset: a HEAD of `url`.'),
  headroom_threshold: o
    .number({ min: 0, max: 1 })
    .describe('`weir check`: fail the rate-limit check when the API reports less than this share of its limit left.')
    .default(0.2),
  ssl_ca_cert: o
    .path()
    .describe('PEM file with the CA certificate(s) that signed the server certificate, for an https `url` signed by a private CA.'),
  ssl_verify: o
    .bool()
    .describe('Verify the server certificate and host name. Setting false is insecure and logs a warning.')
    .default(true)
    .advanced(),
  excerpt_chars: o
    .int({ min: 0, max: 10_000 })
    .describe("Characters of a refused response's body kept (redacted) in its error and dead letters.")
    .default(300)
    .advanced(),
};

export type HttpOptions = OptionsOf<typeof httpOptions>;
