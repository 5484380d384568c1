import type { ChildProcess } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { json, startToolServer } from '../helpers/tool-server.ts';
import { createTestDatabase } from './databases.ts';
import { http, killHard, runSweepCli, spawnReplica, stopProcess, waitFor, type Answer, type Replica, type SweepRun } from './replica-process.ts';

/**
 * A process killed with SIGKILL mid-call, and a new one recovering the call by reconciliation
 * with exactly one side effect. Real server processes (test/pg/serve-replica.ts) on the suite's
 * real Postgres; the tool is a real HTTP server in this process that counts every charge.
 *
 * Process A takes three calls with idempotency keys and is killed while all three are at the
 * tool: one charge that went through (the card can reconcile it), one that went through on a tool
 * that cannot be reconciled, one that was lost before the tool processed it. Process B, started
 * afterwards, answers 409 for each while their leases run; once they have run out, one sweep pass
 * (`npm run sweep`, as its own process) recovers them, and the agents' repeats on B get the
 * recovered answers: reconciled, unknown, or (for the lost charge) a fresh run.
 */

const AGENT_KEY = 'agent-key';
/** The charge tools' timeout: A must still be waiting on the tool when it is killed. */
const CHARGE_TIMEOUT_MS = 1_500;
const READ_TIMEOUT_MS = 500;
/** INVOKE_CALL_LEASE, the grace beyond a call's worst case. */
const CALL_LEASE_MS = 1_000;

const children = new Set<ChildProcess>();

