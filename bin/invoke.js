#!/usr/bin/env node
// The `invoke` command. From a checkout (src/ present) it runs the TypeScript source through
// tsx, so `npx invoke` works without a build and never runs a stale dist; an installed package
// without src/ runs the build.
import { existsSync } from 'node:fs';
import { URL } from 'node:url';

const source = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import(new URL('../dist/src/cli/main.js', import.meta.url).href);
}
