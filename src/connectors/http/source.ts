/**
 * The `http` source (worker, one partition): pages of a JSON API, records found at
 * `records_path`, the next page by page number, offset, a cursor of the response,
 * a next URL in the body or the `Link` header. A retryable answer (429, 503, 5xx,
 * network) is asked again after its Retry-After or a backoff, a few times; then the
 * runtime retries the partition.
 */
import type { Source } from '../../sdk/connector.js';
import { WeirError } from '../../sdk/errors.js';
import { type HttpClient, type HttpResponse, redactUrl } from '../../sdk/http.js';
import { asRow, type Row } from '../../sdk/types.js';
import { openClient } from './client.js';
import type { HttpOptions } from './spec.js';

const PAGE_RETRIES = 4;

/** The value at a dotted path (`data.items`) of a parsed response; own keys only. */
export function atPath(value: unknown, path: string | undefined): unknown {
  if (path === undefined) return value;
  let v = value;
  for (const key of path.split('.')) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/** The `rel="next"` target of a `Link` header (RFC 8288), resolved against the request URL. */
export function nextLink(header: string | string[] | undefined, base: string): string | undefined {
  const text = Array.isArray(header) ? header.join(',') : header;
  if (!text) return undefined;
  for (const m of text.matchAll(/<([^>]*)>\s*((?:;\s*[^;,]+)*)/g)) {
    if (/;\s*rel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?/i.test(m[2] ?? '')) return new URL(m[1] ?? '', base).toString();
  }
  return undefined;
}

function fetchPage(client: HttpClient, opts: HttpOptions, url: string): Promise<HttpResponse> {
  return client.request({
    method: opts.method === 'POST' ? 'POST' : 'GET',
    url,
    headers: { accept: 'application/json', ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: opts.method === 'POST' ? opts.body : undefined,
    retries: PAGE_RETRIES,
  });
}

export function httpSource(opts: HttpOptions): Source {
  return {
    async *read(_partition, ctx) {
      const client = openClient(opts, ctx);
      try {
        let url = opts.url;
        let page = opts.first_page;
        let offset = 0;
        const withParams = (params: Record<string, string | number>) => {
          const u = new URL(opts.url);
          for (const [k, v] of Object.entries(params)) u.searchParams.set(k, String(v));
          return u.toString();
        };
        if (opts.pagination === 'page') url = withParams({ [opts.page_param]: page, [opts.limit_param]: opts.page_size });
        if (opts.pagination === 'offset') url = withParams({ [opts.offset_param]: 0, [opts.limit_param]: opts.page_size });
        for (let pages = 0; pages < opts.max_pages; pages++) {
          const res = await fetchPage(client, opts, url);
          const body = res.json(opts.max_depth);
          const records = atPath(body, opts.records_path);
          if (!Array.isArray(records))
            throw new WeirError(
              `${redactUrl(url)}: ${opts.records_path ? `records_path ${opts.records_path} is not an array in the response` : 'the response is not an array; set records_path to where the records are, e.g. data.items'}`,
              { code: 'http_no_records' },
            );
          const rows: Row[] = [];
          for (const r of records) {
            if (typeof r === 'object' && r !== null && !Array.isArray(r)) rows.push(asRow(r));
            else
              await ctx.reject(
                r,
                new WeirError(`a record at ${opts.records_path ?? 'the top'} is not an object`, { kind: 'data', code: 'http_bad_record' }),
              );
          }
          if (rows.length) yield rows;
          if (records.length === 0) return;
          let next: string | undefined;
          switch (opts.pagination) {
            case 'page':
              next = withParams({ [opts.page_param]: ++page, [opts.limit_param]: opts.page_size });
              break;
            case 'offset':
              offset += records.length;
              next = withParams({ [opts.offset_param]: offset, [opts.limit_param]: opts.page_size });
              break;
            case 'cursor': {
              const cursor = atPath(body, opts.cursor_path);
              if (cursor !== undefined && cursor !== null && cursor !== '') next = withParams({ [opts.cursor_param]: String(cursor) });
              break;
            }
            case 'next_url': {
              const target = atPath(body, opts.cursor_path);
              if (typeof target === 'string' && target !== '') next = new URL(target, url).toString();
              break;
            }
            case 'link':
              next = nextLink(res.headers.link, url);
              break;
          }
          if (next === undefined) return;
          url = next;
        }
        ctx.log.warn('http source stopped at max_pages', { max_pages: opts.max_pages });
      } finally {
        await client.close();
      }
    },
  };
}
