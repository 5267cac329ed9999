import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{cli,runtime,predictor,sim,traces,core,notebooks}/test/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 600_000,
    pool: 'forks',
    // CLI tests run the compiled CLI: build it once before any test file runs.
    globalSetup: ['cli/test/global-setup.ts'],
  },
});
