import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { startMcpHttpServer, type McpHttpServer, type McpRequest } from '../helpers/mcp-server.ts';

/**
 * Registration errors. A registration makes Invoke fetch from an admin-given URL, which may be
 * an internal service: whatever that URL answers must not come back in the error, or the
 * registration endpoint becomes a way to read internal pages.
 */

const SECRET = 'SECRET-MARKER-7f3a9c';

const rpc = (res: ServerResponse, id: unknown, payload: Record<string, unknown>) =>
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id, ...payload }));

/** Answers initialize properly, then `tools/list` with `list`. */
function initializeThen(list: (res: ServerResponse, id: unknown) => void) {
  return ({ res, body, message }: McpRequest) => {
    const id = (body as { id?: unknown } | undefined)?.id;
    if (message?.method === 'initialize') {
      const requested = (body as { params?: { protocolVersion?: string } }).params?.protocolVersion;
      rpc(res, id, { result: { protocolVersion: requested, capabilities: { tools: {} }, serverInfo: { name: 'junk', version: '1' } } });
    } else if (message?.method === 'tools/list') {
      list(res, id);
    } else {
      res.writeHead(202).end();
    }
  };
}

/** Each path of the server answers in its own wrong way, every answer carrying SECRET. */
const JUNK: Record<string, (request: McpRequest) => void> = {
  '/html': ({ res }) => res.writeHead(200, { 'content-type': 'text/html' }).end(`<html><body>${SECRET}</body></html>`),
  '/html-as-json': ({ res }) => res.writeHead(200, { 'content-type': 'application/json' }).end(`<html>${SECRET}</html>`),
  '/wrong-json': ({ res }) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ [SECRET]: { token: SECRET } })),
  '/server-error': ({ res }) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`internal: ${SECRET}`),
  '/forbidden': ({ res }) => res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ error: SECRET })),
  '/init-junk': ({ res, body }) => rpc(res, (body as { id?: unknown }).id, { result: { [SECRET]: SECRET, protocolVersion: 42 } }),
  '/init-version': ({ res, body }) =>
    rpc(res, (body as { id?: unknown }).id, { result: { protocolVersion: SECRET, capabilities: {}, serverInfo: { name: SECRET, version: '1' } } }),
  '/init-rpc-error': ({ res, body }) => rpc(res, (body as { id?: unknown }).id, { error: { code: -32000, message: `denied: ${SECRET}` } }),
  '/list-junk': initializeThen((res, id) => rpc(res, id, { result: { tools: [{ name: 5, [SECRET]: SECRET }] } })),
  '/list-not-array': initializeThen((res, id) => rpc(res, id, { result: { tools: SECRET } })),
  '/list-rpc-error': initializeThen((res, id) => rpc(res, id, { error: { code: -32603, message: `boom ${SECRET}` } })),
  '/list-bad-schema': initializeThen((res, id) =>
    rpc(res, id, { result: { tools: [{ name: 'leaky', inputSchema: { type: 'object', properties: { [SECRET]: { type: SECRET } } } }] } }),
  ),
  // A well-behaved server, for the state_refetch checks of MCP overrides.
  '/ok': initializeThen((res, id) => rpc(res, id, { result: { tools: [{ name: 'update', inputSchema: { type: 'object' } }] } })),
};

let junk: McpHttpServer;
beforeAll(async () => {
  junk = await startMcpHttpServer(async (request) => {
    const answer = JUNK[new URL(request.req.url ?? '/', 'http://x').pathname];
    if (answer) answer(request);
    else request.res.writeHead(404).end();
  });
});
afterAll(async () => {
  await junk.close();
});

