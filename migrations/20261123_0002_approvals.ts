import { sql, type Kysely } from 'kysely';

/** Approvals: quorum votes, an audit trail, requeue links, and a durable outbox for callbacks and Slack. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('approvals')
    .addColumn('approvals_required', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('approvers', 'jsonb')
    .addColumn('previous_approval_id', 'text')
    .addColumn('action_digest', 'text', (c) => c.notNull().defaultTo(''))
    .execute();

  await db.schema
    .createTable('approval_votes')
    .addColumn('approval_id', 'text', (c) => c.notNull().references('approvals.id').onDelete('cascade'))
    .addColumn('approver', 'text', (c) => c.notNull())
    .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('approval_votes_pk', ['approval_id', 'approver'])
    .execute();

  await db.schema
    .createTable('approval_events')
    .addColumn('id', 'bigint', (c) => c.generatedAlwaysAsIdentity().primaryKey())
    .addColumn('approval_id', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('detail', 'jsonb')
    .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`clock_timestamp()`))
    .execute();
  await db.schema.createIndex('approval_events_approval_idx').on('approval_events').columns(['approval_id', 'id']).execute();

  await db.schema
    .createTable('outbox')
    .addColumn('id', 'bigint', (c) => c.generatedAlwaysAsIdentity().primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending'))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('delivered_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('outbox_due_idx').on('outbox').columns(['next_attempt_at']).where(sql.ref('status'), '=', 'pending').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('outbox').ifExists().execute();
  await db.schema.dropTable('approval_events').ifExists().execute();
  await db.schema.dropTable('approval_votes').ifExists().execute();
  await db.schema.alterTable('approvals').dropColumn('approvals_required').dropColumn('approvers').dropColumn('previous_approval_id').dropColumn('action_digest').execute();
}
