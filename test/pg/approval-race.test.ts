import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { json, startToolServer } from '../helpers/tool-server.ts';
import { createTestDatabase } from './databases.ts';
import { http, spawnReplica, stopProcess, type Answer, type Replica } from './replica-process.ts';

/**
 * Exactly-once decisions across processes: two real Invoke server processes (two pools, two
 * Node event loops, as two replicas would be) on one real Postgres server, hit over real HTTP by
 * twenty concurrent decisions on one approval. One decision wins; the tool runs at most once.
 */

const AGENT_KEY = 'agent-key';
const APPROVER_KEY = 'approver-key';

describe('approval decisions across two server processes on a real Postgres server', () => {
  let replicas: Replica[] = [];
  let server: Awaited<ReturnType<typeof startToolServer>>;
  let ports: [number, number];

  beforeAll(async () => {
    server = await startToolServer({
      'POST /charge': async (_req, res) => {
        await new Promise((r) => setTimeout(r, 50)); // a slow tool widens the race window
        json(res, 200, { charged: true });
      },
    });
    const databaseUrl = await createTestDatabase(inject('pgUrl'));
    const env: Record<string, string> = {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? '/tmp',
      DATABASE_URL: databaseUrl,
      INVOKE_API_KEYS: `${AGENT_KEY},${APPROVER_KEY}`,
      INVOKE_DATA_DIR: 'memory://unused',
      LOG_LEVEL: 'silent',
      INVOKE_OUTBOX_INTERVAL_MS: '0',
      INVOKE_RETRY_BASE_MS: '1',
      PORT: '0',
    };
    // Both start at once: concurrent migrations on one fresh database are part of the test.
    const started = await Promise.allSettled([spawnReplica(env), spawnReplica(env)]);
    replicas = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    ports = [replicas[0]!.port, replicas[1]!.port];

    const registered = await http(ports[0], 'POST', '/v1/providers', AGENT_KEY, {
      name: 'pay',
      base_url: server.url,
      tools: [{ name: 'charge', path: '/charge', risk: 'high', side_effects: true }],
    });
    expect(registered.status, JSON.stringify(registered.body)).toBe(201);
  }, 45_000);

  afterAll(async () => {
    await Promise.all(replicas.map((r) => stopProcess(r.child)));
    await server?.close();
  }, 15_000);

  /** Freezes one call through replica A (agent-key) and returns the call body and the approval id. */
  async function freeze(idempotencyKey: string, amount: number) {
    const call = {
      tool: 'pay.charge',
      params: { amount },
      agent_id: 'agent-1',
      idempotency_key: idempotencyKey,
      approval_contract: { intent: 'x' },
    };
    const frozen = await http(ports[0], 'POST', '/v1/call', AGENT_KEY, call);
    expect(frozen.status, JSON.stringify(frozen.body)).toBe(202);
    expect(frozen.body.status).toBe('pending_approval');
    expect(frozen.body.approval.status).toBe('pending');
    return { call, callId: frozen.body.call_id as string, approvalId: frozen.body.approval.id as string };
  }

  function describeAll(results: Answer[]): string {
    return JSON.stringify(results.map((r) => [r.status, r.body?.outcome ?? r.body?.error?.code]));
  }

  it('20 concurrent approves across both replicas: one executes, 19 get 409, the tool runs once', async () => {
    const { call, callId, approvalId } = await freeze('race-approve-1', 10);
    expect(server.count('POST', '/charge')).toBe(0);

    // Repeating the call while it waits replays the pending answer on either replica.
    const whilePending = await http(ports[1], 'POST', '/v1/call', AGENT_KEY, call);
    expect(whilePending.status).toBe(202);
    expect(whilePending.body).toMatchObject({ status: 'pending_approval', call_id: callId });

    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => http(ports[i % 2]!, 'POST', `/approvals/${approvalId}/approve`, APPROVER_KEY, { comment: `approve ${i}` })),
    );
    const summary = describeAll(results);

    expect(
      results.filter((r) => r.status >= 500),
      summary,
    ).toEqual([]);
    const winners = results.filter((r) => r.status === 200);
    expect(winners, summary).toHaveLength(1);
    expect(winners[0]!.body.outcome).toBe('executed');
    expect(winners[0]!.body.call).toMatchObject({ status: 'executed', call_id: callId, result: { charged: true } });
    expect(winners[0]!.body.approval.status).toBe('executed');

    const losers = results.filter((r) => r.status !== 200);
    expect(losers, summary).toHaveLength(19);
    for (const loser of losers) {
      expect(loser.status, summary).toBe(409);
      expect(loser.body.error.code).toBe('approval_already_decided');
      expect(['approved', 'executed']).toContain(loser.body.error.details.status);
    }

    expect(server.count('POST', '/charge')).toBe(1);

    // Both replicas read the one decision from the store.
    for (const port of ports) {
      const seen = await http(port, 'GET', `/approvals/${approvalId}`, APPROVER_KEY);
      expect(seen.status).toBe(200);
      expect(seen.body.approval.status).toBe('executed');
    }

    // The agent repeating its original call gets the final executed answer, on either replica.
    for (const port of ports) {
      const again = await http(port, 'POST', '/v1/call', AGENT_KEY, call);
      expect(again.status, JSON.stringify(again.body)).toBe(200);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(again.body).toMatchObject({ status: 'executed', call_id: callId, result: { charged: true } });
    }

    // A late decision is refused too, and nothing runs again.
    const late = await http(ports[1], 'POST', `/approvals/${approvalId}/reject`, APPROVER_KEY, { reason: 'too late' });
    expect(late.status).toBe(409);
    expect(late.body.error).toMatchObject({ code: 'approval_already_decided', details: { status: 'executed' } });
    expect(server.count('POST', '/charge')).toBe(1);
  });

  it('20 concurrent approves and rejects mixed: one decision wins, the tool runs only if it was an approve', async () => {
    for (let round = 0; round < 3; round++) {
      const before = server.count('POST', '/charge');
      const { call, callId, approvalId } = await freeze(`race-mixed-${round}`, 100 + round);

      // Interleaved so approves and rejects reach both replicas at once; the order varies per round.
      const kinds = Array.from({ length: 20 }, (_, i) => ((i + round) % 2 === 0 ? 'approve' : 'reject'));
      const results = await Promise.all(
        kinds.map((kind, i) =>
          kind === 'approve'
            ? http(ports[i % 2]!, 'POST', `/approvals/${approvalId}/approve`, APPROVER_KEY, {})
            : http(ports[(i + 1) % 2]!, 'POST', `/approvals/${approvalId}/reject`, APPROVER_KEY, { reason: `no ${i}` }),
        ),
      );
      const summary = describeAll(results);

      expect(
        results.filter((r) => r.status >= 500),
        summary,
      ).toEqual([]);
      const winnerIndexes = results.flatMap((r, i) => (r.status === 200 ? [i] : []));
      expect(winnerIndexes, summary).toHaveLength(1);
      for (const loser of results.filter((r) => r.status !== 200)) {
        expect(loser.status, summary).toBe(409);
        expect(loser.body.error.code).toBe('approval_already_decided');
      }

      const winnerKind = kinds[winnerIndexes[0]!]!;
      const winner = results[winnerIndexes[0]!]!;
      const ran = server.count('POST', '/charge') - before;
      const final = await http(ports[round % 2]!, 'GET', `/approvals/${approvalId}`, APPROVER_KEY);
      const replay = await http(ports[(round + 1) % 2]!, 'POST', '/v1/call', AGENT_KEY, call);
      expect(replay.body.call_id).toBe(callId);
      if (winnerKind === 'approve') {
        expect(winner.body.outcome).toBe('executed');
        expect(ran).toBe(1);
        expect(final.body.approval.status).toBe('executed');
        expect(replay.body.status).toBe('executed');
      } else {
        expect(winner.body.outcome).toBe('rejected');
        expect(ran).toBe(0);
        expect(final.body.approval.status).toBe('rejected');
        expect(replay.body.status).toBe('rejected');
      }
    }
  });
});
