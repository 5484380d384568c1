import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

export interface LinkUse {
  nonce: string;
  approval_id: string;
  approver: string;
  link_expires_at: Date;
}

/** Spent review links, by nonce: the primary key is what makes a link single-use. */
export function createReviewLinkUsesRepository(db: Kysely<Database>) {
  return {
    /** Records the link as spent unless it already is; returns whether this call spent it. */
    async claim(use: LinkUse): Promise<boolean> {
      const inserted = await db
        .insertInto('review_link_uses')
        .values(use)
        .onConflict((oc) => oc.column('nonce').doNothing())
        .returning('nonce')
        .executeTakeFirst();
      return inserted !== undefined;
    },

    /** Gives the link back: the decision it was claimed for did not happen (refused, or already decided). */
    async release(nonce: string): Promise<void> {
      await db.deleteFrom('review_link_uses').where('nonce', '=', nonce).execute();
    },

    async isUsed(nonce: string): Promise<boolean> {
      return (await db.selectFrom('review_link_uses').select('nonce').where('nonce', '=', nonce).executeTakeFirst()) !== undefined;
    },
  };
}
export type ReviewLinkUsesRepository = ReturnType<typeof createReviewLinkUsesRepository>;
