import { describe, expect, it } from 'vitest';
import { computeDrift, verifyState } from '../../src/calls/state-verify.ts';
import { ValidationError } from '../../src/errors.ts';

describe('verifyState', () => {
  const assumed = { invoice: { status: 'open', amount: 100, lines: [1, 2] }, customer_id: 'cust_1' };

  it('proceeds when required fields are unchanged (deep equality) and conditions hold', () => {
    const result = verifyState({
      intent: 'pay invoice',
      required_fields: ['invoice', 'customer_id'],
      assumed_state: assumed,
      current_state: { customer_id: 'cust_1', invoice: { lines: [1, 2], amount: 100, status: 'open' }, extra: true },
      conditions: { 'invoice.status': 'open', 'invoice.amount': '> 0' },
      on_mismatch: 'block',
    });
    expect(result).toEqual({ status: 'verified', decision: 'proceed', mismatches: [] });
  });

  it('a changed required field is a mismatch, and on_mismatch decides', () => {
    const input = {
      required_fields: ['invoice.status', 'customer_id'],
      assumed_state: assumed,
      current_state: { invoice: { status: 'paid' }, customer_id: 'cust_1' },
    };
    const expected = [{ field: 'invoice.status', assumed: 'open', current: 'paid', reason: 'changed since it was assumed' }];
    expect(verifyState({ ...input, on_mismatch: 'block' })).toEqual({ status: 'mismatch_detected', decision: 'block', mismatches: expected });
    expect(verifyState({ ...input, on_mismatch: 'replan' }).decision).toBe('replan');
    expect(verifyState(input).decision).toBe('replan');
  });

  it('compares nested values deeply and strictly', () => {
    const result = verifyState({ required_fields: ['invoice.lines', 'invoice.amount'], assumed_state: assumed, current_state: { invoice: { lines: [2, 1], amount: '100' } } });
    expect(result.mismatches.map((m) => m.field)).toEqual(['invoice.lines', 'invoice.amount']);
  });

  it('a required field missing from current state is a mismatch', () => {
    const result = verifyState({ required_fields: ['customer_id'], assumed_state: assumed, current_state: {} });
    expect(result.mismatches).toEqual([{ field: 'customer_id', assumed: 'cust_1', current: undefined, reason: 'missing from current state' }]);
  });

  it('a required field the agent did not assume is a mismatch', () => {
    const result = verifyState({ required_fields: ['owner'], assumed_state: {}, current_state: { owner: 'ann' } });
    expect(result.mismatches).toEqual([{ field: 'owner', assumed: undefined, current: 'ann', reason: 'not in assumed state' }]);
  });

  it('a required null matches a current null', () => {
    expect(verifyState({ required_fields: ['x'], assumed_state: { x: null }, current_state: { x: null } }).status).toBe('verified');
  });

  it('a failing condition is a mismatch with the condition as the assumed value', () => {
    const result = verifyState({
      required_fields: [],
      assumed_state: {},
      current_state: { balance: '20', status: 'closed' },
      conditions: { balance: '>= 50', status: '!= closed', owner: 'ann' },
      on_mismatch: 'block',
    });
    expect(result.decision).toBe('block');
    expect(result.mismatches).toEqual([
      { field: 'balance', assumed: '>= 50', current: '20', reason: 'condition failed: expected >= 50, got "20"' },
      { field: 'status', assumed: '!= closed', current: 'closed', reason: 'condition failed: expected != closed, got "closed"' },
      { field: 'owner', assumed: 'ann', current: undefined, reason: 'condition failed: missing from state' },
    ]);
  });

  it('reports both a changed field and its failing condition', () => {
    const result = verifyState({
      required_fields: ['status'],
      assumed_state: { status: 'open' },
      current_state: { status: 'closed' },
      conditions: { status: 'open' },
    });
    expect(result.mismatches.map((m) => m.reason)).toEqual(['changed since it was assumed', 'condition failed: expected "open", got "closed"']);
  });

  it('a value that cannot be compared fails its condition, and the mismatch says which and why', () => {
    const result = verifyState({ required_fields: [], assumed_state: {}, current_state: { invoice: { amount: '5,000' } }, conditions: { 'invoice.amount': '> 0' } });
    expect(result.decision).toBe('replan');
    expect(result.mismatches).toEqual([
      {
        field: 'invoice.amount',
        assumed: '> 0',
        current: '5,000',
        reason: 'condition failed: expected > 0, got "5,000" (cannot be compared: text, not a number)',
        uncomparable: { kind: 'text', expected: 'number' },
      },
    ]);
  });

  it('refuses to verify nothing', () => {
    expect(() => verifyState({ required_fields: [], assumed_state: {}, current_state: {} })).toThrow(ValidationError);
    expect(() => verifyState({ required_fields: [], assumed_state: {}, current_state: {}, conditions: {} })).toThrow('state verification needs required_fields or conditions');
  });

  it('rejects a malformed condition', () => {
    expect(() => verifyState({ required_fields: [], assumed_state: {}, current_state: { a: 1 }, conditions: { a: '> many' } })).toThrow(/^conditions\.a:/);
  });
});

