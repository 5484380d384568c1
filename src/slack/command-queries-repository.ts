import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

/**
 * The read-only queries only `/invoke` needs: where approval cards were posted, how many
 * approvals wait, and the counts behind `/invoke stats`. Counts come back as numbers (Postgres
 * returns bigint counts as strings).
 */

export interface CardPost {
  channel: string;
  ts: string;
}

export interface CommandStats {
  /** Calls created in the window, by status (every status present, none invented). */
  callsByStatus: Map<string, number>;
  calls: number;
  /** Calls that took more than one attempt. */
  retried: number;
  reconciled: number;
  /** Repeats of an idempotency key answered from the stored execution. */
  replayed: number;
  /** Approvals requested in the window, by their status now. */
  approvalsByStatus: Map<string, number>;
}

export interface CommandQueriesRepository {
  /** Where each approval's card was posted, for those that have one. */
  cardPosts(approvalIds: string[]): Promise<Map<string, CardPost>>;
  countPendingApprovals(): Promise<number>;
  statsSince(since: Date): Promise<CommandStats>;
}

type Count = number | string | bigint;

export function createCommandQueriesRepository(db: Kysely<Database>): CommandQueriesRepository {
  return {
    async cardPosts(approvalIds) {
      const posts = new Map<string, CardPost>();
      if (approvalIds.length === 0) return posts;
      const rows = await db
        .selectFrom('approvals')
        .select(['id', 'slack_channel', 'slack_ts'])
        .where('id', 'in', approvalIds)
        .where('slack_channel', 'is not', null)
        .where('slack_ts', 'is not', null)
        .execute();
      for (const row of rows) {
        if (row.slack_channel && row.slack_ts) posts.set(row.id, { channel: row.slack_channel, ts: row.slack_ts });
      }
      return posts;
    },

    async countPendingApprovals() {
      const row = await db
        .selectFrom('approvals')
        .select((eb) => eb.fn.countAll<Count>().as('n'))
        .where('status', '=', 'pending')
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },

    async statsSince(since) {
      const [byStatus, callTotals, replays, approvalsByStatus] = await Promise.all([
        db
          .selectFrom('calls')
          .select(['status', (eb) => eb.fn.countAll<Count>().as('n')])
          .where('created_at', '>=', since)
          .groupBy('status')
          .execute(),
        db
          .selectFrom('calls')
          .select((eb) => [
            eb.fn.countAll<Count>().as('total'),
            eb.fn.countAll<Count>().filterWhere('attempts', '>', 1).as('retried'),
            eb.fn.countAll<Count>().filterWhere('status', '=', 'outcome_reconciled').as('reconciled'),
          ])
          .where('created_at', '>=', since)
          .executeTakeFirstOrThrow(),
        db
          .selectFrom('idempotency_keys')
          .select((eb) => eb.fn.coalesce(eb.fn.sum<Count>('replays'), eb.lit(0)).as('replayed'))
          .where('created_at', '>=', since)
          .executeTakeFirstOrThrow(),
        db
          .selectFrom('approvals')
          .select(['status', (eb) => eb.fn.countAll<Count>().as('n')])
          .where('created_at', '>=', since)
          .groupBy('status')
          .execute(),
      ]);
      return {
        callsByStatus: new Map(byStatus.map((r) => [r.status, Number(r.n)])),
        calls: Number(callTotals.total),
        retried: Number(callTotals.retried),
        reconciled: Number(callTotals.reconciled),
        replayed: Number(replays.replayed),
        approvalsByStatus: new Map(approvalsByStatus.map((r) => [r.status, Number(r.n)])),
      };
    },
  };
}
