import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildApp } from '../../src/app.ts';
import {
  APPROVE_ACTION_ID,
  COMMENT_ACTION_ID,
  EDIT_ACTION_ID,
  REJECT_ACTION_ID,
  REJECT_MODAL_CALLBACK_ID,
  REJECT_PRESET_ACTION_ID,
  REJECT_PRESET_BLOCK_ID,
  REJECT_REASON_ACTION_ID,
  REJECT_REASON_BLOCK_ID,
} from '../../src/slack/blocks.ts';
import { COMMENT_BLOCK_ID, EDIT_MODAL_CALLBACK_ID, PARAMS_JSON_ACTION_ID, PARAMS_JSON_BLOCK_ID } from '../../src/slack/edit-modal.ts';
import { startSlackEmulator } from '../../demo/slack-emulator.ts';
import { send, testConfig } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';
import { waitFor } from '../helpers/wait.ts';
import { postSignedToSlack, SIGNING_SECRET } from '../helpers/slack-transport.ts';

const CHANNEL = 'C0APPROVALS';
const ALICE = 'UALICE';
const BOB = 'UBOB';
const ALICE_AGENT_KEY = 'key-alice-agent';

type Node = Record<string, any>;

const FLAT_SCHEMA = {
  type: 'object',
  properties: {
    invoice_id: { type: 'string' },
    amount: { type: 'number', minimum: 1, maximum: 1000 },
    currency: { type: 'string', enum: ['EUR', 'USD'] },
    notify: { type: 'boolean' },
  },
  required: ['invoice_id', 'amount'],
  additionalProperties: false,
};

