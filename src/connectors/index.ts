/** The built-in connectors. */
import type { AnyConnector } from '../sdk/connector.js';
import generator from './generator/index.js';
import sqlite from './sqlite/index.js';

export const builtinConnectors: readonly AnyConnector[] = [generator, sqlite] as unknown as AnyConnector[];
