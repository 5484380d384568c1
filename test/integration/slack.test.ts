import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import {
  APPROVE_ACTION_ID,
  EDIT_ACTION_ID,
  REFETCH_ACTION_ID,
  REJECT_ACTION_ID,
  REJECT_MODAL_CALLBACK_ID,
  REJECT_REASON_ACTION_ID,
  REJECT_REASON_BLOCK_ID,
} from '../../src/slack/blocks.ts';
import { startSlackEmulator } from '../../demo/slack-emulator.ts';
import { buildApp } from '../../src/app.ts';
import { buildTestApp, send, testConfig } from '../helpers/app.ts';
import { postSignedToSlack, SIGNING_SECRET, SLACK_TRANSPORTS, slackDriver, type SlackDriver, httpOnlyTest, httpOnlySuite } from '../helpers/slack-transport.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';
import { waitFor } from '../helpers/wait.ts';

const CHANNEL = 'C0APPROVALS';
const ALICE = 'UALICE';
const BOB = 'UBOB';
const VIEWER = 'UVIEWER';
const CAROL = 'UCAROL';
/** Alice's agent key: calls tools on behalf of the Slack user UALICE. */
const ALICE_AGENT_KEY = 'key-alice-agent';

/**
 * The Slack app, driven the way Slack drives it: signed HTTP requests to /slack/events, or
 * envelopes over Socket Mode. Its Web API calls go to a local emulator that records them. The core
 * flows (approve, reject, refetch, /invoke) run over both transports; the rest over HTTP only.
 */
