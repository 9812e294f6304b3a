/** The built-in connectors. */
import type { AnyConnector } from '../sdk/connector.js';
import csv from './csv/index.js';
import generator from './generator/index.js';
import jsonl from './jsonl/index.js';
import mysql from './mysql/index.js';
import postgres from './postgres/index.js';
import sqlite from './sqlite/index.js';

export const builtinConnectors: readonly AnyConnector[] = [generator, csv, jsonl, sqlite, postgres, mysql] as unknown as AnyConnector[];
