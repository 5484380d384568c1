import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/schema.ts';
import { jsonb, jsonForPostgres, type Statement, type Store } from '../db/store.ts';
import { createWriteBatcher } from '../db/write-batcher.ts';
import type { TraceEvent } from '../traces/trace-recorder.ts';
import { OPEN_CALL_STATUSES, toCallSummary, type CallDetail } from '../traces/traces-repository.ts';
import type { CallAnswer } from './call-types.ts';
import type { CallRequest } from './call-request.ts';

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
  { kind: 'claimed' } | { kind: 'replay'; http_status: number; answer: CallAnswer } | { kind: 'in_flight'; call_id: string } | { kind: 'payload_mismatch'; call_id: string };

type Db = Kysely<Database> | Transaction<Database>;

async function insertCall(trx: Db, call: NewCall, trace: TraceEvent[]): Promise<void> {
  await trx
    .insertInto('calls')
    .values({
      id: call.id,
      api_key_id: call.api_key_id,
      agent_id: call.agent_id,
      tool: call.tool,
      status: 'in_flight',
      request: jsonb(call.request),
      trace: jsonb(trace),
      idempotency_key: call.idempotency_key,
      lease_expires_at: sql<Date>`now() + ${`${call.lease_ms} milliseconds`}::interval`,
    })
    .execute();
}

/**
 * An answer as stored: without its trace, which is the call's own (`calls.trace`) and goes back
 * into the answer whenever it is read ({@link answerWithTrace}). Stored in both, the trace made a
 * completed row about twice as large: over Postgres's TOAST threshold, so compressed on every
 * completion, and written twice to the WAL.
 */
function storedAnswer(answer: CallAnswer): Omit<CallAnswer, 'trace'> {
  const { trace: _trace, ...stored } = answer;
  return stored;
}

/** The answer as read, in SQL: the stored answer of call `alias` with the call's trace (null while there is none). */
const answerWithTrace = (alias: string) => `${alias}.answer || jsonb_build_object('trace', ${alias}.trace)`;

/**
 * The answer of a call, stored on the call and, when it has one, on its idempotency key, so a
 * repeat replays it. Runs inside the caller's transaction.
 */
async function writeAnswer(trx: Transaction<Database>, callId: string, httpStatus: number, answer: CallAnswer, durationMs: number | null): Promise<void> {
  const call = await trx
    .updateTable('calls')
    .set({
      status: answer.status,
      answer: jsonb(storedAnswer(answer)),
      attempts: answer.attempts,
      ...(durationMs === null ? {} : { duration_ms: Math.round(durationMs) }),
      finished_at: sql`now()`,
      lease_expires_at: null,
    })
    .where('id', '=', callId)
    // A final answer stands: a run that finishes after recovery settled it changes nothing.
    .where('status', 'in', OPEN_CALL_STATUSES)
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
        // A repeat reads the answer from the call: stored once.
        response: null,
        ...(approvalExpiry ? { expires_at: sql<Date>`greatest(expires_at, ${approvalExpiry}::timestamptz + interval '1 hour')` } : {}),
      })
      .where('api_key_id', '=', call.api_key_id)
      .where('key', '=', call.idempotency_key)
      .where('call_id', '=', callId)
      .execute();
  }
}

/**
 * The batch: `$1` a jsonb array, each element one call's write, and `$2` their ids in the same
 * order. Rows come from the ids, so the planner knows how many there are (a jsonb array it
 * guesses at a hundred, whatever it holds, and then prefers scans to primary-key probes).
 */
const INPUT = `input as (select u.ord, u.id, ($1::jsonb) -> (u.ord::int - 1) as v from unnest($2::text[]) with ordinality as u(id, ord))`;

/** `$1` and `$2` of {@link INPUT}. */
const batchValues = (items: Array<{ id: string }>) => [jsonForPostgres(items), items.map((item) => item.id)];

/** {@link OPEN_CALL_STATUSES} as an SQL list: the statements below hold calls still open to it. */
const OPEN = OPEN_CALL_STATUSES.map((status) => `'${status}'`).join(', ');

