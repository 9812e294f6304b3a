import { defineConfig } from 'vitest/config';

const MEASURED = ['test/foundation/memory.test.ts', 'src/connectors/parquet/memory.test.ts'];

// Two cores: a modest pool. Tests that talk to real services use unique names, so files may run
// in parallel. Measurements (peak memory) run last and alone: a loaded machine changes how V8
// sizes its heap, which would measure the neighbours rather than weir.
export default defineConfig({
  test: {
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default', './test/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: { name: 'weir', include: ['src/**/*.test.ts', 'test/**/*.test.ts'], exclude: MEASURED, sequence: { groupOrder: 0 } },
      },
      // one file at a time: each measures a process of its own and must not share the machine
      { extends: true, test: { name: 'measured', include: MEASURED, fileParallelism: false, sequence: { groupOrder: 1 } } },
    ],
  },
});