describe('computeDrift', () => {
  const conditions = { status: 'open', amount: '<= 1000' };

  it('no drift when values are unchanged and conditions hold', () => {
    const frozen = { status: 'open', amount: 500 };
    expect(computeDrift(frozen, { status: 'open', amount: 500, other: 'changed' }, conditions, 'strict')).toEqual({
      drifted: false,
      fields: [
        { field: 'status', frozen: 'open', live: 'open', condition: 'open', changed: false, satisfied: true },
        { field: 'amount', frozen: 500, live: 500, condition: '<= 1000', changed: false, satisfied: true },
      ],
    });
  });

  it('strict: a changed value drifts even when the condition still holds; conditions: it does not', () => {
    const frozen = { status: 'open', amount: 500 };
    const live = { status: 'open', amount: 700 };
    const strict = computeDrift(frozen, live, conditions, 'strict');
    expect(strict.drifted).toBe(true);
    expect(strict.fields[1]).toEqual({ field: 'amount', frozen: 500, live: 700, condition: '<= 1000', changed: true, satisfied: true });
    expect(computeDrift(frozen, live, conditions, 'conditions').drifted).toBe(false);
  });

  it('both thresholds drift when a condition fails', () => {
    const frozen = { status: 'open', amount: 500 };
    const live = { status: 'open', amount: 5000 };
    expect(computeDrift(frozen, live, conditions, 'strict').drifted).toBe(true);
    const result = computeDrift(frozen, live, conditions, 'conditions');
    expect(result.drifted).toBe(true);
    expect(result.fields[1]).toMatchObject({ changed: true, satisfied: false });
  });

  it('a field unknown at freeze is judged by its condition alone, even when strict', () => {
    expect(computeDrift({}, { status: 'open', amount: 10 }, conditions, 'strict')).toEqual({
      drifted: false,
      fields: [
        { field: 'status', frozen: undefined, live: 'open', condition: 'open', changed: false, satisfied: true },
        { field: 'amount', frozen: undefined, live: 10, condition: '<= 1000', changed: false, satisfied: true },
      ],
    });
    expect(computeDrift({}, { status: 'closed', amount: 10 }, conditions, 'strict').drifted).toBe(true);
  });

  it('a field that disappeared from live state drifts', () => {
    const result = computeDrift({ status: 'open', amount: 1 }, { amount: 1 }, conditions, 'conditions');
    expect(result.drifted).toBe(true);
    expect(result.fields[0]).toMatchObject({ field: 'status', live: undefined, changed: true, satisfied: false });
  });

  it('follows nested paths and compares deeply', () => {
    const frozen = { invoice: { lines: [{ sku: 'a' }], status: 'open' } };
    const same = computeDrift(frozen, { invoice: { status: 'open', lines: [{ sku: 'a' }] } }, { 'invoice.lines': '!= null', 'invoice.status': 'open' }, 'strict');
    expect(same.drifted).toBe(false);
    const changed = computeDrift(frozen, { invoice: { status: 'open', lines: [{ sku: 'b' }] } }, { 'invoice.lines': '!= null' }, 'strict');
    expect(changed.drifted).toBe(true);
  });

  it('a live value that cannot be compared drifts, marked uncomparable', () => {
    const drift = computeDrift({ amount: 10 }, { amount: [10] }, { amount: '> 0' }, 'conditions');
    expect(drift.drifted).toBe(true);
    expect(drift.fields).toEqual([
      { field: 'amount', frozen: 10, live: [10], condition: '> 0', changed: true, satisfied: false, uncomparable: { kind: 'array', expected: 'number' } },
    ]);
  });

  it('no conditions, no drift', () => {
    expect(computeDrift({ a: 1 }, { a: 2 }, {}, 'strict')).toEqual({ drifted: false, fields: [] });
  });

  it('rejects a malformed condition with its field', () => {
    expect(() => computeDrift({}, {}, { amount: '< lots' }, 'strict')).toThrow(/^conditions\.amount:/);
  });
});
