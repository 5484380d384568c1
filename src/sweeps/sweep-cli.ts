import { buildApp } from '../app.ts';
import { ConfigError, loadConfig } from '../config.ts';
import { DataDirInUseError } from '../db/store.ts';
import { formatCounts } from './sweep-scheduler.ts';

/** `npm run sweep`: one pass, then exit (for operators who prefer an external scheduler). */
async function main(): Promise<void> {
  const config = loadConfig();
  const { app, services } = await buildApp(config, { logger: { level: config.logLevel }, headless: true });
  try {
    console.log('sweep: starting one pass');
    const started = Date.now();
    const counts = await services.sweeps.runPass();
    console.log(`sweep pass (${Date.now() - started} ms): ${formatCounts(counts)}`);
    process.exitCode = counts.errors > 0 ? 1 : 0;
  } finally {
    await app.close();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError || error instanceof DataDirInUseError ? error.message : error);
  process.exit(1);
});