/**
 * A call of the batch still open, as a filter no index can serve (`is true`): the call is found by
 * its primary key, never through `calls_status_idx`, whose in-flight entries pile up dead until
 * vacuum. On Postgres the completions run on one plan made once (see store.ts), so it must not
 * depend on what the statistics say of the open calls; the bulk expiry (planned on each run, in
 * the sweep's transaction) uses it too.
 */
const STILL_OPEN = `(c.status in (${OPEN})) is true`;

/**
 * A call another step settled meanwhile (recovery, expiry) keeps its answer, but the events of
 * this late step still go on its trace: what a late run did stays on record. The late calls are
 * the batch's calls the `call` CTE did not end, whether they were settled before this statement
 * began or while it ran (the update then appends to the settled version). Only those are looked
 * up again (almost always none), rather than every call's primary key probed a second time:
 * 0.038 -> 0.009 ms for a completion of 16, 1.4 -> 0.1 ms for an expiry batch of 200 with its
 * pages out of memory.
 */
const LATE = `late as (
      update calls c set trace = c.trace || (i.v->'events')
      from input i
      where i.id not in (select id from call) and c.id = i.id and jsonb_array_length(i.v->'events') > 0
    )`;

const LEASE = `now() + (v->>'lease_ms')::float8 * interval '1 millisecond'`;

/**
 * The hot path of `/v1/call` is two statements, each its own commit, and concurrent calls share
 * them (see write-batcher.ts): the claim (the call row with the trace so far, and the idempotency
 * key when there is one) and the completion (the answer, the key's state, and the rest of the
 * trace, appended on the row). A crash between them leaves an in-flight call with a readable
 * trace, for the recovery sweep.
 */
const CLAIM_CALLS: Statement = {
  name: 'invoke_claim_calls',
  text: `
    with ${INPUT}, call as (
      insert into calls (id, api_key_id, agent_id, tool, status, request, trace, idempotency_key, lease_expires_at)
      select v->>'id', v->>'api_key_id', v->>'agent_id', v->>'tool', 'in_flight', v->'request', v->'events', null, ${LEASE}
      from input order by ord
    )
    select count(*)::int as written from input`,
};

/**
 * Claims the keys (in key order, so two batches never wait on each other in a cycle), and
 * writes the calls and traces of the claimed ones. For a key already taken, the same statement
 * reads what holds it (a completed key's answer is on its call). A holder that commits while
 * the statement runs is not in its snapshot: that case, and a key past its TTL, take the
 * transactional path.
 */
const CLAIM_KEYED_CALLS: Statement = {
  name: 'invoke_claim_keyed_calls',
  text: `
    with ${INPUT}, claim as (
      insert into idempotency_keys (api_key_id, key, fingerprint, state, call_id, expires_at)
      select v->>'api_key_id', v->>'key', v->>'fingerprint', 'in_flight', v->>'id', now() + (v->>'ttl_ms')::float8 * interval '1 millisecond'
      from input order by v->>'api_key_id', v->>'key'
      on conflict (api_key_id, key) do nothing
      returning call_id
    ), call as (
      insert into calls (id, api_key_id, agent_id, tool, status, request, trace, idempotency_key, lease_expires_at)
      select v->>'id', v->>'api_key_id', v->>'agent_id', v->>'tool', 'in_flight', v->'request', v->'events', v->>'key', ${LEASE}
      from input where v->>'id' in (select call_id from claim) order by ord
    )
    select i.v->>'id' as id, c.call_id is not null as claimed, k.fingerprint, k.state, k.call_id, k.http_status, k.expired, k.response
    from input i
    left join claim c on c.call_id = i.v->>'id'
    -- Only a key that was not claimed is looked up, one primary-key probe each (lateral: never a
    -- scan of the table, whatever the planner guesses of the input's size).
    left join lateral (
      select k.fingerprint, k.state, k.call_id, k.http_status, k.expires_at < now() as expired, coalesce(k.response, ${answerWithTrace('held')}) as response
      from idempotency_keys k left join calls held on held.id = k.call_id
      where c.call_id is null and k.api_key_id = i.v->>'api_key_id' and k.key = i.v->>'key'
      limit 1 -- at most one row anyway (the primary key); the limit keeps the planner from flattening the lateral into a join
    ) k on true
    order by i.ord`,
};

