/**
 * The billing provider the sweep tests register, on a tool server that routes `POST /remind`,
 * `GET /invoices/*`, `POST /charge` and `GET /payments/*`: a high-risk reminder, a charge that
 * reconciles from `billing.get_payment`, the same charge without reconciliation, and two reads.
 */
export function billingProvider(baseUrl: string) {
  return {
    name: 'billing',
    base_url: baseUrl,
    tools: [
      { name: 'send_reminder', path: '/remind', risk: 'high' },
      { name: 'get_invoice', method: 'GET', path: '/invoices/{invoice_id}', side_effects: false, risk: 'low' },
      {
        name: 'charge',
        path: '/charge',
        risk: 'medium',
        state_refetch: { tool: 'billing.get_payment', params: { payment_id: '{{params.payment_id}}' }, conditions: { charged: true } },
      },
      { name: 'charge_blind', path: '/charge', risk: 'medium' },
      { name: 'get_payment', method: 'GET', path: '/payments/{payment_id}', side_effects: false, risk: 'low' },
    ],
  };
}
