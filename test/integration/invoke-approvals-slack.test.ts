import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSlackEmulator } from '../../demo/slack-emulator.ts';
import { buildApp, type BuiltApp } from '../../src/app.ts';
import { send, testConfig } from '../helpers/app.ts';
import { SLACK_TRANSPORTS, slackDriver, type SlackDriver, httpOnlyTest } from '../helpers/slack-transport.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';

const CHANNEL = 'C0APPROVALS';
/** An approver whose agent key requests calls: the requester's person of those calls. */
const ALICE = 'UALICE';
/** An approver who requested nothing. */
const DAVE = 'UDAVE';
/** An approver through the user group S0LEADS only. */
const CAROL = 'UCAROL';
/** May query Invoke, may not decide. */
const VIEWER = 'UVIEWER';
/** Neither. */
const BOB = 'UBOB';
const ALICE_AGENT_KEY = 'key-alice-agent';

/** Section and context texts of a Slack message body, in order. */
function textOf(body: { blocks?: Array<Record<string, unknown>> }): string {
  return (body.blocks ?? [])
    .flatMap((block) => {
      const text = (block.text as { text?: string } | undefined)?.text;
      const elements = (block.elements as Array<{ text?: string }> | undefined)?.map((e) => e.text ?? '') ?? [];
      return [...(text === undefined ? [] : [text]), ...elements];
    })
    .join('\n');
}

/** The entry of one approval in a list: its line with the id and the two lines under it. */
function entryOf(shown: string, approvalId: string): string {
  const lines = shown.split('\n');
  const at = lines.findIndex((l) => l.includes(`\`${approvalId}\``));
  return at < 0 ? '' : lines.slice(at, at + 3).join('\n');
}

/**
 * `/invoke approvals [mine]` as Slack sends it (signed requests to /slack/events or Socket Mode
 * envelopes, user groups resolved through the emulated Web API): pending calls of one tool told
 * apart by intent, reason and params; `mine` lists what the caller may decide, by the same rule as
 * an Approve click. The first three run over both transports, the rest over HTTP.
 */