/**
 * Calls' final answers, the rest of their traces and (for calls with an idempotency key) their
 * keys' states, in one commit. Calls without a key have a statement of their own, without the
 * keys' part: nothing to look up for them. The calls are found by primary key: with the batch's
 * size unknown, the planner went through `calls_status_idx` instead, over every in-flight entry
 * not yet vacuumed.
 */
const completeStatement = (keyed: boolean): Statement => ({
  name: keyed ? 'invoke_complete_keyed_calls' : 'invoke_complete_calls',
  text: `
    with ${INPUT}, call as (
      update calls c
      set status = i.v->>'status', answer = i.v->'answer', attempts = (i.v->>'attempts')::integer, trace = c.trace || (i.v->'events'),
          duration_ms = coalesce((i.v->>'duration_ms')::integer, c.duration_ms), finished_at = now(), lease_expires_at = null
      from input i
      -- A final answer stands: a run that finishes after recovery settled it changes nothing.
      where c.id = i.id and ${STILL_OPEN}
      returning c.id, c.api_key_id, c.idempotency_key, (i.v->>'http_status')::integer as http_status
    ), ${LATE}${
      keyed
        ? `, key as (
      update idempotency_keys k set state = 'completed', http_status = call.http_status, response = null
      from call
      where k.api_key_id = call.api_key_id and k.key = call.idempotency_key and k.call_id = call.id
    )`
        : ''
    }
    select count(*)::int as written from call`,
});
const COMPLETE_CALLS = completeStatement(false);
const COMPLETE_KEYED_CALLS = completeStatement(true);

/**
 * Calls ended without running (their approvals expired), many at once, as CTEs for the bulk
 * expiry's one statement (approvals-repository.ts: `expireDue`) to put after a CTE named `source`
 * with columns `call_id`, `events` (the trace events to append, a JSONB array) and `answer_wanted`.
 * The answer is built in the statement from the call and the trace it already has, so nothing is
 * read back to build it; a call settled meanwhile keeps its answer and gets the events (as
 * {@link LATE}). Defines `ended` (`id`, and `answer` with its trace where wanted, for a callback).
 * `statusParam` and `reasonParam` are the numbers of the statement's parameters holding them.
 */
export function endCallsUnrunCtes(statusParam: number, reasonParam: number): string {
  const status = `$${statusParam}::text`;
  const reason = `$${reasonParam}::text`;
  return `ended as (
      update calls c
      set status = ${status}, attempts = 0, finished_at = now(), lease_expires_at = null, trace = c.trace || s.events,
          answer = jsonb_build_object('status', ${status}, 'call_id', c.id, 'tool', c.tool, 'agent_id', c.agent_id, 'attempts', 0, 'reason', ${reason})
      from source s
      where c.id = s.call_id and ${STILL_OPEN}
      returning c.id, c.api_key_id, c.idempotency_key, case when s.answer_wanted then ${answerWithTrace('c')} end as answer
    ), ended_late as (
      update calls c set trace = c.trace || s.events
      from source s
      where s.call_id not in (select id from ended) and c.id = s.call_id and jsonb_array_length(s.events) > 0
    ), ended_key as (
      update idempotency_keys k set state = 'completed', http_status = 200, response = null
      from ended
      where k.api_key_id = ended.api_key_id and k.key = ended.idempotency_key and k.call_id = ended.id
    )`;
}

/** Code-unit order, as Postgres's "C" collation would sort; any fixed order serves to avoid deadlocks. */
const compareText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** How long repeats of keys are counted in memory before they are added to the keys. */
const REPLAY_FLUSH_MS = 1_000;

