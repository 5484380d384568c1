// The blast-radius demo: six production failure modes, each run twice, by a naive agent loop
// calling the tool directly and by the same loop calling it through Invoke. Everything runs on
// 127.0.0.1 with ports chosen by the OS: the mock tools (demo/mocks), the Slack Web API emulator,
// and Invoke itself (in-process, on a throwaway in-memory store). Side effects are counted at the
// mocks and the emulator, never inferred.
//
//   npx tsx demo/run-demo.ts        (or demo/run_demo.sh; FLAKY_FAIL_FIRST_N=3 to change the flaky tool)
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { buildApp, type BuiltApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { signSlackRequest } from '../src/slack/verify-request.ts';
import { startCrmMock, type CrmMock } from './mocks/crm.ts';
import { startFlakyMcpMock, type FlakyMcpMock } from './mocks/flaky-mcp.ts';
import { startIssueTrackerMock, type IssueTrackerMock } from './mocks/issue-tracker.ts';
import { startPaymentsMock, type PaymentsMock } from './mocks/payments.ts';
import { startWebhookSourceMock, type WebhookSourceMock } from './mocks/webhook-source.ts';
import { startSlackEmulator, type SlackEmulator } from './slack-emulator.ts';

// ---------------------------------------------------------------------------------------------
// Results

export interface DemoOptions {
  /** How many calls the flaky MCP tool stalls on first; default FLAKY_FAIL_FIRST_N, else 2. */
  flakyFailFirstN?: number;
  /** The agent's HTTP/MCP client timeout, the same with and without Invoke; default 1500 ms. */
  agentTimeoutMs?: number;
  /** Progress lines while it runs. */
  log?: (line: string) => void;
  /** Aborting stops everything the demo started; `runDemo` then rejects with `DemoInterrupted`. */
  signal?: AbortSignal;
}

/** One line of the table: a count taken at a mock (or the Slack emulator) after each run. */
export interface Measure {
  key: string;
  label: string;
}

export interface RunResult {
  /** Counted at the mocks after the run; a key missing on one side does not apply to it. */
  counts: Record<string, number>;
  /** What the agent concluded (naive) or what Invoke answered, in words. */
  summary: string;
  /** Facts from the answers along the way (attempts, replay header, verify status...). */
  details?: Record<string, string | number | boolean>;
}

export interface InvokeRunResult extends RunResult {
  /** Invoke's answer, verbatim: a call status, an approval outcome or a verify decision. */
  outcome: string;
}

export interface ScenarioResult {
  id: number;
  title: string;
  measures: Measure[];
  naive: RunResult | null;
  invoke: InvokeRunResult | null;
  /** Set when the scenario could not run to the end. */
  error?: string;
}

export interface DemoResult {
  ok: boolean;
  flakyFailFirstN: number;
  agentTimeoutMs: number;
  durationMs: number;
  scenarios: ScenarioResult[];
  /** Scenario 5's card thread as the Slack emulator holds it: one line per message. */
  slackThread: string[];
}

export class DemoInterrupted extends Error {
  constructor() {
    super('the demo was interrupted; everything it started was stopped');
    this.name = 'DemoInterrupted';
  }
}

// ---------------------------------------------------------------------------------------------
// The agent's side: plain HTTP with a client timeout, and a loop that retries once on a timeout

class AgentTimeout extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no answer within ${ms} ms`);
    this.name = 'AgentTimeout';
  }
}

interface HttpAnswer {
  status: number;
  headers: Headers;
  body: any;
}

async function httpJson(method: string, url: string, body: unknown, timeoutMs: number, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') throw new AgentTimeout(`${method} ${new URL(url).pathname}`, timeoutMs);
    throw error;
  }
}

type AttemptResult<T> = { kind: 'answer'; value: T } | { kind: 'ask_again'; why: string };

interface LoopOutcome<T> {
  value?: T;
  /** Requests the loop sent. */
  requests: number;
  /** What went wrong on the way (timeouts, errors), in order. */
  failures: string[];
}

/**
 * The agent loop both runs share: one attempt, and on a timeout or error one immediate retry
 * with the same request, as a hand-written agent does. "Ask again" (Invoke's 409 for a key still
 * in flight) waits a moment and asks again without spending the retry.
 */
async function agentLoop<T>(attempt: () => Promise<AttemptResult<T>>, signal: AbortSignal): Promise<LoopOutcome<T>> {
  const maxAttempts = 2;
  const failures: string[] = [];
  let requests = 0;
  let failed = 0;
  let askedAgain = 0;
  while (failed < maxAttempts && askedAgain < 40) {
    if (signal.aborted) throw new DemoInterrupted();
    requests += 1;
    try {
      const result = await attempt();
      if (result.kind === 'answer') return { value: result.value, requests, failures };
      askedAgain += 1;
      failures.push(result.why);
      await sleep(250, signal);
    } catch (error) {
      if (error instanceof DemoInterrupted) throw error;
      failed += 1;
      failures.push((error as Error).message);
    }
  }
  return { requests, failures };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new DemoInterrupted());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new DemoInterrupted());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>, signal: AbortSignal, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25, signal);
  }
}

// ---------------------------------------------------------------------------------------------
// Everything the demo starts

const CHANNEL = 'C0APPROVALS';
const APPROVER = 'U0APPROVER';
const AGENT = 'ops_agent';

interface Environment {
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

type Stopper = { name: string; stop: () => Promise<void> };

async function startEnvironment(flakyFailFirstN: number, stoppers: Stopper[]): Promise<Environment> {
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
      { name: 'get_payment', method: 'GET', path: '/payments/{payment_id}', side_effects: false, risk: 'low', input_schema: object(['payment_id'], { payment_id: { type: 'string' } }) },
      { name: 'get_invoice', method: 'GET', path: '/invoices/{invoice_id}', side_effects: false, risk: 'low', input_schema: object(['invoice_id'], { invoice_id: { type: 'string' } }) },
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
      { name: 'refund_order', method: 'POST', path: '/refunds', risk: 'medium', input_schema: object(['order_id', 'amount'], { order_id: { type: 'string' }, amount: { type: 'number' } }) },
      { name: 'get_order', method: 'GET', path: '/orders/{order_id}', side_effects: false, risk: 'low', input_schema: object(['order_id'], { order_id: { type: 'string' } }) },
    ],
  });
}

// ---------------------------------------------------------------------------------------------
// Scenarios

interface Ctx {
  env: Environment;
  timeoutMs: number;
  signal: AbortSignal;
  slackThread: string[];
}

/** The same agent request, sent to Invoke's /v1/call. 409 "still in flight" means: ask again. */
function invokeCall(ctx: Ctx, body: Record<string, unknown>) {
  return async (): Promise<AttemptResult<HttpAnswer>> => {
    const res = await httpJson('POST', `${ctx.env.invokeUrl}/v1/call`, { agent_id: AGENT, ...body }, ctx.timeoutMs, { 'x-api-key': ctx.env.apiKey });
    if (res.status === 409 && res.body?.error?.code === 'idempotency_key_in_flight') return { kind: 'ask_again', why: '409 idempotency_key_in_flight' };
    if (res.status >= 500) throw new Error(`Invoke answered ${res.status}`);
    if (res.status >= 400) throw new Error(`Invoke refused the call: ${res.status} ${JSON.stringify(res.body?.error ?? res.body)}`);
    return { kind: 'answer', value: res };
  };
}

async function invokeOnce(ctx: Ctx, body: Record<string, unknown>): Promise<HttpAnswer> {
  const loop = await agentLoop(invokeCall(ctx, body), ctx.signal);
  if (!loop.value) throw new Error(`no answer from Invoke: ${loop.failures.join('; ')}`);
  return loop.value;
}

/** A direct call to a mock tool over HTTP: 5xx and timeouts throw (the loop retries them). */
function direct(ctx: Ctx, method: string, url: string, body?: unknown) {
  return async (): Promise<AttemptResult<HttpAnswer>> => {
    const res = await httpJson(method, url, body, ctx.timeoutMs);
    if (res.status >= 500) throw new Error(`${method} ${new URL(url).pathname} answered ${res.status}`);
    return { kind: 'answer', value: res };
  };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const failedSummary = (what: string, failures: string[]) => `${what} (${plural(failures.length, 'failure')}: ${failures.at(-1) ?? 'none'})`;

interface Scenario {
  id: number;
  title: string;
  measures: Measure[];
  naive(ctx: Ctx): Promise<RunResult>;
  invoke(ctx: Ctx): Promise<InvokeRunResult>;
}

const SKU = 'SKU-RED-42';

const toolTimeout: Scenario = {
  id: 1,
  title: 'Tool timeout (flaky MCP tool)',
  measures: [
    { key: 'tool_calls', label: 'check_stock calls at the MCP server' },
    { key: 'answered', label: 'calls it answered' },
  ],
  async naive(ctx) {
    const { flaky } = ctx.env;
    const client = new Client({ name: 'naive-agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(flaky.url)));
    try {
      const loop = await agentLoop(async () => {
        try {
          const result = await client.callTool({ name: 'check_stock', arguments: { sku: SKU } }, undefined, { timeout: ctx.timeoutMs });
          return { kind: 'answer', value: result };
        } catch (error) {
          if (/timed out|timeout/i.test((error as Error).message)) throw new AgentTimeout('tools/call check_stock', ctx.timeoutMs);
          throw error;
        }
      }, ctx.signal);
      const counts = { tool_calls: flaky.calls, answered: flaky.answered };
      if (!loop.value) return { counts, summary: failedSummary('gave up: no stock figure', loop.failures), details: { requests: loop.requests, gave_up: true } };
      const stock = (loop.value.structuredContent as { in_stock?: number } | undefined)?.in_stock;
      return { counts, summary: `got in_stock=${String(stock)} after ${plural(loop.requests, 'call')}`, details: { requests: loop.requests, gave_up: false } };
    } finally {
      await client.close().catch(() => undefined);
    }
  },
  async invoke(ctx) {
    const res = await invokeOnce(ctx, { tool: 'inventory.check_stock', params: { sku: SKU }, failure_policy: { retry: 3 } });
    const answer = res.body;
    return {
      counts: { tool_calls: ctx.env.flaky.calls, answered: ctx.env.flaky.answered },
      outcome: String(answer.status),
      summary: `${answer.status} after ${plural(Number(answer.attempts), 'attempt')} (bounded retry: 1 + up to 3, with backoff)`,
      details: { attempts: Number(answer.attempts) },
    };
  },
};

const PAYMENT = { payment_id: 'pay_7001', customer_id: 'cust_1001', amount: 1200 };

const paymentTimeout: Scenario = {
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

// The agent resolved "Acme Corp", then carried the id of "Acme Labs" from an earlier turn.
const CUSTOMER_NAME = 'Acme Corp';
const WRONG_ID = 'cust_1002';
const UPDATE = { plan: 'enterprise', discount_pct: 30 };

function crmCounts(crm: CrmMock, resolved: string) {
  return {
    writes_other: crm.writes.filter((w) => w.customer_id !== resolved).length,
    writes_resolved: crm.writes.filter((w) => w.customer_id === resolved).length,
  };
}

const wrongCrmUpdate: Scenario = {
  id: 3,
  title: 'Wrong CRM update',
  measures: [
    { key: 'writes_other', label: `CRM writes to another record than the resolved one` },
    { key: 'writes_resolved', label: 'CRM writes to the resolved record' },
  ],
  async naive(ctx) {
    const { crm } = ctx.env;
    const lookup = await agentLoop(direct(ctx, 'GET', `${crm.url}/customers?name=${encodeURIComponent(CUSTOMER_NAME)}`), ctx.signal);
    const resolved = lookup.value?.body?.customers?.[0]?.customer_id as string | undefined;
    if (!resolved) throw new Error('the CRM lookup found no customer');
    const update = await agentLoop(direct(ctx, 'PATCH', `${crm.url}/customers/${WRONG_ID}`, UPDATE), ctx.signal);
    const written = update.value?.body as { customer_id?: string; name?: string } | undefined;
    return {
      counts: crmCounts(crm, resolved),
      summary: `resolved ${CUSTOMER_NAME} = ${resolved}, updated ${written?.customer_id ?? '?'} (${written?.name ?? '?'}) instead`,
      details: { resolved, named: WRONG_ID },
    };
  },
  async invoke(ctx) {
    const { crm } = ctx.env;
    const lookup = await invokeOnce(ctx, { tool: 'crm.find_customer', params: { name: CUSTOMER_NAME } });
    const resolved = lookup.body?.result?.customers?.[0]?.customer_id as string | undefined;
    if (!resolved) throw new Error('the CRM lookup through Invoke found no customer');
    const res = await invokeOnce(ctx, {
      tool: 'crm.update_customer',
      params: { customer_id: WRONG_ID, ...UPDATE },
      entity_resolution: { entity_id: resolved, entity_type: 'customer', source: 'crm.find_customer' },
    });
    return {
      counts: crmCounts(crm, resolved),
      outcome: String(res.body.status),
      summary: `${res.body.status}: ${res.body.reason ?? ''}`,
      details: { resolved, named: WRONG_ID },
    };
  },
};

const ISSUE = { title: 'Checkout p95 latency above SLO', body: 'p95 at 2.4 s for 15 minutes; paging on-call.' };

const duplicateIssue: Scenario = {
  id: 4,
  title: 'Duplicate retry of issue creation',
  measures: [{ key: 'issues', label: 'issues created in the tracker' }],
  async naive(ctx) {
    const { tracker } = ctx.env;
    const loop = await agentLoop(direct(ctx, 'POST', `${tracker.url}/issues`, ISSUE), ctx.signal);
    const counts = { issues: tracker.issues.length };
    if (!loop.value) return { counts, summary: failedSummary('no issue confirmed', loop.failures) };
    return { counts, summary: `timed out, retried, got ${loop.value.body.id}` };
  },
  async invoke(ctx) {
    const { tracker } = ctx.env;
    const loop = await agentLoop(invokeCall(ctx, { tool: 'tracker.create_issue', params: ISSUE, idempotency_key: 'incident-4711:open-issue' }), ctx.signal);
    const counts = { issues: tracker.issues.length };
    if (!loop.value) throw new Error(`no answer from Invoke: ${loop.failures.join('; ')}`);
    const replayed = loop.value.headers.get('idempotent-replayed') === 'true';
    const answer = loop.value.body;
    const timeouts = loop.failures.filter((f) => f.includes('no answer within')).length;
    const asked = loop.failures.filter((f) => f.startsWith('409')).length;
    return {
      counts,
      outcome: String(answer.status),
      summary: `${answer.status} ${answer.result?.id ?? ''}${replayed ? ', replayed' : ''} (agent timed out ${timeouts}x, got 409 in flight ${asked}x, same key)`,
      details: { replayed, agent_timeouts: timeouts, in_flight_409s: asked },
    };
  },
};

const INVOICE_ID = 'inv_2001';

const staleApproval: Scenario = {
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
        .map((m) => `${m.ts === card.ts ? `card${m.updates > 0 ? ` (updated ${m.updates}x)` : ''}` : m === freshCard ? 'thread: fresh card' : 'thread: reply'} | ${oneLine(m.text ?? '')}`),
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

async function clickApprove(ctx: Ctx, approvalId: string, ts: string) {
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
    actions: [{ action_id: 'approval_approve', block_id: `${approvalId}.actions.p0`, value: approvalId, type: 'button', action_ts: String(Date.now() / 1000) }],
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

const REFUND = { order_id: 'ord_5001', amount: 2400 };

function shopCounts(shop: WebhookSourceMock) {
  return {
    confirmed: shop.events.filter((e) => e.type === 'refund.succeeded').length,
    success_reports: shop.successReports,
  };
}

const webhookInconsistency: Scenario = {
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

export const SCENARIOS: readonly Scenario[] = [toolTimeout, paymentTimeout, wrongCrmUpdate, duplicateIssue, staleApproval, webhookInconsistency];

function resetMocks(env: Environment): void {
  env.flaky.reset();
  env.payments.reset();
  env.crm.reset();
  env.tracker.reset();
  env.shop.reset();
}

function oneLine(text: string, max = 110): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

// ---------------------------------------------------------------------------------------------
// runDemo

function defaultFailFirstN(): number {
  const raw = process.env['FLAKY_FAIL_FIRST_N'];
  if (raw === undefined || raw.trim() === '') return 2;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 20) throw new Error(`FLAKY_FAIL_FIRST_N must be an integer from 0 to 20, got "${raw}"`);
  return n;
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const flakyFailFirstN = options.flakyFailFirstN ?? defaultFailFirstN();
  const agentTimeoutMs = options.agentTimeoutMs ?? 1_500;
  const controller = new AbortController();
  const stoppers: Stopper[] = [];
  // Stops in reverse start order; called again at the end, it also stops what was started after
  // an interruption (a start that was under way when Ctrl-C came).
  const stopAll = async () => {
    for (let next = stoppers.pop(); next; next = stoppers.pop()) {
      const { name, stop } = next;
      await stop().catch((error: unknown) => log(`  (stopping ${name} failed: ${(error as Error).message})`));
    }
  };
  const onAbort = () => {
    controller.abort();
    void stopAll();
  };
  if (options.signal?.aborted) throw new DemoInterrupted();
  options.signal?.addEventListener('abort', onAbort, { once: true });

  const scenarios: ScenarioResult[] = [];
  const slackThread: string[] = [];
  try {
    log(`Starting the mock tools, the Slack emulator and Invoke on 127.0.0.1 (flaky tool stalls on its first ${flakyFailFirstN} calls)...`);
    const env = await startEnvironment(flakyFailFirstN, stoppers);
    if (controller.signal.aborted) throw new DemoInterrupted();
    log(`Invoke is listening at ${env.invokeUrl}; running ${SCENARIOS.length} scenarios, each without and with Invoke.`);
    const ctx: Ctx = { env, timeoutMs: agentTimeoutMs, signal: controller.signal, slackThread };
    for (const scenario of SCENARIOS) {
      const result: ScenarioResult = { id: scenario.id, title: scenario.title, measures: scenario.measures, naive: null, invoke: null };
      scenarios.push(result);
      const began = Date.now();
      try {
        resetMocks(env);
        result.naive = await scenario.naive(ctx);
        resetMocks(env);
        result.invoke = await scenario.invoke(ctx);
        log(`  ${scenario.id}/${SCENARIOS.length} ${scenario.title}: done in ${((Date.now() - began) / 1000).toFixed(1)} s`);
      } catch (error) {
        if (controller.signal.aborted) throw new DemoInterrupted();
        result.error = (error as Error).message;
        log(`  ${scenario.id}/${SCENARIOS.length} ${scenario.title}: could not run: ${result.error}`);
      }
    }
    resetMocks(env);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    await stopAll();
  }
  if (controller.signal.aborted) throw new DemoInterrupted();
  return {
    ok: scenarios.length === SCENARIOS.length && scenarios.every((s) => !s.error),
    flakyFailFirstN,
    agentTimeoutMs,
    durationMs: Date.now() - started,
    scenarios,
    slackThread,
  };
}

// ---------------------------------------------------------------------------------------------
// The table

export function formatTable(result: DemoResult): string {
  const header = ['#', 'Scenario', 'Counted at the mocks', 'Naive', 'Invoke', 'Invoke answer'];
  const rows: string[][] = [];
  for (const s of result.scenarios) {
    if (s.error) {
      rows.push([String(s.id), s.title, `could not run: ${s.error}`, '', '', '']);
      continue;
    }
    s.measures.forEach((m, i) => {
      const naive = s.naive?.counts[m.key];
      const invoke = s.invoke?.counts[m.key];
      rows.push([
        i === 0 ? String(s.id) : '',
        i === 0 ? s.title : '',
        m.label,
        naive === undefined ? '-' : String(naive),
        invoke === undefined ? '-' : String(invoke),
        i === 0 ? (s.invoke?.outcome ?? '') : '',
      ]);
    });
  }
  const widths = header.map((h, col) => Math.max(h.length, ...rows.map((r) => r[col]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, col) => (col === 3 || col === 4 ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const out = [line(header), rule];
  rows.forEach((row, i) => {
    if (i > 0 && row[0] !== '') out.push('');
    out.push(line(row));
  });

  out.push('', 'What each run concluded:');
  for (const s of result.scenarios) {
    if (s.error) continue;
    out.push(`  ${s.id}. naive:  ${s.naive?.summary ?? '-'}`, `     Invoke: ${s.invoke?.summary ?? '-'}`);
  }
  if (result.slackThread.length > 0) {
    out.push('', 'Scenario 5 in the Slack emulator (the card and its thread):');
    for (const entry of result.slackThread) out.push(`  ${entry}`);
  }
  const failed = result.scenarios.filter((s) => s.error).length;
  out.push(
    '',
    `Naive agent: direct calls, ${result.agentTimeoutMs} ms client timeout, one immediate retry on a timeout. ` +
      `Through Invoke: the same loop against POST /v1/call. Flaky tool stalls first ${result.flakyFailFirstN}. ` +
      `${(result.durationMs / 1000).toFixed(1)} s${failed ? `, ${failed} scenario(s) could not run` : ''}.`,
  );
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// CLI

async function main(): Promise<number> {
  const controller = new AbortController();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping everything the demo started...\n`);
    controller.abort();
    // If something refuses to stop, do not hang the terminal.
    setTimeout(() => process.exit(130), 5_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await runDemo({ signal: controller.signal, log: (line) => process.stdout.write(`${line}\n`) });
    process.stdout.write(`\n${formatTable(result)}\n`);
    return result.ok ? 0 : 1;
  } catch (error) {
    if (error instanceof DemoInterrupted) {
      process.stderr.write(`${error.message}\n`);
      return 130;
    }
    process.stderr.write(`The demo could not run: ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  main().then(
    (code) => process.exit(code),
    () => process.exit(1),
  );
}
