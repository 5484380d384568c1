import { describe, expect, it } from 'vitest';
import { decideReconciliation } from '../../src/calls/reconcile-decision.ts';
import { ValidationError } from '../../src/errors.ts';

describe('decideReconciliation', () => {
  const action = { intent: 'charge customer', tool: 'stripe.charge', params: { customer_id: 'cust_1', amount: 100 } };

  it('refuses to decide without conditions', () => {
    expect(() => decideReconciliation({ action, current_state: { charged: true }, conditions: {} })).toThrow(ValidationError);
    expect(() => decideReconciliation({ action, current_state: { charged: true }, conditions: {} })).toThrow('reconciliation needs conditions');
  });

  it('do_not_retry when every condition holds, naming the fields', () => {
    const result = decideReconciliation({ action, current_state: { customer_id: 'cust_1', amount: 100, charged: true }, conditions: { charged: true } });
    expect(result).toEqual({
      decision: 'do_not_retry',
      reason: 'charged condition satisfied in current state',
      status: 'reconciled',
      checks: {
        contradictions: [],
        conditions: [{ field: 'charged', expected: true, actual: true, ok: true, reason: 'equals true', missing: false }],
      },
    });
  });

  it('an empty field in state is no contradiction: a lookup of a charge that never happened has no amount', () => {
    const result = decideReconciliation({ action, current_state: { customer_id: 'cust_1', amount: null, charged: false }, conditions: { charged: true } });
    expect(result.decision).toBe('retry_allowed');
    expect(result.checks.contradictions).toEqual([]);
  });

  it('names several satisfied fields', () => {
    const result = decideReconciliation({
      action,
      current_state: { charged: true, charge: { status: 'succeeded', amount: '100' } },
      conditions: { charged: true, 'charge.status': 'in [succeeded, captured]', 'charge.amount': '>= 100' },
    });
    expect(result.decision).toBe('do_not_retry');
    expect(result.reason).toBe('charged, charge.status, charge.amount conditions satisfied in current state');
  });

  it('retry_allowed when a condition fails, naming it', () => {
    const result = decideReconciliation({ action, current_state: { customer_id: 'cust_1', charged: false }, conditions: { charged: true } });
    expect(result.decision).toBe('retry_allowed');
    expect(result.reason).toBe('condition not satisfied in current state: charged (expected true, got false)');
    expect(result.checks.conditions[0]).toMatchObject({ ok: false, missing: false });
  });

  it('names every failing condition', () => {
    const result = decideReconciliation({ action, current_state: { charged: false, status: 'pending', n: 1 }, conditions: { charged: true, status: 'succeeded', n: '>= 1' } });
    expect(result.decision).toBe('retry_allowed');
    expect(result.reason).toBe('conditions not satisfied in current state: charged (expected true, got false); status (expected "succeeded", got "pending")');
  });

  it('replan when a condition field is missing from current state', () => {
    const result = decideReconciliation({ action, current_state: { customer_id: 'cust_1' }, conditions: { charged: true, 'charge.id': '!= null' } });
    expect(result.decision).toBe('replan');
    expect(result.reason).toBe('current state has no charged, charge.id: it cannot confirm whether the action took effect, so replan rather than risk a duplicate');
  });

  it('replan when current state describes another entity', () => {
    const result = decideReconciliation({ action, current_state: { customer_id: 'cust_2', charged: true }, conditions: { charged: true } });
    expect(result.decision).toBe('replan');
    expect(result.reason).toBe('current state contradicts the action\'s params: customer_id is "cust_2" in current state but "cust_1" in params');
    expect(result.checks.contradictions).toEqual([{ field: 'customer_id', param: 'cust_1', current: 'cust_2' }]);
  });

  it('replan when current state holds another amount, before looking at conditions', () => {
    const result = decideReconciliation({ action, current_state: { amount: 250, charged: false }, conditions: { charged: true } });
    expect(result.decision).toBe('replan');
    expect(result.reason).toContain('amount is 250 in current state but 100 in params');
  });

  it('compares numbers and numeric strings numerically', () => {
    const result = decideReconciliation({ action, current_state: { amount: '100.00', charged: true }, conditions: { charged: true } });
    expect(result.decision).toBe('do_not_retry');
    expect(decideReconciliation({ action: { params: { amount: '100' } }, current_state: { amount: 100, charged: true }, conditions: { charged: true } }).decision).toBe(
      'do_not_retry',
    );
  });

  it('ignores params the conditions judge: they are the intended effect', () => {
    const result = decideReconciliation({
      action: { params: { invoice_id: 'inv_1', status: 'paid' } },
      current_state: { invoice_id: 'inv_1', status: 'open' },
      conditions: { status: 'paid' },
    });
    expect(result.decision).toBe('retry_allowed');
    expect(result.checks.contradictions).toEqual([]);
  });

  it('walks nested params, skipping the ones under a condition', () => {
    const params = { invoice: { id: 'inv_1', status: 'paid', meta: { source: 'agent' } } };
    const ok = decideReconciliation({
      action: { params },
      current_state: { invoice: { id: 'inv_1', status: 'paid', meta: { source: 'agent' }, extra: 1 } },
      conditions: { 'invoice.status': 'paid' },
    });
    expect(ok.decision).toBe('do_not_retry');

    const other = decideReconciliation({
      action: { params },
      current_state: { invoice: { id: 'inv_2', status: 'paid' } },
      conditions: { 'invoice.status': 'paid' },
    });
    expect(other.decision).toBe('replan');
    expect(other.checks.contradictions).toEqual([{ field: 'invoice.id', param: 'inv_1', current: 'inv_2' }]);

    const coveredWhole = decideReconciliation({
      action: { params },
      current_state: { invoice: { id: 'inv_2', status: 'paid' } },
      conditions: { invoice: '!= null' },
    });
    expect(coveredWhole.checks.contradictions).toEqual([]);
    expect(coveredWhole.decision).toBe('do_not_retry');
  });

  it('compares array params as a whole unless a condition looks inside', () => {
    const params = { tags: ['a', 'b'] };
    expect(decideReconciliation({ action: { params }, current_state: { tags: ['a', 'b'], done: true }, conditions: { done: true } }).decision).toBe('do_not_retry');
    expect(decideReconciliation({ action: { params }, current_state: { tags: ['b'], done: true }, conditions: { done: true } }).decision).toBe('replan');
    expect(decideReconciliation({ action: { params }, current_state: { tags: ['b'], done: true }, conditions: { 'tags.0': 'b' } }).decision).toBe('do_not_retry');
  });

  it('params absent from current state, or shaped differently, are not contradictions', () => {
    const result = decideReconciliation({
      action: { params: { customer_id: 'cust_1', note: 'hi', customer: 'cust_1' } },
      current_state: { charged: true, customer: { id: 'cust_1' } },
      conditions: { charged: true },
    });
    expect(result.decision).toBe('do_not_retry');
  });

  it('works without params', () => {
    expect(decideReconciliation({ action: { tool: 't' }, current_state: { done: true }, conditions: { done: true } }).decision).toBe('do_not_retry');
  });

  it('rejects a malformed condition with its field', () => {
    expect(() => decideReconciliation({ action, current_state: { n: 1 }, conditions: { n: '> lots' } })).toThrow(/^conditions\.n:/);
  });
});
