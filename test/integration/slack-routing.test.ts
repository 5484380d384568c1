import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSlackEmulator } from '../../demo/slack-emulator.ts';
import { buildApp, type BuiltApp } from '../../src/app.ts';
import type { Checkpoint } from '../../src/approvals/checkpoint.ts';
import { APPROVE_ACTION_ID, REFETCH_ACTION_ID } from '../../src/slack/blocks.ts';
import { EDIT_MODAL_CALLBACK_ID, PARAMS_JSON_ACTION_ID, PARAMS_JSON_BLOCK_ID } from '../../src/slack/edit-modal.ts';
import { send, testConfig } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';
import { waitFor } from '../helpers/wait.ts';
import { postSignedToSlack, SIGNING_SECRET } from '../helpers/slack-transport.ts';

const DEFAULT_CHANNEL = 'C0APPROVALS';
const FINANCE_CHANNEL = 'C0FINANCE';
/** The global Slack approver: decides what nothing routes elsewhere. */
const ALICE = 'UALICE';
/** In the user group S0FINANCE only. */
const FIONA = 'UFIONA';
/** Joins S0FINANCE later. */
const GREG = 'UGREG';
/** A treasury lead, named by a server rule. */
const LEAD = 'ULEAD';
/** The second level of the wire escalation chain. */
const CFO = 'UCFO';
/** The last level. */
const CEO = 'UCEO';
const BOB = 'UBOB';
/** API keys, each bound to an approver id. */
const FIN_BOT_KEY = 'key-fin-bot';
const OPS_BOT_KEY = 'key-ops-bot';
const FIONA_KEY = 'key-fiona';
const LEAD_KEY = 'key-lead';

/**
 * Routing, escalation chains and DMs, driven as Slack drives the app (signed requests) with its
 * Web API calls captured by the emulator: a card or server rule names approvers and a channel,
 * only they decide (Slack and API), groups resolve through usergroups.users.list (cached, then
 * refreshed; unknown groups fail closed), named approvers get DMs with a link to the card.
 */
