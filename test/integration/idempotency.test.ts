import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';
import { waitFor } from '../helpers/wait.ts';

const OTHER_KEY = 'second-full-key';

describe('idempotency', () => {
  let built: BuiltApp;
  let server: Awaited<ReturnType<typeof startToolServer>>;
  let status = 200;

  beforeAll(async () => {
    server = await startToolServer({ 'POST /issues': (req, res) => json(res, status, { id: `ISS-${server.requests.length}`, title: (req.body as { title: string }).title }) });
    built = await buildTestApp({ INVOKE_API_KEYS: `test-admin-key,${OTHER_KEY}` });
    await send(built.app, 'POST', '/v1/providers', { name: 'tracker', base_url: server.url, tools: [{ name: 'create_issue', path: '/issues', risk: 'low' }] });
  });
  afterAll(async () => {
    await built.app.close();
    await server.close();
  });

  const create = (key: string | undefined, title = 'Investigate webhook drift', headers: Record<string, string> = {}) =>
    send(built.app, 'POST', '/v1/call', { tool: 'tracker.create_issue', params: { title }, agent_id: 'a', ...(key === undefined ? {} : { idempotency_key: key }) }, headers);

  it('replays a completed call without calling the tool again', async () => {
    const first = await create('k-1');
    const second = await create('k-1');
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(second.body).toEqual(first.body);
    expect(server.count('POST', '/issues')).toBe(1);
    // The trace is stored once, on the call; the replay put it back into the answer.
    const row = await built.store.db.selectFrom('calls').select(['answer', 'trace']).where('id', '=', first.body.call_id).executeTakeFirstOrThrow();
    expect(row.answer).not.toHaveProperty('trace');
    expect(second.body.trace).toEqual(row.trace);
    expect((second.body.trace as unknown[]).length).toBeGreaterThan(0);
  });

  it("counts repeats on their key within a second, off the answer's path", async () => {
    const replaysOf = async (key: string) => (await built.store.db.selectFrom('idempotency_keys').select('replays').where('key', '=', key).executeTakeFirstOrThrow()).replays;
    await create('k-count');
    for (let i = 0; i < 3; i++) expect((await create('k-count')).headers['idempotent-replayed']).toBe('true');
    // Written by the once-a-second flush, nothing asking for it.
    await waitFor(async () => (await replaysOf('k-count')) === 3, 3_000);
    // Asked for (by /invoke stats, or on close), it is written at once.
    await create('k-count');
    await built.services.callsRepository.flushReplays();
    expect(await replaysOf('k-count')).toBe(4);
  });

  it('takes the key from the Idempotency-Key header too', async () => {
    const before = server.count('POST', '/issues');
    await create(undefined, 't', { 'idempotency-key': 'h-1' });
    const again = await create(undefined, 't', { 'idempotency-key': 'h-1' });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(server.count('POST', '/issues')).toBe(before + 1);
  });

  it('answers 422 for the same key with another payload', async () => {
    await create('k-2', 'one');
    const res = await create('k-2', 'two');
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('idempotency_key_reused');
  });

  it('replays stored errors too', async () => {
    status = 400;
    const first = await create('k-err');
    status = 200;
    const second = await create('k-err');
    expect(first.body.status).toBe('failed');
    expect(second.body).toEqual(first.body);
    expect(second.headers['idempotent-replayed']).toBe('true');
  });

  it('namespaces keys by API key', async () => {
    const before = server.count('POST', '/issues');
    await create('shared');
    const other = await create('shared', 'Investigate webhook drift', { 'x-api-key': OTHER_KEY });
    expect(other.headers['idempotent-replayed']).toBeUndefined();
    expect(server.count('POST', '/issues')).toBe(before + 2);
  });

  it('rejects empty, overlong and control-character keys with 400', async () => {
    expect((await create('')).status).toBe(400);
    expect((await create('x'.repeat(256))).status).toBe(400);
    expect((await create('a\u0001b')).status).toBe(400);
    expect((await create('ok', 't', { 'idempotency-key': 'different' })).status).toBe(400);
  });

  it('answers 409 while the first call with the key is still in flight', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = await startToolServer({
      'POST /slow': async (_req, res) => {
        await gate;
        json(res, 200, { done: true });
      },
    });
    await send(built.app, 'POST', '/v1/providers', { name: 'slowtool', base_url: slow.url, tools: [{ name: 'run', path: '/slow', risk: 'low' }] });
    const body = { tool: 'slowtool.run', params: {}, agent_id: 'a', idempotency_key: 'slow-1' };
    const first = send(built.app, 'POST', '/v1/call', body);
    while (slow.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    const second = await send(built.app, 'POST', '/v1/call', body);
    expect(second.status).toBe(409);
    expect(second.body.error.code).toBe('idempotency_key_in_flight');
    release();
    expect((await first).body.status).toBe('executed');
    const third = await send(built.app, 'POST', '/v1/call', body);
    expect(third.headers['idempotent-replayed']).toBe('true');
    expect(slow.requests).toHaveLength(1);
    await slow.close();
  });

  it('replays a pending approval answer with 202', async () => {
    const body = { tool: 'tracker.create_issue', params: { title: 'x' }, agent_id: 'a', idempotency_key: 'appr-1', approval_contract: { intent: 'file it' } };
    const first = await send(built.app, 'POST', '/v1/call', body);
    const second = await send(built.app, 'POST', '/v1/call', body);
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(second.body.approval.id).toBe(first.body.approval.id);
  });
});
