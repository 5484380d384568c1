import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';

/**
 * The /v1/call pipeline against real HTTP tools on loopback: retries, fallback, unknown outcomes
 * and reconciliation, escalation. Side effects are counted at the tool server.
 */
describe('POST /v1/call', () => {
  let built: BuiltApp;
  let failFirst = 0;
  let charged = new Map<string, number>();
  const tools = startToolServer({
    'POST /charge': (req, res) => {
      const body = req.body as { payment_id: string; amount: number };
      if (body.payment_id.startsWith('lost')) return; // lost before it was processed, and never answers
      charged.set(body.payment_id, body.amount);
      if (body.payment_id.startsWith('hang')) return; // charged, then never answers: an unknown outcome
      json(res, 200, { payment_id: body.payment_id, charged: true });
    },
    'GET /payments/*': (req, res) => {
      const id = req.path.split('/').pop()!;
      const amount = charged.get(id);
      json(res, 200, { payment_id: id, charged: amount !== undefined, amount: amount ?? null });
    },
    'POST /flaky': (_req, res) => {
      if (failFirst > 0) {
        failFirst--;
        return json(res, 503, { error: 'try later' });
      }
      json(res, 200, { ok: true });
    },
    'POST /reject': (_req, res) => json(res, 422, { error: 'bad customer' }),
    'POST /backup': (_req, res) => json(res, 200, { ok: true, via: 'backup' }),
  });
  let server: Awaited<typeof tools>;

  beforeAll(async () => {
    server = await tools;
    built = await buildTestApp();
    const registered = await send(built.app, 'POST', '/v1/providers', {
      name: 'billing',
      base_url: server.url,
      tools: [
        {
          name: 'charge',
          path: '/charge',
          description: 'Charge a customer',
          risk: 'medium',
          timeout_ms: 300,
          input_schema: {
            type: 'object',
            required: ['payment_id', 'amount'],
            properties: { payment_id: { type: 'string' }, amount: { type: 'number', minimum: 1 }, customer_id: { type: 'string' } },
          },
        },
        {
          name: 'get_payment',
          method: 'GET',
          path: '/payments/{payment_id}',
          side_effects: false,
          risk: 'low',
          input_schema: { type: 'object', required: ['payment_id'], properties: { payment_id: { type: 'string' } } },
        },
        { name: 'flaky', path: '/flaky', side_effects: false, risk: 'low' },
        { name: 'reject', path: '/reject', risk: 'low' },
        { name: 'backup', path: '/backup', risk: 'low' },
      ],
    });
    expect(registered.status).toBe(201);
  });
  afterAll(async () => {
    await built.app.close();
    await server.close();
  });
  afterEach(() => {
    failFirst = 0;
    charged = new Map();
    server.requests.length = 0;
  });

  it('executes a call and traces each step', async () => {
    const res = await send(built.app, 'POST', '/v1/call', { tool: 'billing.charge', params: { payment_id: 'p1', amount: 10 }, agent_id: 'a1' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'executed', attempts: 1, result: { payment_id: 'p1', charged: true } });
    expect(res.body.call_id).toMatch(/^call_/);
    expect(res.body.trace.map((e: { step: string }) => e.step)).toEqual([
      'request_received',
      'scope_checked',
      'policy_evaluated',
      'attempt_started',
      'attempt_succeeded',
      'execution_completed',
    ]);
    expect(server.count('POST', '/charge')).toBe(1);
  });

  it('validates params against the tool schema with the failing paths', async () => {
    const res = await send(built.app, 'POST', '/v1/call', { tool: 'billing.charge', params: { amount: 0 }, agent_id: 'a1' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_error');
    const paths = res.body.error.details.problems.map((p: { path: string }) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['params.payment_id', 'params.amount']));
    expect(server.requests).toHaveLength(0);
  });

  it('answers 404 for an unknown tool and 400 for a malformed request', async () => {
    expect((await send(built.app, 'POST', '/v1/call', { tool: 'nope.x', params: {}, agent_id: 'a' })).status).toBe(404);
    const missing = await send(built.app, 'POST', '/v1/call', { params: {} });
    expect(missing.status).toBe(400);
    expect(missing.body.error.details.problems.map((p: { path: string }) => p.path)).toEqual(expect.arrayContaining(['body.tool', 'body.agent_id']));
    const unknownField = await send(built.app, 'POST', '/v1/call', { tool: 'billing.flaky', agent_id: 'a', surprise: 1 });
    expect(unknownField.status).toBe(400);
  });

  it('retries a transient failure with bounded retry', async () => {
    failFirst = 2;
    const res = await send(built.app, 'POST', '/v1/call', { tool: 'billing.flaky', agent_id: 'a', failure_policy: { retry: 3 } });
    expect(res.body).toMatchObject({ status: 'executed', attempts: 3 });
    expect(server.count('POST', '/flaky')).toBe(3);
  });

  it('caps retries at FAILURE_POLICY_MAX_RETRIES (one attempt plus at most the cap)', async () => {
    failFirst = 100;
    const res = await send(built.app, 'POST', '/v1/call', { tool: 'billing.flaky', agent_id: 'a', failure_policy: { retry: 50 } });
    expect(res.body).toMatchObject({ status: 'failed', attempts: 6 });
    expect(server.count('POST', '/flaky')).toBe(6);
    expect(res.body.trace.some((e: { step: string }) => e.step === 'failure_policy_clamped')).toBe(true);
  });

  it('does not retry a 4xx answer', async () => {
    const res = await send(built.app, 'POST', '/v1/call', { tool: 'billing.reject', agent_id: 'a', failure_policy: { retry: 3 } });
    expect(res.body).toMatchObject({ status: 'failed', attempts: 1 });
    expect(server.count('POST', '/reject')).toBe(1);
  });

  it('runs the fallback once after the retries fail', async () => {
    failFirst = 100;
    const res = await send(built.app, 'POST', '/v1/call', {
      tool: 'billing.flaky',
      agent_id: 'a',
      failure_policy: { retry: 1, fallback: 'billing.backup' },
    });
    expect(res.body).toMatchObject({ status: 'executed', attempts: 2, result: { via: 'backup' }, fallback: { tool: 'billing.backup', used: true } });
    expect(server.count('POST', '/flaky')).toBe(2);
    expect(server.count('POST', '/backup')).toBe(1);
  });

  it('escalates to a pending approval when everything fails and on_failure is escalate', async () => {
    failFirst = 100;
    const res = await send(built.app, 'POST', '/v1/call', { tool: 'billing.flaky', agent_id: 'a', failure_policy: { retry: 1, on_failure: 'escalate' } });
    expect(res.status).toBe(202);
    expect(res.body.status).toBe('escalated');
    expect(res.body.approval).toMatchObject({ status: 'pending' });
    const row = await built.store.db.selectFrom('approvals').selectAll().where('id', '=', res.body.approval.id).executeTakeFirstOrThrow();
    expect(row.status).toBe('pending');
    expect((row.checkpoint as { failure: { attempts: number } }).failure.attempts).toBe(2);
  });

  describe('unknown outcomes', () => {
    it('never retries a side-effecting call blindly: unknown_outcome, one charge', async () => {
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.charge',
        params: { payment_id: 'hang-1', amount: 24 },
        agent_id: 'a',
        failure_policy: { retry: 3 },
      });
      expect(res.body).toMatchObject({ status: 'unknown_outcome', attempts: 1 });
      expect(server.count('POST', '/charge')).toBe(1);
    });

    it('reconciles from live state: the charge went through, so it is not repeated', async () => {
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.charge',
        params: { payment_id: 'hang-2', amount: 24 },
        agent_id: 'a',
        failure_policy: {
          retry: 3,
          reconcile: { state_refetch: { tool: 'billing.get_payment', params: { payment_id: '{{params.payment_id}}' } }, conditions: { charged: true } },
        },
      });
      expect(res.body).toMatchObject({ status: 'outcome_reconciled', attempts: 1, reconciliation: { decision: 'do_not_retry' } });
      expect(server.count('POST', '/charge')).toBe(1);
      expect(res.body.trace.map((e: { step: string }) => e.step)).toEqual(expect.arrayContaining(['outcome_unknown', 'state_refetched', 'outcome_reconciled']));
    });

    it('retries when live state shows the action did not happen', async () => {
      // Each attempt times out without charging; each time live state says "not charged".
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.charge',
        params: { payment_id: 'lost-3', amount: 24 },
        agent_id: 'a',
        failure_policy: {
          retry: 1,
          reconcile: { state_refetch: { tool: 'billing.get_payment', params: { payment_id: '{{params.payment_id}}' } }, conditions: { charged: true } },
        },
      });
      expect(server.count('POST', '/charge')).toBe(2);
      expect(server.count('GET', '/payments/lost-3')).toBe(2);
      expect(res.body).toMatchObject({ status: 'failed', attempts: 2 });
      const decisions = res.body.trace.filter((e: { step: string }) => e.step === 'outcome_reconciled').map((e: { status: string }) => e.status);
      expect(decisions).toEqual(['retry_allowed', 'retry_allowed']);
    });

    it('answers replan_required when live state contradicts the action', async () => {
      charged.set('other', 99);
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.charge',
        params: { payment_id: 'hang-4', amount: 24 },
        agent_id: 'a',
        failure_policy: {
          retry: 3,
          reconcile: { state_refetch: { tool: 'billing.get_payment', params: { payment_id: 'other' } }, conditions: { charged: true } },
        },
      });
      expect(res.body.status).toBe('replan_required');
      expect(server.count('POST', '/charge')).toBe(1);
    });

    it('verify_success: a success the source of truth disputes answers replan_required, a confirmed one executed', async () => {
      // The lookup reads another payment, never charged: the charge's "ok" is disputed.
      const disputed = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.charge',
        params: { payment_id: 'pay-v1', amount: 5 },
        agent_id: 'a',
        failure_policy: {
          reconcile: { state_refetch: { tool: 'billing.get_payment', params: { payment_id: 'nowhere' } }, conditions: { charged: true }, verify_success: true },
        },
      });
      expect(disputed.body.status).toBe('replan_required');
      expect(disputed.body.reason).toMatch(/reported success/);
      expect(disputed.body.trace.map((e: { step: string }) => e.step)).toContain('success_verified');
      const confirmed = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.charge',
        params: { payment_id: 'pay-v2', amount: 5 },
        agent_id: 'a',
        failure_policy: {
          reconcile: { state_refetch: { tool: 'billing.get_payment', params: { payment_id: '{{params.payment_id}}' } }, conditions: { charged: true }, verify_success: true },
        },
      });
      expect(confirmed.body).toMatchObject({ status: 'executed', reconciliation: { decision: 'do_not_retry' } });
      expect(server.count('POST', '/charge')).toBe(2);
    });

    it('refuses a state_refetch through a tool with side effects', async () => {
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.charge',
        params: { payment_id: 'p9', amount: 1 },
        agent_id: 'a',
        failure_policy: { reconcile: { state_refetch: { tool: 'billing.charge', params: {} }, conditions: { charged: true } } },
      });
      expect(res.status).toBe(400);
      expect(res.body.error.message).toMatch(/side effects/);
      expect(server.requests).toHaveLength(0);
    });

    it('refuses reconcile config without conditions', async () => {
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.charge',
        params: { payment_id: 'p9', amount: 1 },
        agent_id: 'a',
        failure_policy: { reconcile: { state_refetch: { tool: 'billing.get_payment', params: {} }, conditions: {} } },
      });
      expect(res.status).toBe(400);
    });
  });

  describe('entity resolution', () => {
    it('blocks a call whose params name another entity, without touching the tool', async () => {
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.charge',
        params: { payment_id: 'p2', amount: 5, customer_id: 'cust_999' },
        agent_id: 'a',
        entity_resolution: { entity_id: 'cust_123', source: 'crm_lookup' },
      });
      expect(res.status).toBe(200);
      expect(res.body.status).toBe('blocked');
      expect(res.body.mismatches[0]).toMatchObject({ expected: 'cust_123', actual: 'cust_999' });
      expect(server.requests).toHaveLength(0);
    });

    it('checks execution_state variables too, and ignores ids of other entity types', async () => {
      const blocked = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.charge',
        params: { payment_id: 'p3', amount: 5 },
        agent_id: 'a',
        entity_resolution: { entity_id: 'cust_123' },
        execution_state: { variables: { customer_id: 'cust_456' } },
      });
      expect(blocked.body.status).toBe('blocked');
      const fine = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.charge',
        params: { payment_id: 'p3', amount: 5, customer_id: 'cust_123' },
        agent_id: 'a',
        entity_resolution: { entity_id: 'cust_123' },
        execution_state: { variables: { user_id: 'usr_9' } },
      });
      expect(fine.body.status).toBe('executed');
    });
  });
});
