import { describe, expect, it } from 'vitest';
import type { ApprovalContract, CallRequest } from '../../src/calls/call-request.ts';
import type { Checkpoint } from '../../src/approvals/checkpoint.ts';
import { decideThaw, type ThawVerdict } from '../../src/approvals/thaw.ts';
import { ValidationError } from '../../src/errors.ts';
import type { MatchedRule } from '../../src/policy/policy.ts';

/**
 * `decideThaw` is pure: checkpoint + live state -> verdict. Checkpoints are built by hand here, so
 * every branch is reached without a store, a tool or a clock.
 */

const request: CallRequest = {
  tool: 'billing.refund',
  params: { customer_id: 'cust_123', amount: 40 },
  agent_id: 'agent-1',
  action: 'refund',
};

function checkpoint(overrides: Partial<Checkpoint> = {}): Checkpoint {
  return {
    tool: 'billing.refund',
    params: { customer_id: 'cust_123', amount: 40 },
    agent_id: 'agent-1',
    action: 'refund',
    env: null,
    workflow: null,
    resource: null,
    variables: {},
    tool_outputs: {},
    policy_rule: null,
    contract: null,
    entity_resolution: null,
    frozen_state: null,
    frozen_state_error: null,
    failure: null,
    requester: 'key_requester',
    callback_url: null,
    request,
    action_digest: 'digest',
    ...overrides,
  };
}

function contract(overrides: Partial<ApprovalContract> = {}): ApprovalContract {
  return { intent: 'refund a duplicate charge', conditions: {}, threshold: 'strict', on_mismatch: 'requeue', ...overrides };
}

function rule(overrides: Partial<MatchedRule> = {}): MatchedRule {
  return { name: 'refunds need a human', when: 'tool == "billing.refund"', effect: 'require_approval', source: 'server', index: 0, ...overrides };
}

const invoiceContract = (threshold: 'strict' | 'conditions', extra: Partial<ApprovalContract> = {}) =>
  contract({ threshold, conditions: { 'invoice.status': 'open', 'invoice.amount': '> 0' }, ...extra });

const frozenInvoice = { invoice: { status: 'open', amount: 100 } };

function thaw(cp: Checkpoint, liveState: Record<string, unknown>): ThawVerdict {
  return decideThaw({ checkpoint: cp, liveState });
}

describe('decideThaw: the rule allowed_action', () => {
  it('cancels when the rule allows another action than the frozen one', () => {
    const verdict = thaw(checkpoint({ policy_rule: rule({ allowed_action: 'void' }) }), {});
    expect(verdict.outcome).toBe('cancelled');
    if (verdict.outcome !== 'cancelled') return;
    expect(verdict.reason).toContain('"void"');
    expect(verdict.reason).toContain('"refund"');
  });

  it('cancels when the rule names an action and the frozen call has none', () => {
    const verdict = thaw(checkpoint({ action: null, policy_rule: rule({ allowed_action: 'refund' }) }), {});
    expect(verdict.outcome).toBe('cancelled');
    if (verdict.outcome === 'cancelled') expect(verdict.reason).toContain('null');
  });

  it('goes on when the allowed action matches, or the rule names none, or there is no rule', () => {
    expect(thaw(checkpoint({ policy_rule: rule({ allowed_action: 'refund' }) }), {})).toEqual({ outcome: 'execute', drift: null });
    expect(thaw(checkpoint({ policy_rule: rule() }), {})).toEqual({ outcome: 'execute', drift: null });
    expect(thaw(checkpoint({ policy_rule: null }), {})).toEqual({ outcome: 'execute', drift: null });
  });

  it('is checked before the entity and drift', () => {
    const cp = checkpoint({
      policy_rule: rule({ allowed_action: 'void' }),
      entity_resolution: { entity_id: 'cust_123', entity_type: 'customer' },
      contract: invoiceContract('strict'),
      frozen_state: frozenInvoice,
    });
    expect(thaw(cp, { customer_id: 'cust_999', invoice: { status: 'paid' } }).outcome).toBe('cancelled');
  });
});

