import { existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSlackEmulator } from '../../demo/slack-emulator.ts';
import { buildApp, type BuiltApp } from '../../src/app.ts';
import { mintReviewLink } from '../../src/web/review-links.ts';
import { createSigner } from '../../src/web/signing.ts';
import { send, testConfig } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';
import { waitFor } from '../helpers/wait.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];
const LINK_SECRET = 'browser-test-link-secret-0123456789abcdef';
const CHANNEL = 'C0APPROVALS';
const APPROVER_SCOPES = ['approvals:read', 'approvals:write'];
const ALICE = 'key-alice';
/** Bob's agent requests calls; Bob's approver key is the same person. */
const BOB_AGENT = 'key-bob-agent';
const BOB = 'key-bob';

/** A port free right now on 127.0.0.1: the public URL (in every card) must name it before the app is built. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * The review page in a real browser (Debian's Chromium driven by playwright-core) against the
 * real server listening on 127.0.0.1, with Slack's Web API at the emulator: a decision made on
 * the page shows up on the Slack card.
 */
describe('review page in Chromium', () => {
  let built: BuiltApp;
  let browser: Browser;
  let context: BrowserContext | null = null;
  let slack: Awaited<ReturnType<typeof startSlackEmulator>>;
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  let base: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: the browser tests drive Debian's Chromium (apt-get install chromium; .ci/run installs it)`);
    }
    slack = await startSlackEmulator();
    tools = await startToolServer({
      'POST /remind': (_req, res) => json(res, 200, { sent: true }),
      'GET /invoices/*': (_req, res) => json(res, 200, { invoice_id: 'inv_1', invoice_status: 'overdue', balance: 100 }),
    });
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    built = await buildApp(
      testConfig({
        INVOKE_PUBLIC_URL: base,
        INVOKE_LINK_SECRET: LINK_SECRET,
        SLACK_BOT_TOKEN: 'xoxb-test',
        SLACK_SIGNING_SECRET: 'browser-test-signing-secret',
        SLACK_APPROVAL_CHANNEL: CHANNEL,
        SLACK_APPROVER_IDS: 'UALICE',
        SLACK_API_URL: slack.url,
        INVOKE_OUTBOX_INTERVAL_MS: '200',
        INVOKE_API_KEY_SCOPES: JSON.stringify({
          [ALICE]: { scopes: APPROVER_SCOPES, approver_id: 'alice' },
          [BOB_AGENT]: { scopes: ['tools:read', 'tools:call'], approver_id: 'bob' },
          [BOB]: { scopes: APPROVER_SCOPES, approver_id: 'bob' },
        }),
      }),
      { logger: false },
    );
    await built.app.listen({ host: '127.0.0.1', port });
    const registered = await send(built.app, 'POST', '/v1/providers', {
      name: 'billing',
      base_url: tools.url,
      tools: [
        { name: 'send_reminder', path: '/remind', risk: 'high' },
        { name: 'get_invoice', method: 'GET', path: '/invoices/{invoice_id}', side_effects: false, risk: 'low' },
      ],
    });
    expect(registered.status).toBe(201);
    // One browser for the file; each test gets a fresh context (no cookies carried over).
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });
  afterEach(async () => {
    await context?.close();
    context = null;
  });
  afterAll(async () => {
    await browser?.close();
    await built?.app.close();
    await tools?.close();
    await slack?.close();
  });

  async function newPage(): Promise<Page> {
    context = await browser.newContext();
    return context.newPage();
  }

  /** Freezes a call; returns the approval id and the card's Slack timestamp once the card is posted. */
  async function freeze(key?: string): Promise<{ id: string; ts: string }> {
    const res = await send(
      built.app,
      'POST',
      '/v1/call',
      {
        tool: 'billing.send_reminder',
        params: { invoice_id: 'inv_1', note: '<script>alert(1)</script>' },
        agent_id: 'billing_agent',
        approval_contract: {
          intent: 'send_invoice_reminder',
          conditions: { invoice_status: 'overdue' },
          state_refetch: { tool: 'billing.get_invoice', params: { invoice_id: 'inv_1' } },
        },
      },
      key ? { 'x-api-key': key } : {},
    );
    expect(res.status).toBe(202);
    const id: string = res.body.approval.id;
    const card = await waitFor(async () => slack.messages.find((m) => m.channel === CHANNEL && !m.thread_ts && JSON.stringify(m.blocks).includes(id)), 10_000);
    return { id, ts: card.ts };
  }

  /** The "Review in browser" link on the card as Slack shows it. */
  function cardLink(ts: string): string {
    const card = slack.messages.find((m) => m.ts === ts)!;
    const link = /<(http[^|>]+)\|Review in browser>/.exec(JSON.stringify(card.blocks))?.[1];
    expect(link, 'the card has a review link').toBeDefined();
    return link!;
  }

  async function signIn(page: Page, key: string): Promise<void> {
    await page.getByLabel('Approver API key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  const statusOf = async (id: string) => (await send(built.app, 'GET', `/v1/approvals/${id}`)).body.approval.status as string;

  it('opens the link from the card, signs in, shows the facts, approves: the call runs and the card shows the decision', async () => {
    const before = tools.count('POST', '/remind');
    const { id, ts } = await freeze();
    const link = cardLink(ts);
    expect(link.startsWith(`${base}/approvals/${id}/review?t=`)).toBe(true);

    const page = await newPage();
    const response = await page.goto(link);
    expect(response!.headers()['content-security-policy']).toContain("script-src 'none'");
    await signIn(page, ALICE);
    await expect.poll(() => page.locator('h1').textContent()).toBe('send_invoice_reminder');
    expect(await page.locator('dl').textContent()).toContain('billing.send_reminder');
    expect(await page.locator('dl').textContent()).toContain('billing_agent');
    // Hostile params are shown as text, not run as markup.
    expect(await page.locator('pre.params-json').textContent()).toContain('<script>alert(1)</script>');
    expect(await page.locator('script').count()).toBe(0);
    // The style carries the CSP nonce, so it applies (an inline style without it would be refused).
    expect(await page.evaluate('getComputedStyle(document.body).backgroundColor')).toBe('rgb(246, 247, 249)');
    expect(await page.locator('pre.frozen-state').textContent()).toContain('overdue');
    expect(await page.locator('.decider').textContent()).toBe('alice');

    await page.getByRole('button', { name: 'Refresh live state' }).click();
    await expect.poll(() => page.locator('.drift').textContent()).toContain('No drift since the freeze.');

    await page.getByLabel('Comment (optional)').first().fill('checked the invoice');
    await page.getByRole('button', { name: 'Approve', exact: true }).click();
    await expect.poll(() => page.locator('.outcome').textContent()).toBe('executed');
    expect(tools.count('POST', '/remind')).toBe(before + 1);

    const update = await waitFor(async () => slack.callsTo('chat.update').find((c) => c.args['ts'] === ts), 10_000);
    const blocks = JSON.stringify(update.args['blocks']);
    expect(blocks).not.toContain('approval_approve');
    expect(blocks).not.toContain('Review in browser');
    expect(blocks).toContain('Executed');
    expect(blocks).toContain('alice');
    const reply = await waitFor(async () => slack.messages.find((m) => m.thread_ts === ts), 10_000);
    expect(String(reply.text)).toMatch(/Executed/);

    // The same link a second time: refused.
    const again = await page.goto(link);
    expect(again!.status()).toBe(410);
    expect(await page.locator('[data-code]').getAttribute('data-code')).toBe('link_used');
  });

  it('edits a param in the Edit form and approves: the edited call runs and the card says "Approved with edits"', async () => {
    const { id, ts } = await freeze();
    const page = await newPage();
    await page.goto(cardLink(ts));
    await signIn(page, ALICE);
    await page.getByText('Edit params, then approve').click();
    const textarea = page.getByLabel('Params (JSON object)');
    const frozen = JSON.parse(await textarea.inputValue()) as Record<string, unknown>;
    expect(frozen).toEqual({ invoice_id: 'inv_1', note: '<script>alert(1)</script>' });
    await textarea.fill(JSON.stringify({ ...frozen, note: 'second notice' }, null, 2));
    await page.getByRole('button', { name: 'Approve with these params' }).click();
    await expect.poll(() => page.locator('.outcome').textContent()).toBe('executed');
    expect(await page.locator('.edits').textContent()).toContain('Approved with edits by alice');
    const ran = tools.requests.filter((r) => r.path === '/remind').at(-1)!;
    expect(ran.body).toEqual({ invoice_id: 'inv_1', note: 'second notice' });
    expect(await statusOf(id)).toBe('executed');

    const update = await waitFor(async () => slack.callsTo('chat.update').find((c) => c.args['ts'] === ts), 10_000);
    const blocks = JSON.stringify(update.args['blocks']);
    expect(blocks).toContain('Approved with edits by');
    expect(blocks).toContain('second notice');
  });

  it('rejects with a reason; the card says so', async () => {
    const { id, ts } = await freeze();
    const page = await newPage();
    await page.goto(cardLink(ts));
    await signIn(page, ALICE);
    await page.getByLabel('Reason').fill('wrong customer');
    await page.getByRole('button', { name: 'Reject' }).click();
    await expect.poll(() => page.locator('.outcome').textContent()).toBe('rejected');
    expect(await statusOf(id)).toBe('rejected');
    const update = await waitFor(async () => slack.callsTo('chat.update').find((c) => c.args['ts'] === ts), 10_000);
    expect(JSON.stringify(update.args['blocks'])).toContain('wrong customer');
  });

  it('refuses an expired link (410)', async () => {
    const { id } = await freeze();
    const expired = mintReviewLink(createSigner(LINK_SECRET), base, { approvalId: id, expiresAt: new Date(Date.now() - 1000) });
    const page = await newPage();
    const response = await page.goto(expired.review_url);
    expect(response!.status()).toBe(410);
    expect(await page.locator('h1').textContent()).toBe('This link no longer works');
    expect(await page.locator('[data-code]').getAttribute('data-code')).toBe('link_expired');
  });

  it('refuses self-approval on the page: no decision buttons, the reason shown, nothing decided', async () => {
    const { id, ts } = await freeze(BOB_AGENT);
    const page = await newPage();
    await page.goto(cardLink(ts));
    await signIn(page, BOB);
    await expect.poll(() => page.locator('.refusal').textContent()).toContain('bob requested this call');
    expect(await page.getByRole('button', { name: 'Approve', exact: true }).count()).toBe(0);
    expect(await statusOf(id)).toBe('pending');
  });

  it('lists the pending approval on the dashboard, whose link opens it for the signed-in approver', async () => {
    const { id } = await freeze();
    const page = await newPage();
    await page.goto(`${base}/dashboard/approvals`);
    await signIn(page, ALICE);
    const row = page.locator(`tr[data-approval="${id}"]`);
    await expect.poll(() => row.count()).toBe(1);
    expect(await row.textContent()).toContain('send_invoice_reminder');
    await row.getByRole('link', { name: 'Review' }).click();
    await expect.poll(() => page.locator('.decider').textContent()).toBe('alice');
    expect(page.url()).toContain(`/approvals/${id}/review?t=`);
  });
});
