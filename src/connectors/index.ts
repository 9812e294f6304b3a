/** The built-in connectors. */
import type { AnyConnector } from '../sdk/connector.js';
import csv from './csv/index.js';
import generator from './generator/index.js';
import http from './http/index.js';
import jsonl from './jsonl/index.js';
import mqtt from './mqtt/index.js';
import mysql from './mysql/index.js';
import nats from './nats/index.js';
import parquet from './parquet/index.js';
import postgres from './postgres/index.js';
import rabbitmq from './rabbitmq/index.js';
import redis from './redis/index.js';
import sqlite from './sqlite/index.js';

export const builtinConnectors: readonly AnyConnector[] = [
  generator,
  csv,
  jsonl,
  parquet,
  sqlite,
  postgres,
  mysql,
  redis,
  http,
  mqtt,
  nats,
  rabbitmq,
] as unknown as AnyConnector[];
