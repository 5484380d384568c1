import { describe, expect, it } from 'vitest';
import {
  APPROVE_ACTION_ID,
  COMMENT_ACTION_ID,
  EDIT_ACTION_ID,
  REJECT_PRESET_ACTION_ID,
  REJECT_PRESET_BLOCK_ID,
  rejectReasonOf,
  REFETCH_ACTION_ID,
  REJECT_ACTION_ID,
  REJECT_MODAL_CALLBACK_ID,
  REJECT_REASON_ACTION_ID,
  REJECT_REASON_BLOCK_ID,
  approvalCard,
  decidedCard,
  ephemeralText,
  refetchedCard,
  rejectReasonModal,
  threadReply,
} from '../../src/slack/blocks.ts';
import { SLACK_LIMITS, escapeText, truncate } from '../../src/slack/mrkdwn.ts';
import type { ParamEdit } from '../../src/calls/param-edit.ts';
import type { ApprovalCardInput, DecidedCardInput, SlackMessage } from '../../src/slack/card-types.ts';

const expiresAt = new Date('2026-03-02T15:30:00.000Z');
const decidedAt = new Date('2026-03-02T14:05:00.000Z');
const now = new Date('2026-03-02T14:00:00.000Z');

const edit: ParamEdit = {
  by: 'U777',
  at: '2026-03-02T14:04:00.000Z',
  original_params: { invoice_id: 'INV-1042', amount: 742.5, currency: 'EUR' },
  params: { invoice_id: 'INV-1042', amount: 500, currency: 'EUR', note: 'partial <refund>' },
  diff: [
    { path: 'amount', change: 'changed', old: 742.5, new: 500 },
    { path: 'note', change: 'added', new: 'partial <refund>' },
  ],
  original_digest: 'a'.repeat(64),
  action_digest: 'b'.repeat(64),
};

function cardInput(overrides: Partial<ApprovalCardInput> = {}): ApprovalCardInput {
  return {
    approval_id: 'apr_01HV3K8M',
    intent: 'Refund invoice INV-1042 to the customer',
    tool: 'stripe.refund',
    agent_id: 'billing-agent',
    risk: 'medium',
    entity: 'cus_829',
    expires_at: expiresAt,
    reason: 'Refunds above 500 EUR need a human',
    params: { invoice_id: 'INV-1042', amount: 742.5, currency: 'EUR' },
    conditions: [
      { field: 'invoice.status', condition: 'paid', frozen_value: 'paid' },
      { field: 'invoice.amount', condition: '<= 1000', frozen_value: 742.5 },
    ],
    approvals_required: 1,
    approvals_received: 0,
    ...overrides,
  };
}

function decidedInput(overrides: Partial<DecidedCardInput> = {}): DecidedCardInput {
  return {
    ...cardInput(),
    status: 'approved',
    outcome: 'executed',
    decided_by: 'U123',
    decided_at: decidedAt,
    ...overrides,
  };
}

type Node = Record<string, unknown>;

function textOf(obj: unknown): string | undefined {
  return obj && typeof obj === 'object' && typeof (obj as Node).text === 'string' ? ((obj as Node).text as string) : undefined;
}

