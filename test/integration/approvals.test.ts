import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer, type RecordedRequest } from '../helpers/tool-server.ts';

const APPROVER_SCOPES = ['approvals:read', 'approvals:write'];
const ALICE = 'key-alice';
const BOB = 'key-bob';
const CAROL = 'key-carol';
/** Alice's agent: a second key of the same person, that calls tools. */
const ALICE_AGENT = 'key-alice-agent';
const SECRET = 'callback-secret-0123456789';

/**
 * Freeze, decide, thaw: every thaw outcome against real tools on loopback. The requester is the
 * admin key; approvers are scoped keys bound to approver ids.
 */
describe('approvals', () => {
  let built: BuiltApp;
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  let hooks: Awaited<ReturnType<typeof startToolServer>>;
  let invoice: Record<string, unknown>;
  let hookStatus = 200;
  let outage = false;

  beforeAll(async () => {
    tools = await startToolServer({
      'POST /remind': (_req, res) => json(res, 200, { sent: true }),
      'GET /invoices/*': (_req, res) => json(res, 200, invoice),
      'POST /flaky': (_req, res) => (outage ? json(res, 503, { error: 'down' }) : json(res, 200, { charged: true })),
    });
    hooks = await startToolServer({ 'POST /hook': (_req, res) => json(res, hookStatus, { ok: hookStatus < 300 }) });
    built = await buildTestApp({
      INVOKE_API_KEY_SCOPES: JSON.stringify({
        [ALICE]: { scopes: APPROVER_SCOPES, approver_id: 'alice' },
        [BOB]: { scopes: APPROVER_SCOPES, approver_id: 'bob' },
        [CAROL]: { scopes: APPROVER_SCOPES, approver_id: 'carol' },
        [ALICE_AGENT]: { scopes: ['tools:read', 'tools:call', ...APPROVER_SCOPES], approver_id: 'alice' },
      }),
      INVOKE_APPROVAL_TTL: '24h,critical=30m',
      INVOKE_CALLBACK_SECRET: SECRET,
      INVOKE_CALLBACK_ALLOWLIST: `127.0.0.1:${hooks.port}`,
      INVOKE_OUTBOX_INTERVAL_MS: '0',
    });
    const res = await send(built.app, 'POST', '/v1/providers', {
      name: 'billing',
      base_url: tools.url,
      tools: [
        { name: 'send_reminder', path: '/remind', risk: 'high' },
        { name: 'wire', path: '/remind', risk: 'critical' },
        { name: 'get_invoice', method: 'GET', path: '/invoices/{invoice_id}', side_effects: false, risk: 'low' },
        { name: 'flaky_charge', path: '/flaky', risk: 'medium' },
      ],
    });
    expect(res.status).toBe(201);
  });
  afterAll(async () => {
    await built.app.close();
    await tools.close();
    await hooks.close();
  });
  beforeEach(() => {
    invoice = { invoice_id: 'inv_1', customer_id: 'cust_1', invoice_status: 'overdue', balance: 100 };
    hookStatus = 200;
  });

  const reminders = () => tools.count('POST', '/remind');
  /** A contract expiry still ahead (one already past is refused on the way in). */
  const soon = () => new Date(Date.now() + 60_000).toISOString();
  /** Time passes: the approval's expiry is now behind us, by the database clock. */
  const expireNow = (id: string) => sql`update approvals set expires_at = now() - interval '1 second' where id = ${id}`.execute(built.store.db);
  const contract = (extra: Record<string, unknown> = {}) => ({
    intent: 'send_invoice_reminder',
    conditions: { invoice_status: 'overdue', balance: '> 0' },
    threshold: 'strict',
    state_refetch: { tool: 'billing.get_invoice', params: { invoice_id: '{{params.invoice_id}}' } },
    ...extra,
  });
  /** The agent's reminder call; `body` adds to it or replaces its fields. */
  const callReminder = (body: Record<string, unknown> = {}) =>
    send(built.app, 'POST', '/v1/call', {
      tool: 'billing.send_reminder',
      params: { invoice_id: 'inv_1', customer_id: 'cust_1' },
      agent_id: 'billing_agent',
      approval_contract: contract(),
      ...body,
    });
  const freeze = async (body: Record<string, unknown> = {}) => {
    const res = await callReminder(body);
    expect(res.status).toBe(202);
    expect(res.body.status).toBe('pending_approval');
    return res.body as { call_id: string; approval: { id: string; expires_at: string; frozen_state: Record<string, unknown> } };
  };
  const approve = (id: string, key: string, body: Record<string, unknown> = {}) => send(built.app, 'POST', `/approvals/${id}/approve`, body, { 'x-api-key': key });

  it('freezes with the state at freeze time and runs it once on approval', async () => {
    const before = reminders();
    const frozen = await freeze({ idempotency_key: 'rem-1' });
    expect(frozen.approval.frozen_state).toMatchObject({ invoice_status: 'overdue', balance: 100 });
    expect(reminders()).toBe(before);

    const listed = await send(built.app, 'GET', '/approvals?status=pending', undefined, { 'x-api-key': ALICE });
    expect(listed.body.approvals.map((a: { id: string }) => a.id)).toContain(frozen.approval.id);

    const res = await approve(frozen.approval.id, ALICE, { comment: 'looks right' });
    expect(res.status).toBe(200);
    expect(res.body.outcome).toBe('executed');
    expect(res.body.approval.status).toBe('executed');
    expect(res.body.call).toMatchObject({ status: 'executed', result: { sent: true } });
    expect(reminders()).toBe(before + 1);

    // The agent repeating its call gets the final answer, not the pending one.
    const again = await callReminder({ idempotency_key: 'rem-1' });
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('executed');
    expect(reminders()).toBe(before + 1);
    // Each step once in the answer's trace, as in the stored one (the thaw's first event was saved
    // before the attempt and must not come back twice).
    const answerSteps = again.body.trace.map((e: { step: string }) => e.step);
    expect(answerSteps.filter((s: string) => s === 'approval_thawed')).toHaveLength(1);

    // A second decision is a 409 with the current status; nothing runs again.
    const second = await approve(frozen.approval.id, BOB);
    expect(second.status).toBe(409);
    expect(second.body.error.details.status).toBe('executed');
    expect(reminders()).toBe(before + 1);

    const trace = await send(built.app, 'GET', `/traces/${frozen.call_id}`);
    const steps = trace.body.events.map((e: { step: string }) => e.step);
    expect(steps).toEqual(expect.arrayContaining(['approval_requested', 'approval_decided', 'approval_thawed', 'attempt_started']));
    expect(steps).toEqual(answerSteps);
    const audit = await send(built.app, 'GET', `/approvals/${frozen.approval.id}/audit`, undefined, { 'x-api-key': ALICE });
    expect(audit.body.audit.map((a: { kind: string }) => a.kind)).toEqual(['approved', 'executed']);
    expect(audit.body.audit[0]).toMatchObject({ actor: 'alice', detail: { state_source: 'billing.get_invoice', live_state: { balance: 100 } } });
  });

  it('rejects with a reason; the repeated call replays the rejection', async () => {
    const frozen = await freeze({ idempotency_key: 'rem-rej' });
    const res = await send(built.app, 'POST', `/approvals/${frozen.approval.id}/reject`, { reason: 'customer paid by phone' }, { 'x-api-key': ALICE });
    expect(res.body).toMatchObject({ outcome: 'rejected', approval: { status: 'rejected' } });
    const again = await callReminder({ idempotency_key: 'rem-rej' });
    expect(again.body.status).toBe('rejected');
    expect(again.body.reason).toMatch(/customer paid by phone/);
    expect((await send(built.app, 'POST', `/approvals/${frozen.approval.id}/reject`, {}, { 'x-api-key': ALICE })).status).toBe(400);
  });

  it('cancels an expired approval: nothing runs', async () => {
    const before = reminders();
    const frozen = await freeze({ approval_contract: contract({ expires_at: soon() }) });
    await expireNow(frozen.approval.id);
    const res = await approve(frozen.approval.id, ALICE);
    expect(res.body).toMatchObject({ outcome: 'cancelled', reason: 'expired', approval: { status: 'expired' }, call: { status: 'cancelled' } });
    expect(reminders()).toBe(before);
  });

  it('expires, rather than rejects, an approval past its expiry: the same answer an approve click gets', async () => {
    const frozen = await freeze({ approval_contract: contract({ expires_at: soon() }) });
    await expireNow(frozen.approval.id);
    const res = await send(built.app, 'POST', `/approvals/${frozen.approval.id}/reject`, { reason: 'too late anyway' }, { 'x-api-key': ALICE });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ outcome: 'cancelled', reason: 'expired', approval: { status: 'expired' }, call: { status: 'cancelled' } });
    const audit = await send(built.app, 'GET', `/approvals/${frozen.approval.id}/audit`, undefined, { 'x-api-key': ALICE });
    expect(audit.body.audit.map((e: { kind: string }) => e.kind)).toEqual(['expired']);
  });

  it('cancels when the rule allows another action than the frozen one', async () => {
    const frozen = await freeze({
      approval_contract: undefined,
      action: 'send_sms',
      policy: { rules: [{ when: 'tool == billing.send_reminder', effect: 'require_approval', allowed_action: 'send_email', reason: 'reminders need a human' }] },
    });
    const res = await approve(frozen.approval.id, ALICE);
    expect(res.body).toMatchObject({ outcome: 'cancelled', approval: { status: 'cancelled' } });
    expect(res.body.reason).toMatch(/send_email/);
  });

  it('blocks when live state now points at another entity', async () => {
    const before = reminders();
    const frozen = await freeze({ entity_resolution: { entity_id: 'cust_1', source: 'crm' } });
    invoice = { ...invoice, customer_id: 'cust_2' };
    const res = await approve(frozen.approval.id, ALICE);
    expect(res.body).toMatchObject({ outcome: 'blocked', approval: { status: 'blocked' }, call: { status: 'blocked' } });
    expect(reminders()).toBe(before);
  });

  it('requeues on drift under strict: the old approval is invalidated, a fresh one carries live state', async () => {
    const before = reminders();
    const frozen = await freeze({ idempotency_key: 'rem-drift' });
    invoice = { ...invoice, balance: 40 }; // still > 0, but changed since the freeze
    const res = await approve(frozen.approval.id, ALICE);
    expect(res.body.outcome).toBe('requeued');
    expect(res.body.approval.status).toBe('invalidated');
    expect(res.body.drift.fields).toContainEqual(expect.objectContaining({ field: 'balance', frozen: 100, live: 40, changed: true, satisfied: true }));
    const fresh = res.body.new_approval;
    expect(fresh).toMatchObject({ status: 'pending', previous_approval_id: frozen.approval.id, frozen_state: { balance: 40 } });
    expect(reminders()).toBe(before);

    // The agent's repeated call now shows the fresh pending approval.
    const again = await callReminder({ idempotency_key: 'rem-drift' });
    expect(again.status).toBe(202);
    expect(again.body.approval.id).toBe(fresh.id);

    // Approving the fresh one against unchanged state executes.
    const done = await approve(fresh.id, ALICE);
    expect(done.body.outcome).toBe('executed');
    expect(reminders()).toBe(before + 1);
  });

  it('executes the same drift under threshold conditions, and requeues when a condition fails', async () => {
    const before = reminders();
    const loose = await freeze({ approval_contract: contract({ threshold: 'conditions' }) });
    invoice = { ...invoice, balance: 40 };
    expect((await approve(loose.approval.id, ALICE)).body.outcome).toBe('executed');
    expect(reminders()).toBe(before + 1);

    const failing = await freeze({ approval_contract: contract({ threshold: 'conditions' }) });
    invoice = { ...invoice, invoice_status: 'paid' };
    const res = await approve(failing.approval.id, ALICE);
    expect(res.body.outcome).toBe('requeued');
    expect(reminders()).toBe(before + 1);
  });

  it('judges a condition field missing at freeze by the condition alone', async () => {
    invoice = { invoice_id: 'inv_1', customer_id: 'cust_1', invoice_status: 'overdue' }; // no balance at freeze
    const frozen = await freeze();
    invoice = { ...invoice, balance: 10 };
    expect((await approve(frozen.approval.id, ALICE)).body.outcome).toBe('executed');
  });

  it('answers replan_required on drift when the contract says on_mismatch: replan', async () => {
    const frozen = await freeze({ approval_contract: contract({ on_mismatch: 'replan' }) });
    invoice = { ...invoice, invoice_status: 'paid' };
    const res = await approve(frozen.approval.id, ALICE);
    expect(res.body).toMatchObject({ outcome: 'replan_required', approval: { status: 'invalidated' }, call: { status: 'replan_required' } });
  });

  it("uses the approver's current_state when given", async () => {
    const frozen = await freeze();
    const res = await approve(frozen.approval.id, ALICE, { current_state: { invoice_status: 'paid', balance: 0 } });
    expect(res.body.outcome).toBe('requeued');
  });

  it('refetch shows the drift and decides nothing', async () => {
    const frozen = await freeze();
    invoice = { ...invoice, balance: 5 };
    const res = await send(built.app, 'POST', `/approvals/${frozen.approval.id}/refetch`, {}, { 'x-api-key': ALICE });
    expect(res.body.live_state.balance).toBe(5);
    expect(res.body.drift.drifted).toBe(true);
    expect(res.body.approval.status).toBe('pending');
  });

  describe('who may decide', () => {
    it('not the key that requested the call, not the requesting agent, not a claimed identity', async () => {
      const frozen = await freeze();
      const own = await approve(frozen.approval.id, 'test-admin-key');
      expect(own.status).toBe(403);
      expect(own.body.error.details.reason).toBe('requester');
      const claimed = await approve(frozen.approval.id, ALICE, { approver: 'bob' });
      expect(claimed.status).toBe(403);
      const agentFrozen = await freeze({ agent_id: 'alice' });
      const agentSelf = await approve(agentFrozen.approval.id, ALICE);
      expect(agentSelf.status).toBe(403);
      expect(agentSelf.body.error.details.reason).toBe('requesting_agent');
      expect((await approve(frozen.approval.id, ALICE, { approver: 'alice' })).body.outcome).toBe('executed');
    });

    describe('never the person who requested the call, through any of their keys', () => {
      const freezeAs = async (key: string, body: Record<string, unknown> = {}) => {
        const res = await send(
          built.app,
          'POST',
          '/v1/call',
          { tool: 'billing.send_reminder', params: { invoice_id: 'inv_1', customer_id: 'cust_1' }, agent_id: 'billing_agent', approval_contract: contract(), ...body },
          { 'x-api-key': key },
        );
        expect(res.status).toBe(202);
        return res.body as { call_id: string; approval: { id: string } };
      };
      const reject = (id: string, key: string) => send(built.app, 'POST', `/approvals/${id}/reject`, { reason: 'no' }, { 'x-api-key': key });

      it('refuses approve and reject from the requester under another key, allows refetch; another person runs it once', async () => {
        const before = reminders();
        const frozen = await freezeAs(ALICE_AGENT);
        const approved = await approve(frozen.approval.id, ALICE);
        expect(approved.status).toBe(403);
        expect(approved.body.error).toMatchObject({ code: 'self_approval', details: { requester: 'alice' } });
        const rejected = await reject(frozen.approval.id, ALICE);
        expect(rejected.status).toBe(403);
        expect(rejected.body.error.code).toBe('self_approval');
        // The requesting key itself is the same person too.
        expect((await approve(frozen.approval.id, ALICE_AGENT)).body.error.code).toBe('self_approval');
        // Refetch decides nothing: the requester may look.
        const refetched = await send(built.app, 'POST', `/approvals/${frozen.approval.id}/refetch`, {}, { 'x-api-key': ALICE });
        expect(refetched.status).toBe(200);
        expect(refetched.body.approval.status).toBe('pending');
        expect(reminders()).toBe(before);

        const done = await approve(frozen.approval.id, BOB);
        expect(done.status).toBe(200);
        expect(done.body.outcome).toBe('executed');
        expect(reminders()).toBe(before + 1);
        const audit = await send(built.app, 'GET', `/approvals/${frozen.approval.id}/audit`, undefined, { 'x-api-key': BOB });
        expect(audit.body.audit.map((a: { kind: string; actor: string }) => [a.kind, a.actor])).toEqual([
          ['refetched', 'system'],
          ['approved', 'bob'],
          ['executed', 'bob'],
        ]);
      });

      it('does not count the requester toward a quorum', async () => {
        const frozen = await freezeAs(ALICE_AGENT, { approval_contract: contract({ approvals_required: 2 }) });
        expect((await approve(frozen.approval.id, ALICE)).body.error.code).toBe('self_approval');
        expect((await approve(frozen.approval.id, BOB)).body).toMatchObject({ outcome: 'awaiting_approvals', approvals_received: 1 });
        expect((await approve(frozen.approval.id, CAROL)).body.outcome).toBe('executed');
      });

      it('the approval created by a requeue keeps the requester', async () => {
        const before = reminders();
        const frozen = await freezeAs(ALICE_AGENT);
        invoice = { ...invoice, balance: 40 };
        const requeued = await approve(frozen.approval.id, BOB);
        expect(requeued.body.outcome).toBe('requeued');
        const fresh = requeued.body.new_approval.id as string;
        expect((await approve(fresh, ALICE)).body.error.code).toBe('self_approval');
        expect((await reject(fresh, ALICE)).body.error.code).toBe('self_approval');
        expect((await approve(fresh, BOB)).body.outcome).toBe('executed');
        expect(reminders()).toBe(before + 1);
      });

      it('approvals stored before the requester was recorded fall back to the requesting key and its approver_id', async () => {
        const frozen = await freezeAs(ALICE_AGENT);
        await sql`update approvals set requester_person = null where id = ${frozen.approval.id}`.execute(built.store.db);
        const approved = await approve(frozen.approval.id, ALICE);
        expect(approved.status).toBe(403);
        expect(approved.body.error.code).toBe('self_approval');
        expect((await approve(frozen.approval.id, BOB)).body.outcome).toBe('executed');
      });
    });

    it('a key without approvals:write cannot decide; unknown ids are 404', async () => {
      const frozen = await freeze();
      const scoped = await send(built.app, 'GET', `/approvals/${frozen.approval.id}`, undefined, { 'x-api-key': ALICE });
      expect(scoped.body.approval.checkpoint.params).toEqual({ invoice_id: 'inv_1', customer_id: 'cust_1' });
      expect((await approve('apr_nope', ALICE)).status).toBe(404);
    });

    it('critical risk needs two distinct approvers', async () => {
      const before = reminders();
      const res = await send(built.app, 'POST', '/v1/call', { tool: 'billing.wire', params: {}, agent_id: 'billing_agent' });
      expect(res.status).toBe(202);
      expect(res.body.approval.approvals_required).toBe(2);
      const expiresIn = Date.parse(res.body.approval.expires_at) - Date.now();
      expect(expiresIn).toBeLessThanOrEqual(30 * 60_000);
      expect(expiresIn).toBeGreaterThan(29 * 60_000);
      const id = res.body.approval.id;
      const first = await approve(id, ALICE);
      expect(first.body).toMatchObject({ outcome: 'awaiting_approvals', approvals_received: 1 });
      expect((await approve(id, ALICE)).body).toMatchObject({ outcome: 'awaiting_approvals', approvals_received: 1 });
      expect(reminders()).toBe(before);
      const second = await approve(id, BOB);
      expect(second.body.outcome).toBe('executed');
      expect(second.body.approval.approvals.map((a: { approver: string }) => a.approver).sort()).toEqual(['alice', 'bob']);
      expect(reminders()).toBe(before + 1);
    });

    it('a quorum of three ends with a single reject', async () => {
      const frozen = await freeze({ approval_contract: contract({ approvals_required: 3 }) });
      expect((await approve(frozen.approval.id, ALICE)).body.outcome).toBe('awaiting_approvals');
      expect((await approve(frozen.approval.id, BOB)).body.outcome).toBe('awaiting_approvals');
      const rejected = await send(built.app, 'POST', `/approvals/${frozen.approval.id}/reject`, { reason: 'no' }, { 'x-api-key': CAROL });
      expect(rejected.body.outcome).toBe('rejected');
      expect((await approve(frozen.approval.id, CAROL)).status).toBe(409);
    });
  });

  it('escalates on expiry to the approvers named in escalate_to', async () => {
    const frozen = await freeze({ approval_contract: contract({ expires_at: soon(), on_expire: 'escalate', escalate_to: ['carol'] }) });
    await expireNow(frozen.approval.id);
    const res = await approve(frozen.approval.id, ALICE);
    expect(res.body.outcome).toBe('escalated');
    expect(res.body.approval.status).toBe('escalated');
    const fresh = res.body.new_approval.id;
    expect((await approve(fresh, ALICE)).status).toBe(403);
    expect((await approve(fresh, CAROL)).body.outcome).toBe('executed');
  });

  it('an escalation from a failure policy is approved like any other, and runs the call again', async () => {
    outage = true;
    const res = await send(built.app, 'POST', '/v1/call', {
      tool: 'billing.flaky_charge',
      params: {},
      agent_id: 'billing_agent',
      failure_policy: { retry: 1, on_failure: 'escalate' },
    });
    expect(res.status).toBe(202);
    expect(res.body.status).toBe('escalated');
    expect(tools.count('POST', '/flaky')).toBe(2);
    const stored = await send(built.app, 'GET', `/approvals/${res.body.approval.id}`, undefined, { 'x-api-key': ALICE });
    expect(stored.body.approval.checkpoint.failure).toMatchObject({ status: 'failed', attempts: 2 });
    outage = false;
    const approved = await approve(res.body.approval.id, ALICE);
    expect(approved.body).toMatchObject({ outcome: 'executed', call: { status: 'executed', result: { charged: true } } });
    expect(tools.count('POST', '/flaky')).toBe(3);
  });

  it('long-polls until the decision', async () => {
    const frozen = await freeze();
    const started = Date.now();
    const waiting = send(built.app, 'GET', `/approvals/${frozen.approval.id}?wait=10`, undefined, { 'x-api-key': ALICE });
    await new Promise((r) => setTimeout(r, 200));
    await approve(frozen.approval.id, BOB);
    const res = await waiting;
    expect(res.body.approval.status).toBe('executed');
    expect(Date.now() - started).toBeLessThan(5000);
    const quick = await send(built.app, 'GET', `/approvals/${(await freeze()).approval.id}?wait=0.3`, undefined, { 'x-api-key': ALICE });
    expect(quick.body.approval.status).toBe('pending');
  });

  describe('callbacks', () => {
    const callbackUrl = () => `${hooks.url}/hook`;
    const lastHook = (): RecordedRequest => hooks.requests.at(-1)!;

    it('POSTs the final outcome, signed, and retries from the outbox', async () => {
      const frozen = await freeze({ callback_url: callbackUrl() });
      hookStatus = 500;
      await approve(frozen.approval.id, ALICE);
      const firstPass = await built.services.callbacks.deliverDue();
      expect(firstPass).toEqual({ delivered: 0, failed: 1 });
      const row = await built.store.db.selectFrom('outbox').selectAll().orderBy('id', 'desc').executeTakeFirstOrThrow();
      expect(row).toMatchObject({ status: 'pending', attempts: 1 });
      expect(row.next_attempt_at.getTime()).toBeGreaterThan(Date.now());

      hookStatus = 200;
      await built.store.db
        .updateTable('outbox')
        .set({ next_attempt_at: sql`now()` })
        .where('id', '=', row.id)
        .execute();
      expect(await built.services.callbacks.deliverDue()).toEqual({ delivered: 1, failed: 0 });
      expect(await built.services.callbacks.deliverDue()).toEqual({ delivered: 0, failed: 0 });

      const hook = lastHook();
      expect(hook.body).toMatchObject({ event: 'approval.decided', approval_id: frozen.approval.id, status: 'executed', call: { status: 'executed' } });
      const delivered = hooks.requests.filter((r) => r.path === '/hook');
      expect(delivered).toHaveLength(2);
    });

    it('signs the body with HMAC-SHA256', async () => {
      const received: Array<{ body: string; signature: string }> = [];
      const raw = await import('node:http');
      const server = raw.createServer((req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          received.push({ body, signature: String(req.headers['x-invoke-signature']) });
          res.end('ok');
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      const port = (server.address() as { port: number }).port;
      const local = await buildTestApp(
        {
          INVOKE_CALLBACK_SECRET: SECRET,
          INVOKE_CALLBACK_ALLOWLIST: `127.0.0.1:${port}`,
          INVOKE_OUTBOX_INTERVAL_MS: '0',
          INVOKE_API_KEY_SCOPES: JSON.stringify({ [ALICE]: { scopes: APPROVER_SCOPES, approver_id: 'alice' } }),
        },
        built.store,
      );
      try {
        const res = await send(local.app, 'POST', '/v1/call', {
          tool: 'billing.get_invoice',
          params: { invoice_id: 'inv_1' },
          agent_id: 'a',
          approval_contract: { intent: 'look', callback_url: `http://127.0.0.1:${port}/cb` },
        });
        await send(local.app, 'POST', `/approvals/${res.body.approval.id}/reject`, { reason: 'no' }, { 'x-api-key': ALICE });
        await local.services.callbacks.deliverDue();
        const got = received.at(-1)!;
        expect(got.signature).toBe(`sha256=${createHmac('sha256', SECRET).update(got.body).digest('hex')}`);
        expect(JSON.parse(got.body)).toMatchObject({ status: 'rejected', approval_id: res.body.approval.id });
      } finally {
        await local.app.close();
        server.close();
      }
    });

    it('refuses callback URLs the SSRF guard would refuse, and callbacks without a secret', async () => {
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.get_invoice',
        params: { invoice_id: 'x' },
        agent_id: 'a',
        callback_url: 'http://169.254.169.254/latest',
      });
      expect(res.status).toBe(400);
      expect(res.body.error.details.field).toBe('callback_url');
      const noSecret = await buildTestApp({}, built.store);
      try {
        const r = await send(noSecret.app, 'POST', '/v1/call', {
          tool: 'billing.get_invoice',
          params: { invoice_id: 'x' },
          agent_id: 'a',
          callback_url: 'https://example.com/hook',
        });
        expect(r.status).toBe(400);
        expect(r.body.error.message).toMatch(/INVOKE_CALLBACK_SECRET/);
      } finally {
        await noSecret.app.close();
      }
    });
  });

  it('cancels, rather than sticks, when the frozen call can no longer run (its tool was removed)', async () => {
    await send(built.app, 'POST', '/v1/providers', { name: 'temp', base_url: tools.url, tools: [{ name: 'remind', path: '/remind', risk: 'low' }] });
    const res = await send(built.app, 'POST', '/v1/call', { tool: 'temp.remind', params: {}, agent_id: 'a', idempotency_key: 'gone-1', approval_contract: { intent: 'x' } });
    await send(built.app, 'POST', '/v1/providers', { name: 'temp', base_url: tools.url, tools: [{ name: 'other', path: '/remind', risk: 'low' }] });
    const approved = await approve(res.body.approval.id, ALICE);
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ outcome: 'cancelled', approval: { status: 'cancelled' } });
    expect(approved.body.reason).toMatch(/Unknown tool temp.remind/);
    const again = await send(built.app, 'POST', '/v1/call', { tool: 'temp.other', params: {}, agent_id: 'a', idempotency_key: 'gone-1', approval_contract: { intent: 'x' } });
    expect(again.status).toBe(422);
  });

  it('keeps decisions across a restart: status lives in the store', async () => {
    const frozen = await freeze();
    await send(built.app, 'POST', `/approvals/${frozen.approval.id}/reject`, { reason: 'no' }, { 'x-api-key': ALICE });
    const restarted = await buildTestApp({ INVOKE_API_KEY_SCOPES: JSON.stringify({ [ALICE]: { scopes: APPROVER_SCOPES, approver_id: 'alice' } }) }, built.store);
    try {
      const res = await send(restarted.app, 'GET', `/approvals/${frozen.approval.id}`, undefined, { 'x-api-key': ALICE });
      expect(res.body.approval.status).toBe('rejected');
      expect((await send(restarted.app, 'POST', `/approvals/${frozen.approval.id}/approve`, {}, { 'x-api-key': ALICE })).status).toBe(409);
    } finally {
      await restarted.app.close();
    }
  });
});

