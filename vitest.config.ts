import { defineConfig } from 'vitest/config';

/**
 * `import ... from 'invoke'` (the package referencing itself) resolves through package.json
 * `exports`: the `invoke-source` condition picks the TypeScript source, as tsc (`customConditions`) and
 * `tsx --conditions=invoke-source` do; without it Node gets the built `dist`.
 */
const SOURCE_FIRST = ['invoke-source', 'module', 'node', 'development|production'];

export default defineConfig({
  resolve: { conditions: SOURCE_FIRST },
  ssr: { resolve: { conditions: SOURCE_FIRST } },
  test: {
    testTimeout: 20_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'embedded',
          include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts', 'test/sdk/**/*.test.ts', 'test/cli/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          // Debian's Chromium driven by playwright-core (.ci/run installs it).
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'postgres',
          include: ['test/pg/**/*.test.ts'],
          globalSetup: ['test/pg/global-setup.ts'],
        },
      },
    ],
  },
});
