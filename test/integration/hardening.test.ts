import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';

const SCOPED = 'scoped-tracer';

/** Inputs that once produced a 5xx, a bypass or a second side effect, each pinned by a test. */
describe('hardening', () => {
  let built: BuiltApp;
  let server: Awaited<ReturnType<typeof startToolServer>>;
  /** The slow tool answers when the test opens this gate. */
  let slowGate: Promise<void> = Promise.resolve();

  beforeAll(async () => {
    server = await startToolServer({
      'POST /notes/*/append': (_req, res) => json(res, 200, { appended: true }),
      'POST /admin/append': (_req, res) => json(res, 200, { admin: true }),
      'POST /nul': (_req, res) => json(res, 200, { note: 'a\u0000b' }),
      // JSON.stringify writes a lone surrogate as the escape \udc00, as a careless tool would.
      'POST /surrogate': (_req, res) => json(res, 200, { x: '\udc00', ['\ud800key']: 'ok' }),
      'POST /gateway': (_req, res) => json(res, 504, { error: 'gateway timeout' }),
      'POST /fail': (_req, res) => json(res, 500, { error: 'down' }),
      'POST /wipe': (_req, res) => json(res, 200, { wiped: true }),
      'POST /write': (_req, res) => json(res, 200, { written: true }),
      'POST /slow': async (_req, res) => {
        await slowGate;
        json(res, 200, { slow: true });
      },
    });
    built = await buildTestApp({
      INVOKE_IDEMPOTENCY_TTL: '1s',
      INVOKE_API_KEY_SCOPES: JSON.stringify({ [SCOPED]: { scopes: ['tools:call', 'traces:read'] } }),
      INVOKE_POLICY_FILE: '',
    });
    const res = await send(built.app, 'POST', '/v1/providers', {
      name: 'svc',
      base_url: server.url,
      tools: [
        { name: 'append', path: '/notes/{id}/append', risk: 'low' },
        { name: 'nul', path: '/nul', risk: 'low' },
        { name: 'surrogate', path: '/surrogate', risk: 'low' },
        { name: 'gateway', path: '/gateway', risk: 'low' },
        { name: 'fail', path: '/fail', risk: 'low' },
        { name: 'wipe', path: '/wipe', risk: 'critical' },
        { name: 'write', path: '/write', risk: 'low' },
        { name: 'slow', path: '/slow', risk: 'low' },
        { name: 'peek', path: '/write', risk: 'high', state_refetch: { tool: 'svc.write', params: {} } },
      ],
    });
    expect(res.status).toBe(201);
  });
  afterAll(async () => {
    await built.app.close();
    await server.close();
  });

  const call = (body: Record<string, unknown>, headers: Record<string, string> = {}) => send(built.app, 'POST', '/v1/call', { agent_id: 'a', params: {}, ...body }, headers);

  it('a fallback cannot run what policy would stop', async () => {
    const res = await call({ tool: 'svc.fail', failure_policy: { fallback: 'svc.wipe' } });
    expect(res.status).toBe(400);
    expect(res.body.error.details.field).toBe('failure_policy.fallback');
    expect(server.count('POST', '/fail')).toBe(0);
    expect(server.count('POST', '/wipe')).toBe(0);
  });

  it('a card state_refetch through a side-effecting tool is refused before anything runs', async () => {
    const before = server.count('POST', '/write');
    const res = await call({ tool: 'svc.peek', approval_contract: { intent: 'peek' } });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/side effects/);
    expect(server.count('POST', '/write')).toBe(before);
  });

  it('a path parameter of .. cannot climb to another endpoint', async () => {
    const res = await call({ tool: 'svc.append', params: { id: '..' } });
    expect(res.body.status).toBe('failed');
    expect(server.count('POST', '/admin/append')).toBe(0);
  });

  it('refuses NUL characters in the request and stores them safely from a tool', async () => {
    expect((await call({ tool: 'svc.write', params: { q: 'x\u0000y' } })).status).toBe(400);
    expect((await send(built.app, 'GET', '/traces?agent_id=%00')).status).toBe(400);
    const first = await call({ tool: 'svc.nul', idempotency_key: 'nul-1' });
    expect(first.body.status).toBe('executed');
    const again = await call({ tool: 'svc.nul', idempotency_key: 'nul-1' });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body.result.note).toBe('a\ufffdb');
  });

  it('refuses a lone UTF-16 surrogate in a request body with 400, in values and in keys', async () => {
    for (const body of [
      '{"tool":"svc.write","agent_id":"\\udc00","params":{}}',
      '{"tool":"svc.write","agent_id":"a","params":{"q":"x\\ud800"}}',
      '{"tool":"svc.write","agent_id":"a","params":{"\\udc00":1}}',
    ]) {
      const res = await send(built.app, 'POST', '/v1/call', body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_error');
      expect(res.body.error.message).toMatch(/surrogate/);
    }
    // A well-formed pair (an emoji) is fine.
    expect((await call({ tool: 'svc.write', params: { q: '\ud83d\ude00' } })).body.status).toBe('executed');
  });

  it('answers invalid UTF-8 and %u escapes in a query string without a 5xx', async () => {
    // Percent-decoding cannot produce a lone surrogate (invalid UTF-8 decodes to U+FFFD), so these are plain strings.
    for (const query of ['agent_id=%ED%B2%80', 'agent_id=%uDC00', 'tool=%ED%A0%80x']) {
      const res = await send(built.app, 'GET', `/traces?${query}`);
      expect(res.status).toBe(200);
    }
  });

  it('stores a tool answer holding a lone surrogate: the call is executed and the surrogate becomes U+FFFD', async () => {
    const first = await call({ tool: 'svc.surrogate', idempotency_key: 'surrogate-1' });
    expect(first.body.status).toBe('executed');
    const again = await call({ tool: 'svc.surrogate', idempotency_key: 'surrogate-1' });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body.result.x).toBe('\ufffd');
    expect(again.body.result['\ufffdkey']).toBe('ok');
    expect(server.count('POST', '/surrogate')).toBe(1);
  });

  it('refuses deeply nested JSON with 400', async () => {
    const deep = `${'['.repeat(20_000)}"x"${']'.repeat(20_000)}`;
    const res = await send(built.app, 'POST', '/v1/call', `{"tool":"svc.write","agent_id":"a","params":{"x":${deep}}}`);
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/nested deeper/);
  });

  it('checks reconcile conditions before the tool is touched', async () => {
    const res = await call({
      tool: 'svc.slow',
      failure_policy: { reconcile: { state_refetch: { tool: 'fetch.url', params: { url: 'http://example.com' } }, conditions: { status: '> abc' } } },
    });
    expect(res.status).toBe(400);
    expect(server.count('POST', '/slow')).toBe(0);
  });

  it('treats a gateway 504 from a side-effecting tool as an unknown outcome, not a retry', async () => {
    const res = await call({ tool: 'svc.gateway', failure_policy: { retry: 3 } });
    expect(res.body.status).toBe('unknown_outcome');
    expect(server.count('POST', '/gateway')).toBe(1);
  });

  it('keeps an in-flight key past its TTL: the call is not run twice', async () => {
    const body = { tool: 'svc.slow', idempotency_key: 'ttl-1' };
    let release!: () => void;
    slowGate = new Promise((r) => (release = r));
    const first = call(body);
    while (server.count('POST', '/slow') === 0) await new Promise((r) => setTimeout(r, 5));
    // Past the 1 s TTL, while the first still runs: the key's expiry moves into the past, as if we had waited.
    await built.store.db
      .updateTable('idempotency_keys')
      .set({ expires_at: sql`expires_at - interval '1200 milliseconds'` })
      .where('key', '=', 'ttl-1')
      .execute();
    const second = await call(body);
    expect(second.status).toBe(409);
    release();
    expect((await first).body.status).toBe('executed');
    expect(server.count('POST', '/slow')).toBe(1);
  });

  it('shows a scoped key only its own traces', async () => {
    await call({ tool: 'svc.write' }, { 'x-api-key': SCOPED });
    const own = await send(built.app, 'GET', '/traces?limit=500', undefined, { 'x-api-key': SCOPED });
    expect(own.body.traces).toHaveLength(1);
    const all = await send(built.app, 'GET', '/traces?limit=500');
    expect(all.body.traces.length).toBeGreaterThan(1);
    const other = all.body.traces.find((t: { call_id: string }) => t.call_id !== own.body.traces[0].call_id);
    expect((await send(built.app, 'GET', `/traces/${other.call_id}`, undefined, { 'x-api-key': SCOPED })).status).toBe(404);
  });

  it('refuses a cursor Postgres could not read with 400', async () => {
    const cursor = Buffer.from(JSON.stringify({ created_at: '1', id: 'x' })).toString('base64url');
    expect((await send(built.app, 'GET', `/traces?cursor=${cursor}`)).status).toBe(400);
  });

  it('accepts a 255-character Idempotency-Key on /v1/executions', async () => {
    const res = await send(
      built.app,
      'POST',
      '/v1/executions',
      { workflow: 'safe-tool-execution', input: { tool: 'svc.write', params: {} } },
      { 'idempotency-key': 'k'.repeat(255) },
    );
    expect(res.status).toBe(201);
  });
});
