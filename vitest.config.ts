import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

/**
 * Files that assert how fast the server recovers (the "within 2 s of the database being back") run after
 * the rest of the suite, one at a time: next to two busy workers the machine's load, not the server, sets the time.
 * They start their own PostgreSQL and need neither the shared template database nor its global setup.
 */
const ALONE = ['test/platform/pg-restart.test.ts'];

export default defineConfig({
  resolve: {
    // Node resolves `graphql` to its CJS entry (no "exports" field); Vite would
    // pick the "module" entry, and two graphql copies cannot share a schema.
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 120_000,
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: ['test/**/*.test.ts'],
          exclude: ALONE,
          globalSetup: ['./test/helpers/global-setup.ts'],
          maxWorkers: 2,
        },
      },
      {
        extends: true,
        test: { name: 'alone', include: ALONE, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