describe('approvals: limits the agent cannot stretch', () => {
  it('caps a contract expiry at the TTL for the risk, keeps the idempotency key as long, and re-checks policy at thaw', async () => {
    const tools = await startToolServer({ 'POST /do': (_req, res) => json(res, 200, { done: true }) });
    const scopes = JSON.stringify({ [ALICE]: { scopes: APPROVER_SCOPES, approver_id: 'alice' } });
    const built = await buildTestApp({ INVOKE_API_KEY_SCOPES: scopes, INVOKE_APPROVAL_TTL: '24h,high=4h', INVOKE_IDEMPOTENCY_TTL: '1s' });
    try {
      await send(built.app, 'POST', '/v1/providers', { name: 'ops', base_url: tools.url, tools: [{ name: 'do', path: '/do', risk: 'high' }] });
      const body = { tool: 'ops.do', params: {}, agent_id: 'a', idempotency_key: 'long-1', approval_contract: { intent: 'x', expires_at: '2099-01-01T00:00:00Z' } };
      const frozen = await send(built.app, 'POST', '/v1/call', body);
      const expiresIn = Date.parse(frozen.body.approval.expires_at) - Date.now();
      expect(expiresIn).toBeLessThanOrEqual(4 * 3_600_000);
      expect(expiresIn).toBeGreaterThan(3.9 * 3_600_000);

      // Past the key's own 1 s TTL (its expiry moves 1.2 s into the past, as if we had waited), and
      // after a retention pass, the key still replays the pending answer.
      await built.store.db
        .updateTable('idempotency_keys')
        .set({ expires_at: sql`expires_at - interval '1200 milliseconds'` })
        .where('key', '=', 'long-1')
        .execute();
      await built.services.sweeps.runPass();
      const again = await send(built.app, 'POST', '/v1/call', body);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.body.approval.id).toBe(frozen.body.approval.id);
      expect(await built.store.db.selectFrom('approvals').select('id').where('call_id', '=', frozen.body.call_id).execute()).toHaveLength(1);

      // An operator denies the tool after the freeze: approving no longer runs it.
      const dir = mkdtempSync(path.join(tmpdir(), 'invoke-policy-'));
      writeFileSync(path.join(dir, 'policy.json'), JSON.stringify({ rules: [{ when: 'tool == ops.do', effect: 'deny', reason: 'ops.do is frozen for the incident' }] }));
      const restarted = await buildTestApp({ INVOKE_API_KEY_SCOPES: scopes, INVOKE_POLICY_FILE: path.join(dir, 'policy.json') }, built.store);
      try {
        const res = await send(restarted.app, 'POST', `/approvals/${frozen.body.approval.id}/approve`, {}, { 'x-api-key': ALICE });
        expect(res.body).toMatchObject({ outcome: 'blocked', approval: { status: 'blocked' } });
        expect(res.body.reason).toMatch(/frozen for the incident/);
        expect(tools.count('POST', '/do')).toBe(0);
      } finally {
        await restarted.app.close();
      }
    } finally {
      await built.app.close();
      await tools.close();
    }
  });
});
