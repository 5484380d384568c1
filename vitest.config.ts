import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'embedded',
          include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
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