describe('a replica killed with SIGKILL mid-call, recovered by another one on a real Postgres server', () => {
  /** Charges the payments "API" processed, in order: the side effects this test counts. */
  const charges: Array<{ payment_id: string; amount: number }> = [];
  /** Charges lost before they were processed (once each): their first request is dropped. */
  const lost = new Set<string>();
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  let databaseUrl: string;
  let client: pg.Client;
  let env: Record<string, string>;
  let b: Replica;

  const calls = {
    reconcilable: { tool: 'pay.charge', params: { payment_id: 'hang-1', amount: 25 }, agent_id: 'agent-1', idempotency_key: 'crash-reconcilable' },
    blind: { tool: 'pay.charge_blind', params: { payment_id: 'blind-1', amount: 40 }, agent_id: 'agent-1', idempotency_key: 'crash-blind' },
    lost: { tool: 'pay.charge', params: { payment_id: 'lost-1', amount: 70 }, agent_id: 'agent-1', idempotency_key: 'crash-lost' },
  };
  type Case = keyof typeof calls;
  const CASES = Object.keys(calls) as Case[];

  /** What happened, observed along the way and asserted per case below. */
  const seen = {
    callIds: {} as Record<Case, string>,
    aAnswers: {} as Record<Case, PromiseSettledResult<Answer>>,
    whileInFlight: {} as Record<Case, Answer>,
    leaseMs: {} as Record<Case, number>,
    chargesAtKill: 0,
    sweep: null as null | SweepRun,
    timings: {} as Record<string, number>,
  };

  const chargesFor = (paymentId: string) => charges.filter((c) => c.payment_id === paymentId).length;
  const requestsFor = (paymentId: string) =>
    tools.requests.filter((r) => r.method === 'POST' && r.path === '/charge' && (r.body as { payment_id?: string })?.payment_id === paymentId).length;

  beforeAll(async () => {
    const t0 = Date.now();
    tools = await startToolServer({
      'POST /charge': (req, res) => {
        const { payment_id, amount } = req.body as { payment_id: string; amount: number };
        // Lost before it was processed, and never answered: nothing charged (the first time only).
        if (payment_id.startsWith('lost') && !lost.has(payment_id)) {
          lost.add(payment_id);
          return;
        }
        charges.push({ payment_id, amount });
        // Charged, then never answered: the caller cannot know it went through.
        if (payment_id.startsWith('hang') || payment_id.startsWith('blind')) return;
        json(res, 200, { payment_id, charged: true, amount });
      },
      'GET /payments/*': (req, res) => {
        const id = req.path.split('/').pop()!;
        const charge = charges.find((c) => c.payment_id === id);
        json(res, 200, { payment_id: id, charged: charge !== undefined, amount: charge?.amount ?? null });
      },
    });
    databaseUrl = await createTestDatabase(inject('pgUrl'));
    client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    env = {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? '/tmp',
      DATABASE_URL: databaseUrl,
      INVOKE_API_KEYS: AGENT_KEY,
      INVOKE_DATA_DIR: 'memory://unused',
      LOG_LEVEL: 'silent',
      INVOKE_SWEEP_CRON: 'off',
      INVOKE_OUTBOX_INTERVAL_MS: '0',
      INVOKE_CALL_LEASE: `${CALL_LEASE_MS}ms`,
      INVOKE_RETRY_BASE_MS: '1',
      PORT: '0',
    };

    const a = await spawnReplica(env, { track: children });
    seen.timings['spawn A'] = Date.now() - t0;
    const paymentId = { type: 'object', required: ['payment_id'], properties: { payment_id: { type: 'string' } } };
    const chargeSchema = { type: 'object', required: ['payment_id', 'amount'], properties: { payment_id: { type: 'string' }, amount: { type: 'number' } } };
    const registered = await http(a.port, 'POST', '/v1/providers', AGENT_KEY, {
      name: 'pay',
      base_url: tools.url,
      tools: [
        {
          name: 'charge',
          path: '/charge',
          risk: 'medium',
          side_effects: true,
          timeout_ms: CHARGE_TIMEOUT_MS,
          input_schema: chargeSchema,
          state_refetch: { tool: 'pay.get_payment', params: { payment_id: '{{params.payment_id}}' }, conditions: { charged: true } },
        },
        { name: 'charge_blind', path: '/charge', risk: 'medium', side_effects: true, timeout_ms: CHARGE_TIMEOUT_MS, input_schema: chargeSchema },
        { name: 'get_payment', method: 'GET', path: '/payments/{payment_id}', side_effects: false, risk: 'low', timeout_ms: READ_TIMEOUT_MS, input_schema: paymentId },
      ],
    });
    if (registered.status !== 201) throw new Error(`provider registration failed: ${JSON.stringify(registered.body)}`);

    // Three calls reach the tool through A, which never hears back; A is killed while it waits.
    const t1 = Date.now();
    const inFlight = CASES.map((c) => http(a.port, 'POST', '/v1/call', AGENT_KEY, calls[c]));
    for (const p of inFlight) p.catch(() => {});
    await waitFor('the tool to see the three charges', () => CASES.every((c) => requestsFor(calls[c].params.payment_id) === 1));
    await killHard(a.child);
    seen.timings['calls reach the tool, A killed'] = Date.now() - t1;
    seen.chargesAtKill = charges.length;
    const settled = await Promise.allSettled(inFlight);
    CASES.forEach((c, i) => (seen.aAnswers[c] = settled[i]!));

    const t2 = Date.now();
    b = await spawnReplica(env, { track: children });
    seen.timings['spawn B'] = Date.now() - t2;
    for (const c of CASES) {
      seen.whileInFlight[c] = await http(b.port, 'POST', '/v1/call', AGENT_KEY, calls[c]);
      seen.callIds[c] = seen.whileInFlight[c].body?.error?.details?.call_id;
    }
    const leases = await client.query<{ id: string; lease_ms: number }>(
      `select id, round(extract(epoch from (lease_expires_at - created_at)) * 1000)::int as lease_ms from calls where status = 'in_flight'`,
    );
    for (const c of CASES) seen.leaseMs[c] = leases.rows.find((r) => r.id === seen.callIds[c])?.lease_ms ?? -1;

    // By the database clock, as the sweep judges it: every lease has run out.
    const t3 = Date.now();
    await waitFor('the leases to run out', async () => (await client.query(`select 1 from calls where status = 'in_flight' and lease_expires_at >= now()`)).rowCount === 0);
    seen.timings['wait for the leases'] = Date.now() - t3;
    const t4 = Date.now();
    seen.sweep = await runSweepCli(env, { track: children });
    seen.timings['npm run sweep'] = Date.now() - t4;
    seen.timings['total setup'] = Date.now() - t0;
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...children].map((child) => stopProcess(child)));
    await client?.end().catch(() => {});
    await tools?.close();
  }, 15_000);

  it('A died with all three calls at the tool; B answers 409 in flight for each, with leases sized from the tools', () => {
    expect(seen.chargesAtKill).toBe(2); // hang-1 and blind-1 went through; lost-1 did not
    for (const c of CASES) {
      expect(seen.aAnswers[c].status, `${c}: A died before answering`).toBe('rejected');
      expect(seen.whileInFlight[c].status, JSON.stringify(seen.whileInFlight[c].body)).toBe(409);
      expect(seen.whileInFlight[c].body.error.code).toBe('idempotency_key_in_flight');
      expect(seen.callIds[c]).toMatch(/^call_/);
    }
    // The lease is the call's worst case (one attempt, plus the reconciliation read) plus INVOKE_CALL_LEASE.
    expect(seen.leaseMs.reconcilable).toBe(CHARGE_TIMEOUT_MS + READ_TIMEOUT_MS + CALL_LEASE_MS);
    expect(seen.leaseMs.lost).toBe(CHARGE_TIMEOUT_MS + READ_TIMEOUT_MS + CALL_LEASE_MS);
    expect(seen.leaseMs.blind).toBe(CHARGE_TIMEOUT_MS + CALL_LEASE_MS);
  });

  it('one sweep pass (npm run sweep) recovers the three calls, reports its counts and exits 0', () => {
    const sweep = seen.sweep!;
    expect(sweep.code, `stdout:\n${sweep.stdout}\nstderr:\n${sweep.stderr}`).toBe(0);
    const line = sweep.stdout.split('\n').find((l) => l.startsWith('sweep pass'));
    expect(line, sweep.stdout).toMatch(/^sweep pass \(\d+ ms\): expired=0 .*\brecovered=3 unknown_outcomes=1 .*\berrors=0$/);
    // Reconciliation read live state for the two charges with a state_refetch; nothing was charged again.
    expect(tools.count('GET', '/payments/hang-1')).toBe(1);
    expect(tools.count('GET', '/payments/lost-1')).toBe(1);
    expect(tools.count('GET', '/payments/blind-1')).toBe(0);
    expect(requestsFor('hang-1')).toBe(1);
    expect(requestsFor('blind-1')).toBe(1);
    expect(requestsFor('lost-1')).toBe(1);
  });

  it('the charge went through: reconciled from live state, the repeat on B replays outcome_reconciled, one charge', async () => {
    const callId = seen.callIds.reconcilable;
    const again = await http(b.port, 'POST', '/v1/call', AGENT_KEY, calls.reconcilable);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toMatchObject({
      status: 'outcome_reconciled',
      call_id: callId,
      result: { payment_id: 'hang-1', charged: true, amount: 25 },
      reconciliation: { decision: 'do_not_retry' },
    });
    const steps = (again.body.trace as Array<{ step: string }>).map((e) => e.step);
    // What A persisted before the tool was called, then the recovery.
    expect(steps).toEqual(expect.arrayContaining(['request_received', 'recovery_started', 'state_refetched', 'outcome_reconciled', 'execution_completed']));
    expect(steps.filter((s) => s === 'recovery_started')).toHaveLength(1);

    // Repeating again changes nothing: still one charge at the tool.
    const third = await http(b.port, 'POST', '/v1/call', AGENT_KEY, calls.reconcilable);
    expect(third.body).toMatchObject({ status: 'outcome_reconciled', call_id: callId });
    expect(requestsFor('hang-1')).toBe(1);
    expect(chargesFor('hang-1')).toBe(1);
  });

  it('no state_refetch: the call is unknown_outcome, shown in its trace, replayed on repeat and never re-run', async () => {
    const callId = seen.callIds.blind;
    const trace = await http(b.port, 'GET', `/traces/${callId}`, AGENT_KEY);
    expect(trace.status, JSON.stringify(trace.body)).toBe(200);
    expect(trace.body).toMatchObject({ call_id: callId, status: 'unknown_outcome', answer: { status: 'unknown_outcome', error: 'interrupted' } });
    const steps = (trace.body.events as Array<{ step: string; status: string }>).map((e) => `${e.step}:${e.status}`);
    expect(steps).toContain('recovery_started:unknown');
    expect(steps).toContain('execution_completed:unknown_outcome');
    expect(steps.some((s) => s.startsWith('state_refetched'))).toBe(false);

    for (let i = 0; i < 2; i++) {
      const again = await http(b.port, 'POST', '/v1/call', AGENT_KEY, calls.blind);
      expect(again.status, JSON.stringify(again.body)).toBe(200);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(again.body).toMatchObject({ status: 'unknown_outcome', call_id: callId });
    }
    expect(requestsFor('blind-1')).toBe(1);
    expect(chargesFor('blind-1')).toBe(1);
  });

  it('the charge was lost before it was processed: reconciliation allows a retry, the key is freed, the repeat on B charges once', async () => {
    const callId = seen.callIds.lost;
    const trace = await http(b.port, 'GET', `/traces/${callId}`, AGENT_KEY);
    expect(trace.body).toMatchObject({ status: 'failed', answer: { status: 'failed', error: 'interrupted', reconciliation: { decision: 'retry_allowed' } } });
    const key = await client.query(`select 1 from idempotency_keys where key = $1`, [calls.lost.idempotency_key]);
    expect(key.rowCount).toBe(0);
    expect(chargesFor('lost-1')).toBe(0);

    const again = await http(b.port, 'POST', '/v1/call', AGENT_KEY, calls.lost);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBeNull();
    expect(again.body).toMatchObject({ status: 'executed', result: { payment_id: 'lost-1', charged: true, amount: 70 } });
    expect(again.body.call_id).not.toBe(callId);

    // That answer is now the key's: a further repeat replays it.
    const third = await http(b.port, 'POST', '/v1/call', AGENT_KEY, calls.lost);
    expect(third.headers.get('idempotent-replayed')).toBe('true');
    expect(third.body).toMatchObject({ status: 'executed', call_id: again.body.call_id });
    expect(requestsFor('lost-1')).toBe(2); // the lost request, and the one that ran
    expect(chargesFor('lost-1')).toBe(1);
    expect(charges).toHaveLength(3);
    console.log(`crash-recovery timings (ms): ${JSON.stringify(seen.timings)}`);
  });
});
