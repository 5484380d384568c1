import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

/** One claim row per scheduled fire: the replica whose insert wins runs that pass. */
export function createCronClaimsRepository(db: Kysely<Database>) {
  return {
    async claim(key: string, replicaId: string): Promise<boolean> {
      const claimed = await db
        .insertInto('cron_claims')
        .values({ key, claimed_by: replicaId })
        .onConflict((oc) => oc.doNothing())
        .returning('key')
        .executeTakeFirst();
      return claimed !== undefined;
    },

    /** Claims of fires long past: nobody asks about them again. */
    async trimOlderThanADay(): Promise<void> {
      await db
        .deleteFrom('cron_claims')
        .where('claimed_at', '<', sql<Date>`now() - interval '1 day'`)
        .execute();
    },
  };
}
export type CronClaimsRepository = ReturnType<typeof createCronClaimsRepository>;
