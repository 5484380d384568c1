import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { ApprovalsTable, Database } from '../db/schema.ts';
import { jsonb } from '../db/store.ts';

export interface NewApproval {
  id: string;
  call_id: string;
  api_key_id: string;
  /** The person behind the requesting key, who may never decide it. */
  requester_person: string;
  agent_id: string;
  tool: string;
  risk: string;
  reason: string;
  checkpoint: Record<string, unknown>;
  expires_at: Date;
  approvals_required: number;
  approvers: string[] | null;
  previous_approval_id: string | null;
  action_digest: string;
}

export type ApprovalRow = Selectable<ApprovalsTable>;

type Db = Kysely<Database> | Transaction<Database>;

/** Approvals change state only through conditional updates of a pending row. */
export function createApprovalsRepository(db: Kysely<Database>) {
  return {
    async insertApproval(trx: Transaction<Database>, approval: NewApproval): Promise<void> {
      await trx
        .insertInto('approvals')
        .values({
          ...approval,
          status: 'pending',
          checkpoint: jsonb(approval.checkpoint),
          approvers: approval.approvers ? jsonb(approval.approvers) : null,
          expires_at: approval.expires_at,
        })
        .execute();
    },

    async findApproval(id: string, trx: Db = db): Promise<ApprovalRow | undefined> {
      return trx.selectFrom('approvals').selectAll().where('id', '=', id).executeTakeFirst();
    },

    async listApprovals(status: string | undefined, limit: number): Promise<ApprovalRow[]> {
      let query = db.selectFrom('approvals').selectAll();
      if (status) query = query.where('status', '=', status);
      return query.orderBy('created_at', 'asc').orderBy('id', 'asc').limit(limit).execute();
    },

    /**
     * The one way an approval is decided: an update of a row that is still pending (and, when
     * `unexpiredOnly`, not past its expiry by the database clock). Returns false when another
     * decision won, or the approval expired meanwhile.
     */
    async decidePending(
      trx: Transaction<Database>,
      id: string,
      status: string,
      decision: Record<string, unknown>,
      options: { unexpiredOnly?: boolean } = {},
    ): Promise<boolean> {
      let query = trx
        .updateTable('approvals')
        .set({ status, decision: jsonb(decision), decided_at: sql`now()` })
        .where('id', '=', id)
        .where('status', '=', 'pending');
      if (options.unexpiredOnly) query = query.where('expires_at', '>', sql<Date>`now()`);
      const updated = await query.returning('id').executeTakeFirst();
      return updated !== undefined;
    },

    /** Moves an approval that is executing to its final status, with what ran. */
    async recordExecution(trx: Transaction<Database>, id: string, status: string, decision: Record<string, unknown>): Promise<boolean> {
      const updated = await trx
        .updateTable('approvals')
        .set({ status, decision: jsonb(decision) })
        .where('id', '=', id)
        .where('status', '=', 'approved')
        .returning('id')
        .executeTakeFirst();
      return updated !== undefined;
    },

    /** Records a distinct approver's vote; returns how many distinct approvers have voted. */
    async addVote(id: string, approver: string): Promise<number> {
      await db.insertInto('approval_votes').values({ approval_id: id, approver }).onConflict((oc) => oc.doNothing()).execute();
      const row = await db
        .selectFrom('approval_votes')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('approval_id', '=', id)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },

    async votesFor(id: string): Promise<Array<{ approver: string; at: Date }>> {
      return db.selectFrom('approval_votes').select(['approver', 'at']).where('approval_id', '=', id).orderBy('at').execute();
    },

    async recordEvent(kind: string, approvalId: string, actor: string, detail: Record<string, unknown> | null, trx: Db = db): Promise<void> {
      await trx
        .insertInto('approval_events')
        .values({ approval_id: approvalId, kind, actor, detail: detail ? jsonb(detail) : null })
        .execute();
    },

    async eventsFor(approvalId: string) {
      return db.selectFrom('approval_events').select(['kind', 'actor', 'detail', 'at']).where('approval_id', '=', approvalId).orderBy('id').execute();
    },

    /**
     * Expires, in one statement, up to `limit` pending approvals past their expiry that are
     * cancelled on expiry, oldest first (SKIP LOCKED: replicas share the backlog). Approvals
     * that escalate on expiry are left to the one-by-one path.
     */
    async expireDue(trx: Transaction<Database>, limit: number, decision: Record<string, unknown>): Promise<ApprovalRow[]> {
      return trx
        .updateTable('approvals')
        .set({ status: 'expired', decision: jsonb(decision), decided_at: sql`now()` })
        .where(
          'id',
          'in',
          trx
            .selectFrom('approvals')
            .select('id')
            .where('status', '=', 'pending')
            .where('expires_at', '<=', sql<Date>`now()`)
            .where(sql<boolean>`coalesce(checkpoint->'contract'->>'on_expire', checkpoint->'policy_rule'->>'on_expire', 'cancel') <> 'escalate'`)
            .orderBy('expires_at')
            .limit(limit)
            .forUpdate()
            .skipLocked(),
        )
        .where('status', '=', 'pending')
        .returningAll()
        .execute();
    },

    /** Audit rows of many approvals in one statement. */
    async recordEvents(trx: Transaction<Database>, events: Array<{ kind: string; approvalId: string; actor: string; detail: Record<string, unknown> | null }>): Promise<void> {
      if (events.length === 0) return;
      await trx
        .insertInto('approval_events')
        .values(events.map((e) => ({ approval_id: e.approvalId, kind: e.kind, actor: e.actor, detail: e.detail ? jsonb(e.detail) : null })))
        .execute();
    },

    /** Wakes the agents waiting on many approvals at once. */
    async notifyDecidedMany(trx: Transaction<Database>, approvalIds: string[]): Promise<void> {
      if (approvalIds.length === 0) return;
      await sql`select pg_notify('invoke_approvals', id) from unnest(${approvalIds}::text[]) as id`.execute(trx);
    },

    /** Wakes long-polling agents on every replica (LISTEN/NOTIFY), delivered when the transaction commits. */
    async notifyDecided(trx: Db, approvalId: string): Promise<void> {
      await sql`select pg_notify('invoke_approvals', ${approvalId})`.execute(trx);
    },
  };
}
export type ApprovalsRepository = ReturnType<typeof createApprovalsRepository>;
