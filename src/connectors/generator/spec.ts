import { o } from '../../sdk/options.js';

export const generatorOptions = {
  rows: o.int({ min: 0, max: 10_000_000_000 }).describe('Total rows to generate across all partitions.').default(1000).example(1_000_000),
  partitions: o
    .int({ min: 1, max: 100_000 })
    .describe('Number of partitions the rows are split into (contiguous id ranges).')
    .default(1)
    .example(8),
  seed: o
    .int({ min: 0, max: 2 ** 31 - 1 })
    .describe('Seed of the pseudo-random values; the same seed gives the same rows.')
    .default(42),
  start_id: o.int({ min: 0 }).describe('The first id.').default(1).advanced(),
};
