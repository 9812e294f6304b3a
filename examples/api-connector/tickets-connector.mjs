// A custom API connector on the SDK's request helper: the tickets of a paginated JSON API
// with a bearer token, cursor pagination and an incremental cursor: the highest `updated_at`
// read is saved with the run's checkpoint (ctx.setState) and the next run starts from it.
// HttpClient gives it auth, retries after Retry-After, rate-limit headroom and redacted errors.
import { HttpClient, WeirError, defineConnector, o } from 'weir/sdk';

export default defineConnector({
  name: 'tickets',
  description: 'Tickets of a help-desk API (JSON pages, bearer token, cursor pagination).',
  options: {
    base_url: o.url().describe('The API root, e.g. https://desk.example.com/api.').required(),
    token: o.secret().describe('API token, sent as a bearer token.').required(),
    updated_since: o.string().describe('First run: only tickets updated at or after this ISO time; later runs start where the last one ended.'),
    page_size: o.int({ min: 1, max: 1000 }).describe('Tickets per page.').default(100),
  },
  source: (opts) => ({
    // planner: where the last succeeded run ended (read back from disk: checked before use)
    partitions(ctx) {
      const saved = ctx.sourceState?.['0']?.cursor;
      if (saved !== undefined && (typeof saved !== 'string' || Number.isNaN(Date.parse(saved)))) throw new WeirError('the saved cursor is not an ISO time; delete the checkpoint store', { code: 'bad_cursor' });
      return [{ id: '0', since: saved ?? opts.updated_since ?? '' }];
    },
    // worker, once per partition attempt
    async *read(partition, ctx) {
      const http = new HttpClient({ auth: { type: 'bearer', token: opts.token }, timeoutMs: 30_000, onHeadroom: (h) => ctx.rateLimit?.observe(h) }, ctx);
      try {
        let cursor;
        let highest = partition.since;
        do {
          const url = new URL(`${opts.base_url}/tickets`);
          url.searchParams.set('limit', String(opts.page_size));
          if (partition.since) url.searchParams.set('updated_since', partition.since);
          if (cursor) url.searchParams.set('cursor', cursor);
          // retried by the client after Retry-After (429, 503), 5xx and network errors
          const page = (await http.request({ method: 'GET', url: url.toString(), retries: 4 })).json();
          if (!Array.isArray(page.tickets)) throw new WeirError(`${opts.base_url}: the response has no tickets array`, { code: 'bad_page' });
          for (const t of page.tickets) if (typeof t.updated_at === 'string' && t.updated_at > highest) highest = t.updated_at;
          if (highest) ctx.setState?.({ cursor: highest });
          yield page.tickets.map((t) => ({ id: t.id, subject: t.subject, status: t.status, updated_at: t.updated_at }));
          cursor = page.next_cursor;
        } while (cursor);
      } finally {
        await http.close();
      }
    },
  }),
});
