import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSlackEmulator, type SlackEmulator } from '../../demo/slack-emulator.ts';
import { buildApp, type BuiltApp } from '../../src/app.ts';
import { HOME_MAX_BLOCKS, HOME_MAX_CARDS } from '../../src/slack/app-home.ts';
import { APPROVE_ACTION_ID, REFETCH_ACTION_ID, EDIT_ACTION_ID, REJECT_ACTION_ID, REJECT_REASON_ACTION_ID, REJECT_REASON_BLOCK_ID } from '../../src/slack/blocks.ts';
import { EDIT_MODAL_CALLBACK_ID, PARAMS_JSON_ACTION_ID, PARAMS_JSON_BLOCK_ID } from '../../src/slack/edit-modal.ts';
import { send, testConfig } from '../helpers/app.ts';
import { SLACK_TRANSPORTS, slackDriver, type SlackDriver, httpOnlyTest } from '../helpers/slack-transport.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';
import { waitFor } from '../helpers/wait.ts';

const CHANNEL = 'C0APPROVALS';
/** An approver whose agent key requests calls: they may not decide those. */
const ALICE = 'UALICE';
const DAVE = 'UDAVE';
/** Not an approver. */
const BOB = 'UBOB';
const ALICE_AGENT_KEY = 'key-alice-agent';

type Block = { type: string; block_id?: string; text?: { text?: string }; elements?: Array<{ action_id?: string; value?: string; text?: string }> };

/**
 * The App Home tab: opened (`app_home_opened`), it shows the viewer's pending approvals as their
 * cards, with the cards' buttons; a click there decides like a click in the channel, and the tab
 * is published again. Event and click run over HTTP and Socket Mode.
 */
