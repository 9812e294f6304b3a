/**
 * Options of the `http` connector. One spec drives validation, docs, JSON Schema
 * and redaction (every credential in `auth` is a secret; header values and the URL
 * are scrubbed by value when they come from a secret reference).
 */
import ms from 'ms';
import { jsonDepthOption, type OptionsOf, o, rules } from '../../sdk/options.js';

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
    .enum(['GET', 'POST', 'PUT', 'PATCH'] as const)
    .describe('The request method. Sink: POST (the default), PUT or PATCH. Source: GET (the default), or POST with `body`.'),
  body: o.string().describe('Source, POST: the JSON body sent with every page request.').example('{"status":"active"}'),
  records_path: o
    .string({ minLength: 1 })
    .describe('Source: the dotted path of the array of records in each response (`data.items`). Unset: the response is the array.')
    .example('data.items'),
  pagination: o
    .enum(['none', 'page', 'offset', 'cursor', 'next_url', 'link'] as const)
    .describe(
      'Source: how the next page is asked for: `page` (a page number parameter), `offset` (offset and limit parameters), `cursor` (a value of the response sent back as a parameter), `next_url` (a URL in the body), `link` (the `Link: <…>; rel="next"` header, RFC 8288). A page with no records ends the read.',
    )
    .default('none'),
  page_param: o
    .string({ minLength: 1 })
    .describe('Source, `page`: the page number parameter (the first page is `first_page`).')
    .default('page'),
  first_page: o.int({ min: 0 }).describe('Source, `page`: the number of the first page.').default(1).advanced(),
  offset_param: o.string({ minLength: 1 }).describe('Source, `offset`: the offset parameter.').default('offset'),
  limit_param: o.string({ minLength: 1 }).describe('Source, `page` and `offset`: the page size parameter.').default('limit'),
  page_size: o.int({ min: 1, max: 100_000 }).describe('Source, `page` and `offset`: records asked for per page.').default(100),
  cursor_path: o
    .string({ minLength: 1 })
    .describe(
      'Source, `cursor`: the dotted path of the next cursor in the response (`meta.next_cursor`); missing or null ends the read. `next_url`: the dotted path of the next URL.',
    )
    .example('meta.next_cursor'),
  cursor_param: o.string({ minLength: 1 }).describe('Source, `cursor`: the parameter the cursor is sent back in.').default('cursor'),
  cursor_field: o
    .string({ minLength: 1 })
    .describe(
      "Source, incremental sync: the dotted path of a field of each record (`updated_at`, `id`) whose highest value is saved with the run's checkpoint once the run succeeded, and sent in `since_param` on the next run, so a scheduled run fetches only what is new. Numbers (and numeric text) compare as numbers, dates as dates, other text as text.",
    )
    .example('updated_at'),
  since_param: o
    .string({ minLength: 1 })
    .describe('Source, incremental sync: the query parameter the saved `cursor_field` value is sent in (absent on the first run).')
    .default('since'),
  partition_by: o
    .object(
      {
        from_param: o.string({ minLength: 1 }).describe('The query parameter of the start of a range (inclusive).').required(),
        to_param: o.string({ minLength: 1 }).describe('The query parameter of the end of a range (exclusive).').required(),
        start: o.string({ minLength: 1 }).describe('The start of the first range: an integer id, or an ISO date.').required(),
        end: o.string({ minLength: 1 }).describe('The end of the last range (exclusive), of the same kind as `start`.').required(),
        step: o
          .string({ minLength: 1 })
          .describe('The width of a range: an integer for ids, a duration (`1d`, `6h`) for dates.')
          .required(),
      },
      [
        rules.custom('a valid range', ['start', 'end', 'step'], (x) =>
          x.start === undefined || x.end === undefined || x.step === undefined ? undefined : rangeProblem(x as unknown as RangeSpec),
        ),
      ],
    )
    .describe(
      'Source: read ranges of an id or date query parameter as parallel partitions (`concurrency` at once): each partition asks for `from_param` ≤ value < `to_param` and paginates within it. The API must treat the range as half-open, or rows at the edges come twice.',
    )
    .example({ from_param: 'created_after', to_param: 'created_before', start: '2024-01-01', end: '2025-01-01', step: '30d' }),
  max_pages: o
    .int({ min: 1 })
    .describe('Source: stop after this many pages (a guard against an API that never ends).')
    .default(100_000)
    .advanced(),
  max_depth: jsonDepthOption(),
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