/** Walks a message's blocks and lists every Block Kit limit it breaks (empty when within). */
function limitViolations(message: SlackMessage): string[] {
  const problems: string[] = [];
  const check = (ok: boolean, what: string): void => {
    if (!ok) problems.push(what);
  };
  check(message.text.length > 0, 'top-level text is empty');
  check(message.blocks.length <= SLACK_LIMITS.blocks, `too many blocks: ${message.blocks.length}`);
  const total = JSON.stringify(message.blocks).length;
  check(total <= SLACK_LIMITS.totalChars, `blocks total ${total} characters`);
  const blockIds = message.blocks.map((b) => b.block_id).filter((id) => id !== undefined);
  check(new Set(blockIds).size === blockIds.length, 'duplicate block_id');

  const visit = (node: unknown, path: string): void => {
    if (Array.isArray(node)) {
      node.forEach((child, i) => visit(child, `${path}[${i}]`));
      return;
    }
    if (!node || typeof node !== 'object') return;
    const n = node as Node;
    const text = textOf(n);
    if (typeof n.block_id === 'string') check(n.block_id.length <= SLACK_LIMITS.blockId, `${path}.block_id too long`);
    switch (n.type) {
      case 'header':
        check((textOf(n.text) ?? '').length <= SLACK_LIMITS.headerText, `${path} header text too long`);
        check((n.text as Node).type === 'plain_text', `${path} header text not plain_text`);
        break;
      case 'section': {
        check(n.text !== undefined || n.fields !== undefined, `${path} section without text or fields`);
        if (n.text !== undefined) check((textOf(n.text) ?? '').length <= SLACK_LIMITS.sectionText, `${path} section text too long`);
        const fields = (n.fields ?? []) as unknown[];
        check(fields.length <= SLACK_LIMITS.sectionFields, `${path} too many fields`);
        fields.forEach((f, i) => check((textOf(f) ?? '').length <= SLACK_LIMITS.fieldText, `${path}.fields[${i}] too long`));
        break;
      }
      case 'context':
        check(((n.elements ?? []) as unknown[]).length <= SLACK_LIMITS.contextElements, `${path} too many context elements`);
        break;
      case 'actions':
        check(((n.elements ?? []) as unknown[]).length <= SLACK_LIMITS.actionsElements, `${path} too many actions`);
        break;
      case 'button':
        check((textOf(n.text) ?? '').length <= SLACK_LIMITS.buttonText, `${path} button text too long`);
        check(typeof n.value !== 'string' || n.value.length <= SLACK_LIMITS.buttonValue, `${path} button value too long`);
        check(typeof n.action_id === 'string' && n.action_id.length <= SLACK_LIMITS.actionId, `${path} action_id`);
        break;
      case 'mrkdwn':
      case 'plain_text':
        // Any text object anywhere stays within the largest text limit.
        check((text ?? '').length <= SLACK_LIMITS.sectionText, `${path} text too long`);
        break;
    }
    if (n.confirm && typeof n.confirm === 'object') {
      const confirm = n.confirm as Node;
      check((textOf(confirm.title) ?? '').length <= SLACK_LIMITS.confirmTitle, `${path}.confirm title too long`);
      check((textOf(confirm.text) ?? '').length <= SLACK_LIMITS.confirmText, `${path}.confirm text too long`);
    }
    for (const [key, value] of Object.entries(n)) if (typeof value === 'object') visit(value, `${path}.${key}`);
  };
  visit(message.blocks, 'blocks');
  return problems;
}

function blockOfType(message: SlackMessage, type: string): Node | undefined {
  return message.blocks.find((b) => b.type === type);
}

function allText(message: SlackMessage): string {
  return JSON.stringify(message.blocks);
}

function sectionText(message: SlackMessage, suffix: string): string {
  const block = message.blocks.find((b) => typeof b.block_id === 'string' && b.block_id.includes(`.${suffix}.`));
  return textOf(block?.text) ?? '';
}

describe('escapeText and truncate', () => {
  it('escapes Slack control characters, & first', () => {
    expect(escapeText('a & b <!channel> > c &amp;')).toBe('a &amp; b &lt;!channel&gt; &gt; c &amp;amp;');
  });

  it('truncates with an ellipsis and never splits a surrogate pair', () => {
    expect(truncate('abcdef', 10)).toBe('abcdef');
    expect(truncate('abcdef', 4)).toBe('abc…');
    expect(truncate('ab😀cd', 4)).toBe('ab…');
    expect(truncate('abc', 0)).toBe('');
  });
});