describe('decideThaw: entity resolution against live state', () => {
  const resolved = { entity_id: 'cust_123', entity_type: 'customer' };

  it('blocks when live state now points at another entity of the resolved kind', () => {
    const verdict = thaw(checkpoint({ entity_resolution: resolved }), { customer_id: 'cust_999' });
    expect(verdict.outcome).toBe('blocked');
    if (verdict.outcome !== 'blocked') return;
    expect(verdict.mismatches).toEqual([{ field: 'state.customer_id', expected: 'cust_123', actual: 'cust_999' }]);
    expect(verdict.reason).toContain('state.customer_id');
    expect(verdict.reason).toContain('cust_999');
  });

  it('blocks on a nested entity object (`customer.id`) and on an id carrying the prefix', () => {
    expect(thaw(checkpoint({ entity_resolution: resolved }), { customer: { id: 'cust_7' } }).outcome).toBe('blocked');
    expect(thaw(checkpoint({ entity_resolution: { entity_id: 'cust_123' } }), { owner_id: 'cust_8' }).outcome).toBe('blocked');
  });

  it('blocks when the frozen params or variables point elsewhere (the checkpoint is judged too)', () => {
    expect(thaw(checkpoint({ entity_resolution: resolved, params: { customer_id: 'cust_1' } }), {}).outcome).toBe('blocked');
    expect(thaw(checkpoint({ entity_resolution: resolved, variables: { entity_id: 'cust_2' } }), {}).outcome).toBe('blocked');
  });

  it('goes on when live state agrees, or names only ids of other kinds', () => {
    expect(thaw(checkpoint({ entity_resolution: resolved }), { customer_id: 'cust_123', user_id: 'usr_9', invoice_id: 'inv_1' })).toEqual({
      outcome: 'execute',
      drift: null,
    });
  });

  it('is checked before drift', () => {
    const cp = checkpoint({ entity_resolution: resolved, contract: invoiceContract('strict'), frozen_state: frozenInvoice });
    expect(thaw(cp, { customer_id: 'cust_999', invoice: { status: 'paid', amount: 0 } }).outcome).toBe('blocked');
  });
});

