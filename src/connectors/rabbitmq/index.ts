/**
 * `rabbitmq`: RabbitMQ through amqplib (AMQP 0-9-1). Source: a queue consumed with
 * manual acknowledgements, unbounded, committed in epochs and acknowledged after each
 * epoch's commit (at-least-once). Sink: persistent JSON messages on a confirm channel,
 * a batch written once the broker confirmed all of it. Neither exactly-once nor
 * transactional: a confirmed message may be consumed at once.
 */
import { defineConnector } from '../../sdk/connector.js';
import { rabbitmqCheck } from './check.js';
import { rabbitmqSink } from './sink.js';
import { rabbitmqSource } from './source.js';
import { rabbitmqOptions, rabbitmqRules, rabbitmqSinkRules, rabbitmqSourceRules } from './spec.js';

export default defineConnector({
  name: 'rabbitmq',
  description:
    'RabbitMQ (amqplib): consume a queue as an unbounded source, acknowledged after each epoch commit (at-least-once; exactly-once through an upserting sink); publish rows as persistent JSON messages with broker confirms.',
  options: rabbitmqOptions,
  rules: rabbitmqRules,
  sourceRules: rabbitmqSourceRules,
  sinkRules: rabbitmqSinkRules,
  source: rabbitmqSource,
  sink: rabbitmqSink,
  exactlyOnce: false,
  transactional: false,
  check: rabbitmqCheck,
});
