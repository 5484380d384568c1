import { CompiledQuery, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApprovalsRepository, EXPIRE_DUE } from '../../src/approvals/approvals-repository.ts';
import { createCallsRepository, HOT_PATH_STATEMENTS } from '../../src/calls/calls-repository.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { jsonForPostgres, openStore, type Store } from '../../src/db/store.ts';
import { seedCallHistory } from '../helpers/call-history.ts';

/**
 * The hot-path statements take their batch as one JSON array, which Postgres guesses at a hundred
 * rows whatever it holds. Joined on that alone, it scanned tables instead of probing their primary
 * keys: the completion went through every in-flight entry of `calls_status_idx` (dead ones
 * included, until vacuum), and a new key's claim read `idempotency_keys` and `calls` whole.
 * Every statement here must reach `calls` and `idempotency_keys` by single-row index probes only.
 */
describe('hot-path statement plans', () => {
  let store: Store;
  const at = '2026-11-29T10:00:00.000Z';
  const events = [{ step: 'validated', status: 'ok', at }];

  beforeAll(async () => {
    store = await openStore({ dataDir: 'memory://' });
    await migrateToLatest(store.db);
    // A store with history: finished calls and their keys, a few still in flight, statistics taken.
    await seedCallHistory(store.db, 3000);
    // Completions leave dead in-flight versions behind them until vacuum.
    await sql`update calls set status = 'in_flight' where id in (select 'old' || g from generate_series(1, 3000, 3) g)`.execute(store.db);
    await sql`update calls set status = 'executed' where id in (select 'old' || g from generate_series(1, 3000, 3) g)`.execute(store.db);
    await sql`analyze`.execute(store.db);
  });
  afterAll(async () => {
    await store?.close();
  });

  type PlanNode = Record<string, unknown>;

  /** The root of the plan `explain (<options>, format json)` gives for `text`, run on `db`. */
  async function planOf(db: Pick<Store['db'], 'executeQuery'>, text: string, values: unknown[], options = ''): Promise<PlanNode> {
    const { rows } = await db.executeQuery<{ 'QUERY PLAN': unknown }>(CompiledQuery.raw(`explain (${options ? `${options}, ` : ''}format json) ${text}`, values));
    const plan = rows[0]!['QUERY PLAN'];
    return ((typeof plan === 'string' ? JSON.parse(plan) : plan) as Array<{ Plan: PlanNode }>)[0]!.Plan;
  }

  /** A plan node and every node under it. */
  function* nodesOf(node: PlanNode): Generator<PlanNode> {
    yield node;
    for (const child of (node['Plans'] as PlanNode[] | undefined) ?? []) yield* nodesOf(child);
  }

  /** Every table a plan touches, with how: a sequential scan or the index it uses. */
  async function accesses(text: string, values: unknown[]): Promise<string[]> {
    const found: string[] = [];
    for (const node of nodesOf(await planOf(store.db, text, values))) {
      const relation = node['Relation Name'];
      if (typeof relation === 'string' && (relation === 'calls' || relation === 'idempotency_keys')) {
        found.push(`${relation}: ${String(node['Node Type'])}${node['Index Name'] ? ` ${String(node['Index Name'])}` : ''}`);
      }
    }
    return found;
  }

  const byPrimaryKeyOnly = (found: string[]) => {
    const scans = found.filter((a) => !a.endsWith(' ModifyTable'));
    expect(scans.length).toBeGreaterThan(0);
    // A key is found by its primary key or by the call holding it: one entry either way.
    for (const access of scans) expect(access, found.join('; ')).toMatch(/^(calls: Index Scan calls_pkey|idempotency_keys: Index Scan idempotency_keys_(pk|call_idx))$/);
  };

  it('the completion finds its calls (and their keys) by primary key', async () => {
    const input = [{ id: 'old300', status: 'executed', answer: { status: 'executed' }, attempts: 1, duration_ms: 1, http_status: 200, events }];
    for (const statement of [HOT_PATH_STATEMENTS.COMPLETE_CALLS, HOT_PATH_STATEMENTS.COMPLETE_KEYED_CALLS]) {
      byPrimaryKeyOnly(await accesses(statement.text, [jsonForPostgres(input), ['old300']]));
    }
  });

  it("a key's claim looks up only the keys it did not get, by primary key", async () => {
    const input = [
      { id: 'new1', api_key_id: 'k', agent_id: 'a', tool: 't.x', request: {}, lease_ms: 60_000, events, key: 'fresh', fingerprint: 'fp', ttl_ms: 60_000 },
      { id: 'new2', api_key_id: 'k', agent_id: 'a', tool: 't.x', request: {}, lease_ms: 60_000, events, key: 'key7', fingerprint: 'fp', ttl_ms: 60_000 },
    ];
    byPrimaryKeyOnly(await accesses(HOT_PATH_STATEMENTS.CLAIM_KEYED_CALLS.text, [jsonForPostgres(input), input.map((i) => i.id)]));
  });

  it('the late part of a completion probes none of the calls the completion ended', async () => {
    // Run for real (and rolled back): how often the late CTE's lookup of `calls` ran.
    const lateProbes = await store.db
      .transaction()
      .execute(async (trx) => {
        await sql`update calls set status = 'in_flight' where id = 'old500'`.execute(trx);
        const input = [{ id: 'old500', status: 'executed', answer: { status: 'executed' }, attempts: 1, duration_ms: 1, http_status: 200, events }];
        const root = await planOf(trx, HOT_PATH_STATEMENTS.COMPLETE_CALLS.text, [jsonForPostgres(input), ['old500']], 'analyze');
        const late = [...nodesOf(root)].find((node) => node['Subplan Name'] === 'CTE late');
        let loops = -1;
        for (const node of late ? nodesOf(late) : []) {
          if (node['Relation Name'] === 'calls' && node['Node Type'] !== 'ModifyTable') loops = Math.max(loops, 0) + Number(node['Actual Loops'] ?? 0);
        }
        // Thrown, so the transaction rolls back and the seeded call stays as it was.
        throw Object.assign(new Error('roll back'), { loops });
      })
      .catch((error: { loops?: number }) => error.loops);
    // The lookup is in the plan, and did not run: the one call of the batch was ended.
    expect(lateProbes).toBe(0);
  });

  it("the bulk expiry ends its approvals' calls, and their keys, by primary key", async () => {
    const values = [jsonForPostgres({ status: 'expired' }), 200, 'system:sweep', jsonForPostgres(events), 'cancelled', 'expired', 'invoke_approvals'];
    byPrimaryKeyOnly(await accesses(EXPIRE_DUE, values));
  });
});

