import { describe, expect, it } from 'vitest';
import { HOME_MAX_BLOCKS, HOME_MAX_CARDS, homeView } from '../../src/slack/app-home.ts';
import type { ApprovalCardInput } from '../../src/slack/card-types.ts';

/** A card with every optional section (conditions, drift, a replaced approval): the most blocks one card takes. */
function fullCard(i: number): ApprovalCardInput {
  return {
    approval_id: `apr_${i}`,
    intent: `intent ${i}`,
    tool: 'billing.send_reminder',
    agent_id: 'collector',
    risk: 'high',
    entity: 'inv_1',
    expires_at: new Date('2030-01-01T00:00:00Z'),
    reason: 'x'.repeat(4000),
    params: { note: 'y'.repeat(4000) },
    conditions: [{ field: 'balance', condition: '> 0', frozen_value: 100 }],
    approvals_required: 2,
    approvals_received: 1,
    drift: { drifted: true, fields: [{ field: 'balance', frozen: 100, live: 0, changed: true, satisfied: false, condition: '> 0' }] },
    previous_approval_id: `apr_prev_${i}`,
  };
}

describe('App Home view', () => {
  const now = new Date('2029-01-01T00:00:00Z');

  it(`fits the largest cards under ${HOME_MAX_BLOCKS} blocks, with unique block ids, and counts what it leaves out`, () => {
    const pending = Array.from({ length: 25 }, (_, i) => fullCard(i));
    const view = homeView({ isApprover: true, pending, scannedAll: true, now });
    const blocks = view.blocks as Array<{ type: string; block_id?: string; elements?: Array<{ text?: string; value?: string }> }>;
    expect(blocks.length).toBeLessThanOrEqual(HOME_MAX_BLOCKS);
    const ids = blocks.map((b) => b.block_id);
    expect(new Set(ids).size).toBe(ids.length);
    const shown = blocks.filter((b) => b.type === 'actions');
    expect(shown).toHaveLength(HOME_MAX_CARDS);
    expect(shown.map((b) => b.elements![0]!.value)).toEqual(pending.slice(0, HOME_MAX_CARDS).map((p) => p.approval_id));
    expect(JSON.stringify(blocks.at(-1))).toContain(`${25 - HOME_MAX_CARDS} more not shown`);
  });

  it('says when more were pending than were looked through', () => {
    const view = homeView({ isApprover: true, pending: [fullCard(1)], scannedAll: false, now });
    expect(JSON.stringify(view.blocks)).toContain('*1+* pending');
    expect(JSON.stringify(view.blocks)).toContain('more may be waiting');
  });
});
