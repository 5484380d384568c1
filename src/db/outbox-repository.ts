import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.ts';
import { jsonb } from './store.ts';

export type OutboxKind = 'callback' | 'slack';

/** Channel that wakes outbox delivery on every replica when a row commits. */
export const OUTBOX_CHANNEL = 'invoke_outbox';

type Db = Transaction<Database> | Kysely<Database>;

/** How long a claimed outbox row is held: longer than one delivery may take. */
const CLAIM_SECONDS = 60;

/** The outbox table: durable Slack posts and agent callbacks, written with the change they report. */
export function createOutboxRepository(db: Kysely<Database>) {
  /** Many outbox rows of one kind in one statement, and one wake-up. */
  async function enqueueMany(trx: Db, kind: OutboxKind, rows: Array<{ target: string; payload: unknown }>): Promise<void> {
    if (rows.length === 0) return;
    await trx
      .insertInto('outbox')
      .values(rows.map((row) => ({ kind, target: row.target, payload: jsonb(row.payload) })))
      .execute();
    await sql`select pg_notify(${OUTBOX_CHANNEL}, ${kind})`.execute(trx);
  }

  return {
    /**
     * Writes an outbox row in the caller's transaction, with a NOTIFY that Postgres sends only when
     * that transaction commits: every replica's listener delivers at once, and the timer stays the
     * safety net.
     */
    async enqueue(trx: Db, kind: OutboxKind, target: string, payload: unknown): Promise<void> {
      await enqueueMany(trx, kind, [{ target, payload }]);
    },

    enqueueMany,

    /**
     * Claims the next due outbox row of a kind, just before it is sent: `FOR UPDATE SKIP LOCKED`,
     * so replicas and overlapping passes never take the same row, and a lease (the pushed-back
     * `next_attempt_at`) so a sender that dies leaves it to be retried, not lost. Rows whose
     * target is in `last` come only once no other row of the kind is due (oldest first within each).
     */
    async claimDue(kind: OutboxKind, last: readonly string[] = []) {
      let due = db
        .selectFrom('outbox')
        .select('id')
        .where('kind', '=', kind)
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', sql<Date>`now()`);
      if (last.length > 0) due = due.orderBy(sql`target in (${sql.join([...last])})`);
      return db
        .updateTable('outbox')
        .set({ next_attempt_at: sql`now() + ${`${CLAIM_SECONDS} seconds`}::interval`, attempts: sql`attempts + 1` })
        .where('id', 'in', due.orderBy('next_attempt_at').orderBy('id').limit(1).forUpdate().skipLocked())
        .returning(['id', 'target', 'payload', 'attempts'])
        .executeTakeFirst();
    },

    /**
     * Marks a row sent and queues the rows it expands into, in one commit: a row that fans out
     * (one per recipient) is either wholly replaced or still pending, never half done.
     */
    async replaceWith(id: string, kind: OutboxKind, rows: Array<{ target: string; payload: unknown }>): Promise<void> {
      await db.transaction().execute(async (trx) => {
        await enqueueMany(trx, kind, rows);
        await trx
          .updateTable('outbox')
          .set({ status: 'delivered', delivered_at: sql`now()`, last_error: null })
          .where('id', '=', id)
          .execute();
      });
    },

    /** Marks a row sent. */
    async markDelivered(id: string): Promise<void> {
      await db
        .updateTable('outbox')
        .set({ status: 'delivered', delivered_at: sql`now()`, last_error: null })
        .where('id', '=', id)
        .execute();
    },

    /** Schedules another attempt in `seconds` (or gives up when `dead`), noting the error. */
    async reschedule(id: string, seconds: number, error: string | null, dead: boolean): Promise<void> {
      await db
        .updateTable('outbox')
        .set({
          status: dead ? 'dead' : 'pending',
          next_attempt_at: sql`now() + ${`${seconds} seconds`}::interval`,
          ...(error === null ? {} : { last_error: error.slice(0, 1000) }),
        })
        .where('id', '=', id)
        .execute();
    },

    /** A claim that was no attempt (the post waited for its card): its attempt is given back. */
    async giveBackAttempt(id: string): Promise<void> {
      await db
        .updateTable('outbox')
        .set({ attempts: sql`attempts - 1` })
        .where('id', '=', id)
        .execute();
    },

    /** Is there a Slack post of this role and status for the approval (newer than `afterId`, when given)? */
    async hasSlackPost(approvalId: string, role: string, status: 'pending' | 'delivered' | 'dead', afterId?: string): Promise<boolean> {
      let query = db
        .selectFrom('outbox')
        .select('id')
        .where('kind', '=', 'slack')
        .where('target', '=', role)
        .where('status', '=', status)
        .where(sql<boolean>`payload->>'approval_id' = ${approvalId}`);
      if (afterId !== undefined) query = query.where('id', '>', afterId);
      return (await query.executeTakeFirst()) !== undefined;
    },
  };
}
export type OutboxRepository = ReturnType<typeof createOutboxRepository>;
