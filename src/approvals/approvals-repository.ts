import { CompiledQuery, sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { CallAnswer, CallStatus } from '../calls/call-types.ts';
import { endCallsUnrunCtes } from '../calls/calls-repository.ts';
import type { ApprovalsTable, Database } from '../db/schema.ts';
import { jsonb, jsonForPostgres } from '../db/store.ts';
import type { RiskLevel } from '../tools/types.ts';
import type { TraceEvent } from '../traces/trace-recorder.ts';
import type { Approval, ApprovalStatus, NewApproval } from './approval.ts';
import { DECISIONS_CHANNEL } from './approval-waiter.ts';
import type { Checkpoint } from './checkpoint.ts';

export type { Approval, NewApproval } from './approval.ts';

/**
 * The row as the domain reads it: the jsonb columns cast once here (the freeze wrote them from
 * these very types), text columns narrowed to their unions.
 */
function toApproval(row: Selectable<ApprovalsTable>): Approval {
  const { reminded_at: _reminded, revalidated_at: _revalidated, ...rest } = row;
  return {
    ...rest,
    status: row.status as ApprovalStatus,
    risk: row.risk as RiskLevel,
    checkpoint: row.checkpoint as Checkpoint,
    approvers: row.approvers,
  };
}

type Db = Kysely<Database> | Transaction<Database>;

/** An approval the bulk expiry expired: its call's answer comes back when a callback carries it. */
export interface ExpiredApproval {
  id: string;
  call_id: string;
  callback_url: string | null;
  answer: CallAnswer | null;
}

/**
 * The bulk expiry (see `expireDue`). `$1` the decision, `$2` the batch's size, `$3` the actor,
 * `$4` the calls' trace events, `$5` and `$6` the calls' status and reason, `$7` the channel.
 * The pending rows are chosen with "has no such key" (`?`) for the escalation chain, which the
 * planner estimates from the column: `-> ... is null` it guessed true for 0.5% of rows, so it
 * sorted every pending approval instead of walking approvals_pending_expiry_idx to the first
 * `limit` (a pass over 100,000 went quadratic). The locked rows are found again by id, not by
 * `ctid`: a row updated and committed after the statement's snapshot is locked in its new
 * version, which the outer update would not see by `ctid` (it skipped such rows). They are
 * collected into one array first (an InitPlan) and probed by primary key: as a semi-join
 * (`id in (select ...)`) the planner hashed and de-duplicated the subquery's rows first, about 5%
 * of a batch of 200 on both stores (12.9 -> 12.2 ms on Postgres, 20.8 -> 19.7 ms embedded).
 */
export const EXPIRE_DUE = `
    with expired as (
      update approvals set status = 'expired', decision = $1::jsonb, decided_at = now()
      where id = any(array(
        select id from approvals
        where status = 'pending' and expires_at <= now()
          and coalesce(checkpoint->'contract'->>'on_expire', checkpoint->'policy_rule'->>'on_expire', 'cancel') <> 'escalate'
          and not (checkpoint ? 'escalation_chain')
        order by expires_at
        limit $2
        for update skip locked
      )) and status = 'pending'
      returning id, call_id, checkpoint->>'callback_url' as callback_url
    ), audit as (
      insert into approval_events (approval_id, kind, actor, detail)
      select id, 'expired', $3::text, $1::jsonb from expired
    ), source as (
      select call_id, jsonb_set($4::jsonb, '{0,detail}', coalesce($4::jsonb->0->'detail', '{}') || jsonb_build_object('approval_id', id)) as events,
        callback_url is not null as answer_wanted
      from expired
    ), ${endCallsUnrunCtes(5, 6)}
    select e.id, e.call_id, e.callback_url, ended.answer, pg_notify($7::text, e.id) as notified
    from expired e left join ended on ended.id = e.call_id`;

/** Approvals change state only through conditional updates of a pending row. */
export function createApprovalsRepository(db: Kysely<Database>) {
  async function voteCount(id: string, trx: Db = db): Promise<number> {
    const row = await trx
      .selectFrom('approval_votes')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('approval_id', '=', id)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

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

    /** Many approvals by id, as they are in `trx` (missing ones are absent). */
    async findApprovals(trx: Db, ids: string[]): Promise<Approval[]> {
      if (ids.length === 0) return [];
      return (await trx.selectFrom('approvals').selectAll().where('id', 'in', ids).execute()).map(toApproval);
    },

    async findApproval(id: string, trx: Db = db): Promise<Approval | undefined> {
      const row = await trx.selectFrom('approvals').selectAll().where('id', '=', id).executeTakeFirst();
      return row && toApproval(row);
    },

    /** The approval under its row lock (a Slack card refresh that must not race a decision). */
    async lockApproval(trx: Transaction<Database>, id: string): Promise<Approval | undefined> {
      const row = await trx.selectFrom('approvals').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
      return row && toApproval(row);
    },

    /** The approval whose call is running now (approved, not yet executed or failed). */
    async findRunningFor(callId: string): Promise<Approval | undefined> {
      const row = await db.selectFrom('approvals').selectAll().where('call_id', '=', callId).where('status', '=', 'approved').executeTakeFirst();
      return row && toApproval(row);
    },

    async listApprovals(status: ApprovalStatus | undefined, limit: number): Promise<Approval[]> {
      let query = db.selectFrom('approvals').selectAll();
      if (status) query = query.where('status', '=', status);
      return (await query.orderBy('created_at', 'asc').orderBy('id', 'asc').limit(limit).execute()).map(toApproval);
    },

    /** Decided approvals, the latest decision first (the dashboard's "recent"). */
    async listRecentlyDecided(limit: number): Promise<Approval[]> {
      const rows = await db
        .selectFrom('approvals')
        .selectAll()
        .where('status', '!=', 'pending')
        .orderBy('decided_at', (ob) => ob.desc().nullsLast())
        .orderBy('id', 'desc')
        .limit(limit)
        .execute();
      return rows.map(toApproval);
    },

    /** Pending approvals past their expiry, oldest first. */
    async listExpired(limit: number): Promise<Approval[]> {
      const rows = await db
        .selectFrom('approvals')
        .selectAll()
        .where('status', '=', 'pending')
        .where('expires_at', '<=', sql<Date>`now()`)
        .orderBy('expires_at')
        .limit(limit)
        .execute();
      return rows.map(toApproval);
    },

    /** Pending, unexpired approvals whose contract has conditions, least recently revalidated first. */
    async listRevalidatable(limit: number): Promise<Approval[]> {
      const rows = await db
        .selectFrom('approvals')
        .selectAll()
        .where('status', '=', 'pending')
        .where('expires_at', '>', sql<Date>`now()`)
        .where(sql<boolean>`coalesce(checkpoint->'contract'->'conditions', '{}'::jsonb) <> '{}'::jsonb`)
        .orderBy(sql`revalidated_at nulls first`)
        .orderBy('created_at')
        .limit(limit)
        .execute();
      return rows.map(toApproval);
    },

    async markRevalidated(id: string): Promise<void> {
      await db
        .updateTable('approvals')
        .set({ revalidated_at: sql`now()` })
        .where('id', '=', id)
        .execute();
    },

    /**
     * Claims up to `limit` pending approvals that have lived `share` of their lifetime and were
     * never reminded (SKIP LOCKED: replicas share them): each is reminded once.
     */
    async claimReminders(trx: Transaction<Database>, share: number, limit: number): Promise<Array<{ id: string; expires_at: Date; approvers: string[] | null }>> {
      const rows = await trx
        .updateTable('approvals')
        .set({ reminded_at: sql`now()` })
        .where(
          'id',
          'in',
          trx
            .selectFrom('approvals')
            .select('id')
            .where('status', '=', 'pending')
            .where('reminded_at', 'is', null)
            .where('expires_at', '>', sql<Date>`now()`)
            .where(sql<boolean>`created_at + (expires_at - created_at) * ${share}::float8 <= now()`)
            .limit(limit)
            .forUpdate()
            .skipLocked(),
        )
        .where('reminded_at', 'is', null)
        .returning(['id', 'expires_at', 'approvers'])
        .execute();
      return rows.map((row) => ({ id: row.id, expires_at: row.expires_at, approvers: row.approvers }));
    },

    /** Where an approval's Slack card was posted, once it was. */
    async slackCardOf(id: string): Promise<{ slack_channel: string | null; slack_ts: string | null; slack_thread_ts: string | null } | undefined> {
      return db.selectFrom('approvals').select(['slack_channel', 'slack_ts', 'slack_thread_ts']).where('id', '=', id).executeTakeFirst();
    },

    async recordSlackCard(id: string, card: { channel: string; ts: string | null; threadTs: string | null }): Promise<void> {
      await db.updateTable('approvals').set({ slack_channel: card.channel, slack_ts: card.ts, slack_thread_ts: card.threadTs }).where('id', '=', id).execute();
    },

    /**
     * The one way an approval is decided: an update of a row that is still pending (and, when
     * `unexpiredOnly`, not past its expiry by the database clock). Returns false when another
     * decision won, or the approval expired meanwhile.
     */
    async decidePending(trx: Transaction<Database>, id: string, status: ApprovalStatus, decision: Record<string, unknown>, options: { unexpiredOnly: boolean }): Promise<boolean> {
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
    async recordExecution(trx: Transaction<Database>, id: string, status: 'executed' | 'failed', decision: Record<string, unknown>): Promise<boolean> {
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
      await db
        .insertInto('approval_votes')
        .values({ approval_id: id, approver })
        .onConflict((oc) => oc.doNothing())
        .execute();
      return voteCount(id);
    },

    voteCount,

    /** Votes of many approvals in one statement (approvals without votes are absent). */
    async voteCounts(trx: Db, ids: string[]): Promise<Map<string, number>> {
      if (ids.length === 0) return new Map();
      const counts = await trx
        .selectFrom('approval_votes')
        .select(['approval_id', (eb) => eb.fn.countAll<string>().as('n')])
        .where('approval_id', 'in', ids)
        .groupBy('approval_id')
        .execute();
      return new Map(counts.map((c) => [c.approval_id, Number(c.n)]));
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
     * cancelled on expiry, oldest first (SKIP LOCKED: replicas share the backlog), with their
     * audit rows (`kind` expired, by `actor`), the wake-up of the agents waiting on them (at
     * commit), and their calls ended without running (calls-repository.ts: `endCallsUnrunCtes`):
     * `call.status` and `call.reason` in the answer, `call.events` appended to the trace, the
     * first event's `detail.approval_id` set to the approval's id. Approvals that escalate on
     * expiry (or walk an escalation chain) are left to the one-by-one path.
     *
     * One statement, and only ids and callbacks' answers come back: a batch of 200 as two
     * statements (the approvals returning whole rows, then the calls) spent as long in the
     * sweep's process and in the round trips between them as in Postgres's work itself.
     */
    async expireDue(
      trx: Transaction<Database>,
      limit: number,
      decision: Record<string, unknown>,
      actor: string,
      call: { status: CallStatus; reason: string; events: TraceEvent[] },
    ): Promise<ExpiredApproval[]> {
      const { rows } = await trx.executeQuery<ExpiredApproval & { notified: unknown }>(
        CompiledQuery.raw(EXPIRE_DUE, [jsonForPostgres(decision), limit, actor, jsonForPostgres(call.events), call.status, call.reason, DECISIONS_CHANNEL]),
      );
      return rows.map(({ notified: _notified, ...row }) => row);
    },

    /** Wakes the agents long-polling one approval, on every replica (LISTEN/NOTIFY), when the transaction commits. */
    async notifyDecided(trx: Db, approvalId: string): Promise<void> {
      await sql`select pg_notify(${DECISIONS_CHANNEL}, ${approvalId})`.execute(trx);
    },
  };
}
export type ApprovalsRepository = ReturnType<typeof createApprovalsRepository>;