export interface RangeSpec {
  from_param: string;
  to_param: string;
  start: string;
  end: string;
  step: string;
}

/** At most this many range partitions: a step that small is a mistake. */
export const MAX_RANGES = 10_000;

/** The ranges of `partition_by`, `[from, to)` each, as the text sent; or why they cannot be made. */
export function ranges(spec: RangeSpec): { from: string; to: string }[] | string {
  const int = /^-?\d{1,15}$/;
  const out: { from: string; to: string }[] = [];
  if (int.test(spec.start) && int.test(spec.end)) {
    if (!/^\d{1,15}$/.test(spec.step) || Number(spec.step) < 1)
      return `partition_by.step must be a positive integer for id ranges; got ${JSON.stringify(spec.step)}`;
    const [start, end, step] = [Number(spec.start), Number(spec.end), Number(spec.step)];
    if (end <= start) return `partition_by.end (${spec.end}) must be after partition_by.start (${spec.start})`;
    if ((end - start) / step > MAX_RANGES) return `partition_by makes more than ${MAX_RANGES} ranges; raise partition_by.step`;
    for (let a = start; a < end; a += step) out.push({ from: String(a), to: String(Math.min(a + step, end)) });
    return out;
  }
  const [start, end] = [Date.parse(spec.start), Date.parse(spec.end)];
  if (Number.isNaN(start) || Number.isNaN(end))
    return `partition_by.start and partition_by.end must both be integer ids or both ISO dates (2024-01-31 or 2024-01-31T00:00:00Z); got ${JSON.stringify(spec.start)} and ${JSON.stringify(spec.end)}`;
  const step = /^\d+(\.\d+)?\s*(ms|s|m|h|d)$/i.test(spec.step) ? ms(spec.step as ms.StringValue) : Number.NaN;
  if (!(step >= 1000))
    return `partition_by.step must be a duration of at least 1s for date ranges (1d, 6h); got ${JSON.stringify(spec.step)}`;
  if (end <= start) return `partition_by.end (${spec.end}) must be after partition_by.start (${spec.start})`;
  if ((end - start) / step > MAX_RANGES) return `partition_by makes more than ${MAX_RANGES} ranges; raise partition_by.step`;
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(spec.start) && /^\d{4}-\d{2}-\d{2}$/.test(spec.end) && step % 86_400_000 === 0;
  const text = (t: number) => (dateOnly ? new Date(t).toISOString().slice(0, 10) : new Date(t).toISOString());
  for (let a = start; a < end; a += step) out.push({ from: text(a), to: text(Math.min(a + step, end)) });
  return out;
}

function rangeProblem(spec: RangeSpec): string | undefined {
  const r = ranges(spec);
  return typeof r === 'string' ? r : undefined;
}

export const httpSinkRules = [
  rules.custom('a sink sends with POST, PUT or PATCH', ['method', 'body', 'records_path', 'pagination'], (x) => {
    if (x.method === 'GET') return 'method GET is for a source; a sink sends with POST (the default), PUT or PATCH';
    if (x.body !== undefined || x.records_path !== undefined || (x.pagination !== undefined && x.pagination !== 'none'))
      return 'body, records_path and pagination are for a source; remove them from the sink';
    return undefined;
  }),
];

export const httpSourceRules = [
  rules.custom('a source reads with GET, or POST with a body', ['method', 'body', 'pagination', 'cursor_path'], (x) => {
    if (x.method === 'PUT' || x.method === 'PATCH')
      return `method ${String(x.method)} is for a sink; a source reads with GET (the default) or POST`;
    if (x.body !== undefined && x.method !== 'POST') return 'body is sent only with method POST; add method: POST';
    if ((x.pagination === 'cursor' || x.pagination === 'next_url') && x.cursor_path === undefined)
      return `pagination ${String(x.pagination)} needs cursor_path, the dotted path of the next ${x.pagination === 'cursor' ? 'cursor' : 'URL'} in the response`;
    if (x.body !== undefined) {
      try {
        JSON.parse(String(x.body));
      } catch {
        return 'body must be JSON, e.g. body: \'{"status":"active"}\'';
      }
    }
    return undefined;
  }),
];
