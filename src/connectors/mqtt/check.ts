/**
 * Health checks of the MQTT connector (`weir check`, planner, once): connection,
 * authentication, and the topics. A check connects under a client id of its own
 * with a clean session: it never touches the pipeline's session (connecting as
 * its client id would take the session from a running weir).
 */
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import ms from 'ms';
import type { CheckContext, CheckResult } from '../../sdk/connector.js';
import { errorMessage } from '../../sdk/errors.js';
import { compileTemplate } from '../shared/template.js';
import { connect, isAuthError, release, sourceClientId, where } from './client.js';
import type { MqttOptions } from './spec.js';

async function subscribeCheck(client: MqttClient, filter: string): Promise<CheckResult> {
  try {
    const granted = (await client.subscribeAsync(filter, { qos: 1 }))[0]?.qos;
    await client.unsubscribeAsync(filter).catch(() => undefined);
    if (granted === 0)
      return {
        name: 'target',
        ok: false,
        message: `subscription to ${filter} granted at QoS 0 only: messages could not be acknowledged after the commit`,
      };
    return { name: 'target', ok: true, message: `may subscribe to ${filter} (granted QoS ${granted ?? '?'})` };
  } catch (error) {
    return { name: 'target', ok: false, message: `subscription to ${filter} refused: ${errorMessage(error)}` };
  }
}

export async function mqttCheck(opts: MqttOptions, ctx: CheckContext): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  let client: MqttClient;
  try {
    client = await connect(opts, { clientId: `weir-check-${randomBytes(6).toString('hex')}`, persistent: false, reconnect: false }, ctx);
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause ?? error;
    if (isAuthError(cause)) {
      results.push({ name: 'connection', ok: true, message: `reached ${where(opts)}` });
      results.push({ name: 'authentication', ok: false, message: errorMessage(error) });
    } else results.push({ name: 'connection', ok: false, message: errorMessage(error) });
    return results;
  }
  try {
    results.push({ name: 'connection', ok: true, message: `connected to ${where(opts)} (MQTT 5)` });
    results.push({ name: 'authentication', ok: true, message: opts.username ? `accepted as ${opts.username}` : 'accepted (anonymous)' });
    if (ctx.role === 'source') {
      for (const filter of opts.topics ?? []) results.push(await subscribeCheck(client, filter));
      results.push({
        name: 'session',
        ok: true,
        message: `runs resume the persistent session of client id ${sourceClientId(opts, ctx.pipeline)} (kept ${ms(opts.session_expiry, { long: true })} after a disconnect)`,
      });
    } else {
      const t = compileTemplate(opts.topic as string, 'topic');
      results.push({
        name: 'target',
        ok: true,
        message:
          t.fields.length === 0
            ? `publishes to ${t.source}; the broker's permission to publish is seen at the first batch (a test message would reach subscribers)`
            : `publishes to the topics of ${t.source}; the broker's permission to publish is seen at the first batch`,
      });
    }
  } finally {
    await release(client);
  }
  return results;
}
