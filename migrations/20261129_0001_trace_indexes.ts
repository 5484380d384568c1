import type { Kysely } from 'kysely';

/**
 * Listing calls newest first with a status filter, or for one key (a scoped key sees only its
 * own calls), walked the whole table when few rows matched: each gets an index in the listing's
 * order, so a page is read from the index start, whatever the table's size.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('calls_status_idx').on('calls').columns(['status', 'created_at desc', 'id desc']).execute();
  await db.schema.createIndex('calls_api_key_idx').on('calls').columns(['api_key_id', 'created_at desc', 'id desc']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('calls_api_key_idx').ifExists().execute();
  await db.schema.dropIndex('calls_status_idx').ifExists().execute();
}
