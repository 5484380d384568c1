import { Migrator, type Kysely, type MigrationResult } from 'kysely';
import { migrations } from '../../migrations/index.ts';

export class MigrationError extends Error {
  constructor(
    message: string,
    readonly results: MigrationResult[] = [],
  ) {
    super(message);
    this.name = 'MigrationError';
  }
}

/** Brings the schema up to date. Safe to run on several replicas at once: Kysely takes a lock. */
export async function migrateToLatest(db: Kysely<any>): Promise<MigrationResult[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error) {
    const failed = results.find((r) => r.status === 'Error');
    throw new MigrationError(`migration ${failed?.migrationName ?? '?'} failed: ${(error as Error).message ?? String(error)}`, results);
  }
  return results;
}
