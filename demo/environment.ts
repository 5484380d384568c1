// Everything the demo starts: the mock tools, the Slack Web API emulator and Invoke itself, on
// 127.0.0.1 with ports chosen by the OS, and the providers registered in Invoke.
import { randomBytes } from 'node:crypto';
import { buildApp, type BuiltApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { httpJson } from './agent.ts';
import { startCrmMock, type CrmMock } from './mocks/crm.ts';
import { startFlakyMcpMock, type FlakyMcpMock } from './mocks/flaky-mcp.ts';
import { startIssueTrackerMock, type IssueTrackerMock } from './mocks/issue-tracker.ts';
import { startPaymentsMock, type PaymentsMock } from './mocks/payments.ts';
import { startWebhookSourceMock, type WebhookSourceMock } from './mocks/webhook-source.ts';
import { startSlackEmulator, type SlackEmulator } from './slack-emulator.ts';

export const CHANNEL = 'C0APPROVALS';
export const APPROVER = 'U0APPROVER';
export const AGENT = 'ops_agent';

export interface Environment {
  flaky: FlakyMcpMock;
  payments: PaymentsMock;
  crm: CrmMock;
  tracker: IssueTrackerMock;
  shop: WebhookSourceMock;
  slack: SlackEmulator;
  built: BuiltApp;
  invokeUrl: string;
  apiKey: string;
  signingSecret: string;
}

export type Stopper = { name: string; stop: () => Promise<void> };

export async function startEnvironment(flakyFailFirstN: number, stoppers: Stopper[]): Promise<Environment> {
  const started = async <T extends { close(): Promise<void> }>(name: string, start: Promise<T>): Promise<T> => {
    const thing = await start;
    stoppers.push({ name, stop: () => thing.close() });
    return thing;
  };
  const [flaky, payments, crm, tracker, shop, slack] = await Promise.all([
    started('flaky MCP server', startFlakyMcpMock({ failFirstN: flakyFailFirstN })),
    started('payments API', startPaymentsMock()),
    started('CRM', startCrmMock()),
    started('issue tracker', startIssueTrackerMock()),
    started('webhook source', startWebhookSourceMock()),
    started('Slack emulator', startSlackEmulator()),
  ]);

  const apiKey = `inv_demo_${randomBytes(18).toString('base64url')}`;
  const signingSecret = randomBytes(24).toString('hex');
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
    INVOKE_DATA_DIR: 'memory://',
    INVOKE_API_KEYS: apiKey,
    INVOKE_RETRY_BASE_MS: '50',
    INVOKE_RETRY_MAX_MS: '200',
    // The demo delivers Slack posts itself, right when it needs them, and runs no sweeps.
    INVOKE_OUTBOX_INTERVAL_MS: '0',
    INVOKE_SWEEP_CRON: 'off',
    SLACK_BOT_TOKEN: 'xoxb-invoke-demo',
    SLACK_SIGNING_SECRET: signingSecret,
    SLACK_APPROVAL_CHANNEL: CHANNEL,
    SLACK_APPROVER_IDS: APPROVER,
    SLACK_API_URL: slack.url,
  });
  const built = await buildApp(config, { logger: false });
  stoppers.push({ name: 'Invoke', stop: () => built.app.close() });
  await built.app.listen({ host: '127.0.0.1', port: 0 });
  const address = built.app.server.address();
  if (address === null || typeof address === 'string') throw new Error('Invoke did not get a TCP port');
  const env: Environment = { flaky, payments, crm, tracker, shop, slack, built, invokeUrl: `http://127.0.0.1:${address.port}`, apiKey, signingSecret };
  await registerProviders(env);
  return env;
}

async function registerProviders(env: Environment): Promise<void> {
  const register = async (provider: Record<string, unknown>) => {
    const res = await httpJson('POST', `${env.invokeUrl}/v1/providers`, provider, 10_000, { 'x-api-key': env.apiKey });
    if (res.status !== 201 && res.status !== 200) throw new Error(`registering ${String(provider['name'])} failed: ${res.status} ${JSON.stringify(res.body)}`);
  };
  const object = (required: string[], properties: Record<string, unknown>) => ({ type: 'object', required, properties });
  await register({
    name: 'inventory',
    mcp_url: env.flaky.url,
    // Its annotations (readOnlyHint) make it a read: safe to retry after a timeout.
    tools: [{ name: 'check_stock', timeout_ms: 200 }],
  });
  await register({
    name: 'payments',
    base_url: env.payments.url,
    tools: [
      {
        name: 'charge',
        method: 'POST',
        path: '/charges',
        description: 'Charge a customer for a payment',
        input_schema: object(['payment_id', 'customer_id', 'amount'], { payment_id: { type: 'string' }, customer_id: { type: 'string' }, amount: { type: 'number', minimum: 1 } }),
        risk: 'medium',
        timeout_ms: 300,
        state_refetch: { tool: 'payments.get_payment', params: { payment_id: '{{params.payment_id}}' }, conditions: { charged: true } },
      },
      {
        name: 'get_payment',
        method: 'GET',
        path: '/payments/{payment_id}',
        side_effects: false,
        risk: 'low',
        input_schema: object(['payment_id'], { payment_id: { type: 'string' } }),
      },
      {
        name: 'get_invoice',
        method: 'GET',
        path: '/invoices/{invoice_id}',
        side_effects: false,
        risk: 'low',
        input_schema: object(['invoice_id'], { invoice_id: { type: 'string' } }),
      },
      {
        name: 'send_reminder',
        method: 'POST',
        path: '/invoices/{invoice_id}/reminders',
        description: 'Email the customer a payment reminder for an invoice',
        risk: 'medium',
        input_schema: object(['invoice_id'], { invoice_id: { type: 'string' } }),
      },
    ],
  });
  await register({
    name: 'crm',
    base_url: env.crm.url,
    tools: [
      { name: 'find_customer', method: 'GET', path: '/customers', side_effects: false, risk: 'low', input_schema: object(['name'], { name: { type: 'string' } }) },
      {
        name: 'update_customer',
        method: 'PATCH',
        path: '/customers/{customer_id}',
        description: "Change a customer's plan or discount",
        risk: 'medium',
        input_schema: object(['customer_id'], { customer_id: { type: 'string' }, plan: { type: 'string' }, discount_pct: { type: 'number' } }),
      },
    ],
  });
  await register({
    name: 'tracker',
    base_url: env.tracker.url,
    tools: [
      {
        name: 'create_issue',
        method: 'POST',
        path: '/issues',
        description: 'Open an issue',
        risk: 'low',
        // The tracker is slow at times; Invoke gives it the time it needs.
        timeout_ms: 5_000,
        input_schema: object(['title'], { title: { type: 'string' }, body: { type: 'string' } }),
      },
    ],
  });
  await register({
    name: 'shop',
    base_url: env.shop.url,
    tools: [
      {
        name: 'refund_order',
        method: 'POST',
        path: '/refunds',
        risk: 'medium',
        input_schema: object(['order_id', 'amount'], { order_id: { type: 'string' }, amount: { type: 'number' } }),
      },
      { name: 'get_order', method: 'GET', path: '/orders/{order_id}', side_effects: false, risk: 'low', input_schema: object(['order_id'], { order_id: { type: 'string' } }) },
    ],
  });
}

export function resetMocks(env: Environment): void {
  env.flaky.reset();
  env.payments.reset();
  env.crm.reset();
  env.tracker.reset();
  env.shop.reset();
}
