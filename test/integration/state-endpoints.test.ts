import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';

describe('/state/verify and /outcomes/reconcile', () => {
  let built: BuiltApp;
  let server: Awaited<ReturnType<typeof startToolServer>>;

  beforeAll(async () => {
    server = await startToolServer({
      'GET /invoices/*': (req, res) => json(res, 200, { invoice_id: req.path.split('/').pop(), invoice_status: 'unpaid', balance: 125 }),
      'POST /send': (_req, res) => json(res, 200, { sent: true }),
    });
    built = await buildTestApp();
    await send(built.app, 'POST', '/v1/providers', {
      name: 'billing',
      base_url: server.url,
      tools: [
        { name: 'get_invoice', method: 'GET', path: '/invoices/{invoice_id}', side_effects: false, risk: 'low' },
        { name: 'send', path: '/send', risk: 'low' },
      ],
    });
  });
  afterAll(async () => {
    await built.app.close();
    await server.close();
  });

  it('verifies the documented example', async () => {
    const body = {
      intent: 'crm_update_customer',
      required_fields: ['customer_id', 'account_status'],
      assumed_state: { customer_id: 'cust_123', account_status: 'qualified' },
      current_state: { customer_id: 'cust_123', account_status: 'qualified' },
      conditions: { customer_id: 'cust_123' },
      on_mismatch: 'replan',
    };
    const ok = await send(built.app, 'POST', '/state/verify', body);
    expect(ok.body).toMatchObject({ status: 'verified', decision: 'proceed', mismatches: [] });
    const drifted = await send(built.app, 'POST', '/v1/state/verify', { ...body, current_state: { customer_id: 'cust_999', account_status: 'qualified' } });
    expect(drifted.body).toMatchObject({ status: 'mismatch_detected', decision: 'replan' });
    expect(drifted.body.mismatches).toContainEqual(expect.objectContaining({ field: 'customer_id', assumed: 'cust_123', current: 'cust_999' }));
    const blocked = await send(built.app, 'POST', '/state/verify', { ...body, on_mismatch: 'block', current_state: { customer_id: 'cust_999' } });
    expect(blocked.body.decision).toBe('block');
  });

  it('reads live state through state_refetch', async () => {
    const res = await send(built.app, 'POST', '/state/verify', {
      intent: 'send_invoice_reminder',
      required_fields: ['invoice_status'],
      assumed_state: { invoice_status: 'unpaid', balance: 125 },
      state_refetch: { tool: 'billing.get_invoice', params: { invoice_id: 'inv_123' } },
      conditions: { invoice_status: 'unpaid', balance: '> 0' },
    });
    expect(res.body).toMatchObject({ status: 'verified', decision: 'proceed', state_source: 'billing.get_invoice' });
  });

  it('refuses a state_refetch through a side-effecting tool', async () => {
    const res = await send(built.app, 'POST', '/state/verify', { intent: 'x', state_refetch: { tool: 'billing.send', params: {} } });
    expect(res.status).toBe(400);
    expect(server.count('POST', '/send')).toBe(0);
  });

  it('reconciles the documented example and its variants', async () => {
    const body = {
      action: { intent: 'charge_customer', tool: 'stripe.charge_customer', params: { customer_id: 'cust_123', amount: 2400, currency: 'usd' } },
      outcome: 'UNKNOWN',
      current_state: { charged: true, customer_id: 'cust_123', amount: 2400 },
      conditions: { charged: true },
    };
    expect((await send(built.app, 'POST', '/outcomes/reconcile', body)).body).toMatchObject({ decision: 'do_not_retry', status: 'reconciled' });
    const notCharged = await send(built.app, 'POST', '/v1/outcomes/reconcile', { ...body, current_state: { charged: false, customer_id: 'cust_123', amount: 2400 } });
    expect(notCharged.body.decision).toBe('retry_allowed');
    const otherAmount = await send(built.app, 'POST', '/outcomes/reconcile', { ...body, current_state: { charged: true, customer_id: 'cust_123', amount: 1200 } });
    expect(otherAmount.body.decision).toBe('replan');
  });

  it('refuses reconciliation without conditions, or with an outcome other than UNKNOWN', async () => {
    const base = { action: { params: {} }, outcome: 'UNKNOWN', current_state: { charged: true } };
    expect((await send(built.app, 'POST', '/outcomes/reconcile', base)).status).toBe(400);
    expect((await send(built.app, 'POST', '/outcomes/reconcile', { ...base, conditions: {} })).status).toBe(400);
    expect((await send(built.app, 'POST', '/outcomes/reconcile', { ...base, outcome: 'SUCCESS', conditions: { charged: true } })).status).toBe(400);
  });
});
