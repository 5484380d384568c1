import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { DECISIONS_CHANNEL } from '../../src/approvals/approval-waiter.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { startSlackEmulator } from '../../demo/slack-emulator.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { billingProvider } from '../helpers/billing-provider.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';
import { waitFor } from '../helpers/wait.ts';

const APPROVER = 'UAPPROVER';

/** Each sweep step on the embedded store; the crash and multi-replica cases run on real Postgres (test/pg). */
describe('sweeps', () => {
  let built: BuiltApp;
  let slack: Awaited<ReturnType<typeof startSlackEmulator>>;
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  let hooks: Awaited<ReturnType<typeof startToolServer>>;
  let invoice: Record<string, unknown>;
  const payments = new Map<string, boolean>();

  beforeAll(async () => {
    slack = await startSlackEmulator();
    tools = await startToolServer({
      'POST /remind': (_req, res) => json(res, 200, { sent: true }),
      'GET /invoices/*': (_req, res) => json(res, 200, invoice),
      'POST /charge': (req, res) => {
        payments.set((req.body as { payment_id: string }).payment_id, true);
        json(res, 200, { charged: true });
      },
      'GET /payments/*': (req, res) => json(res, 200, { charged: payments.get(req.path.split('/').pop()!) ?? false }),
    });
    hooks = await startToolServer({ 'POST /hook': (_req, res) => json(res, 200, { ok: true }) });
    built = await buildTestApp({
      SLACK_BOT_TOKEN: 'xoxb-test',
      SLACK_SIGNING_SECRET: 'secret',
      SLACK_APPROVAL_CHANNEL: 'C0APPROVALS',
      SLACK_APPROVER_IDS: APPROVER,
      SLACK_API_URL: slack.url,
      INVOKE_OUTBOX_INTERVAL_MS: '0',
      INVOKE_CALLBACK_SECRET: 'callback-secret-0123456789',
      INVOKE_CALLBACK_ALLOWLIST: `127.0.0.1:${hooks.port}`,
      INVOKE_TRACE_RETENTION: '30d',
    });
    await send(built.app, 'POST', '/v1/providers', billingProvider(tools.url));
  });
  afterAll(async () => {
    await built.app.close();
    await Promise.all([tools.close(), hooks.close(), slack.close()]);
  });
  beforeEach(() => {
    invoice = { invoice_id: 'inv_1', invoice_status: 'overdue', balance: 100 };
  });

  const pass = () => built.services.sweeps.runPass();
  const contract = (extra: Record<string, unknown> = {}) => ({
    intent: 'send_invoice_reminder',
    conditions: { invoice_status: 'overdue', balance: '> 0' },
    state_refetch: { tool: 'billing.get_invoice', params: { invoice_id: 'inv_1' } },
    ...extra,
  });
  const freeze = async (extra: Record<string, unknown> = {}, body: Record<string, unknown> = {}) => {
    const res = await send(built.app, 'POST', '/v1/call', {
      tool: 'billing.send_reminder',
      params: { invoice_id: 'inv_1' },
      agent_id: 'a',
      approval_contract: contract(extra),
      ...body,
    });
    expect(res.status).toBe(202);
    await built.services.deliverOutbox();
    return res.body as { call_id: string; approval: { id: string } };
  };
  const approval = (id: string) => built.store.db.selectFrom('approvals').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const cardTs = async (id: string) => (await approval(id)).slack_ts!;
  /** Time passes for one approval: its whole lifetime moves `ms` into the past, as if we had waited. */
  const age = (id: string, ms: number) =>
    built.store.db
      .updateTable('approvals')
      .set({ created_at: sql`created_at - ${`${ms} milliseconds`}::interval`, expires_at: sql`expires_at - ${`${ms} milliseconds`}::interval` })
      .where('id', '=', id)
      .execute();

  it('notifies the approvals it expires, which wakes an agent long-polling one', async () => {
    const frozen = await freeze({ expires_at: new Date(Date.now() + 300).toISOString() });
    await age(frozen.approval.id, 400);
    const notified: string[] = [];
    const unlisten = await built.store.listen(DECISIONS_CHANNEL, (id) => notified.push(id));
    try {
      const waiting = send(built.app, 'GET', `/approvals/${frozen.approval.id}?wait=10`);
      await new Promise((r) => setTimeout(r, 200));
      expect((await pass()).expired).toBeGreaterThanOrEqual(1);
      const res = await waiting;
      expect(res.status).toBe(200);
      expect(res.body.approval.status).toBe('expired');
      await waitFor(() => notified.includes(frozen.approval.id));
    } finally {
      await unlisten();
    }
  });

  it('expires stale approvals: card updated, thread told, callback sent, call cancelled', async () => {
    const frozenExpiry = new Date(Date.now() + 300).toISOString();
    const frozen = await freeze({ expires_at: frozenExpiry }, { callback_url: `${hooks.url}/hook`, idempotency_key: 'exp-1' });
    const ts = await cardTs(frozen.approval.id);
    await age(frozen.approval.id, 400);
    const counts = await pass();
    expect(counts.expired).toBeGreaterThanOrEqual(1);
    expect((await approval(frozen.approval.id)).status).toBe('expired');
    expect(slack.callsTo('chat.update').some((c) => c.args['ts'] === ts)).toBe(true);
    expect(slack.callsTo('chat.postMessage').some((c) => c.args['thread_ts'] === ts)).toBe(true);
    expect(hooks.requests.some((r) => (r.body as { approval_id?: string }).approval_id === frozen.approval.id)).toBe(true);
    const trace = await send(built.app, 'GET', `/traces/${frozen.call_id}`);
    expect(trace.body.status).toBe('cancelled');
    // The agent's repeat replays the final answer, with the whole trace in order.
    const repeat = await send(built.app, 'POST', '/v1/call', {
      tool: 'billing.send_reminder',
      params: { invoice_id: 'inv_1' },
      agent_id: 'a',
      approval_contract: contract({ expires_at: frozenExpiry }),
      callback_url: `${hooks.url}/hook`,
      idempotency_key: 'exp-1',
    });
    expect(repeat.status).toBe(200);
    expect(repeat.body).toMatchObject({ status: 'cancelled', call_id: frozen.call_id, reason: 'the approval expired before it was approved', attempts: 0 });
    const steps = repeat.body.trace.map((e: { step: string }) => e.step);
    expect(steps.slice(0, 2)).toEqual(['request_received', 'scope_checked']);
    expect(steps.slice(-4)).toEqual(['approval_requested', 'execution_completed', 'approval_decided', 'execution_completed']);
    expect(repeat.body.trace.every((e: { at: string }) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(e.at))).toBe(true);
    const callback = hooks.requests.find((r) => (r.body as { approval_id?: string }).approval_id === frozen.approval.id)!.body as { call: { status: string; trace: unknown[] } };
    expect(callback.call.status).toBe('cancelled');
    expect(callback.call.trace).toEqual(repeat.body.trace);
    // A second pass (or a second replica) finds nothing left to expire.
    const again = await pass();
    expect(again.expired).toBe(0);
  });

  it('expires a backlog larger than one batch in one pass, each with its answer, trace, audit and card update', async () => {
    const frozen = await freeze({ expires_at: new Date(Date.now() + 60_000).toISOString() });
    // 1,200 more pending approvals like it, each with its own call: several batches (EXPIRE_BATCH).
    await sql`
      insert into calls (id, api_key_id, agent_id, tool, status, request, answer, created_at)
      select 'call_backlog_' || n, c.api_key_id, c.agent_id, c.tool, c.status, c.request, c.answer, c.created_at
      from calls c, generate_series(1, 1200) as n where c.id = ${frozen.call_id}`.execute(built.store.db);
    await sql`
      insert into approvals (id, call_id, status, api_key_id, requester_person, agent_id, tool, risk, reason, checkpoint, created_at, expires_at, approvals_required, approvers, action_digest)
      select 'appr_backlog_' || n, 'call_backlog_' || n, a.status, a.api_key_id, a.requester_person, a.agent_id, a.tool, a.risk, a.reason, a.checkpoint, a.created_at, now() - interval '1 second', a.approvals_required, a.approvers, a.action_digest
      from approvals a, generate_series(1, 1200) as n where a.id = ${frozen.approval.id}`.execute(built.store.db);
    await built.store.db
      .updateTable('approvals')
      .set({ expires_at: sql`now() - interval '1 second'` })
      .where('id', '=', frozen.approval.id)
      .execute();
    const updatesBefore = slack.callsTo('chat.update').length;

    const counts = await pass();
    expect(counts.expired).toBe(1201);
    const left = await built.store.db
      .selectFrom('approvals')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('status', '=', 'pending')
      .where('expires_at', '<=', sql<Date>`now()`)
      .executeTakeFirstOrThrow();
    expect(Number(left.n)).toBe(0);
    const calls = await built.store.db.selectFrom('calls').select(['status', 'answer']).where('id', 'like', 'call_backlog_%').execute();
    expect(calls).toHaveLength(1200);
    expect(calls.every((c) => c.status === 'cancelled' && (c.answer as { status: string }).status === 'cancelled')).toBe(true);
    const sample = await send(built.app, 'GET', '/traces/call_backlog_777');
    expect(sample.body.status).toBe('cancelled');
    // The clones share no trace with the original: theirs is what the expiry wrote.
    expect(sample.body.events.map((e: { step: string }) => e.step)).toEqual(['approval_decided', 'execution_completed']);
    // Each call's decision names its own approval.
    expect(sample.body.events[0].detail).toEqual({ approval_id: 'appr_backlog_777' });
    expect(sample.body.events[1].detail).toEqual({ reason: 'the approval expired before it was approved' });
    const audits = await built.store.db
      .selectFrom('approval_events')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('kind', '=', 'expired')
      .where('approval_id', 'like', 'appr_backlog_%')
      .executeTakeFirstOrThrow();
    expect(Number(audits.n)).toBe(1200);
    const posts = await built.store.db
      .selectFrom('outbox')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('kind', '=', 'slack')
      .where(sql<boolean>`payload->>'approval_id' like 'appr_backlog_%'`)
      .executeTakeFirstOrThrow();
    expect(Number(posts.n)).toBe(2400);
    // The clones were never posted to Slack, so their updates would wait for cards that never come: drop them.
    await built.store.db
      .deleteFrom('outbox')
      .where(sql<boolean>`payload->>'approval_id' like 'appr_backlog_%'`)
      .execute();
    const ts = await cardTs(frozen.approval.id);
    await built.services.deliverOutbox();
    expect(slack.callsTo('chat.update').some((c) => c.args['ts'] === ts)).toBe(true);
    expect(slack.callsTo('chat.update').length).toBeGreaterThan(updatesBefore);
  });

  it('escalates instead of expiring when the contract says so', async () => {
    const stranger = await send(built.app, 'POST', '/v1/call', {
      tool: 'billing.send_reminder',
      params: { invoice_id: 'inv_1' },
      agent_id: 'a',
      approval_contract: contract({ on_expire: 'escalate', escalate_to: ['UMALLORY'] }),
    });
    expect(stranger.status).toBe(400);
    expect(stranger.body.error.details.approvers).toEqual(['UMALLORY']);

    const frozen = await freeze({ expires_at: new Date(Date.now() + 200).toISOString(), on_expire: 'escalate', escalate_to: [APPROVER, '#ops-escalations'] });
    await age(frozen.approval.id, 300);
    const counts = await pass();
    expect(counts.escalated).toBeGreaterThanOrEqual(1);
    expect((await approval(frozen.approval.id)).status).toBe('escalated');
    const fresh = await built.store.db.selectFrom('approvals').selectAll().where('previous_approval_id', '=', frozen.approval.id).executeTakeFirstOrThrow();
    expect(fresh).toMatchObject({ status: 'pending', approvers: [APPROVER, '#ops-escalations'] });
    await built.services.deliverOutbox();
    expect(slack.callsTo('chat.postMessage').some((c) => c.args['channel'] === '#ops-escalations' && JSON.stringify(c.args['blocks']).includes(fresh.id))).toBe(true);

    // Escalate once: when the escalation expires too, it is cancelled.
    await built.store.db
      .updateTable('approvals')
      .set({ expires_at: sql`now() - interval '1 second'` })
      .where('id', '=', fresh.id)
      .execute();
    await pass();
    expect((await approval(fresh.id)).status).toBe('expired');
    expect(await built.store.db.selectFrom('approvals').select('id').where('previous_approval_id', '=', fresh.id).execute()).toEqual([]);
  });

  it('reminds once, mentioning the approvers, after 75% of the lifetime', async () => {
    const frozen = await freeze({ expires_at: new Date(Date.now() + 2000).toISOString() });
    const ts = await cardTs(frozen.approval.id);
    expect((await pass()).reminded).toBe(0);
    await age(frozen.approval.id, 1600);
    expect((await pass()).reminded).toBe(1);
    expect((await pass()).reminded).toBe(0);
    await built.services.deliverOutbox();
    const reminder = slack.callsTo('chat.postMessage').find((c) => c.args['thread_ts'] === ts && JSON.stringify(c.args).includes('alarm_clock'))!;
    expect(JSON.stringify(reminder.args)).toContain(`<@${APPROVER}>`);
  });

  it('revalidates pending approvals against live state and requeues on drift in the same thread', async () => {
    const frozen = await freeze();
    const ts = await cardTs(frozen.approval.id);
    expect((await pass()).requeued).toBe(0);
    invoice = { ...invoice, invoice_status: 'paid' };
    const counts = await pass();
    // Every pending approval on this invoice drifted, earlier tests' included.
    expect(counts.requeued).toBeGreaterThanOrEqual(1);
    expect((await approval(frozen.approval.id)).status).toBe('invalidated');
    const fresh = await built.store.db.selectFrom('approvals').selectAll().where('previous_approval_id', '=', frozen.approval.id).executeTakeFirstOrThrow();
    await built.services.deliverOutbox();
    expect((await approval(fresh.id)).slack_thread_ts).toBe(ts);
  });

  it('does not requeue, pass after pass, a condition that failed at freeze and still fails unchanged', async () => {
    invoice = { ...invoice, balance: 0 };
    const frozen = await freeze();
    await pass();
    await pass();
    expect((await approval(frozen.approval.id)).status).toBe('pending');
    expect(await built.store.db.selectFrom('approvals').select('id').where('previous_approval_id', '=', frozen.approval.id).execute()).toEqual([]);
    await built.store.db.updateTable('approvals').set({ status: 'cancelled' }).where('id', '=', frozen.approval.id).execute();
  });

  it('requeues a condition field unknown at freeze that now fails', async () => {
    invoice = { invoice_id: 'inv_1', invoice_status: 'overdue' }; // no balance at freeze
    const frozen = await freeze();
    invoice = { ...invoice, balance: 0 };
    await pass();
    expect((await approval(frozen.approval.id)).status).toBe('invalidated');
    const fresh = await built.store.db.selectFrom('approvals').selectAll().where('previous_approval_id', '=', frozen.approval.id).executeTakeFirstOrThrow();
    // The fresh approval carries the failing state: the next pass leaves it for a human.
    await pass();
    expect((await approval(fresh.id)).status).toBe('pending');
    await built.store.db.updateTable('approvals').set({ status: 'cancelled' }).where('id', '=', fresh.id).execute();
  });

  describe('recovering interrupted calls', () => {
    /** What a dead process leaves behind: the call in flight, its key claimed, its lease run out. */
    async function interrupt(callId: string) {
      await built.store.db
        .updateTable('calls')
        .set({ status: 'in_flight', answer: null, lease_expires_at: sql`now() - interval '1 second'` })
        .where('id', '=', callId)
        .execute();
      await built.store.db.updateTable('idempotency_keys').set({ state: 'in_flight', response: null }).where('call_id', '=', callId).execute();
    }

    it('reconciles from live state: the charge happened, so the key replays outcome_reconciled', async () => {
      const body = { tool: 'billing.charge', params: { payment_id: 'pay_1' }, agent_id: 'a', idempotency_key: 'rec-1' };
      const first = await send(built.app, 'POST', '/v1/call', body);
      await interrupt(first.body.call_id);
      expect((await send(built.app, 'POST', '/v1/call', body)).status).toBe(409);
      const counts = await pass();
      expect(counts.recovered).toBe(1);
      const again = await send(built.app, 'POST', '/v1/call', body);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.body.status).toBe('outcome_reconciled');
      expect(tools.count('POST', '/charge')).toBe(1);
    });

    it('frees the key when live state shows the call never took effect', async () => {
      const body = { tool: 'billing.charge', params: { payment_id: 'pay_2' }, agent_id: 'a', idempotency_key: 'rec-2' };
      const first = await send(built.app, 'POST', '/v1/call', body);
      payments.delete('pay_2');
      await interrupt(first.body.call_id);
      await pass();
      const again = await send(built.app, 'POST', '/v1/call', body);
      expect(again.headers['idempotent-replayed']).toBeUndefined();
      expect(again.body.status).toBe('executed');
    });

    it('without a way to reconcile: unknown_outcome, never re-run, surfaced in Slack', async () => {
      const before = tools.count('POST', '/charge');
      const body = { tool: 'billing.charge_blind', params: { payment_id: 'pay_3' }, agent_id: 'a', idempotency_key: 'rec-3' };
      const first = await send(built.app, 'POST', '/v1/call', body);
      await interrupt(first.body.call_id);
      const counts = await pass();
      expect(counts.unknown_outcomes).toBe(1);
      const again = await send(built.app, 'POST', '/v1/call', body);
      expect(again.body.status).toBe('unknown_outcome');
      expect(tools.count('POST', '/charge')).toBe(before + 1);
      await built.services.deliverOutbox();
      expect(slack.callsTo('chat.postMessage').some((c) => String(c.args['text']).includes(first.body.call_id))).toBe(true);
    });
  });

  it('trims expired idempotency keys and traces past retention, in bounded batches', async () => {
    const res = await send(built.app, 'POST', '/v1/call', { tool: 'billing.get_invoice', params: { invoice_id: 'inv_1' }, agent_id: 'old', idempotency_key: 'old-1' });
    await built.store.db
      .updateTable('idempotency_keys')
      .set({ expires_at: sql`now() - interval '1 hour'` })
      .where('key', '=', 'old-1')
      .execute();
    await built.store.db
      .updateTable('calls')
      .set({ created_at: sql`now() - interval '40 days'` })
      .where('id', '=', res.body.call_id)
      .execute();
    const counts = await pass();
    expect(counts.idempotency_keys_removed).toBeGreaterThanOrEqual(1);
    expect(counts.traces_removed).toBeGreaterThanOrEqual(1);
    expect((await send(built.app, 'GET', `/traces/${res.body.call_id}`)).status).toBe(404);
  });

  it('runs on its node-cron schedule and counts passes in /metrics', async () => {
    const scheduled = await buildTestApp({ INVOKE_SWEEP_CRON: '* * * * * *' }, built.store);
    try {
      // The schedule is about wall time itself: wait, but only until the first pass (at most ~1 s).
      const passes = async () => Number(/invoke_sweep_passes_total (\d+)/.exec((await send(scheduled.app, 'GET', '/metrics')).text)?.[1] ?? 0);
      const deadline = Date.now() + 3000;
      while ((await passes()) < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(await passes()).toBeGreaterThanOrEqual(1);
    } finally {
      await scheduled.app.close();
    }
  });

  it('refuses a bad cron expression at start with a readable message', () => {
    expect(() => loadConfig({ INVOKE_SWEEP_CRON: 'every minute' })).toThrow(ConfigError);
    expect(() => loadConfig({ INVOKE_SWEEP_CRON: 'every minute' })).toThrow(/INVOKE_SWEEP_CRON/);
    expect(() => loadConfig({ INVOKE_APPROVAL_REMIND_AT: '150%' })).toThrow(/INVOKE_APPROVAL_REMIND_AT/);
  });
});
