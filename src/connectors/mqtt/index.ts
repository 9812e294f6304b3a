/**
 * `mqtt`: MQTT 5 brokers through mqtt.js. Source: unbounded, QoS 1 subscriptions on
 * a persistent session, each message acknowledged after the epoch holding it was
 * committed (at-least-once; exactly-once into a sink that upserts on a key of the
 * payload). Sink: QoS 1 or 2 publishes to a topic template, a batch written when
 * the broker acknowledged all of it. Not transactional.
 */
import { defineConnector } from '../../sdk/connector.js';
import { mqttCheck } from './check.js';
import { mqttSink } from './sink.js';
import { mqttSource } from './source.js';
import { mqttOptions, mqttRules, mqttSinkRules, mqttSourceRules } from './spec.js';

export default defineConnector({
  name: 'mqtt',
  description:
    'MQTT 5 (mqtt.js): subscribe to topics on a persistent session, each message acknowledged only after its epoch was committed (at-least-once; no broker-side lag); publish rows at QoS 1 or 2 to a topic template.',
  options: mqttOptions,
  rules: mqttRules,
  sourceRules: mqttSourceRules,
  sinkRules: mqttSinkRules,
  source: mqttSource,
  sink: mqttSink,
  exactlyOnce: false,
  transactional: false,
  check: mqttCheck,
});