/** Edit & approve, Approve with comment, and preset reject reasons, driven through signed Slack requests. */
describe('Slack: edit, then approve', () => {
  let built: BuiltApp;
  let slack: Awaited<ReturnType<typeof startSlackEmulator>>;
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  let triggers = 0;

  beforeAll(async () => {
    slack = await startSlackEmulator();
    tools = await startToolServer({ 'POST /refund': (req, res) => json(res, 200, { refunded: (req.body as { amount?: number }).amount }) });
    built = await buildApp(
      testConfig({
        SLACK_BOT_TOKEN: 'xoxb-test',
        SLACK_SIGNING_SECRET: SIGNING_SECRET,
        SLACK_APPROVAL_CHANNEL: CHANNEL,
        SLACK_APPROVER_IDS: `${ALICE},${BOB}`,
        SLACK_API_URL: slack.url,
        INVOKE_OUTBOX_INTERVAL_MS: '0',
        INVOKE_API_KEY_SCOPES: JSON.stringify({ [ALICE_AGENT_KEY]: { scopes: ['tools:read', 'tools:call'], approver_id: ALICE } }),
      }),
      { logger: false },
    );
    await send(built.app, 'POST', '/v1/providers', {
      name: 'pay',
      base_url: tools.url,
      tools: [
        { name: 'refund', path: '/refund', risk: 'high', input_schema: FLAT_SCHEMA },
        { name: 'refund_nested', path: '/refund', risk: 'high', input_schema: { type: 'object', properties: { amount: { type: 'number' }, customer: { type: 'object' } } } },
        { name: 'refund_locked', path: '/refund', risk: 'high', input_schema: FLAT_SCHEMA, editable: false },
      ],
    });
  });
  afterAll(async () => {
    await built.app.close();
    await tools.close();
    await slack.close();
  });

  const refunds = () => tools.requests.filter((r) => r.path === '/refund');
  const deliver = () => built.services.deliverOutbox();
  const statusOf = async (id: string) => (await built.store.db.selectFrom('approvals').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status;

  async function freezeAndPost(tool = 'pay.refund', params: Record<string, unknown> = { invoice_id: 'inv_1', amount: 120, currency: 'EUR' }, key?: string) {
    const res = await send(
      built.app,
      'POST',
      '/v1/call',
      {
        tool,
        params,
        agent_id: 'billing_agent',
        approval_contract: { intent: 'refund_invoice' },
        policy: { rules: [{ when: 'params.amount > 900', effect: 'deny', reason: 'too large to refund here' }] },
      },
      key ? { 'x-api-key': key } : {},
    );
    expect(res.status).toBe(202);
    await deliver();
    const row = await built.store.db.selectFrom('approvals').select('slack_ts').where('id', '=', res.body.approval.id).executeTakeFirstOrThrow();
    return { id: res.body.approval.id as string, callId: res.body.call_id as string, ts: row.slack_ts! };
  }

  function interaction(payload: Record<string, unknown>) {
    const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
    return postSignedToSlack(built.app, body).then((r) => ({ status: r.statusCode, body: r.body }));
  }

  /** A click on the card; returns the modal Slack was asked to open for it, if any. */
  async function clickForModal(actionId: string, id: string, user: string, ts: string, wait = 3000): Promise<Node | undefined> {
    const trigger = `trigger-${++triggers}`;
    const res = await interaction({
      type: 'block_actions',
      user: { id: user },
      team: { id: 'T1' },
      api_app_id: 'A1',
      trigger_id: trigger,
      response_url: slack.responseUrl(trigger),
      container: { type: 'message', message_ts: ts, channel_id: CHANNEL },
      channel: { id: CHANNEL },
      message: { ts, text: 'card' },
      actions: [{ action_id: actionId, block_id: `${id}.actions.p0`, value: id, type: 'button' }],
    });
    expect(res.status).toBe(200);
    // The click is acknowledged first; the modal opens right after.
    return waitFor(async () => slack.views.find((v) => v.trigger_id === trigger)?.view, wait).catch(() => undefined);
  }

  function submit(callbackId: string, privateMetadata: string, user: string, values: Record<string, Record<string, Node>>) {
    return interaction({
      type: 'view_submission',
      user: { id: user },
      team: { id: 'T1' },
      view: { id: 'V1', callback_id: callbackId, private_metadata: privateMetadata, state: { values } },
    });
  }

  /** The modal's own inputs with new values: `fields` by param name. */
  function fieldValues(view: Node, fields: Record<string, unknown>, comment?: string): Record<string, Record<string, Node>> {
    const values: Record<string, Record<string, Node>> = {};
    for (const block of (view.blocks as Node[]).filter((b) => b.type === 'input')) {
      const element = block.element as Node;
      const name = String(block.block_id).replace(/^param:/, '');
      if (block.block_id === COMMENT_BLOCK_ID) values[block.block_id] = { [element.action_id]: { type: element.type, value: comment ?? null } };
      else if (element.type === 'static_select')
        values[block.block_id] = { [element.action_id]: { type: element.type, selected_option: fields[name] ?? element.initial_option ?? null } };
      else if (element.type === 'checkboxes')
        values[block.block_id] = { [element.action_id]: { type: element.type, selected_options: fields[name] ?? element.initial_options ?? [] } };
      else values[block.block_id] = { [element.action_id]: { type: element.type, value: name in fields ? fields[name] : (element.initial_value ?? null) } };
    }
    return values;
  }

  it('"Edit & approve" opens a modal with a field per param; a bad value is shown in the modal; a good one runs edited and the card shows the diff', async () => {
    const { id, callId, ts } = await freezeAndPost();
    const card = slack.callsTo('chat.postMessage').find((c) => c.args['ts'] === undefined && JSON.stringify(c.args['blocks']).includes(id))!;
    const buttons = ((card.args['blocks'] as Node[]).find((b) => b.type === 'actions')!.elements as Node[]).map((e) => e.action_id);
    expect(buttons).toContain(EDIT_ACTION_ID);

    const view = (await clickForModal(EDIT_ACTION_ID, id, BOB, ts))!;
    expect(view.callback_id).toBe(EDIT_MODAL_CALLBACK_ID);
    const inputs = (view.blocks as Node[]).filter((b) => b.type === 'input');
    expect(inputs.map((b) => [b.block_id, b.element.type])).toEqual([
      ['param:invoice_id', 'plain_text_input'],
      ['param:amount', 'number_input'],
      ['param:currency', 'static_select'],
      ['param:notify', 'checkboxes'],
      [COMMENT_BLOCK_ID, 'plain_text_input'],
    ]);
    expect(inputs[1]!.element.initial_value).toBe('120');

    const before = refunds().length;
    // Over the schema's maximum: the modal stays open with the error on the amount field.
    const invalid = await submit(EDIT_MODAL_CALLBACK_ID, view.private_metadata, BOB, fieldValues(view, { amount: '5000' }));
    expect(JSON.parse(invalid.body)).toEqual({ response_action: 'errors', errors: { 'param:amount': 'must be <= 1000' } });
    // Within the schema but over the deny rule: refused in the modal too.
    const denied = await submit(EDIT_MODAL_CALLBACK_ID, view.private_metadata, BOB, fieldValues(view, { amount: '950' }));
    expect(JSON.parse(denied.body)).toMatchObject({ response_action: 'errors', errors: { 'param:invoice_id': expect.stringMatching(/Policy denies the edited call/) } });
    expect(await statusOf(id)).toBe('pending');
    expect(refunds().length).toBe(before);

    const ok = await submit(EDIT_MODAL_CALLBACK_ID, view.private_metadata, BOB, fieldValues(view, { amount: '80' }, 'half now, half next week'));
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('');
    await waitFor(async () => (await statusOf(id)) === 'executed');
    expect(refunds().length).toBe(before + 1);
    expect(refunds().at(-1)!.body).toEqual({ invoice_id: 'inv_1', amount: 80, currency: 'EUR' });

    const update = await waitFor(async () => {
      await deliver();
      return slack.callsTo('chat.update').find((c) => c.args['ts'] === ts);
    });
    const shown = JSON.stringify(update.args['blocks']);
    expect(shown).toContain('Approved with edits by*');
    expect(shown).toContain('`amount`: `120` → `80`');
    expect(shown).not.toContain(EDIT_ACTION_ID);
    const reply = await waitFor(async () => {
      await deliver();
      return slack.callsTo('chat.postMessage').find((c) => c.args['thread_ts'] === ts);
    });
    expect(JSON.stringify(reply.args['blocks'])).toContain('params edited by <@UBOB>');
    expect(JSON.stringify(reply.args['blocks'])).toContain('half now, half next week');

    const trace = await send(built.app, 'GET', `/traces/${callId}`);
    expect(trace.body.answer.edited).toMatchObject({ by: BOB, diff: [{ path: 'amount', change: 'changed', old: 120, new: 80 }] });
  });

  it('a nested schema gets one JSON field; invalid JSON and schema problems are shown on it', async () => {
    const { id, ts } = await freezeAndPost('pay.refund_nested', { amount: 10, customer: { id: 'c1' } });
    const view = (await clickForModal(EDIT_ACTION_ID, id, BOB, ts))!;
    const inputs = (view.blocks as Node[]).filter((b) => b.type === 'input');
    expect(inputs.map((b) => b.block_id)).toEqual([PARAMS_JSON_BLOCK_ID, COMMENT_BLOCK_ID]);
    expect(JSON.parse(inputs[0]!.element.initial_value)).toEqual({ amount: 10, customer: { id: 'c1' } });
    const json = (text: string) => ({ [PARAMS_JSON_BLOCK_ID]: { [PARAMS_JSON_ACTION_ID]: { type: 'plain_text_input', value: text } } });
    expect(JSON.parse((await submit(EDIT_MODAL_CALLBACK_ID, view.private_metadata, BOB, json('{"amount": '))).body).errors[PARAMS_JSON_BLOCK_ID]).toMatch(/Not valid JSON/);
    expect(JSON.parse((await submit(EDIT_MODAL_CALLBACK_ID, view.private_metadata, BOB, json('{"amount": "ten"}'))).body).errors[PARAMS_JSON_BLOCK_ID]).toBe(
      'params.amount: must be number',
    );
    await submit(EDIT_MODAL_CALLBACK_ID, view.private_metadata, BOB, json('{"amount": 7, "customer": {"id": "c1", "note": "x"}}'));
    await waitFor(async () => (await statusOf(id)) === 'executed');
    expect(refunds().at(-1)!.body).toEqual({ amount: 7, customer: { id: 'c1', note: 'x' } });
  });

  it('a card that may not be edited offers "Approve with comment" instead: a comment-only modal, the comment in the thread', async () => {
    const { id, ts } = await freezeAndPost('pay.refund_locked');
    const card = slack.callsTo('chat.postMessage').find((c) => JSON.stringify(c.args['blocks']).includes(`"value":"${id}"`))!;
    const buttons = ((card.args['blocks'] as Node[]).find((b) => b.type === 'actions')!.elements as Node[]).map((e) => e.action_id);
    expect(buttons).toEqual([APPROVE_ACTION_ID, REJECT_ACTION_ID, expect.any(String), COMMENT_ACTION_ID]);
    expect(buttons).not.toContain(EDIT_ACTION_ID);
    const view = (await clickForModal(COMMENT_ACTION_ID, id, BOB, ts))!;
    expect((view.blocks as Node[]).filter((b) => b.type === 'input').map((b) => b.block_id)).toEqual([COMMENT_BLOCK_ID]);
    await submit(EDIT_MODAL_CALLBACK_ID, view.private_metadata, BOB, fieldValues(view, {}, 'checked with finance'));
    await waitFor(async () => (await statusOf(id)) === 'executed');
    const reply = await waitFor(async () => {
      await deliver();
      return slack.callsTo('chat.postMessage').find((c) => c.args['thread_ts'] === ts);
    });
    expect(JSON.stringify(reply.args['blocks'])).toContain('checked with finance');
    expect(JSON.stringify(reply.args['blocks'])).not.toContain('edited');
  });

  it('the same approver checks as Approve: the requester gets no modal', async () => {
    const { id, ts } = await freezeAndPost('pay.refund', undefined, ALICE_AGENT_KEY);
    expect(await clickForModal(EDIT_ACTION_ID, id, ALICE, ts, 500)).toBeUndefined();
    const told = await waitFor(async () => slack.responses.find((r) => JSON.stringify(r.body).includes('you cannot decide on it')));
    expect(told.body).toMatchObject({ response_type: 'ephemeral' });
    expect(await statusOf(id)).toBe('pending');
  });

  it('rejects with a preset reason, with or without details', async () => {
    const { id, ts } = await freezeAndPost();
    const view = (await clickForModal(REJECT_ACTION_ID, id, BOB, ts))!;
    expect(view.callback_id).toBe(REJECT_MODAL_CALLBACK_ID);
    const res = await submit(REJECT_MODAL_CALLBACK_ID, id, BOB, {
      [REJECT_PRESET_BLOCK_ID]: { [REJECT_PRESET_ACTION_ID]: { type: 'static_select', selected_option: { value: 'wrong_parameters' } } },
      [REJECT_REASON_BLOCK_ID]: { [REJECT_REASON_ACTION_ID]: { type: 'plain_text_input', value: 'amount should be 80' } },
    });
    expect(res.status).toBe(200);
    await waitFor(async () => (await statusOf(id)) === 'rejected');
    const approval = await send(built.app, 'GET', `/v1/approvals/${id}`);
    expect(approval.body.approval.decision.reason).toBe('Wrong parameters: amount should be 80');
  });
});
