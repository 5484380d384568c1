import { ErrorCode, LogLevel, WebClient } from '@slack/web-api';
import type { WebAPIHTTPError, WebAPIPlatformError, WebAPIRateLimitedError } from '@slack/web-api';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startSlackEmulator } from '../../demo/slack-emulator.ts';
import type { SlackEmulator } from '../../demo/slack-emulator.ts';

const TOKEN = 'xoxb-test-token';
// What a failed call rejected with, typed as the error the test expects.
const failure = <T>(call: Promise<unknown>): Promise<T> =>
  call.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (error: unknown) => error as T,
  );
const card = [{ type: 'section', text: { type: 'mrkdwn', text: '*Approve* refund?' } }];

describe('Slack Web API emulator', () => {
  let emulator: SlackEmulator;
  let client: WebClient;

  beforeAll(async () => {
    emulator = await startSlackEmulator();
    client = new WebClient(TOKEN, { slackApiUrl: emulator.url, retryConfig: { retries: 0 } });
  });
  afterAll(() => emulator.close());
  beforeEach(() => emulator.reset());

  it('serves the base URL WebClient expects and records the call with its token', async () => {
    expect(emulator.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api\/$/);
    const answer = await client.auth.test();
    expect(answer).toMatchObject({ ok: true, user_id: 'U0INVOKEBOT', team_id: 'T0INVOKE', bot_id: 'B0INVOKEBOT' });
    expect(emulator.calls).toEqual([{ method: 'auth.test', args: {}, token: TOKEN, at: expect.any(Number) }]);
  });

  it('posts a message with a fresh, increasing ts and decodes its blocks', async () => {
    const first = await client.chat.postMessage({ channel: 'C1', text: 'Approve refund?', blocks: card });
    const second = await client.chat.postMessage({ channel: 'C1', text: 'another' });

    expect(first).toMatchObject({ ok: true, channel: 'C1', message: { text: 'Approve refund?', blocks: card } });
    expect(first.ts).toMatch(/^\d{10}\.\d{6}$/);
    expect(Number(second.ts)).toBeGreaterThan(Number(first.ts));
    expect(emulator.callsTo('chat.postMessage')[0]?.args).toEqual({
      channel: 'C1',
      text: 'Approve refund?',
      blocks: card,
    });
    expect(emulator.messages).toMatchObject([
      { channel: 'C1', ts: first.ts, text: 'Approve refund?', blocks: card, user: 'U0INVOKEBOT', updates: 0 },
      { channel: 'C1', ts: second.ts, text: 'another' },
    ]);
  });

  it('keeps thread_ts on thread replies', async () => {
    const parent = await client.chat.postMessage({ channel: 'C1', text: 'card' });
    const reply = await client.chat.postMessage({ channel: 'C1', text: 'executed', thread_ts: parent.ts! });

    expect(reply.message?.thread_ts).toBe(parent.ts);
    const thread = emulator.messages.filter((m) => m.thread_ts === parent.ts);
    expect(thread).toMatchObject([{ ts: reply.ts, text: 'executed' }]);
  });

  it('updates an existing message and refuses an unknown one', async () => {
    const posted = await client.chat.postMessage({ channel: 'C1', text: 'pending', blocks: card });
    const decided = [{ type: 'section', text: { type: 'mrkdwn', text: 'Approved by <@U1>' } }];

    await client.chat.update({ channel: 'C1', ts: posted.ts!, text: 'approved', blocks: decided });
    expect(emulator.messages).toMatchObject([{ ts: posted.ts, text: 'approved', blocks: decided, updates: 1 }]);

    const missing = client.chat.update({ channel: 'C1', ts: '1.000001', text: 'x' });
    await expect(missing).rejects.toMatchObject({
      code: ErrorCode.PlatformError,
      data: { error: 'message_not_found' },
    });
  });

  it('records ephemeral messages apart from the channel', async () => {
    const answer = await client.chat.postEphemeral({ channel: 'C1', user: 'U2', text: 'You may not decide this.' });

    expect(answer.message_ts).toMatch(/^\d{10}\.\d{6}$/);
    expect(emulator.ephemerals).toEqual([{ channel: 'C1', user: 'U2', message_ts: answer.message_ts, text: 'You may not decide this.' }]);
    expect(emulator.messages).toEqual([]);
  });

  it('opens a view once per trigger_id and requires one', async () => {
    const view = {
      type: 'modal' as const,
      callback_id: 'reject_reason',
      title: { type: 'plain_text' as const, text: 'Reject' },
      blocks: [],
      private_metadata: 'apr_1',
    };

    const opened = await client.views.open({ trigger_id: 'trigger-1', view });
    expect(opened.view).toMatchObject({ id: expect.stringMatching(/^V/), callback_id: 'reject_reason' });
    expect(emulator.views).toEqual([{ id: opened.view?.id, trigger_id: 'trigger-1', view, updates: 0, hash: 'h0' }]);

    await expect(client.views.open({ trigger_id: 'trigger-1', view })).rejects.toMatchObject({
      data: { error: 'exchanged_trigger_id' },
    });
    await expect(client.apiCall('views.open', { view })).rejects.toMatchObject({
      data: { error: 'invalid_arguments' },
    });
  });

  it('updates an opened view by id (refusing a stale hash) and answers not_found for an unknown one', async () => {
    const view = { type: 'modal' as const, callback_id: 'edit', title: { type: 'plain_text' as const, text: 'Edit' }, blocks: [] };
    const opened = await client.views.open({ trigger_id: 'trigger-u', view });
    const id = opened.view!.id!;
    const next = { ...view, title: { type: 'plain_text' as const, text: 'Edited' } };
    const updated = await client.views.update({ view_id: id, hash: 'h0', view: next });
    expect(updated.view).toMatchObject({ id, hash: 'h1', title: { text: 'Edited' } });
    expect(emulator.views.find((v) => v.id === id)).toMatchObject({ updates: 1, view: next });
    await expect(client.views.update({ view_id: id, hash: 'h0', view })).rejects.toMatchObject({ data: { error: 'hash_conflict' } });
    await expect(client.views.update({ view_id: 'VNOPE', view })).rejects.toMatchObject({ data: { error: 'not_found' } });
  });

  it('answers conversations.info, users.info and usergroups.users.list minimally', async () => {
    const groups = await startSlackEmulator({ userGroups: { S1: ['U1', 'U2'] } });
    const groupClient = new WebClient(TOKEN, { slackApiUrl: groups.url, retryConfig: { retries: 0 } });
    try {
      expect((await groupClient.conversations.info({ channel: 'C1' })).channel?.id).toBe('C1');
      expect((await groupClient.users.info({ user: 'U1' })).user?.id).toBe('U1');
      expect((await groupClient.usergroups.users.list({ usergroup: 'S1' })).users).toEqual(['U1', 'U2']);
      await expect(groupClient.usergroups.users.list({ usergroup: 'S9' })).rejects.toMatchObject({
        data: { error: 'no_such_subteam' },
      });
      groups.setUserGroup('S9', ['U3']);
      groups.setUserGroup('S1', undefined);
      expect((await groupClient.usergroups.users.list({ usergroup: 'S9' })).users).toEqual(['U3']);
      await expect(groupClient.usergroups.users.list({ usergroup: 'S1' })).rejects.toMatchObject({ data: { error: 'no_such_subteam' } });
    } finally {
      await groups.close();
    }
  });

  it('opens a DM channel per user with conversations.open, and posts there', async () => {
    const opened = await client.conversations.open({ users: 'UDAVE' });
    expect(opened.channel?.id).toBe(emulator.dmChannelOf('UDAVE'));
    expect((await client.conversations.open({ users: 'UDAVE' })).channel?.id).toBe(opened.channel?.id);
    await expect(client.apiCall('conversations.open', {})).rejects.toMatchObject({ data: { error: 'users_list_not_supplied' } });
    const posted = await client.chat.postMessage({ channel: opened.channel!.id!, text: 'hello' });
    expect(emulator.messages.at(-1)).toMatchObject({ channel: 'DUDAVE', text: 'hello' });
    // chat.getPermalink names the message `message_ts`, as Slack does.
    const link = await client.chat.getPermalink({ channel: 'DUDAVE', message_ts: posted.ts! });
    expect(link.permalink).toBe(`https://invoke-emulator.slack.com/archives/DUDAVE/p${posted.ts!.replace('.', '')}`);
  });

  it('answers unknown methods with unknown_method and calls without a token with not_authed', async () => {
    await expect(client.apiCall('chat.teleport', { channel: 'C1' })).rejects.toMatchObject({
      data: { ok: false, error: 'unknown_method' },
    });
    const anonymous = new WebClient(undefined, { slackApiUrl: emulator.url, retryConfig: { retries: 0 } });
    await expect(anonymous.auth.test()).rejects.toMatchObject({ data: { error: 'not_authed' } });
    expect(emulator.callsTo('chat.teleport')).toHaveLength(1);
  });

  it('answers a 429 with Retry-After, which the client waits out and retries', async () => {
    const retrying = new WebClient(TOKEN, {
      slackApiUrl: emulator.url,
      retryConfig: { retries: 1, factor: 1, minTimeout: 10, maxTimeout: 20 },
      logLevel: LogLevel.ERROR,
    });
    emulator.failNext('chat.postMessage', { status: 429, retryAfter: 1 });

    const answer = await retrying.chat.postMessage({ channel: 'C1', text: 'card' });

    const [limited, retried] = emulator.callsTo('chat.postMessage');
    expect(answer.ok).toBe(true);
    expect(limited?.fault).toEqual({ status: 429, retryAfter: 1 });
    expect(retried?.fault).toBeUndefined();
    expect(retried!.at - limited!.at).toBeGreaterThanOrEqual(990);
    expect(emulator.messages).toHaveLength(1);
  });

  it('surfaces a 429 as a rate-limit error when the client rejects rate-limited calls', async () => {
    const rejecting = new WebClient(TOKEN, { slackApiUrl: emulator.url, rejectRateLimitedCalls: true });
    emulator.failNext('chat.postMessage', { status: 429, retryAfter: 7 });

    const error = await failure<WebAPIRateLimitedError>(rejecting.chat.postMessage({ channel: 'C1', text: 'x' }));

    expect(error.code).toBe(ErrorCode.RateLimitedError);
    expect(error.retryAfter).toBe(7);
    expect(emulator.messages).toEqual([]);
  });

  it('surfaces a 500 as an HTTP error, for the given number of calls only', async () => {
    emulator.failNext('chat.postMessage', { status: 500 }, 2);

    for (let i = 0; i < 2; i++) {
      const error = await failure<WebAPIHTTPError>(client.chat.postMessage({ channel: 'C1', text: 'x' }));
      expect(error.code).toBe(ErrorCode.HTTPError);
      expect(error.statusCode).toBe(500);
    }
    await expect(client.chat.postMessage({ channel: 'C1', text: 'x' })).resolves.toMatchObject({ ok: true });
    const faults = emulator.callsTo('chat.postMessage').map((call) => call.fault);
    expect(faults).toEqual([{ status: 500 }, { status: 500 }, undefined]);
  });

  it('injects a Slack error answer', async () => {
    emulator.failNext('chat.postMessage', { error: 'channel_not_found' });

    const error = await failure<WebAPIPlatformError>(client.chat.postMessage({ channel: 'C1', text: 'x' }));

    expect(error.code).toBe(ErrorCode.PlatformError);
    expect(error.data.error).toBe('channel_not_found');
  });

  it('captures POSTs to a response_url', async () => {
    const url = emulator.responseUrl('cmd 1');
    expect(url.startsWith('http://127.0.0.1:')).toBe(true);

    const res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ response_type: 'ephemeral', text: 'No pending approvals.' }),
    });

    expect(await res.json()).toEqual({ ok: true });
    expect(emulator.responses).toEqual([{ id: 'cmd 1', body: { response_type: 'ephemeral', text: 'No pending approvals.' }, at: expect.any(Number) }]);
    expect(emulator.calls).toEqual([]);
  });
});
