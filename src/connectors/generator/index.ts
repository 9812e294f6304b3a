/**
 * `generator`: deterministic synthetic rows for tests, demos and benchmarks.
 * Row `id`s are unique integers; every other value is a pure function of
 * (seed, id), so any partition can be regenerated on any worker.
 */
import { defineConnector } from '../../sdk/connector.js';
import type { Partition, Row, Schema } from '../../sdk/types.js';
import { generatorOptions } from './spec.js';

export const GENERATOR_SCHEMA: Schema = [
  { name: 'id', type: 'integer', nullable: false },
  { name: 'name', type: 'string' },
  { name: 'email', type: 'string' },
  { name: 'category', type: 'string' },
  { name: 'amount', type: 'number' },
  { name: 'quantity', type: 'integer' },
  { name: 'active', type: 'boolean' },
  { name: 'created_at', type: 'timestamp' },
];

const FIRST = ['ada', 'alan', 'grace', 'linus', 'margaret', 'dennis', 'barbara', 'ken', 'radia', 'edsger', 'frances', 'john'];
const LAST = ['lovelace', 'turing', 'hopper', 'torvalds', 'hamilton', 'ritchie', 'liskov', 'thompson', 'perlman', 'dijkstra'];
const CATEGORIES = ['books', 'games', 'garden', 'music', 'tools', 'toys', 'travel'];
const EPOCH = Date.UTC(2024, 0, 1);

/** A 32-bit integer hash (murmur3 finaliser) of seed and id: stateless, so partitions are independent. */
function hash(seed: number, id: number, salt: number): number {
  let h = (seed ^ Math.imul(id, 0x9e3779b1) ^ Math.imul(salt, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export function generateRow(seed: number, id: number): Row {
  const first = FIRST[hash(seed, id, 1) % FIRST.length] as string;
  const last = LAST[hash(seed, id, 2) % LAST.length] as string;
  return {
    id,
    name: `${first} ${last}`,
    email: `${first}.${last}.${id}@example.com`,
    category: CATEGORIES[hash(seed, id, 3) % CATEGORIES.length],
    amount: (hash(seed, id, 4) % 1_000_000) / 100,
    quantity: (hash(seed, id, 5) % 50) + 1,
    active: hash(seed, id, 6) % 4 !== 0,
    created_at: new Date(EPOCH + (hash(seed, id, 7) % (365 * 86400)) * 1000).toISOString(),
  };
}

const CHUNK = 1000;

export default defineConnector({
  name: 'generator',
  description: 'Deterministic synthetic rows (unique integer id plus typed columns) for tests, demos and benchmarks.',
  options: generatorOptions,
  source: (opts) => ({
    schema: () => GENERATOR_SCHEMA,
    estimate: () => opts.rows,
    partitions: (): Partition[] => {
      const n = Math.min(opts.partitions, Math.max(1, opts.rows));
      const size = Math.floor(opts.rows / n);
      const extra = opts.rows % n;
      const out: Partition[] = [];
      let start = opts.start_id;
      for (let i = 0; i < n; i++) {
        const count = size + (i < extra ? 1 : 0);
        out.push({ id: String(i), start, end: start + count });
        start += count;
      }
      return out;
    },
    async *read(partition) {
      const start = partition.start as number;
      const end = partition.end as number;
      for (let id = start; id < end; id += CHUNK) {
        const stop = Math.min(end, id + CHUNK);
        const chunk: Row[] = new Array(stop - id);
        for (let i = id; i < stop; i++) chunk[i - id] = generateRow(opts.seed, i);
        yield chunk;
      }
    },
  }),
});