describe('approvalCard', () => {
  it('builds a typical card (snapshot)', () => {
    const card = approvalCard(cardInput());
    expect(limitViolations(card)).toEqual([]);
    expect(card).toMatchSnapshot();
  });

  it('shows the facts: fields, expiry as a Slack date, reason, params and conditions', () => {
    const card = approvalCard(cardInput({ approvals_required: 2, approvals_received: 1 }));
    expect(card.text).toBe('Approval needed: Refund invoice INV-1042 to the customer (stripe.refund, risk medium)');
    const header = blockOfType(card, 'header')!;
    expect(textOf(header.text)).toBe('Refund invoice INV-1042 to the customer');
    const fields = (card.blocks[1]!.fields as Node[]).map((f) => textOf(f));
    expect(fields).toEqual([
      '*Tool*\n`stripe.refund`',
      '*Agent*\n`billing-agent`',
      '*Risk*\n:large_yellow_circle: medium',
      '*Entity*\n`cus_829`',
      '*Expires*\n<!date^1772465400^{date_short_pretty} {time}|2026-03-02T15:30:00.000Z>',
      '*Approvals*\n1 of 2',
    ]);
    expect(sectionText(card, 'why')).toContain('Refunds above 500 EUR need a human');
    expect(sectionText(card, 'params')).toContain('```\n{\n  "invoice_id": "INV-1042",');
    expect(sectionText(card, 'cond')).toContain('• `invoice.amount` `<= 1000`'.replace('<', '&lt;'));
    expect(sectionText(card, 'cond')).toContain('was `742.5` at freeze');
    expect(blockOfType(card, 'context')).toBeUndefined();
  });

  it('has four buttons carrying the approval id; no confirm below high risk', () => {
    const actions = blockOfType(approvalCard(cardInput()), 'actions')!;
    const buttons = actions.elements as Node[];
    expect(buttons.map((b) => [b.action_id, b.style, b.value])).toEqual([
      [APPROVE_ACTION_ID, 'primary', 'apr_01HV3K8M'],
      [REJECT_ACTION_ID, 'danger', 'apr_01HV3K8M'],
      [REFETCH_ACTION_ID, undefined, 'apr_01HV3K8M'],
      [EDIT_ACTION_ID, undefined, 'apr_01HV3K8M'],
    ]);
    expect(buttons.every((b) => b.confirm === undefined)).toBe(true);
  });

  it('offers "Approve with comment" instead of "Edit & approve" when the params may not be edited', () => {
    const buttons = blockOfType(approvalCard(cardInput({ editable: false })), 'actions')!.elements as Node[];
    expect(buttons.map((b) => b.action_id)).toEqual([APPROVE_ACTION_ID, REJECT_ACTION_ID, REFETCH_ACTION_ID, COMMENT_ACTION_ID]);
    expect(textOf(buttons[3]!.text)).toBe('Approve with comment');
  });

  it("a card an edit created shows the edited params and the diff from the agent's", () => {
    const card = approvalCard(cardInput({ edited: edit }));
    expect(limitViolations(card)).toEqual([]);
    expect(sectionText(card, 'params')).toContain('*Params* (as edited)');
    expect(sectionText(card, 'params')).toContain('"amount": 500');
    expect(sectionText(card, 'edits')).toBe(':pencil2: *Params edited by* <@U777>\n• `amount`: `742.5` → `500`\n• `note`: added `"partial &lt;refund&gt;"`');
  });

  it('asks for confirmation on approve for a critical card (snapshot), not on reject', () => {
    const card = approvalCard(cardInput({ risk: 'critical', intent: 'Delete the production database replica', tool: 'db.drop_replica', entity: null }));
    expect(limitViolations(card)).toEqual([]);
    const [approve, reject] = blockOfType(card, 'actions')!.elements as Node[];
    expect(approve!.confirm).toMatchObject({
      title: { type: 'plain_text', text: 'Approve this critical-risk action?' },
      confirm: { text: 'Approve' },
      deny: { text: 'Cancel' },
    });
    expect(reject!.confirm).toBeUndefined();
    expect(textOf(card.blocks[1]!.fields && (card.blocks[1]!.fields as Node[])[2])).toBe('*Risk*\n:red_circle: critical');
    expect(textOf((card.blocks[1]!.fields as Node[])[3])).toBe('*Entity*\n_none_');
    expect(card).toMatchSnapshot();
  });

  it('asks for confirmation for high risk too, within the confirm limits for a long intent', () => {
    const card = approvalCard(cardInput({ risk: 'high', intent: 'x'.repeat(1000) }));
    expect(limitViolations(card)).toEqual([]);
    const [approve] = blockOfType(card, 'actions')!.elements as Node[];
    expect(approve!.confirm).toBeDefined();
  });

  it('truncates long params visibly and keeps every text and the total within limits', () => {
    const params = { rows: Array.from({ length: 2000 }, (_, i) => ({ id: i, note: `row <${i}> & more` })) };
    const fullJson = JSON.stringify(params, null, 2);
    const card = approvalCard(
      cardInput({
        params,
        reason: 'r'.repeat(5000),
        intent: 'i'.repeat(400),
        conditions: Array.from({ length: 200 }, (_, i) => ({ field: `f${i}`, condition: '> 0', frozen_value: 'v'.repeat(500) })),
        drift: {
          drifted: true,
          fields: Array.from({ length: 100 }, (_, i) => ({
            field: `f${i}`,
            frozen: 1,
            live: 'w'.repeat(1000),
            condition: '> 0',
            changed: true,
            satisfied: false,
          })),
        },
      }),
    );
    expect(limitViolations(card)).toEqual([]);
    const paramsText = sectionText(card, 'params');
    const match = /… \(truncated, (\d+) more characters\)/.exec(paramsText);
    expect(match).not.toBeNull();
    // What is shown plus what is counted as left out is the whole JSON.
    const shown = paramsText.slice(paramsText.indexOf('```\n') + 4, paramsText.lastIndexOf('\n```'));
    const unescaped = shown.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
    expect(unescaped.length + Number(match![1])).toBe(fullJson.length);
    expect(fullJson.startsWith(unescaped)).toBe(true);
    expect(sectionText(card, 'cond')).toMatch(/… and \d+ more$/);
    expect(blockOfType(card, 'actions')).toBeDefined();
  });

  it('keeps a params value with backticks inside its code block', () => {
    const card = approvalCard(cardInput({ params: { sql: '```drop``` `x`' } }));
    const text = sectionText(card, 'params');
    expect(text.match(/```/g)).toHaveLength(2);
  });

  it('escapes user text: no @channel, no broken entities', () => {
    const hostile = '<!channel> Tom & Jerry <https://evil.example|click>';
    const card = approvalCard(
      cardInput({
        intent: hostile,
        reason: hostile,
        agent_id: hostile,
        entity: hostile,
        params: { note: hostile },
        conditions: [{ field: hostile, condition: hostile, frozen_value: hostile }],
      }),
    );
    const json = allText(card) + card.text;
    expect(json).not.toContain('<!channel>');
    expect(json).not.toContain('<https://');
    expect(json).toContain('&lt;!channel&gt; Tom &amp; Jerry');
    // The only control sequences left are our own date formatting.
    const controls = json.match(/<[^>]*>/g) ?? [];
    expect(controls.every((c) => c.startsWith('<!date^'))).toBe(true);
    expect(limitViolations(card)).toEqual([]);
  });

  it('shows drift on a requeued card, field by field, and what it replaces', () => {
    const card = approvalCard(
      cardInput({
        approval_id: 'apr_2',
        previous_approval_id: 'apr_1',
        drift: {
          drifted: true,
          fields: [
            { field: 'invoice.amount', frozen: 742.5, live: 980, condition: '<= 1000', changed: true, satisfied: true },
            { field: 'invoice.status', frozen: 'paid', live: 'refunded', condition: 'paid', changed: true, satisfied: false },
            { field: 'customer.tier', frozen: 'gold', live: 'gold', condition: 'gold', changed: false, satisfied: true },
          ],
        },
      }),
    );
    const drift = sectionText(card, 'drift');
    expect(drift).toContain('• `invoice.amount`: approved `742.5` → live `980`');
    expect(drift).toContain('• `invoice.status`: approved `"paid"` → live `"refunded"` _(no longer satisfies `paid`)_');
    expect(drift).not.toContain('customer.tier');
    const context = blockOfType(card, 'context')!;
    expect(textOf((context.elements as Node[])[0])).toBe('Replaces `apr_1`');
    expect(card).toMatchSnapshot();
  });

  it('gives every block an id with the approval id, unique within the card', () => {
    const card = approvalCard(cardInput({ previous_approval_id: 'apr_0' }));
    for (const block of card.blocks) expect(block.block_id).toMatch(/^apr_01HV3K8M\.[a-z]+\.p0$/);
    expect(limitViolations(card)).toEqual([]);
  });

  it('is deterministic', () => {
    expect(approvalCard(cardInput())).toEqual(approvalCard(cardInput()));
  });
});

describe('the review link on a card', () => {
  const url = 'https://invoke.example/approvals/apr_1/review?t=eyJhIjoiYXByXzEifQ.c2ln';

  it('shows "Review in browser" under the facts when a link is given, within the limits', () => {
    const card = approvalCard(cardInput({ review_url: url }));
    const context = (card.blocks as Array<{ type: string; block_id?: string; elements?: Array<{ text: string }> }>).find((b) => b.block_id?.includes('.link.'));
    expect(context?.type).toBe('context');
    expect(context?.elements?.[0]?.text).toContain(`<${url}|Review in browser>`);
    expect(limitViolations(card)).toEqual([]);
    expect(JSON.stringify(refetchedCard(cardInput({ review_url: url }), { state_source: 'frozen', drift: null }, now).blocks)).toContain(url);
  });

  it('shows none without one, and never on a decided card', () => {
    expect(JSON.stringify(approvalCard(cardInput()).blocks)).not.toContain('Review in browser');
    expect(JSON.stringify(decidedCard(decidedInput()).blocks)).not.toContain('Review in browser');
  });
});

describe('decidedCard', () => {
  it('drops the buttons and says who decided, when, and the outcome (snapshot)', () => {
    const card = decidedCard(decidedInput({ detail: 'Refund re_3Q issued' }));
    expect(blockOfType(card, 'actions')).toBeUndefined();
    expect(limitViolations(card)).toEqual([]);
    const status = sectionText(card, 'status');
    expect(status).toBe(':white_check_mark: *Executed* · approved by <@U123>, <!date^1772460300^{date_short_pretty} {time}|2026-03-02T14:05:00.000Z>');
    expect(sectionText(card, 'detail')).toBe('Refund re_3Q issued');
    expect(card.text).toContain('decided by <@U123>');
    expect(card).toMatchSnapshot();
  });

  it('says "approved with edits", with the diff, when the params ran edited', () => {
    const card = decidedCard(decidedInput({ edited: edit }));
    expect(limitViolations(card)).toEqual([]);
    expect(sectionText(card, 'edits')).toMatch(/^:pencil2: \*Approved with edits by\* <@U777>\n• `amount`: `742.5` → `500`/);
    expect(sectionText(card, 'params')).toContain('"amount": 500');
  });

  it('escapes a decider that is not a Slack user id', () => {
    const card = decidedCard(decidedInput({ status: 'rejected', outcome: 'rejected', decided_by: 'api <ops@example.com>' }));
    const status = sectionText(card, 'status');
    expect(status).toContain(':no_entry_sign: *Rejected* · rejected by api &lt;ops@example.com&gt;');
    expect(status).not.toContain('<@');
  });

  it('uses fresh block ids, different from the pending card', () => {
    const pending = new Set(approvalCard(cardInput()).blocks.map((b) => b.block_id));
    for (const block of decidedCard(decidedInput()).blocks) expect(pending.has(block.block_id)).toBe(false);
  });
});

describe('refetchedCard', () => {
  const noDrift = {
    drifted: false,
    fields: [{ field: 'invoice.status', frozen: 'paid', live: 'paid', condition: 'paid', changed: false, satisfied: true }],
  };

  it('keeps the buttons and says there is no drift', () => {
    const card = refetchedCard(cardInput(), { state_source: 'stripe.get_invoice', drift: noDrift }, now);
    expect(blockOfType(card, 'actions')).toBeDefined();
    const live = sectionText(card, 'live');
    expect(live).toContain('No drift since the freeze');
    expect(live).toContain('`stripe.get_invoice`');
    expect(live).toContain('<!date^1772460000^');
    expect(limitViolations(card)).toEqual([]);
    expect(refetchedCard(cardInput(), { state_source: 's', drift: null }, now).blocks.some((b) => String(textOf(b.text)).includes('No drift'))).toBe(true);
  });

  it('lists live drift field by field', () => {
    const drift = {
      drifted: true,
      fields: [{ field: 'invoice.status', frozen: 'paid', live: 'disputed', condition: 'paid', changed: true, satisfied: false }],
    };
    const live = sectionText(refetchedCard(cardInput(), { state_source: 'stripe.get_invoice', drift }, now), 'live');
    expect(live).toContain(':warning: *Live state differs from the freeze*');
    expect(live).toContain('• `invoice.status`: approved `"paid"` → live `"disputed"`');
  });

  it('has block ids different from the pending card and from an earlier refetch', () => {
    const pending = approvalCard(cardInput()).blocks.map((b) => b.block_id);
    const first = refetchedCard(cardInput(), { state_source: 's', drift: noDrift }, now).blocks.map((b) => b.block_id);
    const later = refetchedCard(cardInput(), { state_source: 's', drift: noDrift }, new Date(now.getTime() + 1000)).blocks.map((b) => b.block_id);
    expect(first.filter((id) => pending.includes(id))).toEqual([]);
    expect(later.filter((id) => first.includes(id))).toEqual([]);
  });
});

describe('threadReply', () => {
  const reply = (o: Partial<Parameters<typeof threadReply>[0]>): string => {
    const message = threadReply({ status: 'approved', outcome: 'executed', decided_by: 'U123', ...o });
    expect(limitViolations(message)).toEqual([]);
    return textOf(message.blocks[0]!.text)!;
  };

  it('executed: the result summary as a truncated code block', () => {
    expect(reply({ result_summary: '{"refund":"re_3Q"}' })).toBe(':white_check_mark: *Executed* after approval by <@U123>.\n```\n{"refund":"re_3Q"}\n```');
    const long = reply({ result_summary: 'z'.repeat(10_000) });
    expect(long).toMatch(/… \(truncated, \d+ more characters\)_$/);
  });

  it('rejected: the reason, escaped and quoted', () => {
    expect(reply({ status: 'rejected', outcome: 'rejected', reason: 'Amount <too> high\n& wrong customer' })).toBe(
      ':no_entry_sign: *Rejected* by <@U123>:\n>Amount &lt;too&gt; high\n>&amp; wrong customer',
    );
    expect(reply({ status: 'rejected', outcome: 'rejected' })).toBe(':no_entry_sign: *Rejected* by <@U123> (no reason given).');
  });

  it('cancelled when expired, blocked, replan_required, failed', () => {
    expect(reply({ status: 'expired', outcome: 'cancelled', decided_by: 'system' })).toContain('*Cancelled*: the approval expired');
    expect(reply({ outcome: 'blocked', reason: 'entity locked' })).toContain(':no_entry: *Blocked*');
    expect(reply({ outcome: 'replan_required' })).toContain('*Replan required*');
    expect(reply({ outcome: 'failed', reason: 'HTTP 502' })).toContain(':x: *Failed*');
  });

  it('requeued and escalated: a fresh approval follows in this thread', () => {
    expect(reply({ outcome: 'requeued', new_approval_id: 'apr_2' })).toBe(':repeat: State changed since the approval; a fresh approval follows in this thread (`apr_2`).');
    expect(reply({ status: 'escalated', outcome: 'escalated', new_approval_id: 'apr_3' })).toContain('*Escalated* by <@U123>; a fresh approval follows in this thread (`apr_3`).');
  });

  it('executed with edits: who edited, the diff and the comment', () => {
    expect(reply({ edited: edit, decided_by: 'U777', comment: 'half now' })).toBe(
      ':white_check_mark: *Executed* with params edited by <@U777>, approved by <@U777>.\n*Edits*\n• `amount`: `742.5` → `500`\n• `note`: added `"partial &lt;refund&gt;"`\n_Comment:_\n>half now',
    );
    expect(reply({ status: 'invalidated', outcome: 'edited', edited: edit, new_approval_id: 'apr_9' })).toMatch(
      /^:pencil2: \*Params edited\* by <@U123>; the count of approvals starts again on the edited call \(`apr_9`\)\.\n\*Edits\*/,
    );
  });

  it('an unknown outcome still reads', () => {
    expect(reply({ outcome: 'partially_approved', status: 'pending' })).toBe(':information_source: *Partially approved* (pending), <@U123>.');
  });

  it('has a top-level text per outcome (snapshot)', () => {
    const outcomes = ['executed', 'rejected', 'cancelled', 'blocked', 'replan_required', 'requeued', 'escalated', 'failed'];
    const texts = outcomes.map((outcome) => threadReply({ status: 'approved', outcome, decided_by: 'U123', reason: 'because' }).text);
    expect(texts.every((t) => t.length > 0)).toBe(true);
    expect(texts).toMatchSnapshot();
  });
});

describe('rejectReasonModal', () => {
  it('offers preset reasons and free text; the reason is either or both', () => {
    const blocks = rejectReasonModal('apr_1', 'x').blocks as Node[];
    expect(blocks[1]).toMatchObject({ type: 'input', block_id: REJECT_PRESET_BLOCK_ID, optional: true, element: { type: 'static_select', action_id: REJECT_PRESET_ACTION_ID } });
    expect(((blocks[1]!.element as Node).options as Node[]).map((o) => textOf(o.text))).toEqual(['Wrong parameters', 'Not authorised', 'Needs more context', 'Duplicate']);
    expect(rejectReasonOf('wrong_parameters', '  amount should be 50 ')).toBe('Wrong parameters: amount should be 50');
    expect(rejectReasonOf('duplicate', '')).toBe('Duplicate');
    expect(rejectReasonOf(null, 'paid by phone')).toBe('paid by phone');
    expect(rejectReasonOf(undefined, '   ')).toBeNull();
    expect(rejectReasonOf('made_up', null)).toBeNull();
  });

  it('carries the approval id and asks for a reason', () => {
    const view = rejectReasonModal('apr_01HV3K8M', 'Refund <all> & more');
    expect(view).toMatchObject({
      type: 'modal',
      callback_id: REJECT_MODAL_CALLBACK_ID,
      private_metadata: 'apr_01HV3K8M',
      submit: { type: 'plain_text', text: 'Reject' },
      close: { type: 'plain_text', text: 'Cancel' },
    });
    const blocks = view.blocks as Node[];
    expect(blocks[2]).toMatchObject({
      type: 'input',
      block_id: REJECT_REASON_BLOCK_ID,
      optional: true,
      element: { type: 'plain_text_input', action_id: REJECT_REASON_ACTION_ID, multiline: true, max_length: 2000 },
    });
    expect(textOf(blocks[0]!.text)).toContain('Refund &lt;all&gt; &amp; more');
    expect(String(textOf(view.title)).length).toBeLessThanOrEqual(24);
  });
});

describe('ephemeralText', () => {
  it('is one mrkdwn section with the same top-level text', () => {
    expect(ephemeralText('Not allowed: only approvers decide.')).toEqual({
      text: 'Not allowed: only approvers decide.',
      blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 'Not allowed: only approvers decide.' } }],
    });
  });

  it('is cut to the section limit without leaving half a mention', () => {
    const message = ephemeralText('a'.repeat(2990) + ' <@U123456789> tail');
    expect(limitViolations(message)).toEqual([]);
    expect(message.text.endsWith('…')).toBe(true);
    expect(message.text).not.toContain('<@');
  });
});
