/**
 * `nats`: NATS JetStream through nats.js. Source: a durable pull consumer read
 * without end, in epochs, its stream sequences as offsets (exactly-once into an
 * exactly-once sink). Sink: JetStream publishes to a subject template, each batch
 * written once every message was acknowledged, deduplicated by `Nats-Msg-Id` when a
 * batch is retried. Not transactional: published messages stay when a run fails.
 */
import { defineConnector } from '../../sdk/connector.js';
import { natsCheck } from './check.js';
import { natsSink } from './sink.js';
import { natsSource } from './source.js';
import { natsOptions, natsRules, natsSinkRules, natsSourceRules } from './spec.js';

export default defineConnector({
  name: 'nats',
  description:
    'NATS JetStream (nats.js): read a stream through a durable pull consumer, acknowledged after each epoch commits (stream sequences as offsets); publish rows as JSON to a subject template, acknowledged by the stream and deduplicated by message id.',
  options: natsOptions,
  rules: natsRules,
  sourceRules: natsSourceRules,
  sinkRules: natsSinkRules,
  source: natsSource,
  sink: natsSink,
  exactlyOnce: false,
  transactional: false,
  check: natsCheck,
});