/**
 * Repeats of keys, added together. A count is a statistic, not an outcome, so it commits without
 * waiting for the disk (synchronous_commit off for this transaction only): while a commit waits,
 * the keys' rows stay locked and repeats' claims of them wait.
 */
const ADD_REPLAYS: Statement = {
  name: 'invoke_add_replays',
  text: `
    with relaxed as (select set_config('synchronous_commit', 'off', true))
    update idempotency_keys k set replays = k.replays + r.n
    from unnest($1::text[], $2::text[], $3::int[]) as r(api_key_id, key, n), relaxed
    where k.api_key_id = r.api_key_id and k.key = r.key`,
};

interface KeyClaimRow {
  id: string;
  claimed: boolean;
  fingerprint: string | null;
  state: 'in_flight' | 'completed' | null;
  call_id: string | null;
  http_status: number | null;
  expired: boolean | null;
  response: unknown;
}

interface ClaimInput {
  id: string;
  api_key_id: string;
  agent_id: string;
  tool: string;
  request: unknown;
  lease_ms: number;
  events: TraceEvent[];
}

interface KeyedClaimInput extends ClaimInput {
  key: string;
  fingerprint: string;
  ttl_ms: number;
}

interface CompletionInput {
  id: string;
  status: string;
  answer: Omit<CallAnswer, 'trace'>;
  attempts: number;
  duration_ms: number | null;
  http_status: number;
  events: TraceEvent[];
}

/** Statements under way at once per kind: enough to keep a pool busy, few enough to keep batches full. */
const IN_FLIGHT = { postgres: 4, embedded: 1 } as const;
const MAX_BATCH = 256;

/** The hot path's statements (the replay counts' too), for tests that check how Postgres plans them. */
export const HOT_PATH_STATEMENTS = { CLAIM_CALLS, CLAIM_KEYED_CALLS, COMPLETE_CALLS, COMPLETE_KEYED_CALLS, ADD_REPLAYS } as const;

