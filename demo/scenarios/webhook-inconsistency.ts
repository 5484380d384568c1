// 6. A refund API reports success the ledger never confirms: Invoke checks the source of truth.
import { agentLoop } from '../agent.ts';
import type { WebhookSourceMock } from '../mocks/webhook-source.ts';
import { direct, invokeOnce, type Scenario } from './scenario.ts';

const REFUND = { order_id: 'ord_5001', amount: 2400 };

function shopCounts(shop: WebhookSourceMock) {
  return {
    confirmed: shop.events.filter((e) => e.type === 'refund.succeeded').length,
    success_reports: shop.successReports,
  };
}

export const webhookInconsistency: Scenario = {
  id: 6,
  title: 'Webhook inconsistency',
  measures: [
    { key: 'confirmed', label: 'refunds the ledger (source of truth) confirms' },
    { key: 'success_reports', label: '"succeeded" answers from the refund API' },
  ],
  async naive(ctx) {
    const { shop } = ctx.env;
    const loop = await agentLoop(direct(ctx, 'POST', `${shop.url}/refunds`, REFUND), ctx.signal);
    const status = loop.value?.body?.status as string | undefined;
    return { counts: shopCounts(shop), summary: status === 'succeeded' ? 'told the user "refund succeeded"' : `refund answer: ${String(status)}` };
  },
  async invoke(ctx) {
    const { shop } = ctx.env;
    // The same refund, with Invoke told to check a reported success against the source of truth.
    const res = await invokeOnce(ctx, {
      tool: 'shop.refund_order',
      params: REFUND,
      failure_policy: {
        reconcile: {
          state_refetch: { tool: 'shop.get_order', params: { order_id: '{{params.order_id}}' } },
          conditions: { refund_status: 'succeeded' },
          verify_success: true,
        },
      },
    });
    const status = String(res.body.status);
    return {
      counts: shopCounts(shop),
      outcome: status,
      details: { call_status: status },
      summary: status === 'replan_required' ? `replan_required: ${String(res.body.reason)}` : `answered ${status}`,
    };
  },
};
