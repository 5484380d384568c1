import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';
import { createTestDatabase } from './databases.ts';

/**
 * Idempotency under real concurrency: two app instances (two connection pools, as two replicas
 * would have) on one real Postgres server, hammered with the same key at once.
 */
describe('idempotency on a real Postgres server', () => {
  let replicas: BuiltApp[];
  let server: Awaited<ReturnType<typeof startToolServer>>;

  beforeAll(async () => {
    server = await startToolServer({
      'POST /charge': async (_req, res) => {
        await new Promise((r) => setTimeout(r, 50)); // a slow tool widens the race window
        json(res, 200, { charged: true });
      },
    });
    const url = await createTestDatabase(inject('pgUrl'));
    replicas = [await buildTestApp({ DATABASE_URL: url }), await buildTestApp({ DATABASE_URL: url })];
    expect(replicas[0]!.store.kind).toBe('postgres');
    const res = await send(replicas[0]!.app, 'POST', '/v1/providers', { name: 'pay', base_url: server.url, tools: [{ name: 'charge', path: '/charge', risk: 'low' }] });
    expect(res.status).toBe(201);
  });
  afterAll(async () => {
    for (const r of replicas ?? []) await r.app.close();
    await server?.close();
  });

  it('50 concurrent requests with one key make exactly one tool call and no 5xx', async () => {
    const body = { tool: 'pay.charge', params: { amount: 10 }, agent_id: 'a', idempotency_key: 'race-1' };
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => send(replicas[i % 2]!.app, 'POST', '/v1/call', body)));
    const statuses = results.map((r) => r.status);
    expect(statuses.every((s) => s === 200 || s === 409)).toBe(true);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
    expect(server.count('POST', '/charge')).toBe(1);
    const executed = results.filter((r) => r.status === 200).map((r) => r.body.call_id);
    expect(new Set(executed).size).toBe(1);

    // Once finished, every replica replays the one answer.
    for (const replica of replicas) {
      const again = await send(replica.app, 'POST', '/v1/call', body);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.body.call_id).toBe(executed[0]);
    }
    expect(server.count('POST', '/charge')).toBe(1);
  });

  it('50 concurrent requests with 50 keys make 50 tool calls', async () => {
    const before = server.count('POST', '/charge');
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        send(replicas[i % 2]!.app, 'POST', '/v1/call', { tool: 'pay.charge', params: { amount: i + 1 }, agent_id: 'a', idempotency_key: `k-${i}` }),
      ),
    );
    expect(results.every((r) => r.status === 200 && r.body.status === 'executed')).toBe(true);
    expect(server.count('POST', '/charge')).toBe(before + 50);
  });
});

describe('provider registration on a real Postgres server', () => {
  it('concurrent registrations of one provider all succeed and leave one set of tools', async () => {
    const url = await createTestDatabase(inject('pgUrl'));
    const built = await buildTestApp({ DATABASE_URL: url });
    try {
      const body = (i: number) => ({ name: 'p', base_url: 'http://127.0.0.1:9', tools: [{ name: `t${i}`, path: '/t' }] });
      const results = await Promise.all([0, 1, 2, 3].map((i) => send(built.app, 'POST', '/v1/providers', body(i))));
      expect(results.map((r) => r.status)).toEqual([201, 201, 201, 201]);
      const keys = (await send(built.app, 'GET', '/v1/tools')).body.tools.map((t: { key: string }) => t.key).filter((k: string) => k.startsWith('p.'));
      expect(keys).toHaveLength(1);
    } finally {
      await built.app.close();
    }
  });
});

describe('tool cards cached per replica on a real Postgres server', () => {
  it('a provider replaced on one replica is seen at once on the other (NOTIFY drops the cache)', async () => {
    const url = await createTestDatabase(inject('pgUrl'));
    const [a, b] = [await buildTestApp({ DATABASE_URL: url }), await buildTestApp({ DATABASE_URL: url })];
    const tools = await startToolServer({ 'POST /one': (_req, res) => json(res, 200, { one: true }), 'POST /two': (_req, res) => json(res, 200, { two: true }) });
    try {
      await send(a.app, 'POST', '/v1/providers', { name: 'svc', base_url: tools.url, tools: [{ name: 'run', path: '/one', risk: 'low' }] });
      expect((await send(b.app, 'POST', '/v1/call', { tool: 'svc.run', params: {}, agent_id: 'x' })).body.result).toEqual({ one: true });
      await send(a.app, 'POST', '/v1/providers', { name: 'svc', base_url: tools.url, tools: [{ name: 'run', path: '/two', risk: 'low' }] });
      let result: unknown;
      for (let i = 0; i < 50; i++) {
        result = (await send(b.app, 'POST', '/v1/call', { tool: 'svc.run', params: {}, agent_id: 'x' })).body.result;
        if ((result as { two?: boolean }).two) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      // Well inside the 5 s cache lifetime: the notification, not the expiry, refreshed it.
      expect(result).toEqual({ two: true });
    } finally {
      await a.app.close();
      await b.app.close();
      await tools.close();
    }
  });
});
