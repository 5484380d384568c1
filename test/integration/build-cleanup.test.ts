import { mkdtempSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { openStore } from '../../src/db/store.ts';
import { testConfig } from '../helpers/app.ts';

/** A build that fails halfway must leave nothing open: the data-dir lock is the visible part. */
describe('buildApp cleans up when it fails', () => {
  const freshDir = () => realpathSync(mkdtempSync(path.join(tmpdir(), 'invoke-build-')));

  it('fails before opening the store when the logger cannot be made, so the directory stays free', async () => {
    const dir = freshDir();
    await expect(buildApp(testConfig({ INVOKE_DATA_DIR: dir }), { logger: { level: 'loudest' } })).rejects.toThrow(/loudest/);
    const store = await openStore({ dataDir: dir });
    await store.close();
  }, 60_000);

  it('closes the store it opened when a later step fails (migrations refused), so the next build opens the directory', async () => {
    const dir = freshDir();
    const seeded = await openStore({ dataDir: dir });
    await migrateToLatest(seeded.db);
    // A migration this code does not know: Kysely refuses to migrate, after the store is open.
    await seeded.db
      .insertInto('kysely_migration' as never)
      .values({ name: '99990101000000_from_a_newer_version', timestamp: new Date().toISOString() })
      .execute();
    await seeded.close();

    await expect(buildApp(testConfig({ INVOKE_DATA_DIR: dir }), { logger: false })).rejects.toThrow(/from_a_newer_version/);
    const store = await openStore({ dataDir: dir });
    await store.close();
  }, 60_000);
});
