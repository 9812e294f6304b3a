/**
 * Health checks of the Redis connector (`weir check`, planner, once): connection,
 * authentication, the target (stream and group, or the keys), and memory headroom.
 */
import type { Redis } from 'ioredis';
import type { CheckContext, CheckResult } from '../../sdk/connector.js';
import { errorMessage } from '../../sdk/errors.js';
import { classify, connect, isAuthError, release } from './client.js';
import type { RedisOptions } from './spec.js';

function info(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

export async function redisCheck(opts: RedisOptions, ctx: CheckContext): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  let client: Redis;
  try {
    client = await connect(opts, ctx, 'weir:check');
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause ?? error;
    if (isAuthError(cause)) {
      results.push({ name: 'connection', ok: true, message: `reached ${opts.host}:${opts.port}` });
      results.push({ name: 'authentication', ok: false, message: errorMessage(error) });
    } else results.push({ name: 'connection', ok: false, message: errorMessage(error) });
    return results;
  }
  try {
    const server = info(await client.info('server'));
    results.push({
      name: 'connection',
      ok: true,
      message: `connected to ${opts.host}:${opts.port} (redis ${server.redis_version ?? '?'}, db ${opts.db})`,
    });
    const whoami = await client.call('ACL', 'WHOAMI').catch(() => undefined); // Redis 6+
    results.push({ name: 'authentication', ok: true, message: whoami ? `authenticated as ${String(whoami)}` : 'accepted' });
    if (opts.mode === 'stream') {
      const stream = opts.stream as string;
      const literal = !/[{}]/.test(stream);
      const type = literal ? await client.type(stream) : 'none';
      if (type !== 'none' && type !== 'stream')
        results.push({ name: 'target', ok: false, message: `key ${stream} holds a ${type}, not a stream` });
      else if (ctx.role === 'source' && type === 'stream') {
        const groups = (await client.call('XINFO', 'GROUPS', stream)) as unknown[][];
        const has = groups.some((g) => g[1] === opts.group);
        results.push({
          name: 'target',
          ok: true,
          message: `stream ${stream} exists; group ${opts.group} ${has ? 'exists' : 'will be created'}`,
        });
      } else
        results.push({
          name: 'target',
          ok: true,
          message: literal
            ? `stream ${stream} ${type === 'stream' ? 'exists' : 'will be created'}`
            : `streams ${stream} are created as rows arrive`,
        });
    } else {
      const dbsize = await client.dbsize();
      results.push({ name: 'target', ok: true, message: `db ${opts.db} holds ${dbsize} key(s)` });
    }
    const memory = info(await client.info('memory'));
    const used = Number(memory.used_memory ?? 0);
    const max = Number(memory.maxmemory ?? 0);
    const policy = memory.maxmemory_policy ?? 'noeviction';
    if (max > 0) {
      const share = used / max;
      results.push({
        name: 'memory',
        ok: share < 0.9,
        message: `${Math.round(share * 100)}% of maxmemory used (${policy})${share >= 0.9 ? (policy === 'noeviction' ? '; writes will fail with OOM' : '; keys will be evicted') : ''}`,
      });
    } else results.push({ name: 'memory', ok: true, message: `${memory.used_memory_human ?? used} used, no maxmemory limit` });
  } catch (error) {
    results.push({ name: 'target', ok: false, message: classify(error, 'checking the target').message });
  } finally {
    await release(client);
  }
  return results;
}
