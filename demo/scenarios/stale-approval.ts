// 5. An approval goes stale while it waits: Invoke revalidates at thaw and requeues it in the Slack thread.
import { randomBytes } from 'node:crypto';
import { APPROVE_ACTION_ID } from '../../src/slack/blocks.ts';
import { signSlackRequest } from '../../src/slack/verify-request.ts';
import { agentLoop, httpJson, waitFor } from '../agent.ts';
import { APPROVER, CHANNEL } from '../environment.ts';
import { direct, invokeOnce, oneLine, type Ctx, type Scenario } from './scenario.ts';

const INVOICE_ID = 'inv_2001';

export const staleApproval: Scenario = {
  id: 5,
  title: 'Stale approval',
  measures: [
    { key: 'stale_reminders', label: 'reminders sent for an invoice already paid' },
    { key: 'reminders', label: 'reminders sent' },
    { key: 'slack_thread_posts', label: 'Slack: posts in the card thread' },
    { key: 'slack_card_updates', label: 'Slack: chat.update of the card' },
  ],
  async naive(ctx) {
    const { payments } = ctx.env;
    const read = await agentLoop(direct(ctx, 'GET', `${payments.url}/invoices/${INVOICE_ID}`), ctx.signal);
    const seen = read.value?.body as { invoice_status?: string; balance?: number } | undefined;
    // A human says "yes" in chat a while later; meanwhile the customer pays in full.
    payments.payInvoice(INVOICE_ID);
    await agentLoop(direct(ctx, 'POST', `${payments.url}/invoices/${INVOICE_ID}/reminders`, {}), ctx.signal);
    const counts = { reminders: payments.reminders.length, stale_reminders: payments.reminders.filter((r) => r.invoice_status_at_send !== 'overdue').length };
    return { counts, summary: `saw ${seen?.invoice_status} ${seen?.balance}, got a "yes", sent the reminder anyway` };
  },
  async invoke(ctx) {
    const { payments, slack, built, invokeUrl, apiKey } = ctx.env;
    const call = {
      tool: 'payments.send_reminder',
      params: { invoice_id: INVOICE_ID },
      idempotency_key: `remind:${INVOICE_ID}`,
      approval_contract: {
        intent: 'send_overdue_reminder',
        conditions: { invoice_status: 'overdue', balance: '> 0' },
        threshold: 'strict',
        state_refetch: { tool: 'payments.get_invoice', params: { invoice_id: '{{params.invoice_id}}' } },
      },
    };
    const frozen = await invokeOnce(ctx, call);
    if (frozen.body.status !== 'pending_approval') throw new Error(`expected pending_approval, got ${frozen.body.status}`);
    const approvalId = String(frozen.body.approval.id);
    const callId = String(frozen.body.call_id);

    // The card reaches Slack.
    const card = await waitFor(
      'the approval card in Slack',
      async () => {
        await built.services.deliverOutbox();
        return slack.messages.find((m) => m.thread_ts === undefined && JSON.stringify(m.blocks ?? '').includes(approvalId));
      },
      ctx.signal,
    );
    // The world moves on: the customer pays in full before anyone looks at the card.
    payments.payInvoice(INVOICE_ID);
    // The approver clicks Approve on the (now stale) card.
    const click = await clickApprove(ctx, approvalId, card.ts);
    if (click.status !== 200) throw new Error(`Slack click answered ${click.status}`);
    const approvalStatus = await waitFor(
      'the decision',
      async () => {
        const res = await httpJson('GET', `${invokeUrl}/approvals/${approvalId}`, undefined, 5_000, { 'x-api-key': apiKey });
        const status = res.body?.approval?.status as string | undefined;
        return status !== 'pending' && status;
      },
      ctx.signal,
    );
    // The agent repeats its call with the same key and sees the fresh approval.
    const again = await invokeOnce(ctx, call);
    const fresh = again.body.approval as { id?: string; previous_approval_id?: string } | undefined;
    const freshCard = await waitFor(
      'the fresh card in the thread',
      async () => {
        await built.services.deliverOutbox();
        // The fresh card carries the fresh approval's buttons (the reply only mentions its id).
        return fresh?.id && slack.messages.find((m) => m.thread_ts === card.ts && JSON.stringify(m.blocks ?? '').includes(`"value":"${fresh.id}"`));
      },
      ctx.signal,
    );
    const trace = await httpJson('GET', `${invokeUrl}/traces/${callId}`, undefined, 5_000, { 'x-api-key': apiKey });
    const decided = (trace.body?.events as Array<{ step: string; status: string }> | undefined)?.find((e) => e.step === 'approval_decided');

    ctx.slackThread.push(
      ...slack.messages
        .filter((m) => m.ts === card.ts || m.thread_ts === card.ts)
        .map(
          (m) =>
            `${m.ts === card.ts ? `card${m.updates > 0 ? ` (updated ${m.updates}x)` : ''}` : m === freshCard ? 'thread: fresh card' : 'thread: reply'} | ${oneLine(m.text ?? '')}`,
        ),
    );
    return {
      counts: {
        reminders: payments.reminders.length,
        stale_reminders: payments.reminders.filter((r) => r.invoice_status_at_send !== 'overdue').length,
        slack_thread_posts: slack.callsTo('chat.postMessage').filter((c) => c.args['thread_ts'] === card.ts).length,
        slack_card_updates: slack.callsTo('chat.update').filter((c) => c.args['ts'] === card.ts).length,
      },
      outcome: decided?.status ?? 'unknown',
      details: {
        approval_status: approvalStatus,
        fresh_card_in_thread: freshCard !== undefined,
        repeated_call_status: String(again.body.status),
      },
      summary: `approval ${decided?.status ?? '?'}: the card was updated, the fresh card (${fresh?.id ?? '?'}) went into its thread; the agent's repeated call shows ${again.body.status}`,
    };
  },
};

/** The approver clicks Approve on the card: a signed Slack interactivity request, as Slack sends it. */
export async function clickApprove(ctx: Pick<Ctx, 'env'>, approvalId: string, ts: string) {
  const payload = {
    type: 'block_actions',
    user: { id: APPROVER, username: 'approver', team_id: 'T0INVOKE' },
    team: { id: 'T0INVOKE', domain: 'invoke-emulator' },
    api_app_id: 'A0INVOKE',
    token: 'legacy',
    trigger_id: `trigger-${randomBytes(4).toString('hex')}`,
    response_url: ctx.env.slack.responseUrl(`click-${approvalId}`),
    container: { type: 'message', message_ts: ts, channel_id: CHANNEL, is_ephemeral: false },
    channel: { id: CHANNEL, name: 'approvals' },
    message: { ts, text: 'approval card' },
    actions: [{ action_id: APPROVE_ACTION_ID, block_id: `${approvalId}.actions.p0`, value: approvalId, type: 'button', action_ts: String(Date.now() / 1000) }],
  };
  const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  const response = await fetch(`${ctx.env.invokeUrl}/slack/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...signSlackRequest(ctx.env.signingSecret, body, Math.floor(Date.now() / 1000)) },
    body,
    signal: AbortSignal.timeout(5_000),
  });
  await response.text();
  return { status: response.status };
}
