// 2. A payment times out after the charge: the naive retry charges twice, Invoke reconciles first.
import { agentLoop } from '../agent.ts';
import { direct, failedSummary, invokeOnce, plural, type Scenario } from './scenario.ts';

const PAYMENT = { payment_id: 'pay_7001', customer_id: 'cust_1001', amount: 1200 };

export const paymentTimeout: Scenario = {
  id: 2,
  title: 'Payment timeout after the charge',
  measures: [{ key: 'charges', label: 'charges recorded by the payments API' }],
  async naive(ctx) {
    const { payments } = ctx.env;
    const loop = await agentLoop(direct(ctx, 'POST', `${payments.url}/charges`, PAYMENT), ctx.signal);
    const counts = { charges: payments.charges.length };
    if (!loop.value) return { counts, summary: failedSummary('no charge confirmed', loop.failures) };
    return { counts, summary: `timed out, retried, got ${loop.value.body.charge_id} ${loop.value.body.status}` };
  },
  async invoke(ctx) {
    const res = await invokeOnce(ctx, { tool: 'payments.charge', params: PAYMENT, failure_policy: { retry: 2 } });
    const answer = res.body;
    const decision = answer.reconciliation?.decision ? `, reconciliation: ${answer.reconciliation.decision}` : '';
    return {
      counts: { charges: ctx.env.payments.charges.length },
      outcome: String(answer.status),
      summary: `${answer.status} after ${plural(Number(answer.attempts), 'attempt')}${decision} (read payments.get_payment)`,
      details: { attempts: Number(answer.attempts), reconciliation: String(answer.reconciliation?.decision ?? '') },
    };
  },
};
