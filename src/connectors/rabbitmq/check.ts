/**
 * Health checks of the RabbitMQ connector (`weir check`, planner, once): connection,
 * authentication, and the target — the queue exists or will be declared, the
 * dead-letter and bind exchanges exist (source); the exchange exists (sink).
 */
import type { ChannelModel } from 'amqplib';
import type { CheckContext, CheckResult } from '../../sdk/connector.js';
import { errorMessage } from '../../sdk/errors.js';
import { brokerOf, connect, isAuthError, release, replyCode, where } from './client.js';
import { checkExchange } from './sink.js';
import type { RabbitmqOptions } from './spec.js';

async function passive<T>(model: ChannelModel, fn: (ch: Awaited<ReturnType<ChannelModel['createChannel']>>) => Promise<T>): Promise<T> {
  const ch = await model.createChannel();
  ch.on('error', () => {});
  try {
    return await fn(ch);
  } finally {
    await ch.close().catch(() => undefined);
  }
}

const missing = (error: unknown) => replyCode(error) === 404;

export async function rabbitmqCheck(opts: RabbitmqOptions, ctx: CheckContext): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const b = brokerOf(opts);
  let model: ChannelModel;
  try {
    model = await connect(opts, ctx, 'weir:check');
  } catch (error) {
    if (isAuthError(error)) {
      results.push({ name: 'connection', ok: true, message: `reached ${b.hostname}:${b.port}` });
      results.push({ name: 'authentication', ok: false, message: errorMessage(error) });
    } else results.push({ name: 'connection', ok: false, message: errorMessage(error) });
    return results;
  }
  try {
    const server = (model as unknown as { connection?: { serverProperties?: Record<string, unknown> } }).connection?.serverProperties;
    const version = typeof server?.version === 'string' ? ` (${String(server.product ?? 'RabbitMQ')} ${server.version})` : '';
    results.push({ name: 'connection', ok: true, message: `connected to ${b.hostname}:${b.port}${version}` });
    results.push({ name: 'authentication', ok: true, message: `logged in as ${b.username} on vhost ${b.vhost}` });
    if (ctx.role === 'sink') {
      try {
        await checkExchange(model, opts);
        results.push({
          name: 'target',
          ok: true,
          message:
            opts.exchange === ''
              ? 'the default exchange routes to the queue named by each routing key'
              : `exchange ${opts.exchange} exists`,
        });
      } catch (error) {
        results.push({ name: 'target', ok: false, message: errorMessage(error) });
      }
      return results;
    }
    const queue = opts.queue as string;
    try {
      const q = await passive(model, (ch) => ch.checkQueue(queue));
      results.push({
        name: 'target',
        ok: true,
        message: `queue ${queue} exists: ${q.messageCount} message(s) ready, ${q.consumerCount} consumer(s)${opts.declare ? '; declare checks its arguments at the start' : ''}`,
      });
    } catch (error) {
      if (!missing(error)) throw error;
      results.push({
        name: 'target',
        ok: opts.declare,
        message: opts.declare
          ? `queue ${queue} does not exist yet; it will be declared (durable) at the start`
          : `queue ${queue} does not exist on ${where(opts)}; create it, or set declare: true`,
      });
    }
    for (const [option, exchange] of [
      ['dead_letter_exchange', opts.dead_letter_exchange],
      ['bind.exchange', opts.bind?.exchange],
    ] as const) {
      if (!exchange) continue;
      try {
        await passive(model, (ch) => ch.checkExchange(exchange));
        results.push({ name: option, ok: true, message: `exchange ${exchange} exists` });
      } catch (error) {
        if (!missing(error)) throw error;
        results.push({
          name: option,
          ok: false,
          message: `exchange ${exchange} does not exist on ${where(opts)}${option === 'dead_letter_exchange' ? ': RabbitMQ drops what it dead-letters to a missing exchange' : ''}; declare it first`,
        });
      }
    }
  } catch (error) {
    results.push({ name: 'target', ok: false, message: errorMessage(error) });
  } finally {
    await release(model);
  }
  return results;
}
