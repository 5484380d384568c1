import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/schema.ts';
import { jsonb } from '../db/store.ts';
import { toCallSummary, type CallSummary } from '../traces/traces-repository.ts';
import type { CallAnswer } from './call-types.ts';

export interface NewCall {
  id: string;
  api_key_id: string;
  agent_id: string;
  tool: string;
  request: unknown;
  idempotency_key: string | null;
  lease_ms: number;
}

export type ClaimResult =
  | { kind: 'claimed' }
  | { kind: 'replay'; http_status: number; answer: CallAnswer }
  | { kind: 'in_flight'; call_id: string }
  | { kind: 'payload_mismatch'; call_id: string };

type Db = Kysely<Database> | Transaction<Database>;

export interface CallDetail {
  summary: CallSummary;
  api_key_id: string;
  request: unknown;
  answer: unknown;
}

async function insertCall(trx: Db, call: NewCall): Promise<void> {
  await trx
    .insertInto('calls')
    .values({
      id: call.id,
      api_key_id: call.api_key_id,
      agent_id: call.agent_id,
      tool: call.tool,
      status: 'in_flight',
      request: jsonb(call.request),
      idempotency_key: call.idempotency_key,
      lease_expires_at: sql<Date>`now() + ${`${call.lease_ms} milliseconds`}::interval`,
    })
    .execute();
}

/**
 * The answer of a call, stored on the call and, when it has one, on its idempotency key, so a
 * repeat replays it. Runs inside the caller's transaction.
 */
async function writeAnswer(trx: Transaction<Database>, callId: string, httpStatus: number, answer: CallAnswer, durationMs: number | null): Promise<void> {
  const call = await trx
    .updateTable('calls')
    .set({
      status: answer.status,
      answer: jsonb(answer),
      attempts: answer.attempts,
      ...(durationMs === null ? {} : { duration_ms: Math.round(durationMs) }),
      finished_at: sql`now()`,
      lease_expires_at: null,
    })
    .where('id', '=', callId)
    // A final answer stands: a run that finishes after recovery settled it changes nothing.
    .where('status', 'in', ['in_flight', 'pending_approval', 'escalated'])
    .returning(['api_key_id', 'idempotency_key'])
    .executeTakeFirst();
  if (call?.idempotency_key) {
    // A key bound to a pending approval lives at least as long as the approval: a repeat must
    // find it (and replay the pending answer), never claim the key afresh and freeze again.
    const approvalExpiry = answer.approval?.expires_at;
    await trx
      .updateTable('idempotency_keys')
      .set({
        state: 'completed',
        http_status: httpStatus,
        response: jsonb(answer),
        ...(approvalExpiry ? { expires_at: sql<Date>`greatest(expires_at, ${approvalExpiry}::timestamptz + interval '1 hour')` } : {}),
      })
      .where('api_key_id', '=', call.api_key_id)
      .where('key', '=', call.idempotency_key)
      .where('call_id', '=', callId)
      .execute();
  }
}