describe.each(SLACK_TRANSPORTS)('/invoke approvals through Slack over %s', (transport) => {
  const core = it;
  const httpOnly = httpOnlyTest(transport);
  let driver: SlackDriver;
  let built: BuiltApp;
  let slack: Awaited<ReturnType<typeof startSlackEmulator>>;
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  let responses = 0;
  const ids = { alices: '', reminder: '', wire: '' };

  beforeAll(async () => {
    slack = await startSlackEmulator({ userGroups: { S0LEADS: [CAROL] } });
    driver = slackDriver(transport, slack);
    tools = await startToolServer({ 'POST /remind': (_req, res) => json(res, 200, { sent: true }), 'POST /wire': (_req, res) => json(res, 200, { wired: true }) });
    built = await buildApp(
      testConfig({
        SLACK_BOT_TOKEN: 'xoxb-test',
        ...driver.env,
        SLACK_APPROVAL_CHANNEL: CHANNEL,
        SLACK_APPROVER_IDS: `${ALICE},${DAVE},S0LEADS`,
        SLACK_TRACE_VIEWER_IDS: VIEWER,
        SLACK_API_URL: slack.url,
        INVOKE_OUTBOX_INTERVAL_MS: '0',
        INVOKE_API_KEY_SCOPES: JSON.stringify({ [ALICE_AGENT_KEY]: { scopes: ['tools:read', 'tools:call'], approver_id: ALICE } }),
      }),
      { logger: false },
    );
    await driver.attach(built.app);
    await send(built.app, 'POST', '/v1/providers', {
      name: 'billing',
      base_url: tools.url,
      tools: [
        { name: 'send_reminder', path: '/remind', risk: 'high' },
        { name: 'wire', path: '/wire', risk: 'medium' },
      ],
    });
    const freeze = async (body: Record<string, unknown>, headers: Record<string, string> = {}) => {
      const res = await send(built.app, 'POST', '/v1/call', body, headers);
      expect(res.body.status).toBe('pending_approval');
      return res.body.approval.id as string;
    };
    // Two pending calls of one tool, told apart only by what they are for.
    ids.alices = await freeze(
      { tool: 'billing.send_reminder', params: { invoice_id: 'inv_1' }, agent_id: 'collector', approval_contract: { intent: 'send_invoice_reminder' } },
      { 'x-api-key': ALICE_AGENT_KEY },
    );
    ids.reminder = await freeze({
      tool: 'billing.send_reminder',
      params: { invoice_id: 'inv_2', note: `<!channel> *pay* ${'x'.repeat(5000)}` },
      agent_id: 'dunning<&>',
      approval_contract: { intent: 'send_final_notice' },
    });
    // An intent from the policy rule that froze the call, not from a contract.
    ids.wire = await freeze({
      tool: 'billing.wire',
      params: { amount: 5000 },
      agent_id: 'treasurer',
      policy: { rules: [{ when: 'tool == billing.wire', effect: 'require_approval', intent: 'pay_supplier', reason: 'wires need a human' }] },
    });
  });
  afterAll(async () => {
    await built?.app.close();
    await tools?.close();
    await slack?.close();
  });

  async function command(text: string, user: string): Promise<{ body: Record<string, unknown>; shown: string }> {
    const responseId = `c${++responses}`;
    const res = await driver.command({
      token: 'legacy',
      team_id: 'T1',
      channel_id: CHANNEL,
      user_id: user,
      command: '/invoke',
      text,
      response_url: slack.responseUrl(responseId),
      trigger_id: 't',
    });
    expect(res.acked).toBe(true);
    const deadline = Date.now() + 5000;
    for (;;) {
      const response = slack.responses.find((r) => r.id === responseId);
      if (response) {
        const message = response.body as Record<string, unknown>;
        expect(message.response_type).toBe('ephemeral');
        return { body: message, shown: textOf(message) };
      }
      if (Date.now() > deadline) throw new Error('no answer to /invoke');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  const listed = (shown: string) =>
    Object.entries(ids)
      .filter(([, id]) => shown.includes(`\`${id}\``))
      .map(([name]) => name);

  core("tells two pending calls of one tool apart by intent, reason and params, within Slack's limits", async () => {
    const { body, shown } = await command('approvals', VIEWER);
    expect(shown).toContain('*Pending approvals*: 3, oldest first');
    const first = entryOf(shown, ids.alices);
    const second = entryOf(shown, ids.reminder);
    expect(first).toContain('`billing.send_reminder` · intent *send_invoice_reminder* · agent `collector` · risk high');
    expect(second).toContain('`billing.send_reminder` · intent *send_final_notice* · agent `dunning&lt;&amp;&gt;` · risk high');
    expect(first).toMatch(/\n {3}why: \S+/);
    expect(first).toContain('params `invoice_id: "inv_1"`');
    expect(first).toMatch(/expires <!date\^\d+\^/);
    // The long note is escaped and cut without hiding the invoice: no mention reaches Slack.
    expect(second).toMatch(/params `note: "&lt;!channel&gt; \*pay\* x+…, invoice_id: "inv_2"`/);
    expect(second.length).toBeLessThan(800);
    expect(JSON.stringify(body)).not.toContain('<!channel>');
    expect(entryOf(shown, ids.wire)).toContain('`billing.wire` · intent *pay_supplier* · agent `treasurer` · risk medium');
    expect(entryOf(shown, ids.wire)).toContain('why: wires need a human');
    expect((body.blocks as unknown[]).length).toBeLessThanOrEqual(50);
    expect(JSON.stringify(body.blocks).length).toBeLessThan(13_000);
  });

  core('lists for an approver everything pending they may decide', async () => {
    const { shown } = await command('approvals mine', DAVE);
    expect(shown).toContain('*Pending approvals you may decide*: 3, oldest first');
    expect(listed(shown)).toEqual(['alices', 'reminder', 'wire']);
  });

  httpOnly("leaves out of the requester's own list the call their key requested", async () => {
    const { shown } = await command('approvals mine', ALICE);
    expect(shown).toContain('*Pending approvals you may decide*: 2, oldest first');
    expect(listed(shown)).toEqual(['reminder', 'wire']);
    // Everyone's list still shows it.
    expect(listed((await command('approvals', ALICE)).shown)).toEqual(['alices', 'reminder', 'wire']);
  });

  core('counts an approver through a user group as an approver', async () => {
    expect(listed((await command('approvals mine', CAROL)).shown)).toEqual(['alices', 'reminder', 'wire']);
  });

  httpOnly('tells a trace viewer and a stranger there is nothing they may decide; a stranger may not list everything', async () => {
    const viewer = await command('approvals mine', VIEWER);
    expect(viewer.shown).toContain('You are not an Invoke approver, so there is nothing you may decide.');
    expect(listed(viewer.shown)).toEqual([]);
    // `mine` is open to anyone (a tool may name approvers outside the global lists): it lists nothing of others'.
    const stranger = await command('approvals mine', BOB);
    expect(stranger.shown).toContain('You are not an Invoke approver, so there is nothing you may decide.');
    expect(listed(stranger.shown)).toEqual([]);
    expect((await command('approvals', BOB)).body.text).toMatch(/not allowed to query Invoke/);
  });

  httpOnly('leaves out what the caller already approved, while the quorum waits for others', async () => {
    const res = await send(built.app, 'POST', '/v1/call', {
      tool: 'billing.send_reminder',
      params: { invoice_id: 'inv_9' },
      agent_id: 'collector',
      approval_contract: { intent: 'send_invoice_reminder', approvals_required: 2 },
    });
    expect(res.body.status).toBe('pending_approval');
    const id = res.body.approval.id as string;
    const voted = await built.services.approvals.approve({ approver: DAVE, via: 'slack' }, id, {});
    expect(voted.outcome).toBe('awaiting_approvals');
    expect((await command('approvals mine', DAVE)).shown).not.toContain(`\`${id}\``);
    expect((await command('approvals mine', CAROL)).shown).toContain(`\`${id}\``);
  });

  // Last: it adds many approvals the lists above would count.
  httpOnly("keeps a long list within Slack's limits, saying how many are not shown", async () => {
    for (let i = 0; i < 30; i++) {
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.send_reminder',
        params: { invoice_id: `inv_${i}`, [`k${'y'.repeat(200)}`]: 'z'.repeat(3000) },
        agent_id: `a${'g'.repeat(60)}`,
        approval_contract: { intent: `i${'n'.repeat(180)}<b>` },
      });
      expect(res.body.status).toBe('pending_approval');
    }
    for (const text of ['approvals', 'approvals mine']) {
      const { body, shown } = await command(text, DAVE);
      const blocks = body.blocks as Array<{ text?: { text: string } }>;
      expect(blocks.length).toBeLessThanOrEqual(50);
      for (const block of blocks) expect(block.text?.text.length ?? 0).toBeLessThanOrEqual(3000);
      expect(JSON.stringify(blocks).length).toBeLessThan(13_000);
      expect(shown).toMatch(/Showing the oldest 25 of 3\d\./);
      expect(shown).not.toContain('<b>');
    }
  });
});
