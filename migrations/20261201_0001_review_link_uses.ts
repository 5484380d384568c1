import { sql, type Kysely } from 'kysely';

/**
 * Review links are single-use: the nonce of a link that made a decision is recorded here, and
 * the primary key refuses a second decision through the same link (two tabs, two replicas).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('review_link_uses')
    .addColumn('nonce', 'text', (col) => col.primaryKey())
    .addColumn('approval_id', 'text', (col) => col.notNull())
    .addColumn('approver', 'text', (col) => col.notNull())
    .addColumn('link_expires_at', 'timestamptz', (col) => col.notNull())
    .addColumn('used_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('review_link_uses').ifExists().execute();
}