describe('Slack routing, escalation chains and DMs', () => {
  let built: BuiltApp;
  let slack: Awaited<ReturnType<typeof startSlackEmulator>>;
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  let dir: string;
  let responses = 0;
  /** How far the app's clock runs ahead of the wall clock: the user-group cache reads it. */
  let clockAheadMs = 0;
  /** The app's environment, for a second app on the same store. */
  let appEnv: Record<string, string>;

  beforeAll(async () => {
    slack = await startSlackEmulator({ userGroups: { S0FINANCE: [FIONA], S0AUDIT: [BOB] } });
    tools = await startToolServer({
      'POST /charge': (_req, res) => json(res, 200, { charged: true }),
      'POST /wire': (_req, res) => json(res, 200, { wired: true }),
      'POST /remind': (_req, res) => json(res, 200, { sent: true }),
      'POST /audit': (_req, res) => json(res, 200, { audited: true }),
    });
    dir = await mkdtemp(join(tmpdir(), 'invoke-routing-'));
    const policyFile = join(dir, 'policy.yml');
    await writeFile(
      policyFile,
      [
        'rules:',
        '  - name: wires go to treasury',
        '    when: tool == billing.wire',
        '    effect: require_approval',
        `    approvers: [${LEAD}]`,
        "    channel: '#treasury'",
        '    escalate_to:',
        `      - { approvers: [${CFO}], channel: '#exec', after_seconds: 60 }`,
        `      - { approvers: [${CEO}], after_seconds: 120 }`,
        '  - name: big reminders need the lead and alice',
        '    when: tool == billing.remind and params.n > 100000 and params.n < 200000',
        '    effect: require_approval',
        `    approvers: [${LEAD}, ${ALICE}]`,
        '    approvals_required: 2',
        '  - name: huge reminders go to the lead alone',
        '    when: tool == billing.remind and params.n >= 200000',
        '    effect: require_approval',
        `    approvers: [${LEAD}]`,
      ].join('\n'),
    );
    appEnv = {
      SLACK_BOT_TOKEN: 'xoxb-test',
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_APPROVAL_CHANNEL: DEFAULT_CHANNEL,
      SLACK_APPROVER_IDS: ALICE,
      SLACK_API_URL: slack.url,
      SLACK_USERGROUP_TTL: '5m',
      INVOKE_LINK_SECRET: 'routing-review-links-secret-0123456789',
      INVOKE_PUBLIC_URL: 'https://invoke.example',
      INVOKE_OUTBOX_INTERVAL_MS: '0',
      INVOKE_POLICY_FILE: policyFile,
      INVOKE_REQUIRE_APPROVAL_AT: 'high',
      INVOKE_API_KEY_SCOPES: JSON.stringify({
        [FIN_BOT_KEY]: { scopes: ['approvals:read', 'approvals:write'], approver_id: 'fin-bot' },
        [OPS_BOT_KEY]: { scopes: ['approvals:read', 'approvals:write'], approver_id: 'ops-bot' },
        [FIONA_KEY]: { scopes: ['approvals:read', 'approvals:write'], approver_id: FIONA },
        [LEAD_KEY]: { scopes: ['approvals:read', 'approvals:write'], approver_id: LEAD },
      }),
    };
    built = await buildApp(testConfig(appEnv), { logger: false, clock: () => Date.now() + clockAheadMs });
    const registered = await send(built.app, 'POST', '/v1/providers', {
      name: 'billing',
      base_url: tools.url,
      tools: [
        { name: 'charge', path: '/charge', risk: 'high', approvers: ['S0FINANCE', 'fin-bot'], channel: FINANCE_CHANNEL },
        { name: 'wire', path: '/wire', risk: 'low' },
        { name: 'remind', path: '/remind', risk: 'high' },
        { name: 'audit', path: '/audit', risk: 'high', approvers: ['S0AUDIT'] },
      ],
    });
    expect(registered.status).toBe(201);
  });
  afterAll(async () => {
    await built?.app.close();
    await tools?.close();
    await slack?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const deliver = () => built.services.deliverOutbox();
  const approvalRow = (id: string) => built.store.db.selectFrom('approvals').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const statusOf = async (id: string) => (await approvalRow(id)).status;
  const groupLookups = (group: string) => slack.callsTo('usergroups.users.list').filter((c) => c.args['usergroup'] === group).length;
  const dmsTo = (user: string) => slack.callsTo('chat.postMessage').filter((c) => c.args['channel'] === slack.dmChannelOf(user));

  async function freeze(tool: string, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await send(built.app, 'POST', '/v1/call', { tool, params: { n: ++responses }, agent_id: 'billing_agent', ...extra });
    expect(res.status).toBe(202);
    return res.body.approval.id as string;
  }

  /** A button click on a card, as Slack sends it; resolves with the ephemeral answer, if one comes. */
  async function click(approvalId: string, user: string, actionId = APPROVE_ACTION_ID): Promise<string | null> {
    const responseId = `r${++responses}`;
    const body = new URLSearchParams({
      payload: JSON.stringify({
        type: 'block_actions',
        user: { id: user, username: user.toLowerCase(), team_id: 'T1' },
        team: { id: 'T1', domain: 'acme' },
        api_app_id: 'A1',
        token: 'legacy',
        trigger_id: `trigger-${responseId}`,
        response_url: slack.responseUrl(responseId),
        container: { type: 'message', message_ts: '1.1', channel_id: FINANCE_CHANNEL, is_ephemeral: false },
        channel: { id: FINANCE_CHANNEL, name: 'finance' },
        message: { ts: '1.1', text: 'card' },
        actions: [{ action_id: actionId, block_id: `${approvalId}.actions.p0`, value: approvalId, type: 'button', action_ts: String(Date.now() / 1000) }],
      }),
    }).toString();
    const res = await postSignedToSlack(built.app, body);
    expect(res.statusCode).toBe(200);
    // A decision answers nobody ephemerally; a refusal does. Wait for one or the other.
    const answer = await waitFor(async () => {
      const response = slack.responses.find((r) => r.id === responseId);
      if (response) return { text: JSON.stringify(response.body) };
      const status = await statusOf(approvalId);
      return status !== 'pending' && status !== 'approved' ? { text: null } : null;
    });
    return answer.text;
  }

  async function command(text: string, user: string): Promise<string> {
    const responseId = `c${++responses}`;
    const body = new URLSearchParams({
      token: 'legacy',
      team_id: 'T1',
      channel_id: DEFAULT_CHANNEL,
      user_id: user,
      command: '/invoke',
      text,
      response_url: slack.responseUrl(responseId),
      trigger_id: 't',
    }).toString();
    await postSignedToSlack(built.app, body);
    const response = await waitFor(async () => slack.responses.find((r) => r.id === responseId));
    return JSON.stringify(response.body);
  }

  /** Opens the App Home tab as `user`; resolves with the published view's blocks as text. */
  async function openHome(user: string): Promise<string> {
    const before = slack.homes.length;
    const body = JSON.stringify({
      token: 'legacy',
      team_id: 'T1',
      api_app_id: 'A1',
      type: 'event_callback',
      event_id: `Ev${++responses}`,
      event_time: Math.floor(Date.now() / 1000),
      event: { type: 'app_home_opened', user, channel: 'D1', tab: 'home' },
    });
    const res = await postSignedToSlack(built.app, body, 'application/json');
    expect(res.statusCode).toBe(200);
    const published = await waitFor(async () => slack.homes.slice(before).find((h) => h.user_id === user));
    return JSON.stringify(published.view);
  }

  /** Moves an approval's expiry into the past (the sweep's clock is the database's). */
  const expireNow = (id: string) => sql`update approvals set expires_at = now() - interval '1 second' where id = ${id}`.execute(built.store.db);

  it("posts a routed card to the card's channel, naming who may decide", async () => {
    const id = await freeze('billing.charge');
    expect((await approvalRow(id)).approvers).toEqual(['S0FINANCE', 'fin-bot', FINANCE_CHANNEL]);
    await deliver();
    const post = slack.callsTo('chat.postMessage').find((c) => JSON.stringify(c.args['blocks']).includes(id))!;
    expect(post.args['channel']).toBe(FINANCE_CHANNEL);
    expect(JSON.stringify(post.args['blocks'])).toContain('Who may decide: <!subteam^S0FINANCE>, `fin-bot`');
    // An unrouted card goes to the default channel and names the global approvers.
    const plain = await freeze('billing.remind');
    await deliver();
    const plainPost = slack.callsTo('chat.postMessage').find((c) => JSON.stringify(c.args['blocks']).includes(plain))!;
    expect(plainPost.args['channel']).toBe(DEFAULT_CHANNEL);
    expect(JSON.stringify(plainPost.args['blocks'])).toContain(`Who may decide: <@${ALICE}>`);
  });

  it('refuses a click from someone the card does not name (even a global approver); a group member decides', async () => {
    const id = await freeze('billing.charge');
    const refused = await click(id, ALICE);
    expect(refused).toContain('You are not allowed to decide this approval.');
    expect(refused).toContain('<!subteam^S0FINANCE>');
    expect(await click(id, BOB, REFETCH_ACTION_ID)).toContain('not allowed to decide');
    expect(await statusOf(id)).toBe('pending');
    expect(await click(id, FIONA)).toBeNull();
    expect(await statusOf(id)).toBe('executed');
    // A globally listed approver still decides an unrouted card.
    const plain = await freeze('billing.remind');
    expect(await click(plain, ALICE)).toBeNull();
    expect(await statusOf(plain)).toBe('executed');
  });

  it('refuses an API decision by an approver id the card does not name with 403 not_an_approver', async () => {
    const id = await freeze('billing.charge');
    const refused = await send(built.app, 'POST', `/v1/approvals/${id}/approve`, {}, { 'x-api-key': OPS_BOT_KEY });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({ code: 'not_an_approver', details: { approver: 'ops-bot', approvers: ['S0FINANCE', 'fin-bot'] } });
    const rejected = await send(built.app, 'POST', `/v1/approvals/${id}/reject`, { reason: 'no' }, { 'x-api-key': OPS_BOT_KEY });
    expect(rejected.body.error.code).toBe('not_an_approver');
    // Refetch decides nothing, but reads live state for the deciders only, as Slack's Refetch does.
    const refetched = await send(built.app, 'POST', `/v1/approvals/${id}/refetch`, {}, { 'x-api-key': OPS_BOT_KEY });
    expect(refetched.status).toBe(403);
    expect(refetched.body.error.code).toBe('not_an_approver');
    expect((await send(built.app, 'POST', `/v1/approvals/${id}/refetch`, {}, { 'x-api-key': FIN_BOT_KEY })).status).toBe(200);
    // Named directly, or (a key bound to a Slack user) through the group.
    expect((await send(built.app, 'POST', `/v1/approvals/${id}/approve`, {}, { 'x-api-key': FIN_BOT_KEY })).body.outcome).toBe('executed');
    const other = await freeze('billing.charge');
    expect((await send(built.app, 'POST', `/v1/approvals/${other}/approve`, {}, { 'x-api-key': FIONA_KEY })).body.outcome).toBe('executed');
  });

  it('reads a group once for two cards, and again after the TTL, seeing who joined and left', async () => {
    clockAheadMs += 6 * 60_000; // past the 5 minute TTL of what earlier tests read
    const before = groupLookups('S0FINANCE');
    const first = await freeze('billing.charge');
    const second = await freeze('billing.charge');
    await deliver();
    expect(await click(first, FIONA)).toBeNull();
    expect(await click(second, FIONA)).toBeNull();
    expect(groupLookups('S0FINANCE') - before).toBe(1);

    slack.setUserGroup('S0FINANCE', [GREG]);
    const third = await freeze('billing.charge');
    // Within the TTL the members read before stand.
    expect(await click(third, GREG)).toContain('not allowed to decide');
    clockAheadMs += 6 * 60_000;
    expect(await click(third, FIONA)).toContain('not allowed to decide');
    expect(await click(third, GREG)).toBeNull();
    expect(await statusOf(third)).toBe('executed');
    expect(groupLookups('S0FINANCE') - before).toBe(2);
  });

  it('keeps the last known members when Slack fails, and refuses (fails closed) when none are known', async () => {
    clockAheadMs += 6 * 60_000;
    const known = await freeze('billing.charge');
    slack.failNext('usergroups.users.list', { error: 'fatal_error' }, 3);
    expect(await click(known, GREG)).toBeNull();
    expect(await statusOf(known)).toBe('executed');

    // S0AUDIT was never read: with Slack failing, nobody is a member.
    const audit = await freeze('billing.audit');
    slack.failNext('usergroups.users.list', { error: 'fatal_error' }, 3);
    const refused = await click(audit, BOB);
    expect(refused).toContain('not allowed to decide');
    expect(refused).toContain('could not tell Invoke who is in <!subteam^S0AUDIT>');
    slack.failNext('usergroups.users.list', { error: 'fatal_error' }, 3);
    const viaApi = await send(built.app, 'POST', `/v1/approvals/${audit}/approve`, {}, { 'x-api-key': FIONA_KEY });
    expect(viaApi.status).toBe(403);
    expect(viaApi.body.error).toMatchObject({ code: 'not_an_approver', details: { unresolved_groups: ['S0AUDIT'] } });
    expect(await statusOf(audit)).toBe('pending');
    // Once Slack answers again, the member decides.
    slack.reset();
    expect(await click(audit, BOB)).toBeNull();
  });

  it('DMs the named approvers a link to the card once it is posted, and again before expiry', async () => {
    clockAheadMs += 6 * 60_000;
    slack.setUserGroup('S0FINANCE', [FIONA, GREG]);
    const id = await freeze('billing.charge');
    const row = await waitFor(async () => {
      await deliver();
      const posted = await approvalRow(id);
      // One DM row each, possibly sent by different outbox passes: wait for both people.
      const dmed = (user: string) => dmsTo(user).some((c) => String(c.args['text']).includes(posted.slack_ts!.replace('.', '')));
      return posted.slack_ts && dmed(GREG) && dmed(FIONA) ? posted : null;
    });
    const permalink = `https://invoke-emulator.slack.com/archives/${FINANCE_CHANNEL}/p${row.slack_ts!.replace('.', '')}`;
    expect(dmsTo(FIONA).filter((c) => String(c.args['text']).includes(`<${permalink}|Open the card>`))).toHaveLength(1);
    expect(slack.callsTo('conversations.open').map((c) => c.args['users'])).toEqual(expect.arrayContaining([FIONA, GREG]));
    expect(slack.callsTo('chat.getPermalink').some((c) => c.args['message_ts'] === row.slack_ts)).toBe(true);
    // `fin-bot` is an API approver: no one to DM.
    expect(slack.callsTo('conversations.open').some((c) => c.args['users'] === 'fin-bot')).toBe(false);

    // Past 75% of its lifetime, the reminder goes to the thread and, as a DM, to each approver.
    await sql`update approvals set created_at = now() - interval '1 hour', expires_at = now() + interval '1 minute' where id = ${id}`.execute(built.store.db);
    expect((await built.services.sweeps.runPass()).reminded).toBeGreaterThanOrEqual(1);
    await waitFor(async () => {
      await deliver();
      return dmsTo(FIONA).some((c) => String(c.args['text']).includes('Still waiting for a decision') && String(c.args['text']).includes(permalink));
    });
    expect(dmsTo(GREG).filter((c) => String(c.args['text']).includes(permalink))).toHaveLength(2);
  });

  it('posts the card and DMs its approver right after the commit that froze the call, without waiting for the timer', async () => {
    // The timer would come only after the test's deadline: only the wake-ups at commit can deliver.
    const prompt = await buildApp(testConfig({ ...appEnv, INVOKE_OUTBOX_INTERVAL_MS: '60000' }), { store: built.store, logger: false });
    try {
      const res = await send(prompt.app, 'POST', '/v1/call', { tool: 'billing.wire', params: { n: ++responses }, agent_id: 'billing_agent' });
      expect(res.status).toBe(202);
      const answeredAt = Date.now();
      const id = res.body.approval.id as string;
      const card = await waitFor(async () => slack.callsTo('chat.postMessage').find((c) => JSON.stringify(c.args).includes(id)), 2000);
      const ts = await waitFor(async () => (await approvalRow(id)).slack_ts, 2000);
      const dm = await waitFor(async () => dmsTo(LEAD).find((c) => String(c.args['text']).includes(`/p${ts.replace('.', '')}|`)), 2000);
      expect(card.at - answeredAt).toBeLessThan(2000);
      expect(dm.at - answeredAt).toBeLessThan(2000);
      // The card first: the DM links to it.
      expect(dm.at).toBeGreaterThanOrEqual(card.at);
    } finally {
      await prompt.app.close();
    }
  });

  it('posts every due card before any DM work in a pass: a DM never holds up a card', async () => {
    await deliver();
    const before = slack.calls.length;
    const first = await freeze('billing.wire');
    const second = await freeze('billing.wire');
    await deliver();
    const methods = slack.calls.slice(before).map((c) => (c.method === 'chat.postMessage' && c.args['channel'] === slack.dmChannelOf(LEAD) ? 'dm' : c.method));
    const cardOf = (id: string) => slack.calls.findIndex((c) => c.method === 'chat.postMessage' && JSON.stringify(c.args).includes(id)) - before;
    // Both cards go out first, then each fan-out (its permalink) and each DM.
    expect([cardOf(first), cardOf(second)].sort((a, b) => a - b)).toEqual([0, 1]);
    expect(methods.slice(2).filter((m) => m === 'chat.getPermalink')).toHaveLength(2);
    expect(methods.filter((m) => m === 'dm')).toHaveLength(2);
  });

  it('goes on with a backlog bigger than one pass at once, rather than leaving the rest to the timer', async () => {
    await deliver();
    // 25 cards (no DMs) queued while no replica listens: more than one pass (20) delivers.
    const backlog: string[] = [];
    for (let i = 0; i < 25; i++) backlog.push(await freeze('billing.remind'));
    const prompt = await buildApp(testConfig({ ...appEnv, INVOKE_OUTBOX_INTERVAL_MS: '60000' }), { store: built.store, logger: false });
    try {
      // One commit wakes the listener once; the timer is a minute away.
      const last = await send(prompt.app, 'POST', '/v1/call', { tool: 'billing.remind', params: { n: ++responses }, agent_id: 'billing_agent' });
      expect(last.status).toBe(202);
      const posted = (id: string) => slack.callsTo('chat.postMessage').some((c) => JSON.stringify(c.args).includes(id));
      await waitFor(async () => [...backlog, last.body.approval.id as string].every(posted), 2000);
    } finally {
      await prompt.app.close();
    }
  });

  it('walks a server rule escalation chain: each level after its delay, in its channel, DMed; the last level expires', async () => {
    const id = await freeze('billing.wire');
    const first = await approvalRow(id);
    expect(first.approvers).toEqual([LEAD, '#treasury']);
    // The first level lasts until the second's turn: 60 s.
    expect(first.expires_at.getTime() - first.created_at.getTime()).toBeLessThanOrEqual(61_000);
    await deliver();
    expect(slack.callsTo('chat.postMessage').some((c) => c.args['channel'] === '#treasury' && JSON.stringify(c.args['blocks']).includes(id))).toBe(true);

    await expireNow(id);
    expect((await built.services.sweeps.runPass()).escalated).toBe(1);
    const second = await built.store.db.selectFrom('approvals').selectAll().where('previous_approval_id', '=', id).executeTakeFirstOrThrow();
    expect(await statusOf(id)).toBe('escalated');
    expect(second).toMatchObject({ status: 'pending', approvers: [CFO, '#exec'] });
    expect(second.expires_at.getTime() - second.created_at.getTime()).toBeLessThanOrEqual(121_000);
    await waitFor(async () => {
      await deliver();
      return dmsTo(CFO).some((c) => JSON.stringify(c.args).includes('You may decide'));
    });
    const exec = slack.callsTo('chat.postMessage').find((c) => c.args['channel'] === '#exec' && JSON.stringify(c.args['blocks']).includes(second.id));
    // The new level's card links to the new approval's review page, not to the escalated one's.
    const link = /<(https:\/\/invoke\.example\/approvals\/[^|>]+)\|Review in browser>/.exec(JSON.stringify(exec?.args['blocks']))?.[1];
    expect(link).toContain(`/approvals/${second.id}/review?t=`);
    const page = await built.app.inject({ method: 'GET', url: link!.replace('https://invoke.example', '') });
    // The agent's answer (a replayed call, the MCP gateway's "still waiting") names the new approval with its link too.
    const answer = (await send(built.app, 'GET', `/traces/${first.call_id}`)).body.answer;
    expect(answer.approval).toMatchObject({ id: second.id, review_url: expect.stringContaining(`/approvals/${second.id}/review?t=`) });
    // A valid link (an altered or misplaced one is 403): it asks the reader to sign in.
    expect(page.statusCode).toBe(401);
    expect(page.body).toContain('Sign in to review');
    // The lead had their turn: only the CFO decides now.
    expect(await click(second.id, LEAD)).toContain('not allowed to decide');

    await expireNow(second.id);
    expect((await built.services.sweeps.runPass()).escalated).toBe(1);
    const third = await built.store.db.selectFrom('approvals').selectAll().where('previous_approval_id', '=', second.id).executeTakeFirstOrThrow();
    expect(third).toMatchObject({ status: 'pending', approvers: [CEO] });
    expect(third.reason).toMatch(/^escalated after 120s undecided: approval required by server policy/);
    await deliver();
    // No channel on the last level: the default channel.
    expect(slack.callsTo('chat.postMessage').some((c) => c.args['channel'] === DEFAULT_CHANNEL && JSON.stringify(c.args['blocks']).includes(third.id))).toBe(true);

    await expireNow(third.id);
    await built.services.sweeps.runPass();
    expect(await statusOf(third.id)).toBe('expired');
    expect(await built.store.db.selectFrom('approvals').select('id').where('previous_approval_id', '=', third.id).execute()).toEqual([]);
  });

  /** An Edit & approve modal (JSON mode) submitted by `user`; resolves with Slack's answer to the submit. */
  async function submitEdit(approvalId: string, user: string, params: Record<string, unknown>) {
    const body = new URLSearchParams({
      payload: JSON.stringify({
        type: 'view_submission',
        user: { id: user },
        team: { id: 'T1' },
        view: {
          id: 'VEDIT',
          callback_id: EDIT_MODAL_CALLBACK_ID,
          private_metadata: JSON.stringify({ approval_id: approvalId, mode: 'json' }),
          state: { values: { [PARAMS_JSON_BLOCK_ID]: { [PARAMS_JSON_ACTION_ID]: { type: 'plain_text_input', value: JSON.stringify(params) } } } },
        },
      }),
    }).toString();
    const res = await postSignedToSlack(built.app, body);
    return res.body ? (JSON.parse(res.body) as Record<string, unknown>) : null;
  }

  it('refuses an edit whose params a rule routes to approvers that do not include the editor (API and Slack modal)', async () => {
    const reminders = () => tools.requests.filter((r) => r.path === '/remind').length;
    const id = await freeze('billing.remind');
    const before = reminders();
    // Any approvals:write key decides an unrouted approval through the API (no INVOKE_APPROVERS)...
    const viaApi = await send(built.app, 'POST', `/v1/approvals/${id}/approve`, { params: { n: 500_000 } }, { 'x-api-key': FIN_BOT_KEY });
    // ...but the edited call is one the server routes to the lead alone: fin-bot may not approve it.
    expect(viaApi.status).toBe(403);
    expect(viaApi.body.error).toMatchObject({ code: 'not_an_approver', details: { approver: 'fin-bot', approvers: [LEAD] } });
    // Alice, the global Slack approver, likewise: the modal stays open and says who may decide.
    const viaSlack = await submitEdit(id, ALICE, { n: 500_000 });
    expect(viaSlack).toMatchObject({ response_action: 'errors', errors: { [PARAMS_JSON_BLOCK_ID]: expect.stringContaining('not allowed to decide') } });
    expect(JSON.stringify(viaSlack)).toContain(`<@${LEAD}>`);
    expect(await statusOf(id)).toBe('pending');
    expect(reminders()).toBe(before);
    // The params as they are stay hers to approve.
    expect((await send(built.app, 'POST', `/v1/approvals/${id}/approve`, {}, { 'x-api-key': FIN_BOT_KEY })).body.outcome).toBe('executed');
  });

  it("restarts an edit the new rule's approvers include under that rule's routing", async () => {
    const id = await freeze('billing.remind');
    const edited = await submitEdit(id, ALICE, { n: 150_000 });
    expect(edited).toBeNull();
    const fresh = await waitFor(() => built.store.db.selectFrom('approvals').selectAll().where('previous_approval_id', '=', id).executeTakeFirst());
    expect(await statusOf(id)).toBe('invalidated');
    // The edited call answers to its own rule: two of the lead and Alice, Alice's vote the first.
    expect(fresh).toMatchObject({ status: 'pending', approvers: [LEAD, ALICE], approvals_required: 2 });
    expect(await click(fresh.id, BOB)).toContain('not allowed to decide');
    expect(await click(fresh.id, LEAD)).toBeNull();
    expect(await statusOf(fresh.id)).toBe('executed');
  });

  it('keeps the escalation chain when an edit restarts the count on a chained approval', async () => {
    const id = await freeze('billing.wire', { approval_contract: { intent: 'pay_supplier', approvals_required: 2 } });
    const edited = await send(built.app, 'POST', `/v1/approvals/${id}/approve`, { params: { n: 7 } }, { 'x-api-key': LEAD_KEY });
    expect(edited.body.outcome).toBe('edited');
    const fresh = await approvalRow(edited.body.new_approval.id);
    expect(fresh.approvers).toEqual([LEAD, '#treasury']);
    expect((fresh.checkpoint as Checkpoint).escalation_chain?.map((level) => level.approvers)).toEqual([[CFO], [CEO]]);
    // Undecided at the first level's deadline, it goes on to the CFO as the unedited one would.
    await expireNow(fresh.id);
    expect((await built.services.sweeps.runPass()).escalated).toBe(1);
    expect(await statusOf(fresh.id)).toBe('escalated');
    const next = await built.store.db.selectFrom('approvals').selectAll().where('previous_approval_id', '=', fresh.id).executeTakeFirstOrThrow();
    expect(next).toMatchObject({ status: 'pending', approvers: [CFO, '#exec'] });
    expect((next.checkpoint as Checkpoint).params).toEqual({ n: 7 });
  });

  it('lets an agent narrow the approvers to listed ones, never add strangers, another channel or a chain (400)', async () => {
    const rule = (extra: Record<string, unknown>) => ({ policy: { rules: [{ when: 'params.n > 0', effect: 'require_approval', ...extra }] } });
    const call = (tool: string, extra: Record<string, unknown>) => send(built.app, 'POST', '/v1/call', { tool, params: { n: 1 }, agent_id: 'billing_agent', ...rule(extra) });

    const stranger = await call('billing.remind', { approvers: ['UMALLORY'] });
    expect(stranger.status).toBe(400);
    expect(stranger.body.error.details).toMatchObject({ field: 'policy.rules[0].approvers', approvers: ['UMALLORY'] });
    // The card lists its own approvers: a global approver is a stranger to it.
    expect((await call('billing.charge', { approvers: [ALICE] })).status).toBe(400);
    const channel = await call('billing.charge', { channel: '#elsewhere' });
    expect(channel.status).toBe(400);
    expect(channel.body.error.details.field).toBe('policy.rules[0].channel');
    const chain = await call('billing.remind', { escalate_to: [{ approvers: [ALICE], after_seconds: 5 }] });
    expect(chain.status).toBe(400);
    expect(JSON.stringify(chain.body.error)).toContain('escalation chain');

    const narrowed = await call('billing.charge', { approvers: ['fin-bot'], channel: FINANCE_CHANNEL });
    expect(narrowed.status).toBe(202);
    expect((await approvalRow(narrowed.body.approval.id)).approvers).toEqual(['fin-bot', FINANCE_CHANNEL]);
    expect((await send(built.app, 'POST', `/v1/approvals/${narrowed.body.approval.id}/approve`, {}, { 'x-api-key': FIONA_KEY })).status).toBe(403);
  });

  it('/invoke approvals mine lists exactly what the caller may decide under the routing', async () => {
    await built.store.db.updateTable('approvals').set({ status: 'cancelled' }).where('status', '=', 'pending').execute();
    clockAheadMs += 6 * 60_000;
    slack.setUserGroup('S0FINANCE', [FIONA]);
    const charge = await freeze('billing.charge');
    const remind = await freeze('billing.remind');
    const wire = await freeze('billing.wire');
    const fiona = await command('approvals mine', FIONA);
    expect(fiona).toContain(charge);
    expect(fiona).not.toContain(remind);
    expect(fiona).not.toContain(wire);
    const alice = await command('approvals mine', ALICE);
    expect(alice).toContain(remind);
    expect(alice).not.toContain(charge);
    expect(alice).not.toContain(wire);
    const lead = await command('approvals mine', LEAD);
    expect(lead).toContain(wire);
    expect(lead).not.toContain(charge);
    // Someone no card names has nothing to decide.
    expect(await command('approvals mine', BOB)).toContain('nothing you may decide');

    // The App Home tab asks the same question: a routed approver sees what is routed to them
    // though no global list names them; a global approver does not see what routing keeps from them.
    const fionaHome = await openHome(FIONA);
    expect(fionaHome).toContain(charge);
    expect(fionaHome).not.toContain(remind);
    const aliceHome = await openHome(ALICE);
    expect(aliceHome).toContain(remind);
    expect(aliceHome).not.toContain(charge);
    expect(aliceHome).not.toContain(wire);
    expect(await openHome(LEAD)).toContain(wire);
    expect(await openHome(BOB)).toContain('not an Invoke approver');
  });
});
