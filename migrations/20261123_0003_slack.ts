import type { Kysely } from 'kysely';

/** Where each approval's Slack card lives, and how often an idempotency key was replayed (for /invoke stats). */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('approvals')
    .addColumn('slack_channel', 'text')
    .addColumn('slack_ts', 'text')
    .addColumn('slack_thread_ts', 'text')
    .addColumn('reminded_at', 'timestamptz')
    .execute();
  await db.schema
    .alterTable('idempotency_keys')
    .addColumn('replays', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('idempotency_keys').dropColumn('replays').execute();
  await db.schema.alterTable('approvals').dropColumn('slack_channel').dropColumn('slack_ts').dropColumn('slack_thread_ts').dropColumn('reminded_at').execute();
}
