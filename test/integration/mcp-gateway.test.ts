import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult, Progress } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSlackEmulator } from '../../demo/slack-emulator.ts';
import type { BuiltApp } from '../../src/app.ts';
import { ADMIN_KEY, buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';

/**
 * Invoke as an MCP server, driven by the official SDK client over real HTTP on loopback: what a
 * key may list and call, the /v1/call pipeline behind `tools/call`, and a call that waits for
 * a human (progress while it waits, or an approval id to check again with).
 */
const AGENT_KEY = 'mcp-agent-key';
const ONE_TOOL_KEY = 'mcp-one-tool-key';
const SCOPES = JSON.stringify({
  [AGENT_KEY]: { name: 'support-bot', scopes: ['tools:call'] },
  [ONE_TOOL_KEY]: { scopes: ['tools:call'], allowed_tools: ['shop.lookup'] },
});

type Result = CallToolResult & { structuredContent: any };

describe('MCP gateway (/mcp)', () => {
  let built: BuiltApp;
  /** A second replica on the same store whose calls wait only a second for an approval. */
  let shortWait: BuiltApp;
  let url: string;
  let shortWaitUrl: string;
  const clients: Client[] = [];
  const tools = startToolServer({
    'GET /items/*': (req, res) => json(res, 200, { id: req.path.split('/').pop(), name: 'Blue mug' }),
    'POST /refunds': (req, res) => json(res, 200, { refunded: true, ...(req.body as object) }),
    'POST /notes': (req, res) => json(res, 201, { saved: true, ...(req.body as object) }),
    'POST /purge': (_req, res) => json(res, 200, { purged: true }),
  });
  let server: Awaited<typeof tools>;

  async function connect(headers: Record<string, string>, base = url): Promise<Client> {
    const client = new Client({ name: 'mcp-gateway-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers } }));
    clients.push(client);
    return client;
  }

  const asAgent = (base = url) => connect({ authorization: `Bearer ${AGENT_KEY}` }, base);

  async function approve(approvalId: string) {
    const decided = await send(built.app, 'POST', `/v1/approvals/${approvalId}/approve`, {});
    expect(decided.status).toBe(200);
    return decided.body;
  }

  beforeAll(async () => {
    server = await tools;
    const dir = mkdtempSync(path.join(tmpdir(), 'invoke-mcp-policy-'));
    writeFileSync(path.join(dir, 'policy.json'), JSON.stringify({ rules: [{ when: 'tool == shop.purge', effect: 'deny', reason: 'purging is off limits to agents' }] }));
    const env = {
      INVOKE_API_KEY_SCOPES: SCOPES,
      INVOKE_POLICY_FILE: path.join(dir, 'policy.json'),
      INVOKE_REQUIRE_APPROVAL_AT: 'high',
      INVOKE_MCP_APPROVAL_WAIT_SECONDS: '30',
    };
    built = await buildTestApp(env);
    shortWait = await buildTestApp({ ...env, INVOKE_MCP_APPROVAL_WAIT_SECONDS: '1' }, built.store);
    url = await built.app.listen({ port: 0, host: '127.0.0.1' });
    shortWaitUrl = await shortWait.app.listen({ port: 0, host: '127.0.0.1' });
    const registered = await send(built.app, 'POST', '/v1/providers', {
      name: 'shop',
      base_url: server.url,
      tools: [
        {
          name: 'lookup',
          method: 'GET',
          path: '/items/{id}',
          description: 'Look an item up',
          side_effects: false,
          risk: 'low',
          input_schema: { type: 'object', required: ['id'], properties: { id: { type: 'string' } } },
        },
        {
          name: 'refund',
          path: '/refunds',
          description: 'Refund an order',
          risk: 'high',
          input_schema: { type: 'object', required: ['order_id', 'amount'], properties: { order_id: { type: 'string' }, amount: { type: 'number' } } },
        },
        { name: 'note', path: '/notes', description: 'Add a note', risk: 'low', idempotent: false },
        { name: 'purge', path: '/purge', description: 'Delete everything', risk: 'low' },
      ],
    });
    expect(registered.status).toBe(201);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    server.requests.length = 0;
  });
  afterAll(async () => {
    await shortWait.app.close();
    await built.app.close();
    await server.close();
  });

  it('lists the tools a key may use, with schemas and hints from their cards', async () => {
    const admin = await connect({ 'x-api-key': ADMIN_KEY });
    const all = (await admin.listTools()).tools;
    expect(all.map((t) => t.name).sort()).toEqual(['fetch.url', 'invoke.approval_status', 'shop.lookup', 'shop.note', 'shop.purge', 'shop.refund']);
    const lookup = all.find((t) => t.name === 'shop.lookup')!;
    expect(lookup.inputSchema).toEqual({ type: 'object', required: ['id'], properties: { id: { type: 'string' } } });
    expect(lookup.annotations).toMatchObject({ title: 'lookup', readOnlyHint: true, destructiveHint: false });
    const refund = all.find((t) => t.name === 'shop.refund')!;
    expect(refund.annotations).toMatchObject({ readOnlyHint: false, destructiveHint: true, idempotentHint: false });
    expect(refund.description).toContain('Refund an order');
    expect(refund.description).toMatch(/Risk: high.*approval/s);
    expect(all.find((t) => t.name === 'shop.note')!.annotations).toMatchObject({ readOnlyHint: false, destructiveHint: false });

    const scoped = await connect({ 'x-api-key': ONE_TOOL_KEY });
    expect((await scoped.listTools()).tools.map((t) => t.name)).toEqual(['shop.lookup', 'invoke.approval_status']);
  });

  it('runs tools/call through the /v1/call pipeline: the same answer, traced the same way', async () => {
    const agent = await asAgent();
    const result = (await agent.callTool({ name: 'shop.lookup', arguments: { id: 'a1' } })) as Result;
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ status: 'executed', tool: 'shop.lookup', agent_id: 'support-bot', result: { id: 'a1', name: 'Blue mug' } });
    expect(JSON.parse((result.content[0] as { text: string }).text)).toEqual(result.structuredContent);
    expect(server.count('GET', '/items/a1')).toBe(1);

    const viaApi = await send(built.app, 'POST', '/v1/call', { tool: 'shop.lookup', params: { id: 'a2' }, agent_id: 'support-bot' }, { 'x-api-key': AGENT_KEY });
    const traced = await send(built.app, 'GET', `/traces/${result.structuredContent.call_id}`);
    expect(traced.status).toBe(200);
    expect(traced.body).toMatchObject({ tool: 'shop.lookup', status: 'executed', agent_id: 'support-bot' });
    const steps = (events: Array<{ step: string; status: string }>) => events.map((e) => `${e.step}:${e.status}`);
    expect(steps(traced.body.events)).toEqual(steps(viaApi.body.trace));
  });

  it('answers a call policy denies as isError, and never reaches the tool', async () => {
    const agent = await asAgent();
    const result = (await agent.callTool({ name: 'shop.purge', arguments: {} })) as Result;
    expect(result.isError).toBe(true);
    expect(result.structuredContent).toMatchObject({ status: 'blocked', reason: expect.stringContaining('purging is off limits') });
    expect(server.count('POST', '/purge')).toBe(0);
  });

  it('refuses a tool outside the key scope, and unknown tools or bad arguments, as isError in the one error shape', async () => {
    const scoped = await connect({ 'x-api-key': ONE_TOOL_KEY });
    const forbidden = (await scoped.callTool({ name: 'shop.refund', arguments: { order_id: 'o1', amount: 5 } })) as Result;
    expect(forbidden).toMatchObject({ isError: true, structuredContent: { error: { code: 'forbidden' } } });
    const unknown = (await scoped.callTool({ name: 'shop.nothing', arguments: {} })) as Result;
    expect(unknown).toMatchObject({ isError: true, structuredContent: { error: { code: 'not_found' } } });
    const invalid = (await scoped.callTool({ name: 'shop.lookup', arguments: { id: 7 } })) as Result;
    expect(invalid).toMatchObject({ isError: true, structuredContent: { error: { code: 'validation_error' } } });
    expect(server.requests).toHaveLength(0);
  });

  it('replays a call repeated under the same _meta.idempotency_key: the tool runs once', async () => {
    const agent = await asAgent();
    const call = () => agent.callTool({ name: 'shop.note', arguments: { text: 'hello' }, _meta: { idempotency_key: 'note-1' } }) as Promise<Result>;
    const first = await call();
    const again = await call();
    expect(first.structuredContent.status).toBe('executed');
    expect(again.structuredContent.call_id).toBe(first.structuredContent.call_id);
    expect(server.count('POST', '/notes')).toBe(1);
  });

  it('waits for an approval with progress notifications, and answers with the approved call', async () => {
    const agent = await asAgent();
    const progress: Progress[] = [];
    let approved: Promise<unknown> | undefined;
    const result = (await agent.callTool({ name: 'shop.refund', arguments: { order_id: 'o-42', amount: 12 } }, undefined, {
      timeout: 20_000,
      onprogress: (update) => {
        progress.push(update);
        // The first report says which approval it waits for; decide it then, as an approver would.
        const id = /approval (apr_\S+)/.exec(update.message ?? '')?.[1];
        if (id && !approved) approved = approve(id);
      },
    })) as Result;
    await approved;
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress[0]).toMatchObject({ progress: expect.any(Number), total: 30 });
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ status: 'executed', tool: 'shop.refund', result: { refunded: true, order_id: 'o-42' } });
    expect(server.count('POST', '/refunds')).toBe(1);
  });

  it('answers a call still waiting after the configured wait with its approval id; invoke.approval_status then gives the final answer', async () => {
    const agent = await asAgent(shortWaitUrl);
    const pending = (await agent.callTool({ name: 'shop.refund', arguments: { order_id: 'o-43', amount: 3 } })) as Result;
    expect(pending.isError).toBeFalsy();
    expect(pending.structuredContent).toMatchObject({ status: 'pending_approval', waiting_for_approval: { status: 'pending', slack: false } });
    const approvalId: string = pending.structuredContent.waiting_for_approval.approval_id;
    expect(pending.structuredContent.approval.id).toBe(approvalId);
    expect(pending.structuredContent.waiting_for_approval.check_again).toEqual({ tool: 'invoke.approval_status', arguments: { approval_id: approvalId, wait_seconds: 1 } });
    expect((pending.content[0] as { text: string }).text).toMatch(/waiting for a human approval.*invoke\.approval_status/s);
    expect(server.count('POST', '/refunds')).toBe(0);

    const before = (await agent.callTool({ name: 'invoke.approval_status', arguments: { approval_id: approvalId } })) as Result;
    expect(before.structuredContent).toMatchObject({ decided: false, approval: { id: approvalId, status: 'pending' }, call: null });

    await approve(approvalId);
    const after = (await agent.callTool({ name: 'invoke.approval_status', arguments: { approval_id: approvalId, wait_seconds: 1 } })) as Result;
    expect(after.structuredContent).toMatchObject({ decided: true, approval: { status: 'executed' }, call: { status: 'executed', result: { refunded: true, order_id: 'o-43' } } });
    expect(server.count('POST', '/refunds')).toBe(1);

    // Another key's approvals are not this key's to read.
    const other = await connect({ 'x-api-key': ONE_TOOL_KEY }, shortWaitUrl);
    const hidden = (await other.callTool({ name: 'invoke.approval_status', arguments: { approval_id: approvalId } })) as Result;
    expect(hidden).toMatchObject({ isError: true, structuredContent: { error: { code: 'not_found' } } });
  });

  it('refuses a missing or wrong key with 401 in the one error shape, before any MCP handling', async () => {
    const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } };
    const attempts: Array<Record<string, string>> = [{}, { authorization: 'Bearer wrong-key' }, { 'x-api-key': 'wrong-key' }, { authorization: `Basic ${AGENT_KEY}` }];
    for (const headers of attempts) {
      const response = await fetch(`${url}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
        body: JSON.stringify(initialize),
      });
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ error: { code: 'unauthorized', message: expect.stringContaining('Bearer') } });
    }
    await expect(connect({ authorization: 'Bearer wrong-key' })).rejects.toThrow(/401|nauthorized/);
  });

  it('answers bad JSON, bad JSON-RPC and GET or DELETE with 4xx, never 5xx', async () => {
    const post = (body: string) =>
      fetch(`${url}/mcp`, { method: 'POST', headers: { 'x-api-key': AGENT_KEY, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body });
    const badJson = await post('{"jsonrpc": ');
    expect(badJson.status).toBe(400);
    expect(await badJson.json()).toMatchObject({ error: { code: 'invalid_json' } });
    const badRpc = await post(JSON.stringify({ hello: 'world' }));
    expect(badRpc.status).toBe(400);
    expect(await badRpc.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32700 } });
    for (const method of ['GET', 'DELETE']) {
      const response = await fetch(`${url}/mcp`, { method, headers: { 'x-api-key': AGENT_KEY, accept: 'text/event-stream' } });
      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe('POST');
      expect(await response.json()).toMatchObject({ error: { code: 'method_not_allowed' } });
    }
  });

  it('counts /mcp requests against the key rate limit like any other route', async () => {
    const limited = await buildTestApp({ INVOKE_API_KEY_SCOPES: SCOPES, INVOKE_RATE_LIMIT_PER_KEY: '2' }, built.store);
    try {
      const list = () =>
        limited.app.inject({
          method: 'POST',
          url: '/mcp',
          headers: {
            authorization: `Bearer ${AGENT_KEY}`,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'mcp-protocol-version': '2025-06-18',
          },
          payload: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
        });
      const first = await list();
      expect(first.statusCode).toBe(200);
      expect(first.json().result.tools.map((t: { name: string }) => t.name)).toContain('shop.lookup');
      expect((await list()).statusCode).toBe(200);
      const refused = await list();
      expect(refused.statusCode).toBe(429);
      expect(refused.json()).toMatchObject({ error: { code: 'rate_limited', details: { limit: 'api_key' } } });
    } finally {
      await limited.app.close();
    }
  });

  it('reserves the provider name invoke for the gateway tools', async () => {
    const registered = await send(built.app, 'POST', '/v1/providers', { name: 'invoke', base_url: server.url, tools: [{ name: 'approval_status', path: '/x' }] });
    expect(registered.status).toBe(400);
    expect(registered.body.error.message).toContain('reserved');
  });
});

describe('MCP gateway with Slack', () => {
  let built: BuiltApp;
  let slack: Awaited<ReturnType<typeof startSlackEmulator>>;
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  let url: string;

  beforeAll(async () => {
    slack = await startSlackEmulator();
    tools = await startToolServer({ 'POST /wire': (_req, res) => json(res, 200, { wired: true }) });
    built = await buildTestApp({
      SLACK_BOT_TOKEN: 'xoxb-test',
      SLACK_SIGNING_SECRET: 'mcp-test-signing-secret',
      SLACK_APPROVAL_CHANNEL: 'C0APPROVALS',
      SLACK_APPROVER_IDS: 'U0ALICE',
      SLACK_API_URL: slack.url,
      INVOKE_API_KEY_SCOPES: SCOPES,
      INVOKE_MCP_APPROVAL_WAIT_SECONDS: '2',
    });
    url = await built.app.listen({ port: 0, host: '127.0.0.1' });
    const registered = await send(built.app, 'POST', '/v1/providers', { name: 'bank', base_url: tools.url, tools: [{ name: 'wire', path: '/wire', risk: 'critical' }] });
    expect(registered.status).toBe(201);
  });
  afterAll(async () => {
    await built.app.close();
    await tools.close();
    await slack.close();
  });

  it('answers a call still waiting with the link to its approval card in Slack', async () => {
    const client = new Client({ name: 'mcp-gateway-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { 'x-api-key': AGENT_KEY } } }));
    try {
      const pending = (await client.callTool({ name: 'bank.wire', arguments: { amount: 100 } })) as Result;
      const card = slack.messages.find((m) => m.channel === 'C0APPROVALS' && !m.thread_ts);
      expect(card).toBeDefined();
      const link = `https://slack.com/archives/C0APPROVALS/p${card!.ts.replace('.', '')}`;
      expect(pending.structuredContent).toMatchObject({ status: 'pending_approval', waiting_for_approval: { slack: true, card_url: link } });
      expect((pending.content[0] as { text: string }).text).toContain(`in Slack: ${link}`);
    } finally {
      await client.close();
    }
  });
});
