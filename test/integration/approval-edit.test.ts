import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';

const APPROVER_SCOPES = ['approvals:read', 'approvals:write'];
const ALICE = 'key-alice';
const BOB = 'key-bob';

/** The digest an approval is bound to, computed here from its definition (canonical JSON of the action). */
function digestOf(action: Record<string, unknown>): string {
  const sort = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sort)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
          )
        : v;
  return createHash('sha256')
    .update(JSON.stringify(sort(action)))
    .digest('hex');
}

const REFUND_SCHEMA = {
  type: 'object',
  properties: {
    invoice_id: { type: 'string' },
    customer_id: { type: 'string' },
    amount: { type: 'number', minimum: 1 },
    currency: { type: 'string', enum: ['EUR', 'USD'] },
    notify: { type: 'boolean' },
  },
  required: ['invoice_id', 'amount'],
  additionalProperties: false,
};

/** Edit, then approve, through the API: the edited call is checked again and is what runs. */
describe('approve with edited params', () => {
  let built: BuiltApp;
  let tools: Awaited<ReturnType<typeof startToolServer>>;

  beforeAll(async () => {
    tools = await startToolServer({ 'POST /refund': (req, res) => json(res, 200, { refunded: (req.body as { amount?: number }).amount }) });
    built = await buildTestApp({
      INVOKE_API_KEY_SCOPES: JSON.stringify({
        [ALICE]: { scopes: APPROVER_SCOPES, approver_id: 'alice' },
        [BOB]: { scopes: APPROVER_SCOPES, approver_id: 'bob' },
      }),
    });
    const res = await send(built.app, 'POST', '/v1/providers', {
      name: 'pay',
      base_url: tools.url,
      tools: [
        { name: 'refund', path: '/refund', risk: 'high', input_schema: REFUND_SCHEMA },
        { name: 'refund_locked', path: '/refund', risk: 'high', input_schema: REFUND_SCHEMA, editable: false },
      ],
    });
    expect(res.status).toBe(201);
  });
  afterAll(async () => {
    await built.app.close();
    await tools.close();
  });

  const refunds = () => tools.requests.filter((r) => r.path === '/refund');
  async function freeze(body: Record<string, unknown> = {}): Promise<{ id: string; callId: string }> {
    const res = await send(built.app, 'POST', '/v1/call', {
      tool: 'pay.refund',
      params: { invoice_id: 'inv_1', customer_id: 'cust_1', amount: 120, currency: 'EUR' },
      agent_id: 'billing_agent',
      approval_contract: { intent: 'refund_invoice' },
      policy: { rules: [{ when: 'params.amount > 1000', effect: 'deny', reason: 'refunds over 1000 are never automated' }] },
      ...body,
    });
    expect(res.status).toBe(202);
    return { id: res.body.approval.id, callId: res.body.call_id };
  }
  const approve = (id: string, body: Record<string, unknown>, key = ALICE) => send(built.app, 'POST', `/v1/approvals/${id}/approve`, body, { 'x-api-key': key });

  it('runs the edited params; the answer, the approval, the trace and the audit show who edited what', async () => {
    const { id, callId } = await freeze();
    const before = refunds().length;
    const res = await approve(id, { params: { invoice_id: 'inv_1', customer_id: 'cust_1', amount: 80, currency: 'EUR', notify: true }, comment: 'partial refund only' });
    expect(res.status).toBe(200);
    expect(res.body.outcome).toBe('executed');
    expect(refunds().length).toBe(before + 1);
    expect(refunds().at(-1)!.body).toEqual({ invoice_id: 'inv_1', customer_id: 'cust_1', amount: 80, currency: 'EUR', notify: true });

    const diff = [
      { path: 'amount', change: 'changed', old: 120, new: 80 },
      { path: 'notify', change: 'added', new: true },
    ];
    const edited = res.body.call.edited;
    expect(edited).toMatchObject({
      by: 'alice',
      original_params: { invoice_id: 'inv_1', customer_id: 'cust_1', amount: 120, currency: 'EUR' },
      params: { invoice_id: 'inv_1', customer_id: 'cust_1', amount: 80, currency: 'EUR', notify: true },
      diff,
    });
    expect(typeof edited.at).toBe('string');
    // The digest is recomputed for the edited action; the frozen one is kept beside it.
    const action = { tool: 'pay.refund', agent_id: 'billing_agent', action: null, env: null, workflow: null, resource: null };
    expect(edited.original_digest).toBe(digestOf({ ...action, params: edited.original_params }));
    expect(edited.action_digest).toBe(digestOf({ ...action, params: edited.params }));

    // The agent's repeated read of its call, and the approval, carry the same provenance.
    const trace = await send(built.app, 'GET', `/traces/${callId}`);
    expect(trace.body.answer.edited).toEqual(edited);
    const steps = (trace.body.events as Array<{ step: string; detail?: Record<string, unknown> }>).map((e) => e.step);
    expect(steps.indexOf('params_edited')).toBeGreaterThan(-1);
    expect(steps.indexOf('params_edited')).toBeLessThan(steps.indexOf('approval_decided'));
    const event = (trace.body.events as Array<{ step: string; detail: Record<string, unknown> }>).find((e) => e.step === 'params_edited')!;
    expect(event.detail).toMatchObject({ approval_id: id, by: 'alice', diff, action_digest: edited.action_digest });

    const approval = await send(built.app, 'GET', `/v1/approvals/${id}`);
    expect(approval.body.approval.status).toBe('executed');
    expect(approval.body.approval.edited).toEqual(edited);
    // The checkpoint keeps what the agent asked for.
    expect(approval.body.approval.checkpoint.params.amount).toBe(120);
    const audit = await send(built.app, 'GET', `/v1/approvals/${id}/audit`);
    expect(audit.body.audit.find((e: { kind: string }) => e.kind === 'approved').detail).toMatchObject({ comment: 'partial refund only', edited: { by: 'alice', diff } });

    // The call record holds what ran: recovery after a crash reconciles the edited call.
    const row = await built.store.db.selectFrom('calls').select('request').where('id', '=', callId).executeTakeFirstOrThrow();
    expect((row.request as { params: { amount: number } }).params.amount).toBe(80);
  });

  it('approves as frozen when the params sent are the pending ones: no edit recorded', async () => {
    const { id } = await freeze();
    const res = await approve(id, { params: { currency: 'EUR', amount: 120, customer_id: 'cust_1', invoice_id: 'inv_1' } });
    expect(res.body.outcome).toBe('executed');
    expect(res.body.call.edited).toBeUndefined();
    expect(res.body.approval.edited).toBeUndefined();
  });

  it('refuses params the schema refuses with 400 and every problem; nothing runs, the approval stays pending', async () => {
    const { id } = await freeze();
    const before = refunds().length;
    const res = await approve(id, { params: { invoice_id: 'inv_1', amount: 0, currency: 'GBP', extra: 1 } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_error');
    const paths = (res.body.error.details.problems as Array<{ path: string }>).map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['params.amount', 'params.currency', 'params']));
    expect(refunds().length).toBe(before);
    expect((await send(built.app, 'GET', `/v1/approvals/${id}`)).body.approval.status).toBe('pending');
  });

  it('an edit cannot escape a deny rule: 403 edit_denied, nothing runs, the approval stays pending and can still be approved as frozen', async () => {
    const { id } = await freeze();
    const before = refunds().length;
    const res = await approve(id, { params: { invoice_id: 'inv_1', customer_id: 'cust_1', amount: 5000, currency: 'EUR' } });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('edit_denied');
    expect(res.body.error.message).toMatch(/never automated/);
    expect(refunds().length).toBe(before);
    expect((await send(built.app, 'GET', `/v1/approvals/${id}`)).body.approval.status).toBe('pending');
    expect((await approve(id, {})).body.outcome).toBe('executed');
    expect(refunds().at(-1)!.body).toMatchObject({ amount: 120 });
  });

  it('an edit cannot point the call at another entity: 409 edit_entity_mismatch', async () => {
    const { id } = await freeze({ entity_resolution: { entity_id: 'cust_1', entity_type: 'customer' } });
    const res = await approve(id, { params: { invoice_id: 'inv_1', customer_id: 'cust_2', amount: 120 } });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('edit_entity_mismatch');
    expect((await send(built.app, 'GET', `/v1/approvals/${id}`)).body.approval.status).toBe('pending');
  });

  it('refuses edits with 409 not_editable when the card or the contract opts out; approving as frozen still works', async () => {
    const locked = await freeze({ tool: 'pay.refund_locked' });
    const byCard = await approve(locked.id, { params: { invoice_id: 'inv_1', amount: 10 } });
    expect(byCard.status).toBe(409);
    expect(byCard.body.error.code).toBe('not_editable');
    const contract = await freeze({ approval_contract: { intent: 'refund_invoice', editable: false } });
    const byContract = await approve(contract.id, { params: { invoice_id: 'inv_1', amount: 10 } });
    expect(byContract.status).toBe(409);
    expect(byContract.body.error.code).toBe('not_editable');
    expect((await approve(contract.id, {})).body.outcome).toBe('executed');
  });

  it('the same approver checks as a plain approve: the requester may not edit', async () => {
    const { id } = await freeze();
    const res = await send(built.app, 'POST', `/v1/approvals/${id}/approve`, { params: { invoice_id: 'inv_1', amount: 1 } });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('self_approval');
  });

  describe('quorum: an edit restarts the count', () => {
    it('the edit replaces the approval with a fresh one holding the edited params; the editor is its first vote; it runs at the quorum', async () => {
      const { id, callId } = await freeze({ approval_contract: { intent: 'refund_invoice', approvals_required: 2 } });
      const before = refunds().length;
      // Bob approves the agent's params; Alice edits: Bob did not approve those.
      expect((await approve(id, {}, BOB)).body.outcome).toBe('awaiting_approvals');
      const edit = await approve(id, { params: { invoice_id: 'inv_1', customer_id: 'cust_1', amount: 60, currency: 'EUR' } });
      expect(edit.status).toBe(200);
      expect(edit.body.outcome).toBe('edited');
      expect(edit.body.approval.status).toBe('invalidated');
      expect(edit.body.approvals_received).toBe(1);
      const fresh = edit.body.new_approval;
      expect(fresh.approvals_required).toBe(2);
      expect(edit.body.call).toMatchObject({ status: 'pending_approval', edited: { by: 'alice', diff: [{ path: 'amount', change: 'changed', old: 120, new: 60 }] } });
      expect(refunds().length).toBe(before);

      const pending = (await send(built.app, 'GET', `/v1/approvals/${fresh.id}`)).body.approval;
      expect(pending.checkpoint.params.amount).toBe(60);
      expect(pending.approvals.map((v: { approver: string }) => v.approver)).toEqual(['alice']);
      expect(pending.edited).toMatchObject({ by: 'alice', original_params: { amount: 120 } });
      // Alice again is not a second vote; Bob is.
      expect((await approve(fresh.id, {})).body.outcome).toBe('awaiting_approvals');
      const done = await approve(fresh.id, {}, BOB);
      expect(done.body.outcome).toBe('executed');
      expect(refunds().length).toBe(before + 1);
      expect(refunds().at(-1)!.body).toMatchObject({ amount: 60 });
      expect(done.body.call.edited).toMatchObject({ by: 'alice', params: { amount: 60 } });
      const trace = await send(built.app, 'GET', `/traces/${callId}`);
      expect(trace.body.events.find((e: { step: string; status: string }) => e.step === 'approval_decided' && e.status === 'edited').detail).toMatchObject({
        approval_id: id,
        new_approval_id: fresh.id,
        by: 'alice',
      });
    });

    it('an edit that makes the call need more approvers restarts under that quorum, never fewer', async () => {
      const { id } = await freeze({
        policy: { rules: [{ when: 'params.amount > 500', effect: 'require_approval', approvals_required: 2, reason: 'large refund' }] },
      });
      const before = refunds().length;
      const edit = await approve(id, { params: { invoice_id: 'inv_1', amount: 900 } });
      expect(edit.body.outcome).toBe('edited');
      expect(edit.body.new_approval.approvals_required).toBe(2);
      expect(refunds().length).toBe(before);
    });
  });
});
