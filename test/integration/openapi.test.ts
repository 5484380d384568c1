import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp, send } from '../helpers/app.ts';

/** The /v1 API as agents and the SDK use it: every one of these must be in the document. */
const DOCUMENTED = [
  ['get', '/health'],
  ['get', '/metrics'],
  ['get', '/v1/tools'],
  ['get', '/discover'],
  ['post', '/v1/providers'],
  ['post', '/v1/call'],
  ['post', '/v1/state/verify'],
  ['post', '/v1/outcomes/reconcile'],
  ['get', '/traces'],
  ['get', '/traces/export'],
  ['get', '/traces/{call_id}'],
  ['post', '/v1/executions'],
  ['get', '/v1/executions'],
  ['get', '/v1/executions/{id}'],
  ['get', '/v1/approvals'],
  ['get', '/v1/approvals/{id}'],
  ['get', '/v1/approvals/{id}/audit'],
  ['post', '/v1/approvals/{id}/approve'],
  ['post', '/v1/approvals/{id}/reject'],
  ['post', '/v1/approvals/{id}/refetch'],
] as const;

describe('GET /openapi.json', () => {
  let built: BuiltApp;
  let doc: any;

  beforeAll(async () => {
    built = await buildTestApp();
    const res = await built.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode, 'public: no key sent').toBe(200);
    doc = JSON.parse(res.body);
  });
  afterAll(async () => {
    await built.app.close();
  });

  it('is an OpenAPI 3.1 document with the X-API-Key scheme', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.components.securitySchemes.apiKey).toEqual({ type: 'apiKey', in: 'header', name: 'X-API-Key' });
    expect(doc.security).toEqual([{ apiKey: [] }]);
  });

  it('lists every /v1 route, and /v1/call with its request body and answers', () => {
    const listed = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([url, methods]) => Object.keys(methods).map((m) => `${m} ${url}`));
    for (const [method, url] of DOCUMENTED) expect(listed).toContain(`${method} ${url}`);

    const call = doc.paths['/v1/call'].post;
    const body = call.requestBody.content['application/json'].schema;
    expect(body.required).toEqual(expect.arrayContaining(['tool', 'agent_id']));
    expect(Object.keys(body.properties)).toEqual(expect.arrayContaining(['tool', 'params', 'agent_id', 'idempotency_key', 'failure_policy', 'approval_contract', 'policy']));
    expect(Object.keys(call.responses)).toEqual(expect.arrayContaining(['200', '202', '400', '401', '403']));
    const answer = call.responses['200'].content['application/json'].schema;
    expect(answer.properties.status.enum).toContain('pending_approval');
    const error = call.responses['400'].content['application/json'].schema;
    expect(error.properties.error.required).toEqual(expect.arrayContaining(['code', 'message']));
  });

  it('documents the routing, edit and review-link fields the answers carry', () => {
    const propertiesOf = (schema: any): string[] => Object.keys(schema.properties ?? {});
    const pending = doc.paths['/v1/call'].post.responses['202'].content['application/json'].schema;
    expect(propertiesOf(pending)).toContain('edited');
    expect(propertiesOf(pending.properties.approval)).toContain('review_url');
    const approval = doc.paths['/v1/approvals/{id}'].get.responses['200'].content['application/json'].schema.properties.approval;
    expect(propertiesOf(approval)).toEqual(expect.arrayContaining(['approvers', 'approvals', 'edited', 'review_url']));
    expect(propertiesOf(approval.properties.edited)).toEqual(expect.arrayContaining(['by', 'original_params', 'params', 'diff']));
  });

  it('hides the unversioned aliases, which still answer', async () => {
    expect(doc.paths['/call']).toBeUndefined();
    expect(doc.paths['/tools']).toBeUndefined();
    expect(doc.paths['/approvals']).toBeUndefined();
    expect((await send(built.app, 'GET', '/tools')).status).toBe(200);
    expect((await send(built.app, 'GET', '/approvals')).status).toBe(200);
  });
});

describe('route validation keeps the one 400 shape', () => {
  let built: BuiltApp;
  beforeAll(async () => {
    built = await buildTestApp();
  });
  afterAll(async () => {
    await built.app.close();
  });

  it('names every failing path of the body, the first one in the message', async () => {
    const res = await send(built.app, 'POST', '/v1/call', { tool: 5, agent_id: 'a', extra: true });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_error');
    expect(res.body.error.message).toMatch(/^Invalid request: body\.tool: /);
    expect(res.body.error.details.problems.map((p: { path: string }) => p.path)).toEqual(['body.tool', 'body']);
  });

  it('treats a missing body as {} and says query (not querystring) for the query string', async () => {
    const empty = await built.app.inject({ method: 'POST', url: '/v1/call', headers: { 'x-api-key': 'test-admin-key' } });
    expect(empty.statusCode).toBe(400);
    expect(empty.json().error.details.problems.map((p: { path: string }) => p.path)).toEqual(['body.tool', 'body.agent_id']);

    const query = await send(built.app, 'GET', '/v1/approvals?limit=0');
    expect(query.status).toBe(400);
    expect(query.body.error.details.problems.map((p: { path: string }) => p.path)).toEqual(['query.limit']);
  });

  it('checks a provider registration against the MCP or the HTTP schema, by mcp_url', async () => {
    const res = await send(built.app, 'POST', '/v1/providers', { name: 'm', mcp_url: 'ftp://x' });
    expect(res.status).toBe(400);
    expect(res.body.error.details.problems.map((p: { path: string }) => p.path)).toEqual(['body.mcp_url']);
  });
});
