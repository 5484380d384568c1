import { loadConfig } from '../config.ts';
import { migrateToLatest } from './migrate.ts';
import { openStore } from './store.ts';

/** `npm run migrate`: for operators who migrate separately from starting the server. */
async function main(): Promise<void> {
  const config = loadConfig();
  const store = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    const results = await migrateToLatest(store.db);
    const target = store.kind === 'postgres' ? 'Postgres (DATABASE_URL)' : `embedded store at ${config.dataDir}`;
    if (results.length === 0) console.log(`Schema already up to date on ${target}.`);
    for (const result of results) console.log(`${result.status === 'Success' ? 'applied' : result.status}: ${result.migrationName}`);
  } finally {
    await store.close();
  }
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exit(1);
});