export function createCallsRepository(db: Kysely<Database>) {
  return {
    async createCall(call: NewCall): Promise<void> {
      await insertCall(db, call);
    },

    /**
     * Claims an idempotency key (namespaced by API key) and records the call as in flight, in one
     * transaction, before the tool is touched. The primary key makes concurrent claims wait on
     * each other: exactly one wins; the others see its row.
     */
    async claimIdempotencyKey(call: NewCall & { idempotency_key: string }, fingerprint: string, ttlMs: number): Promise<ClaimResult> {
      return db.transaction().execute(async (trx) => {
        const expiry = sql<Date>`now() + ${`${ttlMs} milliseconds`}::interval`;
        const inserted = await trx
          .insertInto('idempotency_keys')
          .values({
            api_key_id: call.api_key_id,
            key: call.idempotency_key,
            fingerprint,
            state: 'in_flight',
            call_id: call.id,
            expires_at: expiry,
          })
          .onConflict((oc) => oc.columns(['api_key_id', 'key']).doNothing())
          .returning('call_id')
          .executeTakeFirst();
        if (!inserted) {
          // A key past its TTL is free again: take it over in place.
          const renewed = await trx
            .updateTable('idempotency_keys')
            .set({ fingerprint, state: 'in_flight', call_id: call.id, http_status: null, response: null, created_at: sql`now()`, expires_at: expiry })
            .where('api_key_id', '=', call.api_key_id)
            .where('key', '=', call.idempotency_key)
            .where('expires_at', '<', sql<Date>`now()`)
            // A call still in flight keeps its key, however old: it is reconciled, never re-run.
            .where('state', '=', 'completed')
            .returning('call_id')
            .executeTakeFirst();
          if (!renewed) {
            const existing = await trx
              .selectFrom('idempotency_keys')
              .select(['fingerprint', 'state', 'call_id', 'http_status', 'response'])
              .where('api_key_id', '=', call.api_key_id)
              .where('key', '=', call.idempotency_key)
              .executeTakeFirst();
            // The holder gave its claim back between our insert and this read: ask to repeat.
            if (!existing) return { kind: 'in_flight', call_id: 'released' };
            if (existing.fingerprint !== fingerprint) return { kind: 'payload_mismatch', call_id: existing.call_id };
            if (existing.state === 'in_flight') return { kind: 'in_flight', call_id: existing.call_id };
            await trx
              .updateTable('idempotency_keys')
              .set({ replays: sql`replays + 1` })
              .where('api_key_id', '=', call.api_key_id)
              .where('key', '=', call.idempotency_key)
              .execute();
            return { kind: 'replay', http_status: existing.http_status ?? 200, answer: existing.response as CallAnswer };
          }
        }
        await insertCall(trx, call);
        return { kind: 'claimed' };
      });
    },

    /** Records the final answer of a call and, in the same transaction, its idempotency key. */
    async completeCall(
      callId: string,
      httpStatus: number,
      answer: CallAnswer,
      durationMs: number | null,
      /** Writes that must commit with the answer (a checkpoint, trace events). */
      alsoInTransaction?: (trx: Transaction<Database>) => Promise<void>,
    ): Promise<void> {
      await db.transaction().execute(async (trx) => {
        if (alsoInTransaction) await alsoInTransaction(trx);
        await writeAnswer(trx, callId, httpStatus, answer, durationMs);
      });
    },

    writeAnswer,

    /** Frees a call's idempotency key, so the agent's repeat runs afresh (its outcome was safe to retry). */
    async forgetIdempotencyKey(trx: Transaction<Database>, callId: string): Promise<void> {
      await trx.deleteFrom('idempotency_keys').where('call_id', '=', callId).execute();
    },

    /**
     * Claims calls left in flight past their lease (their process died): one conditional update
     * per row, so two replicas never recover the same call. The claim is a fresh lease.
     */
    async claimInterrupted(limit: number, leaseMs: number): Promise<Array<{ id: string; api_key_id: string; request: unknown }>> {
      return db
        .updateTable('calls')
        .set({ lease_expires_at: sql<Date>`now() + ${`${leaseMs} milliseconds`}::interval` })
        .where(
          'id',
          'in',
          db
            .selectFrom('calls')
            .select('id')
            .where('status', '=', 'in_flight')
            .where('lease_expires_at', '<', sql<Date>`now()`)
            .orderBy('lease_expires_at')
            .limit(limit)
            .forUpdate()
            .skipLocked(),
        )
        .where('status', '=', 'in_flight')
        .where('lease_expires_at', '<', sql<Date>`now()`)
        .returning(['id', 'api_key_id', 'request'])
        .execute();
    },

    /** A frozen call about to run after approval: in flight again, with a lease, for the recovery sweep. */
    async markInFlight(callId: string, leaseMs: number, trx: Db = db): Promise<void> {
      await trx
        .updateTable('calls')
        .set({ status: 'in_flight', lease_expires_at: sql<Date>`now() + ${`${leaseMs} milliseconds`}::interval` })
        .where('id', '=', callId)
        .execute();
    },

    /** Gives back a claim whose call never reached the tool (an internal error before any attempt). */
    async releaseClaim(apiKeyId: string, callId: string, idempotencyKey: string | null): Promise<void> {
      await db.transaction().execute(async (trx) => {
        await trx.deleteFrom('calls').where('id', '=', callId).where('status', '=', 'in_flight').execute();
        if (idempotencyKey !== null) {
          await trx
            .deleteFrom('idempotency_keys')
            .where('api_key_id', '=', apiKeyId)
            .where('key', '=', idempotencyKey)
            .where('call_id', '=', callId)
            .where('state', '=', 'in_flight')
            .execute();
        }
      });
    },

    /** Summaries plus the stored request and answer of several calls. */
    async findCallDetails(callIds: string[]): Promise<Map<string, CallDetail>> {
      const found = new Map<string, CallDetail>();
      if (callIds.length === 0) return found;
      const rows = await db.selectFrom('calls').selectAll().where('id', 'in', callIds).execute();
      for (const row of rows) found.set(row.id, { summary: toCallSummary(row), api_key_id: row.api_key_id, request: row.request, answer: row.answer });
      return found;
    },
  };
}
export type CallsRepository = ReturnType<typeof createCallsRepository>;
