import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';

/**
 * The original product's clients against this server, with the original's own JSON
 * (/work/shared/seeds/original-invoke-README.md; tool names adapted to tools registered here).
 * The original CLI prints each tool's `id|key|name`, `risk_level`, `approval_required`,
 * `configured`, `description`; reads `approvals[]` with `id`, `tool`, `agent_id`, `risk_level`,
 * `status`; and approves or rejects with `{"reviewed_by": "<free text>"}`.
 */
const BOB = 'key-bob';
const APPROVER_SCOPES = ['approvals:read', 'approvals:write'];
/** A time the approvals below have not reached yet. */
const inADay = () => new Date(Date.now() + 24 * 3600_000).toISOString();

describe('original clients', () => {
  let built: BuiltApp;
  let tools: Awaited<ReturnType<typeof startToolServer>>;

  beforeAll(async () => {
    tools = await startToolServer({
      'POST /charge': (_req, res) => json(res, 200, { charged: true }),
      'POST /remind': (_req, res) => json(res, 200, { sent: true }),
      'POST /push': (_req, res) => json(res, 200, { pushed: true }),
    });
    built = await buildTestApp({
      INVOKE_API_KEY_SCOPES: JSON.stringify({ [BOB]: { scopes: APPROVER_SCOPES, approver_id: 'bob' } }),
      INVOKE_REQUIRE_APPROVAL_AT: 'high',
      // The seed's executions name no tool: the workflow runs this one (the adapted tool name).
      INVOKE_EXECUTION_TOOL: 'billing.charge',
    });
    const res = await send(built.app, 'POST', '/v1/providers', {
      name: 'billing',
      base_url: tools.url,
      tools: [
        { name: 'charge', path: '/charge', risk: 'medium', description: 'Charge a customer' },
        { name: 'send_reminder', path: '/remind', risk: 'high', description: 'Send an invoice reminder' },
        { name: 'git_push', path: '/push', risk: 'low', description: 'Push a branch' },
      ],
    });
    expect(res.status).toBe(201);
  });
  afterAll(async () => {
    await built.app.close();
    await tools.close();
  });

  /** The CLI's `invoke call <tool> '{...}'`: `{tool, params, agent_id, idempotency_key}`. */
  async function pendingReminder(key: string) {
    const res = await send(built.app, 'POST', '/v1/call', {
      tool: 'billing.send_reminder',
      params: { customer_id: 'cust_123', invoice_id: 'inv_456' },
      agent_id: 'billing_agent',
      idempotency_key: key,
    });
    expect(res.status).toBe(202);
    expect(res.body.status).toBe('pending_approval');
    return res.body.approval.id as string;
  }

  describe('the CLI', () => {
    it('GET /v1/tools?q= filters and shows the card fields the CLI prints', async () => {
      const res = await send(built.app, 'GET', '/v1/tools?q=reminder');
      expect(res.status).toBe(200);
      expect(res.body.tools.map((t: { key: string }) => t.key)).toEqual(['billing.send_reminder']);
      expect(res.body.tools[0]).toMatchObject({
        id: 'billing.send_reminder',
        key: 'billing.send_reminder',
        name: 'send_reminder',
        risk_level: 'high',
        approval_required: true,
        configured: true,
        description: 'Send an invoice reminder',
      });
      const all = await send(built.app, 'GET', '/v1/tools');
      const charge = all.body.tools.find((t: { key: string }) => t.key === 'billing.charge');
      expect(charge).toMatchObject({ id: 'billing.charge', risk_level: 'medium', approval_required: false, configured: true });
    });

    it('GET /v1/approvals lists id, tool, agent_id, risk_level, status', async () => {
      const id = await pendingReminder('cli-list-1');
      const res = await send(built.app, 'GET', '/v1/approvals');
      expect(res.status).toBe(200);
      const row = res.body.approvals.find((a: { id: string }) => a.id === id);
      expect(row).toMatchObject({ id, tool: 'billing.send_reminder', agent_id: 'billing_agent', risk_level: 'high', status: 'pending' });
    });

    it('approve with {"reviewed_by"} runs the call; the note is kept, the approver is the key\'s approver_id', async () => {
      const id = await pendingReminder('cli-approve-1');
      const before = tools.count('POST', '/remind');
      const res = await send(built.app, 'POST', `/v1/approvals/${id}/approve`, { reviewed_by: 'alice (ops lead)' }, { 'x-api-key': BOB });
      expect(res.status).toBe(200);
      expect(res.body.outcome).toBe('executed');
      expect(tools.count('POST', '/remind')).toBe(before + 1);
      expect(res.body.approval.decision).toMatchObject({ approver: 'bob', reviewed_by: 'alice (ops lead)' });
      const audit = await send(built.app, 'GET', `/approvals/${id}/audit`);
      const approved = audit.body.audit.find((e: { kind: string }) => e.kind === 'approved');
      expect(approved).toMatchObject({ actor: 'bob', detail: { approver: 'bob', reviewed_by: 'alice (ops lead)' } });
      expect(audit.body.audit.every((e: { actor: string | null }) => e.actor !== 'alice (ops lead)')).toBe(true);
    });

    it('reject with {"reviewed_by"} rejects; the note is kept, never the identity', async () => {
      const id = await pendingReminder('cli-reject-1');
      const res = await send(built.app, 'POST', `/v1/approvals/${id}/reject`, { reviewed_by: 'alice (ops lead)' }, { 'x-api-key': BOB });
      expect(res.status).toBe(200);
      expect(res.body.outcome).toBe('rejected');
      expect(res.body.approval).toMatchObject({ status: 'rejected', decision: { approver: 'bob', reviewed_by: 'alice (ops lead)' } });
      const audit = await send(built.app, 'GET', `/approvals/${id}/audit`);
      expect(audit.body.audit.find((e: { kind: string }) => e.kind === 'rejected')).toMatchObject({ actor: 'bob', detail: { reviewed_by: 'alice (ops lead)' } });
    });

    it('reviewed_by cannot name the requester into deciding: the key decides, and a key may not approve its own call', async () => {
      const id = await pendingReminder('cli-self-1');
      const res = await send(built.app, 'POST', `/v1/approvals/${id}/approve`, { reviewed_by: 'bob' });
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('self_approval');
    });
  });

  describe('the seed examples', () => {
    it('POST /v1/executions, "Create a safe execution" (SDK And API, 4)', async () => {
      const res = await send(
        built.app,
        'POST',
        '/v1/executions',
        `{
"workflow": "safe-tool-execution",
"agent_id": "revops_agent",
"input": {
"params": {
"customer_id": "cust_acme",
"amount": 2400,
"currency": "usd"
}
}
}`,
        { 'idempotency-key': 'demo-charge-001' },
      );
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({
        success: true,
        execution: { workflow_id: 'safe-tool-execution', status: 'completed', idempotency_key: 'demo-charge-001', final_outcome: 'completed' },
      });
      expect(res.body.execution.execution_id).toMatch(/^exec_/);
      expect(res.body.execution.result).toMatchObject({ charged: true });
    });

    it('POST /v1/executions, "Create and inspect a v1 execution" (Runtime API, HTTP)', async () => {
      const res = await send(built.app, 'POST', '/v1/executions', '{"workflow":"safe-tool-execution","input":{"params":{"invoice_id":"inv_123"}}}', {
        'idempotency-key': 'checkout-retry-001',
      });
      expect(res.status).toBe(201);
      expect(res.body.execution).toMatchObject({ workflow_id: 'safe-tool-execution', final_outcome: 'completed' });
    });

    it('POST /v1/executions takes the tool from input.action', async () => {
      const res = await send(
        built.app,
        'POST',
        '/v1/executions',
        { workflow: 'safe-tool-execution', agent_id: 'dev_agent', input: { action: 'billing.git_push', params: { branch: 'main' } } },
        { 'idempotency-key': 'push-001' },
      );
      expect(res.status).toBe(201);
      expect(res.body.execution).toMatchObject({ final_outcome: 'completed', result: { pushed: true } });
    });

    it('an approval contract whose expires_at is past is refused with 400 (Conditional Approval Contracts)', async () => {
      const contract = JSON.parse(`{
"intent": "send_invoice_reminder",
"conditions": {
"invoice_status": "overdue",
"customer_balance": "> 0"
},
"threshold": "strict",
"expires_at": "2026-04-30T15:00:00Z"
}`);
      assertPast(contract.expires_at);
      const before = (await send(built.app, 'GET', '/v1/approvals?status=pending')).body.approvals.length;
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.charge',
        params: { customer_id: 'cust_123' },
        agent_id: 'billing_agent',
        approval_contract: contract,
      });
      expect(res.status).toBe(400);
      expect(res.body.error.message).toMatch(/expires_at/);
      expect((await send(built.app, 'GET', '/v1/approvals?status=pending')).body.approvals.length).toBe(before);
    });

    const domainPolicy = () => {
      const policy = JSON.parse(`{
"intent": "send_invoice_reminder",
"condition": "invoice_status == overdue",
"allowed_action": "send_email",
"expires_at": "2026-04-30T15:00:00Z"
}`);
      // The seed's date is a fixed example: a live one must still be ahead.
      policy.expires_at = inADay();
      return policy;
    };

    it('the domain policy form as an approval contract freezes, then thaws on its condition', async () => {
      const call = (key: string) =>
        send(built.app, 'POST', '/v1/call', {
          tool: 'billing.charge',
          params: { customer_id: 'cust_123' },
          agent_id: 'billing_agent',
          action: 'send_email',
          idempotency_key: key,
          approval_contract: domainPolicy(),
        });
      const frozen = await call('domain-contract-1');
      expect(frozen.status).toBe(202);
      const id = frozen.body.approval.id as string;
      const approved = await send(built.app, 'POST', `/v1/approvals/${id}/approve`, { current_state: { invoice_status: 'overdue' } }, { 'x-api-key': BOB });
      expect(approved.body.outcome).toBe('executed');

      const second = await call('domain-contract-2');
      const stale = await send(built.app, 'POST', `/v1/approvals/${second.body.approval.id}/approve`, { current_state: { invoice_status: 'paid' } }, { 'x-api-key': BOB });
      expect(stale.body.outcome).toBe('replan_required');
      expect(stale.body.reason).toMatch(/invoice_status == overdue/);
    });

    it('the domain policy form as a rule freezes the call; allowed_action is checked at thaw', async () => {
      const call = (key: string, action: string) =>
        send(built.app, 'POST', '/v1/call', {
          tool: 'billing.charge',
          params: { customer_id: 'cust_123' },
          agent_id: 'billing_agent',
          action,
          idempotency_key: key,
          policy: { rules: [domainPolicy()] },
        });
      const frozen = await call('domain-rule-1', 'send_email');
      expect(frozen.status).toBe(202);
      const ok = await send(built.app, 'POST', `/v1/approvals/${frozen.body.approval.id}/approve`, { current_state: { invoice_status: 'overdue' } }, { 'x-api-key': BOB });
      expect(ok.body.outcome).toBe('executed');

      const other = await call('domain-rule-2', 'charge_card');
      expect(other.status).toBe(202);
      const cancelled = await send(built.app, 'POST', `/v1/approvals/${other.body.approval.id}/approve`, { current_state: { invoice_status: 'overdue' } }, { 'x-api-key': BOB });
      expect(cancelled.body.outcome).toBe('cancelled');
    });

    it('a malformed rule or condition is refused with 400 naming the field', async () => {
      const body = { tool: 'billing.charge', params: {}, agent_id: 'billing_agent' };
      const badEffect = await send(built.app, 'POST', '/v1/call', { ...body, policy: { rules: [{ when: 'env == prod', effect: 'maybe' }] } });
      expect(badEffect.status).toBe(400);
      expect(badEffect.body.error.message).toMatch(/policy\.rules\.0\.effect/);
      const noIntent = await send(built.app, 'POST', '/v1/call', { ...body, policy: { rules: [{ condition: 'invoice_status == overdue' }] } });
      expect(noIntent.status).toBe(400);
      expect(noIntent.body.error.message).toMatch(/intent/);
      const badCondition = await send(built.app, 'POST', '/v1/call', { ...body, approval_contract: { ...domainPolicy(), condition: 'invoice_status ==' } });
      expect(badCondition.status).toBe(400);
      expect(badCondition.body.error.message).toMatch(/approval_contract\.condition/);
    });

    it('the domain policy form with its past expires_at is refused with 400, as a rule and as a contract', async () => {
      const seed = { ...domainPolicy(), expires_at: '2026-04-30T15:00:00Z' };
      assertPast(seed.expires_at);
      const body = { tool: 'billing.charge', params: {}, agent_id: 'billing_agent', action: 'send_email' };
      const asContract = await send(built.app, 'POST', '/v1/call', { ...body, approval_contract: seed });
      const asRule = await send(built.app, 'POST', '/v1/call', { ...body, policy: { rules: [seed] } });
      expect([asContract.status, asRule.status]).toEqual([400, 400]);
      expect(asContract.body.error.message).toMatch(/expires_at/);
      expect(asRule.body.error.message).toMatch(/expires_at/);
    });
  });
});

/** The seed's example date must be behind us for the refusal test to mean anything. */
function assertPast(expiresAt: string): void {
  expect(Date.parse(expiresAt)).toBeLessThan(Date.now());
}
