import type { Kysely } from 'kysely';

/**
 * The person who requested an approval's call (the requesting key's `approver_id`, else the key
 * id), so no key of theirs can decide it. Rows from before stay null: the service derives the
 * person from the stored key id.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('approvals').addColumn('requester_person', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('approvals').dropColumn('requester_person').execute();
}