describe('provider registration errors do not echo what the remote answered', () => {
  let built: BuiltApp;
  beforeAll(async () => {
    built = await buildTestApp();
  });
  afterAll(async () => {
    await built.app.close();
  });

  it.each([
    ['/html', /MCP server at http:\/\/127\.0\.0\.1:\d+\/html answered initialize with/],
    ['/html-as-json', /answered initialize with/],
    ['/wrong-json', /answered initialize with/],
    ['/server-error', /answered initialize with HTTP 500/],
    ['/forbidden', /answered initialize with HTTP 403/],
    ['/init-junk', /answered initialize with a malformed result/],
    ['/init-version', /answered initialize with/],
    ['/init-rpc-error', /answered initialize with an MCP error \(code -32000\)/],
    ['/list-junk', /answered tools\/list with a malformed result/],
    ['/list-not-array', /answered tools\/list with a malformed result/],
    ['/list-rpc-error', /answered tools\/list with an MCP error \(code -32603\)/],
    ['/list-bad-schema', /lists tool junk\.leaky with an input schema that is not valid JSON Schema/],
  ])('%s: a generic 4xx without the remote body', async (path, message) => {
    const res = await send(built.app, 'POST', '/v1/providers', { name: 'junk', mcp_url: `${junk.base}${path}` });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.text).not.toContain(SECRET);
    expect(res.body.error.message).toMatch(message);
  });

  it('an unreachable server is named with the network code only', async () => {
    const closed = await startMcpHttpServer(async () => undefined);
    await closed.close();
    const res = await send(built.app, 'POST', '/v1/providers', { name: 'gone', mcp_url: closed.url });
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({ code: 'mcp_unreachable' });
    expect(res.body.error.message).toMatch(/could not be reached during initialize \(ECONNREFUSED\)/);
  });
});

describe('state_refetch is checked at registration', () => {
  let built: BuiltApp;
  beforeAll(async () => {
    built = await buildTestApp();
    const reads = await send(built.app, 'POST', '/v1/providers', {
      name: 'ledger',
      base_url: 'http://127.0.0.1:9',
      tools: [{ name: 'get_entry', method: 'GET', path: '/entries/{id}', side_effects: false }],
    });
    expect(reads.status).toBe(201);
  });
  afterAll(async () => {
    await built.app.close();
  });

  const register = (stateRefetch: Record<string, unknown>, extraTools: Array<Record<string, unknown>> = []) =>
    send(built.app, 'POST', '/v1/providers', {
      name: 'pay',
      base_url: 'http://127.0.0.1:9',
      tools: [{ name: 'charge', path: '/charges', state_refetch: stateRefetch }, ...extraTools],
    });

  it('refuses a refetch tool that exists nowhere, naming the tool key', async () => {
    const res = await register({ tool: 'pay.get_charge', params: {} });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/state_refetch of pay\.charge names pay\.get_charge, which is not/);
    expect((await send(built.app, 'GET', '/v1/tools')).body.tools.map((c: { key: string }) => c.key)).not.toContain('pay.charge');
  });

  it('refuses a refetch tool of another provider that is not registered', async () => {
    const res = await register({ tool: 'nowhere.read', params: {} });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/state_refetch of pay\.charge names nowhere\.read/);
  });

  it('refuses malformed conditions, naming the tool key and the field', async () => {
    const res = await register({ tool: 'ledger.get_entry', params: { id: '{{params.id}}' }, conditions: { amount: '> lots' } });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/state_refetch\.conditions of pay\.charge\.amount/);
    expect(res.body.error.message).toMatch(/> lots/);
  });

  it('refuses an unclosed membership list', async () => {
    const res = await register({ tool: 'ledger.get_entry', params: {}, conditions: { status: 'in [paid, settled' } });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/pay\.charge/);
  });

  it('accepts a refetch through a tool of the same registration, a registered tool or a built-in', async () => {
    const own = await register({ tool: 'pay.get_charge', params: { id: '{{params.id}}' }, conditions: { charged: true, amount: '>= 1' } }, [
      { name: 'get_charge', method: 'GET', path: '/charges/{id}', side_effects: false },
    ]);
    expect(own.status).toBe(201);
    expect((await register({ tool: 'ledger.get_entry', params: {}, conditions: { status: 'in [paid, settled]' } })).status).toBe(201);
    expect((await register({ tool: 'fetch.url', params: { url: 'https://example.com' } })).status).toBe(201);
  });

  it('refuses a refetch naming a tool of the same provider that this registration drops', async () => {
    // pay.get_charge is stored from the registration above, but this one replaces it.
    const res = await register({ tool: 'pay.get_charge', params: {} });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/pay\.get_charge/);
  });

  it('checks MCP overrides the same way', async () => {
    const register = (stateRefetch: Record<string, unknown>) =>
      send(built.app, 'POST', '/v1/providers', { name: 'crm', mcp_url: `${junk.base}/ok`, tools: [{ name: 'update', state_refetch: stateRefetch }] });
    const missing = await register({ tool: 'crm.read', params: {} });
    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toMatch(/state_refetch of crm\.update names crm\.read/);
    const malformed = await register({ tool: 'ledger.get_entry', params: {}, conditions: { n: '>=' } });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.message).toMatch(/state_refetch\.conditions of crm\.update\.n/);
    expect((await register({ tool: 'ledger.get_entry', params: {} })).status).toBe(201);
  });
});
