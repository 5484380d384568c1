import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';

describe('traces and executions', () => {
  let built: BuiltApp;
  let server: Awaited<ReturnType<typeof startToolServer>>;

  beforeAll(async () => {
    server = await startToolServer({ 'POST /echo': (req, res) => json(res, 200, { echoed: req.body }) });
    built = await buildTestApp();
    await send(built.app, 'POST', '/v1/providers', { name: 'svc', base_url: server.url, tools: [{ name: 'echo', path: '/echo', risk: 'low' }] });
    for (let i = 0; i < 5; i++) {
      await send(built.app, 'POST', '/v1/call', { tool: 'svc.echo', params: { i }, agent_id: i % 2 === 0 ? 'even' : 'odd' });
    }
    await send(built.app, 'POST', '/v1/call', { tool: 'svc.echo', params: { i: 99 }, agent_id: 'even', policy: { rules: [{ when: 'i == 99', effect: 'deny', reason: 'no 99' }] } });
  });
  afterAll(async () => {
    await built.app.close();
    await server.close();
  });

  it('lists calls newest first with filters and cursor pagination', async () => {
    const all = await send(built.app, 'GET', '/traces?limit=100');
    expect(all.body.traces).toHaveLength(6);
    const times = all.body.traces.map((t: { created_at: string }) => t.created_at);
    expect([...times].sort().reverse()).toEqual(times);

    const even = await send(built.app, 'GET', '/traces?agent_id=even');
    expect(even.body.traces.every((t: { agent_id: string }) => t.agent_id === 'even')).toBe(true);
    expect(even.body.traces).toHaveLength(4);
    const blocked = await send(built.app, 'GET', '/traces?status=blocked');
    expect(blocked.body.traces).toHaveLength(1);

    const page1 = await send(built.app, 'GET', '/traces?limit=4');
    expect(page1.body.traces).toHaveLength(4);
    const page2 = await send(built.app, 'GET', `/traces?limit=4&cursor=${page1.body.next_cursor}`);
    expect(page2.body.traces).toHaveLength(2);
    expect(page2.body.next_cursor).toBeNull();
    const ids = [...page1.body.traces, ...page2.body.traces].map((t: { call_id: string }) => t.call_id);
    expect(new Set(ids).size).toBe(6);
  });

  it('rejects a bad cursor or filter with 400', async () => {
    expect((await send(built.app, 'GET', '/traces?cursor=garbage')).status).toBe(400);
    expect((await send(built.app, 'GET', '/traces?limit=0')).status).toBe(400);
    expect((await send(built.app, 'GET', '/traces?since=yesterday')).status).toBe(400);
  });

  it('shows one call with its events', async () => {
    const list = await send(built.app, 'GET', '/traces?limit=1&status=executed');
    const id = list.body.traces[0].call_id;
    const one = await send(built.app, 'GET', `/traces/${id}`);
    expect(one.body).toMatchObject({ call_id: id, status: 'executed', request: { tool: 'svc.echo' } });
    expect(one.body.events.map((e: { step: string }) => e.step)).toContain('attempt_started');
    expect((await send(built.app, 'GET', '/traces/call_nope')).status).toBe(404);
  });

  it('exports json, jsonl, langsmith and helicone shapes', async () => {
    const asJson = await send(built.app, 'GET', '/traces/export?format=json');
    expect(asJson.headers['content-type']).toMatch(/application\/json/);
    expect(asJson.body).toHaveLength(6);
    expect(asJson.body[0].events.length).toBeGreaterThan(0);

    const lines = (await send(built.app, 'GET', '/traces/export?format=jsonl&agent_id=odd')).text.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0]!).agent_id).toBe('odd');

    const langsmith = JSON.parse((await send(built.app, 'GET', '/traces/export?format=langsmith')).text.trim().split('\n')[0]!);
    expect(langsmith).toMatchObject({ run_type: 'tool', name: 'svc.echo' });
    expect(langsmith.inputs.params).toBeDefined();

    const helicone = JSON.parse((await send(built.app, 'GET', '/traces/export?format=helicone')).text.trim().split('\n')[0]!);
    expect(helicone.providerRequest.url).toBe('invoke://svc.echo');
    expect((await send(built.app, 'GET', '/traces/export?format=xml')).status).toBe(400);
  });

  it('runs safe-tool-execution once per Idempotency-Key', async () => {
    const before = server.count('POST', '/echo');
    const body = { workflow: 'safe-tool-execution', agent_id: 'revops', input: { tool: 'svc.echo', params: { amount: 2400 } } };
    const first = await send(built.app, 'POST', '/v1/executions', body, { 'idempotency-key': 'exec-1' });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      success: true,
      execution: { workflow_id: 'safe-tool-execution', status: 'completed', idempotency_key: 'exec-1', final_outcome: 'completed', call_status: 'executed' },
    });
    expect(first.body.execution.execution_id).toMatch(/^exec_/);
    const again = await send(built.app, 'POST', '/v1/executions', body, { 'idempotency-key': 'exec-1' });
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body.execution.execution_id).toBe(first.body.execution.execution_id);
    expect(server.count('POST', '/echo')).toBe(before + 1);

    const list = await send(built.app, 'GET', '/v1/executions');
    expect(list.body.executions.map((e: { execution_id: string }) => e.execution_id)).toContain(first.body.execution.execution_id);
    const one = await send(built.app, 'GET', `/v1/executions/${first.body.execution.execution_id}`);
    expect(one.body.execution.call_id).toBe(first.body.execution.call_id);
    expect((await send(built.app, 'GET', '/v1/executions/exec_nope')).status).toBe(404);
  });

  it('needs an Idempotency-Key and a known workflow', async () => {
    const body = { workflow: 'safe-tool-execution', input: { tool: 'svc.echo', params: {} } };
    expect((await send(built.app, 'POST', '/v1/executions', body)).status).toBe(400);
    expect((await send(built.app, 'POST', '/v1/executions', { ...body, workflow: 'nope' }, { 'idempotency-key': 'x' })).status).toBe(400);
  });
});
