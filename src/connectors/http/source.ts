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
import { type HttpOptions, ranges } from './spec.js';

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

/** A cursor value as saved and sent: text or a finite number. */
type Cursor = string | number;

const MAX_CURSOR_CHARS = 1000;

/** Orders two cursor values: as numbers when both are numeric, as dates when both are dates, else as text. */
export function compareCursors(a: Cursor, b: Cursor): number {
  const na = Number(a);
  const nb = Number(b);
  if (String(a).trim() !== '' && String(b).trim() !== '' && Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  const da = typeof a === 'string' ? Date.parse(a) : Number.NaN;
  const db = typeof b === 'string' ? Date.parse(b) : Number.NaN;
  if (!Number.isNaN(da) && !Number.isNaN(db) && da !== db) return da - db;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

const isCursor = (v: unknown): v is Cursor =>
  (typeof v === 'number' && Number.isFinite(v)) ||
  (typeof v === 'string' && v !== '' && v.length <= MAX_CURSOR_CHARS && !/[\u0000-\u001f\u007f]/.test(v));

/**
 * The highest cursor the previous succeeded run saved, over all its partitions.
 * Read back from the checkpoint store: untrusted, so each value's shape is checked.
 */
export function savedCursor(state: Readonly<Record<string, unknown>> | undefined): Cursor | undefined {
  let best: Cursor | undefined;
  for (const [id, s] of Object.entries(state ?? {})) {
    const cursor = typeof s === 'object' && s !== null && !Array.isArray(s) ? (s as Record<string, unknown>).cursor : undefined;
    if (!isCursor(cursor))
      throw new WeirError(
        `the saved incremental state of partition ${JSON.stringify(id.slice(0, 100))} is not {"cursor": text of at most ${MAX_CURSOR_CHARS} characters or a number}; the checkpoint store was changed outside weir. Delete the checkpoint store (checkpoint.path) to fetch everything again`,
        { kind: 'config', code: 'http_bad_saved_cursor' },
      );
    if (best === undefined || compareCursors(cursor, best) > 0) best = cursor;
  }
  return best;
}

export function httpSource(opts: HttpOptions): Source {
  return {
    partitions(ctx) {
      const since = opts.cursor_field !== undefined ? savedCursor(ctx.sourceState) : undefined;
      const extra: Record<string, Cursor> = since !== undefined ? { since } : {};
      if (!opts.partition_by) return [{ id: '0', ...extra }];
      const r = ranges(opts.partition_by);
      if (typeof r === 'string') throw new WeirError(r, { kind: 'config', code: 'http_bad_partition_by' });
      return r.map((range, i) => ({ id: `r${i}`, from: range.from, to: range.to, ...extra }));
    },
    async *read(partition, ctx) {
      const client = openClient(opts, ctx);
      try {
        const since = isCursor(partition.since) ? partition.since : undefined;
        const fixed: Record<string, string> = {};
        if (since !== undefined) fixed[opts.since_param] = String(since);
        if (opts.partition_by && typeof partition.from === 'string' && typeof partition.to === 'string') {
          fixed[opts.partition_by.from_param] = partition.from;
          fixed[opts.partition_by.to_param] = partition.to;
        }
        // the highest cursor_field value read; the partition's state carries the previous one when nothing is new
        let highest: Cursor | undefined = since;
        if (highest !== undefined) ctx.setState?.({ cursor: highest });
        const withParams = (params: Record<string, string | number>, target = opts.url) => {
          const u = new URL(target);
          for (const [k, v] of Object.entries({ ...fixed, ...params })) u.searchParams.set(k, String(v));
          return u.toString();
        };
        let url = Object.keys(fixed).length ? withParams({}) : opts.url;
        let page = opts.first_page;
        let offset = 0;
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
          if (opts.cursor_field !== undefined) {
            const before = highest;
            for (const row of rows) {
              const v = atPath(row, opts.cursor_field);
              if (isCursor(v) && (highest === undefined || compareCursors(v, highest) > 0)) highest = v;
            }
            if (highest !== before && highest !== undefined) ctx.setState?.({ cursor: highest });
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
