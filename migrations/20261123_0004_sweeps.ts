import { sql, type Kysely } from 'kysely';

/** Sweeps: when each pending approval was last revalidated, and one claim row per cron fire. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('approvals').addColumn('revalidated_at', 'timestamptz').execute();
  await db.schema
    .createTable('cron_claims')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('claimed_by', 'text', (c) => c.notNull())
    .addColumn('claimed_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('idempotency_keys_call_idx').on('idempotency_keys').column('call_id').execute();
  await db.schema.createIndex('approvals_pending_expiry_idx').on('approvals').column('expires_at').where(sql.ref('status'), '=', 'pending').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('approvals_pending_expiry_idx').ifExists().execute();
  await db.schema.dropIndex('idempotency_keys_call_idx').ifExists().execute();
  await db.schema.dropTable('cron_claims').ifExists().execute();
  await db.schema.alterTable('approvals').dropColumn('revalidated_at').execute();
}
