import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { createPostgresRunCoordinator } from '../../src/sweeps/sweep-scheduler.ts';
import type { SweepCounts } from '../../src/sweeps/sweep-service.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { billingProvider } from '../helpers/billing-provider.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';
import { createTestDatabase } from './databases.ts';

/**
 * Two replicas sweeping the same rows: two app instances (two connection pools, as two replicas
 * would have) on one real Postgres server run sweep passes at the same moment, several times.
 * Each stale approval is expired once (one audit event, one callback, delivered once), each
 * drifted approval is requeued once, each interrupted call is recovered once, and the counts the
 * two replicas report add up to the rows there were. The cron run coordinator lets exactly one
 * replica run a given fire.
 */

const EXPIRED = 20;
const DRIFTED = 5;
const RECONCILABLE = 4;
const BLIND = 2;
const ROUNDS = 4;

describe('two replicas sweeping the same rows on a real Postgres server', () => {
  let replicas: [BuiltApp, BuiltApp];
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  let hooks: Awaited<ReturnType<typeof startToolServer>>;
  const balances = new Map<string, number>();
  const charged = new Set<string>();

  beforeAll(async () => {
    tools = await startToolServer({
      'POST /remind': (_req, res) => json(res, 200, { sent: true }),
      'GET /invoices/*': (req, res) => {
        const id = req.path.split('/').pop()!;
        json(res, 200, { invoice_id: id, invoice_status: 'overdue', balance: balances.get(id) ?? 100 });
      },
      'POST /charge': (req, res) => {
        const id = (req.body as { payment_id: string }).payment_id;
        charged.add(id);
        json(res, 200, { payment_id: id, charged: true });
      },
      'GET /payments/*': (req, res) => json(res, 200, { charged: charged.has(req.path.split('/').pop()!) }),
    });
    hooks = await startToolServer({ 'POST /hook': (_req, res) => json(res, 200, { ok: true }) });
    const url = await createTestDatabase(inject('pgUrl'));
    const env = {
      DATABASE_URL: url,
      INVOKE_OUTBOX_INTERVAL_MS: '0',
      INVOKE_CALLBACK_SECRET: 'callback-secret-0123456789',
      INVOKE_CALLBACK_ALLOWLIST: `127.0.0.1:${hooks.port}`,
    };
    replicas = [await buildTestApp(env), await buildTestApp(env)];
    expect(replicas[0].store.kind).toBe('postgres');
    expect(replicas[0].store.db).not.toBe(replicas[1].store.db);
    const registered = await send(replicas[0].app, 'POST', '/v1/providers', billingProvider(tools.url));
    expect(registered.status, JSON.stringify(registered.body)).toBe(201);
  });

  afterAll(async () => {
    for (const r of replicas ?? []) await r.app.close();
    await Promise.all([tools?.close(), hooks?.close()]);
  }, 15_000);

  const db = () => replicas[0].store.db;

  /** What a dead process leaves behind: the call in flight, its key claimed, its lease run out. */
  async function interrupt(callId: string): Promise<void> {
    await db()
      .updateTable('calls')
      .set({ status: 'in_flight', answer: null, finished_at: null, lease_expires_at: sql`now() - interval '1 second'` })
      .where('id', '=', callId)
      .execute();
    await db().updateTable('idempotency_keys').set({ state: 'in_flight', response: null, http_status: null }).where('call_id', '=', callId).execute();
  }

  function sum(all: SweepCounts[]): SweepCounts {
    const total = { ...all[0]! };
    for (const counts of all.slice(1)) for (const [k, v] of Object.entries(counts)) total[k as keyof SweepCounts] += v;
    return total;
  }

  it('concurrent passes on both replicas expire, requeue and recover each row exactly once', async () => {
    const started = Date.now();
    // Approvals that will be past their expiry (a past expires_at is refused at the door, so they
    // are frozen with a near one and moved into the past by the database clock), each with a
    // callback for the agent.
    const soon = new Date(Date.now() + 60_000).toISOString();
    const expiring = await Promise.all(
      Array.from({ length: EXPIRED }, (_, i) =>
        send(replicas[i % 2]!.app, 'POST', '/v1/call', {
          tool: 'billing.send_reminder',
          params: { invoice_id: `exp_${i}` },
          agent_id: 'agent-1',
          idempotency_key: `expire-${i}`,
          approval_contract: { intent: 'send_invoice_reminder', expires_at: soon, callback_url: `${hooks.url}/hook` },
        }),
      ),
    );
    for (const res of expiring) expect(res.status, JSON.stringify(res.body)).toBe(202);
    const expiringIds = expiring.map((r) => r.body.approval.id as string);
    await replicas[0].store.db
      .updateTable('approvals')
      .set({ expires_at: sql`now() - interval '1 minute'` })
      .where('id', 'in', expiringIds)
      .execute();

    // Pending approvals whose live state drifts (strict threshold) after the freeze.
    const drifting = await Promise.all(
      Array.from({ length: DRIFTED }, (_, i) =>
        send(replicas[i % 2]!.app, 'POST', '/v1/call', {
          tool: 'billing.send_reminder',
          params: { invoice_id: `drift_${i}` },
          agent_id: 'agent-1',
          approval_contract: {
            intent: 'send_invoice_reminder',
            conditions: { balance: '> 0' },
            threshold: 'strict',
            state_refetch: { tool: 'billing.get_invoice', params: { invoice_id: `drift_${i}` } },
          },
        }),
      ),
    );
    for (const res of drifting) expect(res.status, JSON.stringify(res.body)).toBe(202);
    const driftingIds = drifting.map((r) => r.body.approval.id as string);
    for (let i = 0; i < DRIFTED; i++) balances.set(`drift_${i}`, 80);

    // Calls whose process "died" mid-call: some reconcilable, some not.
    const interrupted: Array<{ callId: string; body: Record<string, unknown>; blind: boolean }> = [];
    for (let i = 0; i < RECONCILABLE + BLIND; i++) {
      const blind = i >= RECONCILABLE;
      const body = { tool: blind ? 'billing.charge_blind' : 'billing.charge', params: { payment_id: `pay_${i}` }, agent_id: 'agent-1', idempotency_key: `interrupted-${i}` };
      const res = await send(replicas[i % 2]!.app, 'POST', '/v1/call', body);
      expect(res.body.status, JSON.stringify(res.body)).toBe('executed');
      await interrupt(res.body.call_id);
      interrupted.push({ callId: res.body.call_id, body, blind });
    }
    const chargesBefore = tools.count('POST', '/charge');
    expect(chargesBefore).toBe(RECONCILABLE + BLIND);
    expect((await send(replicas[1].app, 'POST', '/v1/call', interrupted[0]!.body)).status).toBe(409);
    const setupMs = Date.now() - started;

    // Both replicas sweep at the same moment, several times over.
    const sweepStarted = Date.now();
    const passes: SweepCounts[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      passes.push(...(await Promise.all([replicas[0].services.sweeps.runPass(), replicas[1].services.sweeps.runPass()])));
    }
    const sweepMs = Date.now() - sweepStarted;
    const total = sum(passes);
    const described = JSON.stringify(passes);

    expect(total.errors, described).toBe(0);
    expect(total.expired, described).toBe(EXPIRED);
    expect(total.escalated, described).toBe(0);
    expect(total.requeued, described).toBe(DRIFTED);
    expect(total.recovered, described).toBe(RECONCILABLE + BLIND);
    expect(total.unknown_outcomes, described).toBe(BLIND);
    expect(total.outbox_delivered, described).toBe(EXPIRED);
    expect(total.outbox_failed, described).toBe(0);
    // Nothing was left for the last round on either replica.
    for (const last of passes.slice(-2)) expect(last, described).toMatchObject({ expired: 0, requeued: 0, recovered: 0, outbox_delivered: 0 });

    // Expiry: one audit event, one callback row, one delivery per approval.
    const approvals = await db().selectFrom('approvals').select(['id', 'status', 'previous_approval_id']).execute();
    const events = await db().selectFrom('approval_events').select(['approval_id', 'kind']).execute();
    const outbox = await db().selectFrom('outbox').select(['payload', 'status', 'attempts']).where('kind', '=', 'callback').execute();
    for (const id of expiringIds) {
      expect(approvals.find((a) => a.id === id)?.status).toBe('expired');
      expect(
        events.filter((e) => e.approval_id === id && e.kind === 'expired'),
        id,
      ).toHaveLength(1);
      const rows = outbox.filter((o) => (o.payload as { approval_id?: string }).approval_id === id);
      expect(rows, id).toHaveLength(1);
      expect(rows[0]).toMatchObject({ status: 'delivered', attempts: 1 });
      expect(
        hooks.requests.filter((r) => (r.body as { approval_id?: string }).approval_id === id),
        id,
      ).toHaveLength(1);
    }
    expect(outbox).toHaveLength(EXPIRED);
    expect(hooks.requests).toHaveLength(EXPIRED);
    for (const request of hooks.requests) expect(request.body).toMatchObject({ event: 'approval.decided', status: 'expired', decided_by: 'system:sweep' });

    // Requeue: each drifted approval invalidated once, with exactly one pending replacement.
    for (const id of driftingIds) {
      expect(approvals.find((a) => a.id === id)?.status).toBe('invalidated');
      expect(
        events.filter((e) => e.approval_id === id && e.kind === 'invalidated'),
        id,
      ).toHaveLength(1);
      const replacements = approvals.filter((a) => a.previous_approval_id === id);
      expect(replacements, id).toHaveLength(1);
      expect(replacements[0]!.status).toBe('pending');
    }
    expect(approvals).toHaveLength(EXPIRED + 2 * DRIFTED);

    // Recovery: one recovery_started per call, the right outcome, no tool re-run.
    const recoveryEvents = (await db().selectFrom('calls').select(['id', 'trace']).execute()).flatMap((c) =>
      (c.trace as Array<{ step: string }>).filter((e) => e.step === 'recovery_started').map(() => ({ call_id: c.id })),
    );
    expect(recoveryEvents).toHaveLength(RECONCILABLE + BLIND);
    for (const { callId, body, blind } of interrupted) {
      expect(
        recoveryEvents.filter((e) => e.call_id === callId),
        callId,
      ).toHaveLength(1);
      const again = await send(replicas[1].app, 'POST', '/v1/call', body);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.body).toMatchObject({ call_id: callId, status: blind ? 'unknown_outcome' : 'outcome_reconciled' });
    }
    expect(tools.count('POST', '/charge')).toBe(chargesBefore);
    for (let i = 0; i < RECONCILABLE; i++) expect(tools.count('GET', `/payments/pay_${i}`)).toBe(1);
    const brief = passes.map((c) => `${c.expired}/${c.requeued}/${c.recovered}/${c.outbox_delivered}`).join(' ');
    console.log(`replica-sweeps: setup ${setupMs} ms, ${ROUNDS} concurrent rounds ${sweepMs} ms; expired/requeued/recovered/delivered per pass: ${brief}`);
  });

  it('the Postgres run coordinator lets exactly one of 20 concurrent shouldRun calls win a fire', async () => {
    const coordinators = [createPostgresRunCoordinator(replicas[0].store.db, 'replica-0'), createPostgresRunCoordinator(replicas[1].store.db, 'replica-1')];
    for (const key of ['invoke-sweep:2030-01-01T00:00:00.000Z', 'invoke-sweep:2030-01-01T00:01:00.000Z', 'invoke-sweep:2030-01-01T00:02:00.000Z']) {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => coordinators[i % 2]!.shouldRun(key)));
      expect(results.filter(Boolean), `${key}: ${JSON.stringify(results)}`).toHaveLength(1);
      const winner = results.indexOf(true) % 2;
      const claim = await db().selectFrom('cron_claims').selectAll().where('key', '=', key).executeTakeFirstOrThrow();
      expect(claim.claimed_by).toBe(`replica-${winner}`);
      // A later ask for the same fire loses on either replica.
      expect(await coordinators[0]!.shouldRun(key)).toBe(false);
      expect(await coordinators[1]!.shouldRun(key)).toBe(false);
    }
    const claims = await db().selectFrom('cron_claims').select('key').where('key', 'like', 'invoke-sweep:2030-%').execute();
    expect(claims).toHaveLength(3);
  });
});
