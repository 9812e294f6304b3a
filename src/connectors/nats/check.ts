/**
 * Health checks of the NATS connector (`weir check`, planner, once): connection,
 * authentication, JetStream, the stream (present, or created by the sink), and the
 * source's durable consumer (present, or created at the start of the run).
 */
import type { CheckContext, CheckResult } from '../../sdk/connector.js';
import { errorMessage } from '../../sdk/errors.js';
import { classify, connect, isAuthError, isNotFound, type Nats, release, streamInfo, where } from './client.js';
import type { NatsOptions } from './spec.js';

export async function natsCheck(opts: NatsOptions, ctx: CheckContext): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  let nats: Nats;
  try {
    nats = await connect(opts, ctx, `weir:${ctx.pipeline}:check`);
  } catch (error) {
    if (isAuthError((error as { cause?: unknown }).cause ?? error)) {
      results.push({ name: 'connection', ok: true, message: `reached ${where(opts)}` });
      results.push({ name: 'authentication', ok: false, message: errorMessage(error) });
    } else if (/JetStream is not available/.test(errorMessage(error))) {
      results.push({ name: 'connection', ok: true, message: `connected to ${where(opts)}` });
      results.push({ name: 'authentication', ok: true, message: 'accepted' });
      results.push({ name: 'jetstream', ok: false, message: errorMessage(error) });
    } else results.push({ name: 'connection', ok: false, message: errorMessage(error) });
    return results;
  }
  try {
    const server = nats.nc.info;
    results.push({
      name: 'connection',
      ok: true,
      message: `connected to ${nats.nc.getServer()} (nats-server ${server?.version ?? '?'}${server?.tls_required ? ', TLS' : ''})`,
    });
    results.push({ name: 'authentication', ok: true, message: 'accepted' });
    const account = await nats.jsm.getAccountInfo();
    results.push({ name: 'jetstream', ok: true, message: `JetStream available (${account.streams} stream(s) in the account)` });
    const stream = await streamInfo(nats.jsm, opts.stream);
    if (!stream) {
      const creatable = ctx.role === 'sink' && opts.create_stream;
      results.push({
        name: 'target',
        ok: creatable,
        message: creatable
          ? `stream ${opts.stream} does not exist; it will be created (create_stream) capturing ${(opts.stream_subjects ?? []).join(', ') || 'the subject template'}`
          : `stream ${opts.stream} does not exist on ${where(opts)}; create it${ctx.role === 'sink' ? ' or set create_stream: true' : ''}`,
      });
      return results;
    }
    if (ctx.role === 'sink') {
      results.push({
        name: 'target',
        ok: true,
        message: `stream ${opts.stream} exists (${stream.state.messages} message(s), subjects ${(stream.config.subjects ?? []).join(', ')})`,
      });
      return results;
    }
    try {
      const c = await nats.jsm.consumers.info(opts.stream, opts.durable);
      const acknowledged = c.config.ack_policy === 'all' || c.config.ack_policy === 'explicit';
      results.push({
        name: 'target',
        ok: acknowledged,
        message: acknowledged
          ? `stream ${opts.stream} exists; consumer ${opts.durable} exists (${c.num_pending} message(s) pending, ${c.num_ack_pending} awaiting acknowledgement)`
          : `consumer ${opts.durable} of stream ${opts.stream} acknowledges with policy ${c.config.ack_policy}; weir needs acknowledgements (policy all, or explicit): delete it (weir creates it) or name another durable`,
      });
    } catch (error) {
      if (!isNotFound(error, 'consumer')) throw error;
      results.push({
        name: 'target',
        ok: true,
        message: `stream ${opts.stream} exists (${stream.state.messages} message(s)); consumer ${opts.durable} will be created`,
      });
    }
  } catch (error) {
    results.push({ name: 'target', ok: false, message: classify(error, `checking stream ${opts.stream}`).message });
  } finally {
    await release(nats.nc);
  }
  return results;
}
