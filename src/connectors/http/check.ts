/**
 * Health checks of the http connector (`weir check`, planner, once): connection
 * and TLS, authentication (a GET of `health_url`, else a HEAD of `url`), and the
 * rate-limit headroom the API reports in its `RateLimit-*` / `X-RateLimit-*` headers.
 */
import type { CheckContext, CheckResult } from '../../sdk/connector.js';
import { errorMessage } from '../../sdk/errors.js';
import { BatchRefused, type RateLimitHeadroom, redactUrl } from '../../sdk/http.js';
import { openClient } from './client.js';
import type { HttpOptions } from './spec.js';

export async function httpCheck(opts: HttpOptions, ctx: CheckContext): Promise<CheckResult[]> {
  let headroom: RateLimitHeadroom | undefined;
  const client = openClient(opts, { ...ctx, rateLimit: { observe: (h) => (headroom = h) } });
  const url = opts.health_url ?? opts.url;
  const shown = redactUrl(url);
  const results: CheckResult[] = [];
  try {
    try {
      const res = await client.request({ method: opts.health_url ? 'GET' : 'HEAD', url });
      results.push({ name: 'connection', ok: true, message: `reached ${shown} (HTTP ${res.status})` });
      results.push({
        name: 'authentication',
        ok: true,
        message: opts.auth?.type && opts.auth.type !== 'none' ? `accepted (${opts.auth.type})` : 'no authentication configured',
      });
    } catch (error) {
      if (error instanceof BatchRefused) {
        results.push({ name: 'connection', ok: true, message: `reached ${shown}` });
        const auth = error.status === 401 || error.status === 403;
        // a HEAD the endpoint does not allow still proves the connection; only 401/403 is about credentials
        results.push({
          name: 'authentication',
          ok: !auth || false,
          message: auth ? errorMessage(error) : `not proven: ${errorMessage(error)}; set health_url to a GET endpoint`,
        });
      } else {
        results.push({ name: 'connection', ok: false, message: errorMessage(error) });
        return results;
      }
    }
    if (headroom) {
      const share = headroom.remaining / headroom.limit;
      const pct = Math.round(share * 100);
      const ok = share >= opts.headroom_threshold;
      const reset = headroom.resetMs === undefined ? '' : `, resets in ${Math.ceil(headroom.resetMs / 1000)} s`;
      results.push({
        name: 'rate_limit',
        ok,
        message: ok
          ? `${headroom.remaining} of ${headroom.limit} requests left (${pct}%)${reset}`
          : `only ${headroom.remaining} of ${headroom.limit} requests left (${pct}%, under the ${Math.round(opts.headroom_threshold * 100)}% headroom_threshold)${reset}; wait for the reset or lower rate_limit.requests_per_second`,
      });
    } else results.push({ name: 'rate_limit', ok: true, message: 'the API reports no rate-limit headers' });
    return results;
  } finally {
    await client.close();
  }
}
