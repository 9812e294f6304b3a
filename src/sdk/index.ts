/**
 * The weir SDK: everything a connector author imports. Depends on nothing else in weir.
 */
export * from './connector.js';
export * from './errors.js';
export * from './http.js';
export * from './lazy.js';
export * from './options.js';
export * from './sql.js';
export * from './tls.js';
export * from './transform.js';
export * from './types.js';
export * from './values.js';
