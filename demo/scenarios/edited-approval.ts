// 7. The agent asks for the wrong amount: the approver fixes it in Slack ("Edit & approve")
// instead of rejecting and waiting for a re-plan; the edited call runs, with its provenance.
import { randomBytes } from 'node:crypto';
import { EDIT_ACTION_ID } from '../../src/slack/blocks.ts';
import { EDIT_MODAL_CALLBACK_ID } from '../../src/slack/edit-modal.ts';
import { signSlackRequest } from '../../src/slack/verify-request.ts';
import { agentLoop, httpJson, waitFor } from '../agent.ts';
import { APPROVER, CHANNEL } from '../environment.ts';
import type { WebhookSourceMock } from '../mocks/webhook-source.ts';
import { direct, invokeOnce, oneLine, type Ctx, type Scenario } from './scenario.ts';

// The customer asked for 10% back; the agent read the order total.
const ASKED = { order_id: 'ord_5001', amount: 2400 };
const MEANT = 240;

function refundCounts(shop: WebhookSourceMock) {
  return { refund_requests: shop.events.length, amount_sent: shop.events.reduce((sum, e) => sum + e.amount, 0) };
}

export const editedApproval: Scenario = {
  id: 7,
  title: 'Edited approval',
  measures: [
    { key: 'amount_sent', label: 'amount sent to the refund API' },
    { key: 'refund_requests', label: 'refund requests' },
  ],
  async naive(ctx) {
    const { shop } = ctx.env;
    // A human glances at "refund ord_5001?" in chat and says yes; the amount goes out as asked.
    await agentLoop(direct(ctx, 'POST', `${shop.url}/refunds`, ASKED), ctx.signal);
    return { counts: refundCounts(shop), summary: `refunded ${ASKED.amount} where ${MEANT} was meant` };
  },
  async invoke(ctx) {
    const { shop, slack, built, invokeUrl, apiKey } = ctx.env;
    const frozen = await invokeOnce(ctx, {
      tool: 'shop.refund_order',
      params: ASKED,
      idempotency_key: `refund:${ASKED.order_id}:partial`,
      approval_contract: { intent: 'partial_refund' },
    });
    if (frozen.body.status !== 'pending_approval') throw new Error(`expected pending_approval, got ${frozen.body.status}`);
    const approvalId = String(frozen.body.approval.id);
    const callId = String(frozen.body.call_id);
    const card = await waitFor(
      'the approval card in Slack',
      async () => {
        await built.services.deliverOutbox();
        return slack.messages.find((m) => m.thread_ts === undefined && JSON.stringify(m.blocks ?? '').includes(approvalId));
      },
      ctx.signal,
    );
    // The approver clicks "Edit & approve": Invoke opens a modal with the params as fields.
    const trigger = `trigger-${randomBytes(4).toString('hex')}`;
    await postInteraction(ctx, {
      type: 'block_actions',
      user: { id: APPROVER, username: 'approver', team_id: 'T0INVOKE' },
      team: { id: 'T0INVOKE', domain: 'invoke-emulator' },
      api_app_id: 'A0INVOKE',
      trigger_id: trigger,
      response_url: slack.responseUrl(`edit-${approvalId}`),
      container: { type: 'message', message_ts: card.ts, channel_id: CHANNEL, is_ephemeral: false },
      channel: { id: CHANNEL, name: 'approvals' },
      message: { ts: card.ts, text: 'approval card' },
      actions: [{ action_id: EDIT_ACTION_ID, block_id: `${approvalId}.actions.p0`, value: approvalId, type: 'button', action_ts: String(Date.now() / 1000) }],
    });
    const modal = await waitFor('the edit modal', async () => slack.views.find((v) => v.trigger_id === trigger)?.view, ctx.signal);
    // They change the amount and submit: the values come back as Slack sends them.
    const values: Record<string, Record<string, unknown>> = {};
    for (const block of (modal.blocks as Array<Record<string, any>>).filter((b) => b.type === 'input')) {
      const element = block.element as Record<string, any>;
      const value = block.block_id === 'param:amount' ? String(MEANT) : block.block_id === 'comment' ? 'the customer asked for 10%' : (element.initial_value ?? null);
      values[block.block_id] = { [element.action_id]: { type: element.type, value } };
    }
    await postInteraction(ctx, {
      type: 'view_submission',
      user: { id: APPROVER },
      team: { id: 'T0INVOKE' },
      view: { id: 'V0EDIT', callback_id: EDIT_MODAL_CALLBACK_ID, private_metadata: modal.private_metadata, state: { values } },
    });
    const status = await waitFor(
      'the edited call to run',
      async () => {
        const res = await httpJson('GET', `${invokeUrl}/approvals/${approvalId}`, undefined, 5_000, { 'x-api-key': apiKey });
        const s = res.body?.approval?.status as string | undefined;
        // `approved` is the claim before the run: wait for what the run ended in.
        return s !== 'pending' && s !== 'approved' && s;
      },
      ctx.signal,
    );
    const cardAfter = await waitFor(
      'the card showing the edit',
      async () => {
        await built.services.deliverOutbox();
        const m = slack.messages.find((x) => x.ts === card.ts);
        return m && m.updates > 0 && m;
      },
      ctx.signal,
    );
    const trace = await httpJson('GET', `${invokeUrl}/traces/${callId}`, undefined, 5_000, { 'x-api-key': apiKey });
    const edited = trace.body?.answer?.edited as { by?: string; diff?: Array<{ path: string; change: string; old?: unknown; new?: unknown }> } | undefined;
    ctx.slackThread.push(
      ...slack.messages.filter((m) => m.ts === card.ts || m.thread_ts === card.ts).map((m) => `${m.ts === card.ts ? 'card (edited)' : 'thread: reply'} | ${oneLine(m.text ?? '')}`),
    );
    return {
      counts: refundCounts(shop),
      outcome: String(trace.body?.answer?.status ?? status),
      details: {
        approval_status: status,
        edited_by: edited?.by ?? 'nobody',
        diff: (edited?.diff ?? []).map((d) => `${d.path} ${d.change}: ${JSON.stringify(d.old)} -> ${JSON.stringify(d.new)}`).join('; '),
        card_shows_edit: JSON.stringify(cardAfter.blocks ?? '').includes('Approved with edits'),
      },
      summary: `the approver edited the amount ${ASKED.amount} -> ${MEANT} in Slack; the edited refund ran once, the card and the answer show the diff`,
    };
  },
};

async function postInteraction(ctx: Ctx, payload: Record<string, unknown>): Promise<void> {
  const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  const response = await fetch(`${ctx.env.invokeUrl}/slack/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...signSlackRequest(ctx.env.signingSecret, body, Math.floor(Date.now() / 1000)) },
    body,
    signal: AbortSignal.timeout(5_000),
  });
  const text = await response.text();
  if (response.status !== 200 || text !== '') throw new Error(`Slack interaction answered ${response.status} ${text}`);
}