describe.each(SLACK_TRANSPORTS)('Slack app over %s', (transport) => {
  /** Runs over both transports. */
  const core = it;
  /** Transport-independent (or HTTP-specific): run once, over HTTP. */
  const httpOnly = httpOnlyTest(transport);
  let driver: SlackDriver;
  let built: BuiltApp;
  let slack: Awaited<ReturnType<typeof startSlackEmulator>>;
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  let invoice: Record<string, unknown>;
  let responses = 0;
  /** How far the app's clock runs ahead of the wall clock: tests move it instead of waiting. */
  let clockAheadMs = 0;
  /** Everything the app logs, parsed (pino JSON lines). */
  const logs: Array<{ level: number; msg?: string; err?: { message?: string } }> = [];

  beforeAll(async () => {
    slack = await startSlackEmulator({ userGroups: { S0LEADS: [CAROL] } });
    driver = slackDriver(transport, slack);
    tools = await startToolServer({
      'POST /remind': (_req, res) => json(res, 200, { sent: true, channel: 'email' }),
      'GET /invoices/*': (_req, res) => json(res, 200, invoice),
    });
    built = await buildApp(
      testConfig({
        SLACK_BOT_TOKEN: 'xoxb-test',
        ...driver.env,
        SLACK_APPROVAL_CHANNEL: CHANNEL,
        SLACK_APPROVER_IDS: `${ALICE},S0LEADS`,
        SLACK_TRACE_VIEWER_IDS: VIEWER,
        SLACK_API_URL: slack.url,
        INVOKE_OUTBOX_INTERVAL_MS: '0',
        INVOKE_API_KEY_SCOPES: JSON.stringify({ [ALICE_AGENT_KEY]: { scopes: ['tools:read', 'tools:call'], approver_id: ALICE } }),
      }),
      { logger: { level: 'debug', stream: { write: (line: string) => void logs.push(JSON.parse(line)) } }, clock: () => Date.now() + clockAheadMs },
    );
    await driver.attach(built.app);
    await send(built.app, 'POST', '/v1/providers', {
      name: 'billing',
      base_url: tools.url,
      tools: [
        { name: 'send_reminder', path: '/remind', risk: 'high', description: 'Email an invoice reminder' },
        { name: 'get_invoice', method: 'GET', path: '/invoices/{invoice_id}', side_effects: false, risk: 'low' },
      ],
    });
  });
  afterAll(async () => {
    await built.app.close();
    await tools.close();
    await slack.close();
  });
  beforeEach(() => {
    invoice = { invoice_id: 'inv_1', invoice_status: 'overdue', balance: 100 };
  });

  const deliver = () => built.services.deliverOutbox();
  /** Delivers the outbox until Slack received a matching call (handlers also flush it themselves). */
  const delivered = (method: string, match: (args: Record<string, unknown>) => boolean) =>
    waitFor(async () => {
      await deliver();
      return slack.callsTo(method).find((c) => match(c.args));
    });

  async function freezeAndPost(options: { key?: string; contract?: Record<string, unknown> } = {}): Promise<{ id: string; callId: string; ts: string }> {
    const res = await send(
      built.app,
      'POST',
      '/v1/call',
      {
        tool: 'billing.send_reminder',
        params: { invoice_id: 'inv_1', note: 'x'.repeat(5000) },
        agent_id: 'billing_agent',
        approval_contract: {
          intent: 'send_invoice_reminder',
          conditions: { invoice_status: 'overdue', balance: '> 0' },
          state_refetch: { tool: 'billing.get_invoice', params: { invoice_id: '{{params.invoice_id}}' } },
          ...options.contract,
        },
      },
      options.key ? { 'x-api-key': options.key } : {},
    );
    expect(res.status).toBe(202);
    await deliver();
    const row = await built.store.db.selectFrom('approvals').select(['slack_ts', 'slack_channel']).where('id', '=', res.body.approval.id).executeTakeFirstOrThrow();
    expect(row.slack_channel).toBe(CHANNEL);
    return { id: res.body.approval.id, callId: res.body.call_id, ts: row.slack_ts! };
  }

  async function slackRequest(body: string, contentType: string, timestamp = Math.floor(Date.now() / 1000), secret = SIGNING_SECRET) {
    const started = Date.now();
    const response = await postSignedToSlack(built.app, body, contentType, { secret, timestamp });
    return { status: response.statusCode, body: response.body, elapsed: Date.now() - started };
  }

  const interaction = (payload: Record<string, unknown>) => driver.interaction(payload);

  /** A button click on a card; `from: 'home'` is a click in App Home: no channel, no response_url. */
  function click(actionId: string, approvalId: string, user: string, ts: string, from: 'card' | 'card without response_url' | 'home' = 'card') {
    const responseId = `r${++responses}`;
    const request = interaction({
      type: 'block_actions',
      user: { id: user, username: user.toLowerCase(), team_id: 'T1' },
      team: { id: 'T1', domain: 'acme' },
      api_app_id: 'A1',
      token: 'legacy',
      trigger_id: `trigger-${responseId}`,
      ...(from === 'card' ? { response_url: slack.responseUrl(responseId) } : {}),
      ...(from === 'home'
        ? { container: { type: 'view', view_id: 'VHOME' }, view: { id: 'VHOME', type: 'home' } }
        : { container: { type: 'message', message_ts: ts, channel_id: CHANNEL, is_ephemeral: false }, channel: { id: CHANNEL, name: 'approvals' }, message: { ts, text: 'card' } }),
      actions: [{ action_id: actionId, block_id: `${approvalId}.actions.p0`, value: approvalId, type: 'button', action_ts: String(Date.now() / 1000) }],
    });
    return { request, responseId };
  }

  function submitRejectModal(approvalId: string, user: string, reason: string) {
    return interaction({
      type: 'view_submission',
      user: { id: user },
      team: { id: 'T1' },
      view: {
        id: 'V1',
        callback_id: REJECT_MODAL_CALLBACK_ID,
        private_metadata: approvalId,
        state: { values: { [REJECT_REASON_BLOCK_ID]: { [REJECT_REASON_ACTION_ID]: { type: 'plain_text_input', value: reason } } } },
      },
    });
  }

  async function statusOf(id: string): Promise<string> {
    return (await built.store.db.selectFrom('approvals').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status;
  }

  httpOnly('posts an approval card on freeze, with buttons carrying the approval id', async () => {
    const { id, ts } = await freezeAndPost();
    const post = slack.callsTo('chat.postMessage').find((c) => c.args['channel'] === CHANNEL && JSON.stringify(c.args['blocks']).includes(id))!;
    expect(post.token).toBe('xoxb-test');
    expect(typeof post.args['text']).toBe('string');
    const blocks = post.args['blocks'] as Array<{ type: string; elements?: Array<{ action_id: string; value: string }> }>;
    const actions = blocks.find((b) => b.type === 'actions')!;
    expect(actions.elements!.map((e) => e.action_id)).toEqual([APPROVE_ACTION_ID, REJECT_ACTION_ID, REFETCH_ACTION_ID, EDIT_ACTION_ID]);
    expect(actions.elements!.every((e) => e.value === id)).toBe(true);
    expect(JSON.stringify(blocks)).toContain('truncated');
    expect(ts).toBeTruthy();
  });

  core('approves on a click: acks at once, runs once, updates the card and replies in its thread', async () => {
    const before = tools.count('POST', '/remind');
    const { id, callId, ts } = await freezeAndPost();
    const { request } = click(APPROVE_ACTION_ID, id, ALICE, ts);
    const res = await request;
    expect(res.acked).toBe(true);
    expect(res.elapsed).toBeLessThan(3000);
    await waitFor(async () => (await statusOf(id)) === 'executed');
    expect(tools.count('POST', '/remind')).toBe(before + 1);
    const update = await delivered('chat.update', (args) => args['ts'] === ts);
    expect(JSON.stringify(update.args['blocks'])).not.toContain(APPROVE_ACTION_ID);
    expect(JSON.stringify(update.args['blocks'])).toContain(`<@${ALICE}>`);
    const reply = await delivered('chat.postMessage', (args) => args['thread_ts'] === ts);
    expect(String(reply.args['text'])).toMatch(/xecuted/);

    const answer = await send(built.app, 'GET', `/traces/${callId}`);
    expect(answer.body.status).toBe('executed');
  });

  httpOnly('lets members of an approver user group decide', async () => {
    const { id, ts } = await freezeAndPost();
    await click(APPROVE_ACTION_ID, id, CAROL, ts).request;
    await waitFor(async () => (await statusOf(id)) === 'executed');
    expect(slack.callsTo('usergroups.users.list').some((c) => c.args['usergroup'] === 'S0LEADS')).toBe(true);
  });

  core('tells an unauthorised clicker ephemerally and leaves the card alone', async () => {
    const { id, ts } = await freezeAndPost();
    const updatesBefore = slack.callsTo('chat.update').length;
    const { request, responseId } = click(APPROVE_ACTION_ID, id, BOB, ts);
    expect((await request).acked).toBe(true);
    const response = await waitFor(async () => slack.responses.find((r) => r.id === responseId));
    expect(response.body).toMatchObject({ response_type: 'ephemeral' });
    expect(JSON.stringify(response.body)).toMatch(/not allowed/);
    expect(await statusOf(id)).toBe('pending');
    await deliver();
    expect(slack.callsTo('chat.update')).toHaveLength(updatesBefore);
  });

  httpOnly('refuses the person who requested the call: Approve, Reject and the reason modal; the card stays, nothing runs', async () => {
    const before = tools.count('POST', '/remind');
    const { id, ts } = await freezeAndPost({ key: ALICE_AGENT_KEY });
    const updatesBefore = slack.callsTo('chat.update').length;

    const approveClick = click(APPROVE_ACTION_ID, id, ALICE, ts);
    expect((await approveClick.request).acked).toBe(true);
    const approveAnswer = await waitFor(async () => slack.responses.find((r) => r.id === approveClick.responseId));
    expect(approveAnswer.body).toMatchObject({ response_type: 'ephemeral' });
    expect(JSON.stringify(approveAnswer.body)).toMatch(/You requested this call/);

    const rejectClick = click(REJECT_ACTION_ID, id, ALICE, ts);
    await rejectClick.request;
    const rejectAnswer = await waitFor(async () => slack.responses.find((r) => r.id === rejectClick.responseId));
    expect(JSON.stringify(rejectAnswer.body)).toMatch(/You requested this call/);
    expect(slack.callsTo('views.open').some((c) => (c.args['view'] as { private_metadata?: string }).private_metadata === id)).toBe(false);

    // A reason modal submitted anyway (opened before, or forged) decides nothing either.
    expect((await submitRejectModal(id, ALICE, 'mine, never mind')).acked).toBe(true);
    const told = await waitFor(async () => slack.callsTo('chat.postEphemeral').find((c) => c.args['user'] === ALICE && /You requested this call/.test(String(c.args['text']))));
    expect(told.args['channel']).toBe(CHANNEL);

    expect(await statusOf(id)).toBe('pending');
    await deliver();
    expect(slack.callsTo('chat.update')).toHaveLength(updatesBefore);
    expect(tools.count('POST', '/remind')).toBe(before);

    // Someone else decides, and it runs once.
    await click(APPROVE_ACTION_ID, id, CAROL, ts).request;
    await waitFor(async () => (await statusOf(id)) === 'executed');
    expect(tools.count('POST', '/remind')).toBe(before + 1);
  });

  httpOnlySuite(transport)('a click Slack sent without a response_url', () => {
    const errorsLogged = (from: number) => logs.slice(from).filter((line) => line.level >= 50);
    const ephemeralTo = (user: string, text: RegExp) =>
      waitFor(async () => slack.callsTo('chat.postEphemeral').find((c) => c.args['user'] === user && text.test(String(c.args['text']))));

    httpOnly('still records the decision and answers the clicker with an ephemeral in the channel', async () => {
      const { id, ts } = await freezeAndPost({ contract: { approvals_required: 2 } });
      const logged = logs.length;
      expect((await click(APPROVE_ACTION_ID, id, ALICE, ts, 'card without response_url').request).acked).toBe(true);
      const told = await ephemeralTo(ALICE, /Your approval is recorded \(1 of 2\)/);
      expect(told.args['channel']).toBe(CHANNEL);
      const votes = await built.store.db.selectFrom('approval_votes').select('approver').where('approval_id', '=', id).execute();
      expect(votes.map((v) => v.approver)).toEqual([ALICE]);
      expect(errorsLogged(logged)).toEqual([]);
    });

    httpOnly('from App Home (no channel either): answers in the card channel, refuses without an error', async () => {
      const { id, ts } = await freezeAndPost();
      const logged = logs.length;
      await click(APPROVE_ACTION_ID, id, BOB, ts, 'home').request;
      const told = await ephemeralTo(BOB, /not allowed/);
      expect(told.args['channel']).toBe(CHANNEL);
      await click(APPROVE_ACTION_ID, id, ALICE, ts, 'home').request;
      await waitFor(async () => (await statusOf(id)) === 'executed');
      await click(APPROVE_ACTION_ID, id, CAROL, ts, 'home').request;
      await ephemeralTo(CAROL, /already executed/);
      expect(errorsLogged(logged)).toEqual([]);
    });

    httpOnly('with no channel to answer in (the card is not posted yet), skips the answer with a debug line', async () => {
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.send_reminder',
        params: { invoice_id: 'inv_2' },
        agent_id: 'a',
        approval_contract: { intent: 'not posted yet' },
      });
      const id = res.body.approval.id as string;
      const logged = logs.length;
      await click(APPROVE_ACTION_ID, id, BOB, 'no-ts', 'home').request;
      await waitFor(async () => logs.slice(logged).find((line) => line.level === 20 && /not told/.test(line.msg ?? '')));
      expect(errorsLogged(logged)).toEqual([]);
      expect(await statusOf(id)).toBe('pending');
    });
  });

  httpOnly('refuses forged, stale and future signatures with 401, and runs nothing', async () => {
    const { id, ts } = await freezeAndPost();
    const body = new URLSearchParams({
      payload: JSON.stringify({ type: 'block_actions', user: { id: ALICE }, actions: [{ action_id: APPROVE_ACTION_ID, value: id }], container: { message_ts: ts } }),
    }).toString();
    const now = Math.floor(Date.now() / 1000);
    expect((await slackRequest(body, 'application/x-www-form-urlencoded', now, 'wrong-secret')).status).toBe(401);
    expect((await slackRequest(body, 'application/x-www-form-urlencoded', now - 301)).status).toBe(401);
    expect((await slackRequest(body, 'application/x-www-form-urlencoded', now + 301)).status).toBe(401);
    const unsigned = await built.app.inject({ method: 'POST', url: '/slack/events', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: body });
    expect(unsigned.statusCode).toBe(401);
    await new Promise((r) => setTimeout(r, 100));
    expect(await statusOf(id)).toBe('pending');
  });

  httpOnly('a double click (or a replayed request) decides once; the second clicker hears the status', async () => {
    const before = tools.count('POST', '/remind');
    const { id, ts } = await freezeAndPost();
    const first = click(APPROVE_ACTION_ID, id, ALICE, ts);
    const second = click(APPROVE_ACTION_ID, id, ALICE, ts);
    await Promise.all([first.request, second.request]);
    await waitFor(async () => (await statusOf(id)) === 'executed');
    const third = click(APPROVE_ACTION_ID, id, ALICE, ts);
    await third.request;
    const told = await waitFor(async () => slack.responses.find((r) => r.id === third.responseId));
    expect(JSON.stringify(told.body)).toMatch(/already executed/);
    expect(tools.count('POST', '/remind')).toBe(before + 1);
  });

  core('rejects through a modal that asks for the reason', async () => {
    const { id, ts } = await freezeAndPost();
    const { request } = click(REJECT_ACTION_ID, id, ALICE, ts);
    expect((await request).acked).toBe(true);
    const opened = await waitFor(async () => slack.callsTo('views.open').find((c) => (c.args['view'] as { private_metadata?: string }).private_metadata === id));
    const view = opened.args['view'] as { callback_id: string };
    expect(view.callback_id).toBe(REJECT_MODAL_CALLBACK_ID);

    const submit = (reason: string) =>
      interaction({
        type: 'view_submission',
        user: { id: ALICE },
        team: { id: 'T1' },
        view: {
          id: 'V1',
          callback_id: REJECT_MODAL_CALLBACK_ID,
          private_metadata: id,
          state: { values: { [REJECT_REASON_BLOCK_ID]: { [REJECT_REASON_ACTION_ID]: { type: 'plain_text_input', value: reason } } } },
        },
      });
    const empty = await submit('   ');
    expect(empty.response).toMatchObject({ response_action: 'errors', errors: { reason: expect.any(String) } });
    expect(await statusOf(id)).toBe('pending');
    expect((await submit('Customer paid by phone')).acked).toBe(true);
    await waitFor(async () => (await statusOf(id)) === 'rejected');
    const reply = await delivered('chat.postMessage', (args) => args['thread_ts'] === ts);
    expect(JSON.stringify(reply.args)).toContain('Customer paid by phone');
  });

  core('refetch updates the card with the current drift and decides nothing', async () => {
    const { id, ts } = await freezeAndPost();
    invoice = { ...invoice, balance: 40 };
    await click(REFETCH_ACTION_ID, id, ALICE, ts).request;
    await waitFor(async () => {
      await deliver();
      return slack.callsTo('chat.update').find((c) => c.args['ts'] === ts);
    });
    const update = slack
      .callsTo('chat.update')
      .filter((c) => c.args['ts'] === ts)
      .at(-1)!;
    const text = JSON.stringify(update.args['blocks']);
    expect(text).toContain('balance');
    expect(text).toContain(APPROVE_ACTION_ID);
    expect(await statusOf(id)).toBe('pending');
  });

  httpOnly('requeues on drift: the fresh card goes into the same thread, showing what changed', async () => {
    const { id, ts } = await freezeAndPost();
    invoice = { ...invoice, balance: 40 };
    await click(APPROVE_ACTION_ID, id, ALICE, ts).request;
    await waitFor(async () => (await statusOf(id)) === 'invalidated');
    const freshId = (await built.store.db.selectFrom('approvals').select('id').where('previous_approval_id', '=', id).executeTakeFirstOrThrow()).id;
    const card = await delivered('chat.postMessage', (args) => args['thread_ts'] === ts && JSON.stringify(args['blocks']).includes(`"value":"${freshId}"`));
    const fresh = await built.store.db.selectFrom('approvals').selectAll().where('id', '=', freshId).executeTakeFirstOrThrow();
    const text = JSON.stringify(card.args['blocks']);
    expect(text).toContain('balance');
    expect(text).toMatch(/100/);
    expect(text).toMatch(/40/);
    expect(fresh.slack_thread_ts).toBe(ts);
  });

  httpOnly('retries a post from the outbox after a 429 (at Retry-After) and after a 500', async () => {
    // Earlier tests' posts are out of the way, so the injected faults hit this card.
    await built.store.db.updateTable('outbox').set({ status: 'delivered' }).where('status', '=', 'pending').execute();
    const res = await send(built.app, 'POST', '/v1/call', {
      tool: 'billing.send_reminder',
      params: { invoice_id: 'inv_9' },
      agent_id: 'a',
      approval_contract: { intent: 'retry me' },
    });
    const id = res.body.approval.id;
    slack.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
    await deliver();
    const row = await built.store.db
      .selectFrom('outbox')
      .selectAll()
      .where('kind', '=', 'slack')
      .where(sql<boolean>`payload->>'approval_id' = ${id}`)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe('pending');
    expect(row.last_error).toMatch(/rate limited/);
    expect(row.next_attempt_at.getTime()).toBeGreaterThan(Date.now() + 500);
    expect((await built.store.db.selectFrom('approvals').select('slack_ts').where('id', '=', id).executeTakeFirstOrThrow()).slack_ts).toBeNull();

    // Until Retry-After has passed, this process does not call Slack at all.
    await built.store.db
      .updateTable('outbox')
      .set({ next_attempt_at: sql`now()` })
      .where('id', '=', row.id)
      .execute();
    await deliver();
    expect(slack.callsTo('chat.postMessage').filter((c) => JSON.stringify(c.args['blocks'] ?? '').includes(id))).toHaveLength(1);
    clockAheadMs += 1100; // past Retry-After
    slack.failNext('chat.postMessage', { status: 500 });
    await deliver();
    const after500 = await built.store.db.selectFrom('outbox').selectAll().where('id', '=', row.id).executeTakeFirstOrThrow();
    expect(after500.status).toBe('pending');
    expect(after500.attempts).toBe(2);

    await built.store.db
      .updateTable('outbox')
      .set({ next_attempt_at: sql`now()` })
      .where('id', '=', row.id)
      .execute();
    await deliver();
    expect((await built.store.db.selectFrom('outbox').select('status').where('id', '=', row.id).executeTakeFirstOrThrow()).status).toBe('delivered');
    expect((await built.store.db.selectFrom('approvals').select('slack_ts').where('id', '=', id).executeTakeFirstOrThrow()).slack_ts).not.toBeNull();
  });

  describe('/invoke', () => {
    async function command(text: string, user = ALICE) {
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
      expect(res.elapsed).toBeLessThan(3000);
      const response = await waitFor(async () => slack.responses.find((r) => r.id === responseId));
      return { ...response, text: JSON.stringify(response.body) };
    }

    core('answers every subcommand ephemerally', async () => {
      const { id, callId } = await freezeAndPost();
      const help = await command('help');
      expect(help.body).toMatchObject({ response_type: 'ephemeral' });
      expect(help.text).toContain('traces');
      expect((await command('traces agent:billing_agent last:5')).text).toContain('billing.send_reminder');
      expect((await command(`trace ${callId}`)).text).toContain('approval_requested');
      expect((await command('approvals')).text).toContain(id);
      expect((await command(`approval ${id}`)).text).toContain('pending');
      expect((await command('stats 7d')).text).toMatch(/pending_approval|Pending/i);
      expect((await command('tools')).text).toContain('billing.get_invoice');
      const unknown = await command('dance');
      expect(unknown.text).toContain('Unknown command');
      expect((await command('traces', VIEWER)).body).toMatchObject({ response_type: 'ephemeral' });
    });

    core('refuses users who are neither approvers nor trace viewers', async () => {
      expect((await command('traces', BOB)).text).toMatch(/not allowed/);
    });
  });

  httpOnly('starts and serves while Slack is unreachable; the card waits in the outbox', async () => {
    const offline = await buildTestApp(
      {
        SLACK_BOT_TOKEN: 'xoxb-test',
        SLACK_SIGNING_SECRET: SIGNING_SECRET,
        SLACK_APPROVAL_CHANNEL: CHANNEL,
        SLACK_APPROVER_IDS: ALICE,
        SLACK_API_URL: 'http://127.0.0.1:9/api/',
        INVOKE_OUTBOX_INTERVAL_MS: '0',
      },
      built.store,
    );
    try {
      expect((await offline.app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
      const res = await send(offline.app, 'POST', '/v1/call', {
        tool: 'billing.get_invoice',
        params: { invoice_id: 'inv_1' },
        agent_id: 'a',
        approval_contract: { intent: 'offline' },
      });
      expect(res.status).toBe(202);
      await offline.services.deliverOutbox();
      const row = await built.store.db
        .selectFrom('outbox')
        .selectAll()
        .where(sql<boolean>`payload->>'approval_id' = ${res.body.approval.id}`)
        .executeTakeFirstOrThrow();
      expect(row).toMatchObject({ status: 'pending', attempts: 1 });
    } finally {
      await offline.app.close();
    }
  });

  httpOnly('posts the card right after the commit that froze the call, without waiting for the timer', async () => {
    const prompt = await buildTestApp(
      {
        SLACK_BOT_TOKEN: 'xoxb-test',
        SLACK_SIGNING_SECRET: SIGNING_SECRET,
        SLACK_APPROVAL_CHANNEL: CHANNEL,
        SLACK_APPROVER_IDS: ALICE,
        SLACK_API_URL: slack.url,
        // The timer would come only after the test's deadline: only the wake at commit can post.
        INVOKE_OUTBOX_INTERVAL_MS: '600000',
      },
      built.store,
    );
    try {
      const frozenAt = Date.now();
      const res = await send(prompt.app, 'POST', '/v1/call', {
        tool: 'billing.get_invoice',
        params: { invoice_id: 'inv_1' },
        agent_id: 'a',
        approval_contract: { intent: 'prompt card' },
      });
      expect(res.status).toBe(202);
      const card = await waitFor(async () => slack.callsTo('chat.postMessage').find((c) => JSON.stringify(c.args).includes(res.body.approval.id)), 3000);
      expect(card.at - frozenAt).toBeLessThan(3000);
      // The card's ts is stored once chat.postMessage has answered.
      const ts = await waitFor(
        async () => (await built.store.db.selectFrom('approvals').select('slack_ts').where('id', '=', res.body.approval.id).executeTakeFirstOrThrow()).slack_ts,
        3000,
      );
      expect(ts).toBeTruthy();
    } finally {
      await prompt.app.close();
    }
  });

  httpOnly('answers url_verification and refuses a body it cannot read', async () => {
    const res = await slackRequest(JSON.stringify({ type: 'url_verification', challenge: 'abc' }), 'application/json');
    expect(JSON.parse(res.body)).toEqual({ challenge: 'abc' });
    expect((await slackRequest('{not json', 'application/json')).status).toBe(400);
  });
});