describe.each(SLACK_TRANSPORTS)('Slack App Home over %s', (transport) => {
  const core = it;
  const httpOnly = httpOnlyTest(transport);
  let driver: SlackDriver;
  let slack: SlackEmulator;
  let built: BuiltApp;
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  let invoice: Record<string, unknown> = { invoice_status: 'overdue', balance: 100 };

  beforeAll(async () => {
    slack = await startSlackEmulator();
    driver = slackDriver(transport, slack);
    tools = await startToolServer({
      'POST /remind': (_req, res) => json(res, 200, { sent: true }),
      'GET /invoices/*': (_req, res) => json(res, 200, invoice),
    });
    built = await buildApp(
      testConfig({
        SLACK_BOT_TOKEN: 'xoxb-test',
        ...driver.env,
        SLACK_APPROVAL_CHANNEL: CHANNEL,
        SLACK_APPROVER_IDS: `${ALICE},${DAVE}`,
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
        { name: 'send_reminder', path: '/remind', risk: 'medium' },
        { name: 'get_invoice', method: 'GET', path: '/invoices/{invoice_id}', side_effects: false, risk: 'low' },
      ],
    });
  });
  afterAll(async () => {
    await built?.app.close();
    await tools?.close();
    await slack?.close();
  });

  async function freeze(headers: Record<string, string> = {}, invoiceId = 'inv_1'): Promise<string> {
    const res = await send(
      built.app,
      'POST',
      '/v1/call',
      {
        tool: 'billing.send_reminder',
        params: { invoice_id: invoiceId },
        agent_id: 'collector',
        approval_contract: {
          intent: 'send_invoice_reminder',
          conditions: { balance: '> 0' },
          state_refetch: { tool: 'billing.get_invoice', params: { invoice_id: '{{params.invoice_id}}' } },
        },
      },
      headers,
    );
    expect(res.body.status).toBe('pending_approval');
    return res.body.approval.id as string;
  }

  /** Opens the Home tab as `user` and returns the view published for them. */
  async function openHome(user: string) {
    const before = slack.homes.length;
    expect((await driver.event({ type: 'app_home_opened', user, channel: 'D1', tab: 'home' })).acked).toBe(true);
    const published = await waitFor(() => slack.homes.slice(before).find((h) => h.user_id === user));
    return homeOf(published.view);
  }

  function homeOf(view: Record<string, unknown>) {
    const blocks = view.blocks as Block[];
    const buttons = blocks.filter((b) => b.type === 'actions').flatMap((b) => b.elements ?? []);
    return { view, blocks, text: JSON.stringify(blocks), shownIds: [...new Set(buttons.map((e) => e.value))], buttons };
  }

  /** A button click on a card in the Home tab: no channel, no message, no response_url. */
  function clickInHome(actionId: string, approvalId: string, user: string) {
    return driver.interaction({
      type: 'block_actions',
      user: { id: user, username: user.toLowerCase(), team_id: 'T1' },
      team: { id: 'T1', domain: 'acme' },
      api_app_id: 'A0INVOKE',
      token: 'legacy',
      trigger_id: `trigger-${Date.now()}`,
      container: { type: 'view', view_id: 'VHOME' },
      view: { id: 'VHOME', type: 'home', blocks: [] },
      actions: [{ action_id: actionId, block_id: `${approvalId}.actions.p0`, value: approvalId, type: 'button', action_ts: String(Date.now() / 1000) }],
    });
  }

  const statusOf = async (id: string) => (await built.store.db.selectFrom('approvals').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status;

  // First: nothing is pending yet.
  httpOnly('shows an empty state when nothing is waiting, and tells a non-approver it is not theirs', async () => {
    const empty = await openHome(DAVE);
    expect(empty.view.type).toBe('home');
    expect(empty.text).toContain('Nothing is waiting for your decision');
    expect(empty.buttons).toEqual([]);
    const stranger = await openHome(BOB);
    expect(stranger.text).toContain('not an Invoke approver');
  });

  core("publishes the viewer's pending approvals with the card's buttons, leaving out what they may not decide", async () => {
    const alices = await freeze({ 'x-api-key': ALICE_AGENT_KEY });
    const other = await freeze();

    const dave = await openHome(DAVE);
    expect(dave.shownIds).toEqual([alices, other]);
    expect(dave.buttons.filter((b) => b.value === other).map((b) => b.action_id)).toEqual([APPROVE_ACTION_ID, REJECT_ACTION_ID, REFETCH_ACTION_ID, EDIT_ACTION_ID]);
    expect(dave.text).toContain('send_invoice_reminder');
    expect(dave.text).toContain('billing.send_reminder');

    // Alice requested one of them: her tab shows only the other.
    expect((await openHome(ALICE)).shownIds).toEqual([other]);
    expect((await openHome(BOB)).shownIds).toEqual([]);

    // The Messages tab is not Invoke's: nothing is published for it.
    const before = slack.homes.length;
    await driver.event({ type: 'app_home_opened', user: DAVE, channel: 'D1', tab: 'messages' });
    await new Promise((r) => setTimeout(r, 100));
    expect(slack.homes.length).toBe(before);
  });

  core('a click on Approve in the Home tab runs the call, updates the channel card and republishes the tab', async () => {
    const id = await freeze({}, 'inv_home');
    await built.services.deliverOutbox();
    const card = await built.store.db.selectFrom('approvals').select(['slack_ts', 'slack_channel']).where('id', '=', id).executeTakeFirstOrThrow();
    expect(card.slack_channel).toBe(CHANNEL);
    expect((await openHome(DAVE)).shownIds).toContain(id);
    const runs = tools.count('POST', '/remind');
    const published = slack.homes.length;

    expect((await clickInHome(APPROVE_ACTION_ID, id, DAVE)).acked).toBe(true);
    await waitFor(async () => (await statusOf(id)) === 'executed');
    expect(tools.count('POST', '/remind')).toBe(runs + 1);
    const update = await waitFor(async () => {
      await built.services.deliverOutbox();
      return slack.callsTo('chat.update').find((c) => c.args['ts'] === card.slack_ts && c.args['channel'] === CHANNEL);
    });
    expect(JSON.stringify(update.args['blocks'])).not.toContain(APPROVE_ACTION_ID);
    const republished = await waitFor(() => slack.homes.slice(published).find((h) => h.user_id === DAVE));
    expect(homeOf(republished.view).shownIds).not.toContain(id);
  });

  httpOnly('Reject in the Home tab opens the reason modal; once submitted, the call is rejected and the tab republished', async () => {
    const id = await freeze({}, 'inv_reject');
    await clickInHome(REJECT_ACTION_ID, id, DAVE);
    const opened = await waitFor(() => slack.callsTo('views.open').find((c) => (c.args['view'] as { private_metadata?: string }).private_metadata === id));
    const modal = opened.args['view'] as { callback_id: string };
    const published = slack.homes.length;
    const submitted = await driver.interaction({
      type: 'view_submission',
      user: { id: DAVE },
      team: { id: 'T1' },
      view: {
        id: 'VMODAL',
        callback_id: modal.callback_id,
        private_metadata: id,
        state: { values: { [REJECT_REASON_BLOCK_ID]: { [REJECT_REASON_ACTION_ID]: { type: 'plain_text_input', value: 'paid already' } } } },
      },
    });
    expect(submitted.acked).toBe(true);
    await waitFor(async () => (await statusOf(id)) === 'rejected');
    const republished = await waitFor(() => slack.homes.slice(published).find((h) => h.user_id === DAVE));
    expect(homeOf(republished.view).shownIds).not.toContain(id);
  });

  core('Edit & approve from the Home tab: errors come back in the ack, a good edit runs and the tab is republished', async () => {
    const id = await freeze({}, 'inv_edit');
    await clickInHome(EDIT_ACTION_ID, id, DAVE);
    const opened = await waitFor(() => slack.callsTo('views.open').find((c) => String((c.args['view'] as { private_metadata?: string }).private_metadata).includes(id)));
    const modal = opened.args['view'] as { callback_id: string; private_metadata: string };
    expect(modal.callback_id).toBe(EDIT_MODAL_CALLBACK_ID);
    const submit = (user: string, text: string) =>
      driver.interaction({
        type: 'view_submission',
        user: { id: user },
        team: { id: 'T1' },
        view: {
          id: 'VEDIT',
          callback_id: modal.callback_id,
          private_metadata: modal.private_metadata,
          state: { values: { [PARAMS_JSON_BLOCK_ID]: { [PARAMS_JSON_ACTION_ID]: { type: 'plain_text_input', value: text } } } },
        },
      });

    // Over either transport the modal's errors ride in the ack itself; nothing is decided.
    const invalid = await submit(DAVE, '{"invoice_id": ');
    expect(invalid.response).toMatchObject({ response_action: 'errors', errors: { [PARAMS_JSON_BLOCK_ID]: expect.stringMatching(/Not valid JSON/) } });
    const stranger = await submit(BOB, '{"invoice_id": "inv_edited"}');
    expect(stranger.response).toMatchObject({ response_action: 'errors', errors: { [PARAMS_JSON_BLOCK_ID]: expect.stringContaining('not allowed to decide') } });
    expect(await statusOf(id)).toBe('pending');

    const published = slack.homes.length;
    const ok = await submit(DAVE, '{"invoice_id": "inv_edited"}');
    expect(ok.acked).toBe(true);
    expect(ok.response?.['response_action']).toBeUndefined();
    await waitFor(async () => (await statusOf(id)) === 'executed');
    // The decider's tab drops the approval, as after an Approve or a Reject.
    const republished = await waitFor(() => slack.homes.slice(published).find((h) => h.user_id === DAVE));
    expect(homeOf(republished.view).shownIds).not.toContain(id);
  });

  httpOnly('a Refetch clicked in the Home tab shows the live state on that card there, and decides nothing', async () => {
    const id = await freeze({}, 'inv_refetch');
    invoice = { invoice_status: 'overdue', balance: 40 };
    const published = slack.homes.length;
    await clickInHome(REFETCH_ACTION_ID, id, DAVE);
    const republished = await waitFor(() => slack.homes.slice(published).find((h) => h.user_id === DAVE));
    const home = homeOf(republished.view);
    const live = home.blocks.find((b) => b.block_id?.startsWith(`${id}.live.`));
    expect(live?.text?.text).toMatch(/Live state differs/);
    expect(live?.text?.text).toContain('40');
    expect(home.shownIds).toContain(id);
    expect(await statusOf(id)).toBe('pending');
  });

  // Last: it adds more approvals than the tab shows.
  httpOnly(`shows at most ${HOME_MAX_CARDS} cards within Slack's ${HOME_MAX_BLOCKS} blocks, and counts the rest`, async () => {
    for (let i = 0; i < HOME_MAX_CARDS + 3; i++) await freeze({}, `inv_many_${i}`);
    const pending = await built.store.db.selectFrom('approvals').select('id').where('status', '=', 'pending').execute();
    const home = await openHome(DAVE);
    expect(home.blocks.length).toBeLessThanOrEqual(HOME_MAX_BLOCKS);
    expect(home.shownIds).toHaveLength(HOME_MAX_CARDS);
    expect(home.text).toContain(`${pending.length - HOME_MAX_CARDS} more not shown`);
    expect(home.text).toContain(`*${pending.length}* pending you may decide`);
  });
});