describe('decideThaw: drift against the contract', () => {
  it('unchanged and satisfied: executes under both thresholds, with the drift report', () => {
    for (const threshold of ['strict', 'conditions'] as const) {
      const verdict = thaw(checkpoint({ contract: invoiceContract(threshold), frozen_state: frozenInvoice }), { invoice: { status: 'open', amount: 100 } });
      expect(verdict.outcome).toBe('execute');
      if (verdict.outcome !== 'execute') continue;
      expect(verdict.drift?.drifted).toBe(false);
      expect(verdict.drift?.fields.map((f) => [f.field, f.changed, f.satisfied])).toEqual([
        ['invoice.status', false, true],
        ['invoice.amount', false, true],
      ]);
    }
  });

  it('strict: a condition field that changed but still satisfies requeues', () => {
    const verdict = thaw(checkpoint({ contract: invoiceContract('strict'), frozen_state: frozenInvoice }), { invoice: { status: 'open', amount: 90 } });
    expect(verdict.outcome).toBe('requeued');
    if (verdict.outcome !== 'requeued') return;
    expect(verdict.drift.drifted).toBe(true);
    expect(verdict.drift.fields.find((f) => f.field === 'invoice.amount')).toEqual({
      field: 'invoice.amount',
      frozen: 100,
      live: 90,
      condition: '> 0',
      changed: true,
      satisfied: true,
    });
    // Only the offending field is named.
    expect(verdict.reason).toBe('live state drifted since the freeze (strict): invoice.amount');
  });

  it('conditions: the same change still satisfies, so it executes', () => {
    const verdict = thaw(checkpoint({ contract: invoiceContract('conditions'), frozen_state: frozenInvoice }), { invoice: { status: 'open', amount: 90 } });
    expect(verdict.outcome).toBe('execute');
    if (verdict.outcome !== 'execute') return;
    expect(verdict.drift?.drifted).toBe(false);
    expect(verdict.drift?.fields.find((f) => f.field === 'invoice.amount')).toMatchObject({ changed: true, satisfied: true });
  });

  it('a condition no longer satisfied requeues under both thresholds', () => {
    for (const threshold of ['strict', 'conditions'] as const) {
      const verdict = thaw(checkpoint({ contract: invoiceContract(threshold), frozen_state: frozenInvoice }), { invoice: { status: 'paid', amount: 100 } });
      expect(verdict.outcome).toBe('requeued');
      if (verdict.outcome !== 'requeued') continue;
      expect(verdict.reason).toBe(`live state drifted since the freeze (${threshold}): invoice.status`);
      expect(verdict.drift.fields.find((f) => f.field === 'invoice.status')).toMatchObject({ frozen: 'open', live: 'paid', changed: true, satisfied: false });
    }
  });

  it('a condition field gone from live state is unsatisfied (and, under strict, changed)', () => {
    const verdict = thaw(checkpoint({ contract: invoiceContract('strict'), frozen_state: frozenInvoice }), { invoice: { status: 'open' } });
    expect(verdict.outcome).toBe('requeued');
    if (verdict.outcome !== 'requeued') return;
    expect(verdict.drift.fields.find((f) => f.field === 'invoice.amount')).toMatchObject({ frozen: 100, live: undefined, changed: true, satisfied: false });
    expect(thaw(checkpoint({ contract: invoiceContract('conditions'), frozen_state: frozenInvoice }), { invoice: { status: 'open' } }).outcome).toBe('requeued');
  });

  it('names every offending field in the reason', () => {
    const verdict = thaw(checkpoint({ contract: invoiceContract('strict'), frozen_state: frozenInvoice }), { invoice: { status: 'paid', amount: 5 } });
    expect(verdict).toMatchObject({ outcome: 'requeued', reason: 'live state drifted since the freeze (strict): invoice.status, invoice.amount' });
  });

  it('strict compares JSON values deeply: the same object in another key order has not changed', () => {
    const cp = checkpoint({ contract: contract({ conditions: { address: { city: 'Oslo', zip: '0150' } } }), frozen_state: { address: { city: 'Oslo', zip: '0150' } } });
    expect(thaw(cp, { address: { zip: '0150', city: 'Oslo' } }).outcome).toBe('execute');
    expect(thaw(cp, { address: { zip: '0151', city: 'Oslo' } }).outcome).toBe('requeued');
  });

  it('reads flattened state keys (`{"invoice.status": ...}`) as well as nested ones', () => {
    const cp = checkpoint({ contract: invoiceContract('strict'), frozen_state: frozenInvoice });
    expect(thaw(cp, { 'invoice.status': 'open', 'invoice.amount': 100 }).outcome).toBe('execute');
  });
});

describe('decideThaw: a condition field missing at freeze is judged by the condition alone', () => {
  const cases: Array<[string, Record<string, unknown> | null]> = [
    ['no frozen state at all', null],
    ['an empty frozen state', {}],
    ['a frozen state without that field', { invoice: { status: 'open' } }],
  ];

  for (const [label, frozen] of cases) {
    it(`${label}: strict executes when the live value satisfies`, () => {
      const verdict = thaw(checkpoint({ contract: invoiceContract('strict'), frozen_state: frozen }), { invoice: { status: 'open', amount: 90 } });
      expect(verdict.outcome).toBe('execute');
      if (verdict.outcome !== 'execute') return;
      const amount = verdict.drift?.fields.find((f) => f.field === 'invoice.amount');
      expect(amount).toMatchObject({ frozen: undefined, live: 90, changed: false, satisfied: true });
    });

    it(`${label}: strict requeues when the live value does not satisfy`, () => {
      const verdict = thaw(checkpoint({ contract: invoiceContract('strict'), frozen_state: frozen }), { invoice: { status: 'open', amount: 0 } });
      expect(verdict).toMatchObject({ outcome: 'requeued', reason: 'live state drifted since the freeze (strict): invoice.amount' });
    });
  }

  it('a field that was known is still compared under strict when another one was missing', () => {
    // `status` was frozen as `open`; it changes to `draft`, which still satisfies the condition.
    const loose = checkpoint({
      contract: contract({ conditions: { 'invoice.status': 'in ["open", "draft"]', 'invoice.amount': '> 0' } }),
      frozen_state: { invoice: { status: 'open' } },
    });
    expect(thaw(loose, { invoice: { status: 'draft', amount: 90 } })).toMatchObject({
      outcome: 'requeued',
      reason: 'live state drifted since the freeze (strict): invoice.status',
    });
    expect(thaw(loose, { invoice: { status: 'open', amount: 90 } }).outcome).toBe('execute');
  });
});

