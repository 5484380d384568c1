import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

/** Full-access keys stored as SHA-256 hashes (the generated bootstrap key); never the key itself. */
export function createApiKeysRepository(db: Kysely<Database>) {
  return {
    async listStored(): Promise<Array<{ id: string; key_hash: string; name: string }>> {
      return db.selectFrom('api_keys').select(['id', 'key_hash', 'name']).execute();
    },

    async anyStored(): Promise<boolean> {
      return (await db.selectFrom('api_keys').select('id').limit(1).executeTakeFirst()) !== undefined;
    },

    /** Inserts the key unless one with its id exists (two replicas starting at once); returns whether this one did. */
    async insertOnce(key: { id: string; key_hash: string; name: string }): Promise<boolean> {
      const inserted = await db
        .insertInto('api_keys')
        .values(key)
        .onConflict((oc) => oc.doNothing())
        .returning('id')
        .executeTakeFirst();
      return inserted !== undefined;
    },
  };
}
export type ApiKeysRepository = ReturnType<typeof createApiKeysRepository>;