export function createCallsRepository(store: Pick<Store, 'db' | 'run' | 'kind'>) {
  const { db } = store;
  const batched = <I, O>(write: (items: I[]) => Promise<O[]>) => createWriteBatcher({ write, maxBatch: MAX_BATCH, maxInFlight: IN_FLIGHT[store.kind] });
  /** A batched statement whose callers need nothing back but its commit. */
  const writer = <I extends { id: string }>(statement: Statement) =>
    batched<I, void>(async (items) => {
      await store.run(statement, batchValues(items));
      return items.map(() => undefined);
    });
  const claimCalls = writer<ClaimInput>(CLAIM_CALLS);
  const claimKeyedCalls = batched<KeyedClaimInput, KeyClaimRow>((items) => store.run<KeyClaimRow>(CLAIM_KEYED_CALLS, batchValues(items)));
  const completeCalls = writer<CompletionInput>(COMPLETE_CALLS);
  const completeKeyedCalls = writer<CompletionInput>(COMPLETE_KEYED_CALLS);
  // Repeats are counted off the answer's path, in memory, and added to their keys once a second
  // (REPLAY_FLUSH_MS) in one statement: a replay never waits on its key's row, which a count
  // being written locks. `/invoke stats` flushes first; another replica's counts are at most a
  // second behind. A process that dies loses its last second of counts: a statistic, not an outcome.
  const pendingReplays = new Map<string, { apiKeyId: string; key: string; n: number }>();
  let flushTimer: NodeJS.Timeout | null = null;
  let flushed: Promise<void> = Promise.resolve();

  function flushReplays(): Promise<void> {
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = null;
    if (pendingReplays.size > 0) {
      // In key order, so two replicas' flushes never wait on each other in a cycle.
      const counts = [...pendingReplays.values()].sort((a, b) => compareText(a.apiKeyId, b.apiKeyId) || compareText(a.key, b.key));
      pendingReplays.clear();
      const add = () => store.run(ADD_REPLAYS, [counts.map((r) => r.apiKeyId), counts.map((r) => r.key), counts.map((r) => r.n)]);
      // One flush at a time, in order; a count lost to a store error is a statistic, not an outcome.
      flushed = flushed.then(add).then(
        () => undefined,
        () => undefined,
      );
    }
    return flushed;
  }

  function countReplay(apiKeyId: string, key: string): void {
    const id = `${apiKeyId}\u0000${key}`;
    const entry = pendingReplays.get(id);
    if (entry) entry.n += 1;
    else pendingReplays.set(id, { apiKeyId, key, n: 1 });
    if (!flushTimer) {
      flushTimer = setTimeout(() => void flushReplays(), REPLAY_FLUSH_MS);
      // Counting alone never keeps a process alive (close flushes).
      flushTimer.unref();
    }
  }

  /**
   * The transactional claim, for what the one-statement claim cannot settle: a key past its TTL
   * (taken over in place) and a holder that committed while that statement ran. The primary key
   * makes concurrent claims wait on each other: exactly one wins; the others see its row.
   */
  async function claimInTransaction(call: NewCall & { idempotency_key: string }, fingerprint: string, ttlMs: number, trace: TraceEvent[]): Promise<ClaimResult> {
    return db.transaction().execute(async (trx) => {
      const expiry = sql<Date>`now() + ${`${ttlMs} milliseconds`}::interval`;
      const inserted = await trx
        .insertInto('idempotency_keys')
        .values({ api_key_id: call.api_key_id, key: call.idempotency_key, fingerprint, state: 'in_flight', call_id: call.id, expires_at: expiry })
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
            .selectFrom('idempotency_keys as k')
            .leftJoin('calls as c', 'c.id', 'k.call_id')
            .select(['k.fingerprint', 'k.state', 'k.call_id', 'k.http_status', sql<unknown>`coalesce(k.response, ${sql.raw(answerWithTrace('c'))})`.as('response')])
            .where('k.api_key_id', '=', call.api_key_id)
            .where('k.key', '=', call.idempotency_key)
            .executeTakeFirst();
          // The holder gave its claim back between our insert and this read: ask to repeat.
          if (!existing) return { kind: 'in_flight', call_id: 'released' } as const;
          return settledClaim(call, fingerprint, existing);
        }
      }
      await insertCall(trx, call, trace);
      return { kind: 'claimed' } as const;
    });
  }

  /** What a key held by another call means for this one. */
  function settledClaim(
    call: NewCall & { idempotency_key: string },
    fingerprint: string,
    existing: { fingerprint: string; state: string; call_id: string; http_status: number | null; response: unknown },
  ): ClaimResult {
    if (existing.fingerprint !== fingerprint) return { kind: 'payload_mismatch', call_id: existing.call_id };
    if (existing.state === 'in_flight') return { kind: 'in_flight', call_id: existing.call_id };
    countReplay(call.api_key_id, call.idempotency_key);
    return { kind: 'replay', http_status: existing.http_status ?? 200, answer: existing.response as CallAnswer };
  }

  return {
    /** Records a call without an idempotency key as in flight, with its trace so far. */
    async createCall(call: NewCall, trace: TraceEvent[] = []): Promise<void> {
      await claimCalls({ id: call.id, api_key_id: call.api_key_id, agent_id: call.agent_id, tool: call.tool, request: call.request, lease_ms: call.lease_ms, events: trace });
    },

    /**
     * Claims an idempotency key (namespaced by API key) and records the call as in flight with its
     * trace so far, before the tool is touched: one statement in the common cases (a new key, a
     * completed key replayed, a key in flight, another payload).
     */
    async claimIdempotencyKey(call: NewCall & { idempotency_key: string }, fingerprint: string, ttlMs: number, trace: TraceEvent[] = []): Promise<ClaimResult> {
      const row = await claimKeyedCalls({
        id: call.id,
        api_key_id: call.api_key_id,
        agent_id: call.agent_id,
        tool: call.tool,
        request: call.request,
        lease_ms: call.lease_ms,
        events: trace,
        key: call.idempotency_key,
        fingerprint,
        ttl_ms: ttlMs,
      });
      if (row.claimed) return { kind: 'claimed' };
      if (row.fingerprint === null || row.state === null || row.call_id === null || (row.expired && row.state === 'completed')) {
        return claimInTransaction(call, fingerprint, ttlMs, trace);
      }
      return settledClaim(call, fingerprint, { fingerprint: row.fingerprint, state: row.state, call_id: row.call_id, http_status: row.http_status, response: row.response });
    },

    /** Records a call's final answer, its key's state (`keyed`: it has one) and the rest of its trace, in one commit. */
    async finishCall(callId: string, httpStatus: number, answer: CallAnswer, durationMs: number | null, trace: TraceEvent[], keyed: boolean): Promise<void> {
      await (keyed ? completeKeyedCalls : completeCalls)({
        id: callId,
        status: answer.status,
        answer: storedAnswer(answer),
        attempts: answer.attempts,
        duration_ms: durationMs === null ? null : Math.round(durationMs),
        http_status: httpStatus,
        events: trace,
      });
    },

    /** Adds the repeats counted so far to their keys (before counts are read, and on close). */
    flushReplays,

    /** Writes the replay counts still held (on close). */
    async close(): Promise<void> {
      await flushReplays();
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
    /** `request`: the call as it will run, when an approver edited it (recovery reconciles that one). */
    async markInFlight(callId: string, leaseMs: number, trx: Db = db, request?: CallRequest): Promise<void> {
      await trx
        .updateTable('calls')
        .set({ status: 'in_flight', lease_expires_at: sql<Date>`now() + ${`${leaseMs} milliseconds`}::interval`, ...(request ? { request: jsonb(request) } : {}) })
        .where('id', '=', callId)
        .execute();
    },

    /** Gives back a claim whose call never reached the tool (an internal error before any attempt). */
    async releaseClaim(apiKeyId: string, callId: string, idempotencyKey: string | null): Promise<void> {
      await db.transaction().execute(async (trx) => {
        // The trace written with the claim goes with it: nothing happened.
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

    /** Completed idempotency keys past their TTL, a bounded batch; returns how many went. */
    async trimExpiredKeys(limit: number): Promise<number> {
      const keys = await db
        .deleteFrom('idempotency_keys')
        .where((eb) =>
          eb(
            sql`(api_key_id, key)`,
            'in',
            eb
              .selectFrom('idempotency_keys')
              .select(['api_key_id', 'key'])
              .where('state', '=', 'completed')
              .where('expires_at', '<', sql<Date>`now()`)
              .limit(limit),
          ),
        )
        .executeTakeFirst();
      return Number(keys.numDeletedRows ?? 0);
    },

    /** Finished calls older than the retention, a bounded batch (a call still waiting on a human stays). */
    async trimFinishedBefore(retentionMs: number, limit: number): Promise<number> {
      const cutoff = sql<Date>`now() - ${`${retentionMs} milliseconds`}::interval`;
      const removed = await db
        .deleteFrom('calls')
        .where('id', 'in', db.selectFrom('calls').select('id').where('created_at', '<', cutoff).where('status', 'not in', OPEN_CALL_STATUSES).limit(limit))
        .executeTakeFirst();
      return Number(removed.numDeletedRows ?? 0);
    },

    /** Summaries plus the stored request and answer of several calls. */
    async findCallDetails(callIds: string[]): Promise<Map<string, CallDetail>> {
      const found = new Map<string, CallDetail>();
      if (callIds.length === 0) return found;
      const rows = await db.selectFrom('calls').selectAll().where('id', 'in', callIds).execute();
      for (const row of rows) {
        const trace = row.trace as TraceEvent[];
        const answer = row.answer === null ? null : { ...(row.answer as object), trace };
        found.set(row.id, { summary: toCallSummary(row), api_key_id: row.api_key_id, request: row.request, answer, trace });
      }
      return found;
    },
  };
}
export type CallsRepository = ReturnType<typeof createCallsRepository>;