describe('decideThaw: on_mismatch replan', () => {
  it('answers replan_required instead of requeueing, with the same drift and reason', () => {
    const live = { invoice: { status: 'open', amount: 90 } };
    const requeued = thaw(checkpoint({ contract: invoiceContract('strict'), frozen_state: frozenInvoice }), live);
    const replan = thaw(checkpoint({ contract: invoiceContract('strict', { on_mismatch: 'replan' }), frozen_state: frozenInvoice }), live);
    expect(requeued.outcome).toBe('requeued');
    expect(replan.outcome).toBe('replan_required');
    if (requeued.outcome !== 'requeued' || replan.outcome !== 'replan_required') return;
    expect(replan.drift).toEqual(requeued.drift);
    expect(replan.reason).toBe(requeued.reason);
  });

  it('under conditions too, when a condition fails', () => {
    const cp = checkpoint({ contract: invoiceContract('conditions', { on_mismatch: 'replan' }), frozen_state: frozenInvoice });
    expect(thaw(cp, { invoice: { status: 'void', amount: 100 } }).outcome).toBe('replan_required');
  });

  it('does nothing when there is no drift', () => {
    const cp = checkpoint({ contract: invoiceContract('strict', { on_mismatch: 'replan' }), frozen_state: frozenInvoice });
    expect(thaw(cp, { invoice: { status: 'open', amount: 100 } }).outcome).toBe('execute');
  });
});

describe('decideThaw: no contract', () => {
  it('executes with no drift report, whatever live state says', () => {
    expect(thaw(checkpoint(), {})).toEqual({ outcome: 'execute', drift: null });
    expect(thaw(checkpoint({ frozen_state: frozenInvoice }), { invoice: { status: 'paid', amount: -1 } })).toEqual({ outcome: 'execute', drift: null });
  });

  it('a contract without conditions has nothing to drift from', () => {
    const cp = checkpoint({ contract: contract({ conditions: {}, on_mismatch: 'replan' }), frozen_state: frozenInvoice });
    expect(thaw(cp, { invoice: { status: 'paid' } })).toEqual({ outcome: 'execute', drift: null });
  });
});

describe('decideThaw: purity and bad input', () => {
  it('does not mutate the checkpoint or the live state', () => {
    const cp = checkpoint({
      policy_rule: rule({ allowed_action: 'refund' }),
      entity_resolution: { entity_id: 'cust_123', entity_type: 'customer' },
      contract: invoiceContract('strict'),
      frozen_state: frozenInvoice,
    });
    const live = { customer_id: 'cust_123', invoice: { status: 'open', amount: 90 } };
    const before = structuredClone({ cp, live });
    const first = thaw(cp, live);
    expect({ cp, live }).toEqual(before);
    expect(thaw(cp, live)).toEqual(first);
  });

  it('a malformed condition is a validation error, not a verdict', () => {
    const cp = checkpoint({ contract: contract({ conditions: { amount: '> abc' } }), frozen_state: { amount: 1 } });
    expect(() => thaw(cp, { amount: 1 })).toThrow(ValidationError);
  });
});
