import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{runtime,sim,predictor,traces}/test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
  },
});