/**
 * A run that finishes after recovery (or expiry) settled its call keeps the settled answer, but
 * its trace events are still recorded: what the late run did stays on the call's trace.
 */
describe('a completion after the call was settled', () => {
  it("keeps the settled answer and appends the late run's events to the trace", async () => {
    const store = await openStore({ dataDir: 'memory://' });
    try {
      await migrateToLatest(store.db);
      const calls = createCallsRepository(store);
      const at = '2026-11-29T10:00:00.000Z';
      for (const keyed of [false, true]) {
        const id = `late-${keyed}`;
        await calls.createCall({ id, api_key_id: 'k', agent_id: 'a', tool: 't.x', request: {}, idempotency_key: null, lease_ms: 60_000 }, [
          { step: 'request_received', status: 'completed', at },
        ]);
        // Recovery settled it meanwhile.
        await sql`update calls set status = 'outcome_reconciled', answer = '{"status": "outcome_reconciled"}', trace = trace || '[{"step": "recovery_started", "status": "completed", "at": "2026-11-29T10:00:01.000Z"}]' where id = ${id}`.execute(
          store.db,
        );
        const late = { step: 'attempt', status: 'completed', at: '2026-11-29T10:00:02.000Z' };
        await calls.finishCall(id, 200, { status: 'executed', call_id: id, tool: 't.x', agent_id: 'a', attempts: 1, trace: [] }, 5, [late], keyed);
        const row = await store.db.selectFrom('calls').select(['status', 'answer', 'trace']).where('id', '=', id).executeTakeFirstOrThrow();
        expect(row.status).toBe('outcome_reconciled');
        expect(row.answer).toEqual({ status: 'outcome_reconciled' });
        expect((row.trace as Array<{ step: string }>).map((e) => e.step)).toEqual(['request_received', 'recovery_started', 'attempt']);
      }
    } finally {
      await store.close();
    }
  });

  it("the bulk expiry ends the open calls of its batch, and only adds its events to a settled one's trace", async () => {
    const store = await openStore({ dataDir: 'memory://' });
    try {
      await migrateToLatest(store.db);
      const calls = createCallsRepository(store);
      const approvals = createApprovalsRepository(store.db);
      const at = '2026-11-29T10:00:00.000Z';
      for (const id of ['open-call', 'settled-call']) {
        await calls.createCall({ id, api_key_id: 'k', agent_id: 'a', tool: 't.x', request: {}, idempotency_key: null, lease_ms: 60_000 }, [
          { step: 'request_received', status: 'completed', at },
        ]);
        await sql`
          insert into approvals (id, call_id, status, api_key_id, agent_id, tool, risk, reason, checkpoint, expires_at)
          values (${`appr-${id}`}, ${id}, 'pending', 'k', 'a', 't.x', 'high', 'r', ${JSON.stringify({ callback_url: 'http://127.0.0.1:9/hook' })}::jsonb, now() - interval '1 minute')`.execute(
          store.db,
        );
      }
      await sql`update calls set status = 'pending_approval' where id = 'open-call'`.execute(store.db);
      await sql`update calls set status = 'outcome_reconciled', answer = '{"status": "outcome_reconciled"}' where id = 'settled-call'`.execute(store.db);
      const events = [
        { step: 'approval_decided', status: 'expired', at, detail: { approval_id: '' } },
        { step: 'execution_completed', status: 'cancelled', at, detail: { reason: 'expired' } },
      ];
      const expired = await store.db
        .transaction()
        .execute((trx) => approvals.expireDue(trx, 10, { status: 'expired' }, 'system:sweep', { status: 'cancelled', reason: 'expired', events }));
      const byCall = new Map(expired.map((row) => [row.call_id, row]));
      expect([...byCall.keys()].sort()).toEqual(['open-call', 'settled-call']);
      // Only the call it ended has an answer to send back.
      expect(byCall.get('open-call')!.answer).toMatchObject({ status: 'cancelled', reason: 'expired' });
      expect(byCall.get('settled-call')!.answer).toBeNull();
      const rows = await store.db.selectFrom('calls').select(['id', 'status', 'answer', 'trace']).orderBy('id').execute();
      const [open, settled] = rows;
      expect(open).toMatchObject({ id: 'open-call', status: 'cancelled', answer: { status: 'cancelled', reason: 'expired' } });
      expect(settled).toMatchObject({ id: 'settled-call', status: 'outcome_reconciled', answer: { status: 'outcome_reconciled' } });
      for (const row of rows) {
        const trace = row.trace as Array<{ step: string; detail?: unknown }>;
        expect(trace.map((e) => e.step)).toEqual(['request_received', 'approval_decided', 'execution_completed']);
        expect(trace[1]!.detail).toEqual({ approval_id: `appr-${row.id}` });
      }
    } finally {
      await store.close();
    }
  });
});
