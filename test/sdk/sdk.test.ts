import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import {
  Invoke,
  InvokeAuthError,
  InvokeConnectionError,
  InvokeForbiddenError,
  InvokeNotExecutedError,
  InvokeValidationError,
  type CallAnswer,
  type CallRequest,
  type FetchLike,
} from 'invoke';
import { ADMIN_KEY, BOB_KEY, READER_KEY, startSdkServer, type SdkServer } from '../helpers/sdk-server.ts';

/**
 * The SDK against the real server over real HTTP (in-process, on loopback). Where a test needs
 * a transport failure it wraps the real `fetch`: the transport is the third party here.
 */
describe('the TypeScript SDK', () => {
  let server: SdkServer;
  let agent: Invoke;
  let bob: Invoke;

  beforeAll(async () => {
    server = await startSdkServer();
    agent = new Invoke({ apiKey: ADMIN_KEY, baseUrl: server.url, agentId: 'sdk-test-agent', retryBaseMs: 5 });
    bob = new Invoke({ apiKey: BOB_KEY, baseUrl: server.url });
  });
  afterAll(async () => {
    await server.close();
  });

  /** Bob approves the first pending approval of `tool` as soon as it shows up. */
  async function approveWhenPending(tool: string): Promise<string> {
    for (let i = 0; i < 200; i++) {
      const pending = (await bob.approvals.list({ status: 'pending' })).find((a) => a.tool === tool);
      if (pending) {
        await bob.approvals.approve(pending.id, { comment: 'ok from the test' });
        return pending.id;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`no pending approval for ${tool}`);
  }

  it('calls a tool and answers a typed `executed`', async () => {
    const answer = await agent.call<{ plan: string }>('billing.lookup', { customer_id: 'cust_1' });
    expect(answer.status).toBe('executed');
    if (answer.status !== 'executed') throw new Error('unreachable');
    expect(answer.result).toEqual({ customer_id: 'cust_1', plan: 'pro' });
    expect(answer.agent_id).toBe('sdk-test-agent');
  });

  it('accepts the original SDK one-object form', async () => {
    const answer = await agent.call({ tool: 'billing.lookup', params: { customer_id: 'cust_2' }, agentId: 'seed-agent', idempotencyKey: 'seed-form-1' });
    expect(answer).toMatchObject({ status: 'executed', agent_id: 'seed-agent' });
  });

  it('gives every call a key and reuses it when it resends: an answer lost in transit does not refund twice', async () => {
    const sent: CallRequest[] = [];
    let dropped = false;
    const losesFirstAnswer: FetchLike = async (url, init) => {
      if (url.endsWith('/v1/call')) sent.push(JSON.parse(String(init.body)) as CallRequest);
      const response = await fetch(url, init);
      if (url.endsWith('/v1/call') && !dropped) {
        dropped = true;
        // The server ran the call; the agent never hears back.
        throw new TypeError('fetch failed', { cause: { code: 'ECONNRESET' } });
      }
      return response;
    };
    const flaky = new Invoke({ apiKey: ADMIN_KEY, baseUrl: server.url, fetch: losesFirstAnswer, retryBaseMs: 5 });
    const before = server.refunds();
    const answer = await flaky.call('billing.refund', { payment_id: 'pay_retry' }, { approval_contract: undefined, waitForApproval: false });
    expect(sent).toHaveLength(2);
    expect(sent[0]!.idempotency_key).toMatch(/^[0-9a-f-]{36}$/);
    expect(sent[1]!.idempotency_key).toBe(sent[0]!.idempotency_key);
    // The first POST froze it (high risk); the resent one replays that very answer: one approval.
    expect(answer.status).toBe('pending_approval');
    const pending = await bob.approvals.list({ status: 'pending' });
    expect(pending.filter((a) => a.call_id === answer.call_id)).toHaveLength(1);
    await bob.approvals.reject(answer.status === 'pending_approval' ? answer.approval.id : '', 'test cleanup');
    expect(server.refunds()).toBe(before);

    const other = await flaky.call('billing.lookup', { customer_id: 'cust_3' });
    expect(sent.at(-1)!.idempotency_key).not.toBe(sent[0]!.idempotency_key);
    expect(other.status).toBe('executed');
  });

  it('retries a transport failure of a keyed call exactly once per failure and runs the tool once', async () => {
    let calls = 0;
    const refusedOnce: FetchLike = async (url, init) => {
      if (url.endsWith('/v1/call') && calls++ === 0) throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
      return fetch(url, init);
    };
    const flaky = new Invoke({ apiKey: ADMIN_KEY, baseUrl: server.url, fetch: refusedOnce, retryBaseMs: 5 });
    const before = server.tools.count('GET', '/customers/cust_4');
    expect((await flaky.call('billing.lookup', { customer_id: 'cust_4' })).status).toBe('executed');
    expect(calls).toBe(2);
    expect(server.tools.count('GET', '/customers/cust_4') - before).toBe(1);
  });

  it('waitForApproval: waits through pending_approval and returns the answer of the approved call', async () => {
    const before = server.refunds();
    const [answer, approvalId] = await Promise.all([
      agent.call('billing.refund', { payment_id: 'pay_wait', amount: 20 }, { waitForApproval: 10_000 }),
      approveWhenPending('billing.refund'),
    ]);
    expect(answer.status).toBe('executed');
    expect(answer.result).toEqual({ refunded: true, echo: { payment_id: 'pay_wait', amount: 20 } });
    expect(server.refunds() - before).toBe(1);
    expect((await bob.approvals.get(approvalId)).status).toBe('executed');
  });

  it('without waitForApproval: the pending answer carries a handle to wait on later', async () => {
    const answer = await agent.call('billing.refund', { payment_id: 'pay_later' });
    if (answer.status !== 'pending_approval') throw new Error(`expected pending_approval, got ${answer.status}`);
    expect(answer.approval.id).toBeTruthy();
    // The fields the server schemas carry reach the SDK typed (tsc checks these lines).
    expectTypeOf(answer.approval.review_url).toEqualTypeOf<string | undefined>();
    const view = await bob.approvals.get(answer.approval.id);
    expectTypeOf(view.approvers).toEqualTypeOf<string[] | null>();
    expectTypeOf(view.review_url).toEqualTypeOf<string | undefined>();
    expectTypeOf(view.approvals).toEqualTypeOf<Array<{ approver: string; at: string }>>();
    expectTypeOf<NonNullable<typeof view.edited>['by']>().toEqualTypeOf<string>();
    expect(view.approvers).toBeNull();
    expect(view.approvals).toEqual([]);
    await bob.approvals.reject(answer.approval.id, 'not this one');
    const final: CallAnswer = await answer.approval.wait({ timeoutMs: 5_000 });
    expectTypeOf<NonNullable<typeof final.edited>['params']>().toEqualTypeOf<Record<string, unknown>>();
    expect(final.status).toBe('rejected');
    expect(final.call_id).toBe(answer.call_id);
  });

  it('resumes a long poll whose connection drops, and still returns the final answer', async () => {
    let polls = 0;
    let drops = 0;
    const dropsFirstPoll: FetchLike = async (url, init) => {
      if (!/\/v1\/approvals\/[^/?]+\?wait=/.test(url)) return fetch(url, init);
      polls++;
      if (drops > 0) return fetch(url, init);
      drops++;
      // The poll reaches the server and hangs there; then the connection dies under it.
      const cut = new AbortController();
      setTimeout(() => cut.abort(), 100);
      await fetch(url, { ...init, signal: cut.signal }).catch(() => undefined);
      throw new TypeError('terminated', { cause: { code: 'UND_ERR_SOCKET' } });
    };
    const waiting = new Invoke({ apiKey: ADMIN_KEY, baseUrl: server.url, fetch: dropsFirstPoll, retryBaseMs: 5 });
    const pending = await waiting.call('billing.refund', { payment_id: 'pay_drop' });
    if (pending.status !== 'pending_approval') throw new Error(`expected pending_approval, got ${pending.status}`);
    const finalAnswer = pending.approval.wait({ timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 300));
    await bob.approvals.approve(pending.approval.id);
    const final = await finalAnswer;
    expect(drops).toBe(1);
    expect(polls).toBeGreaterThanOrEqual(2);
    expect(final.status).toBe('executed');
  });

  it('throws typed errors carrying the server code: 401, 403, 400', async () => {
    const wrongKey = new Invoke({ apiKey: 'not-a-key', baseUrl: server.url });
    const auth = await wrongKey.tools.list().catch((e: unknown) => e);
    expect(auth).toBeInstanceOf(InvokeAuthError);
    expect(auth).toMatchObject({ status: 401, code: 'unauthorized' });

    const reader = new Invoke({ apiKey: READER_KEY, baseUrl: server.url });
    expect((await reader.tools.list()).map((t) => t.key)).toEqual(expect.arrayContaining(['billing.lookup', 'billing.refund']));
    const forbidden = await reader.call('billing.lookup', { customer_id: 'x' }).catch((e: unknown) => e);
    expect(forbidden).toBeInstanceOf(InvokeForbiddenError);
    expect(forbidden).toMatchObject({ status: 403, code: 'forbidden' });

    const invalid = await agent.call('billing.lookup', {}, { failure_policy: { retry: -1 } }).catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(InvokeValidationError);
    expect(invalid).toMatchObject({ status: 400, code: 'validation_error' });
    expect((invalid as InvokeValidationError).details).toBeDefined();
  });

  it('reports an unreachable server as InvokeConnectionError after its retries', async () => {
    const nowhere = new Invoke({ apiKey: ADMIN_KEY, baseUrl: 'http://127.0.0.1:9', maxRetries: 1, retryBaseMs: 5 });
    const error = await nowhere.tools.list().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvokeConnectionError);
    expect(error).toMatchObject({ code: 'unreachable', status: 0 });
  });

  it('lists traces a page at a time and iterates over every page', async () => {
    const tracer = new Invoke({ apiKey: ADMIN_KEY, baseUrl: server.url, agentId: 'trace-walker' });
    for (let i = 0; i < 5; i++) await tracer.call('billing.lookup', { customer_id: `walk_${i}` });
    const first = await tracer.traces.list({ agent_id: 'trace-walker', limit: 2 });
    expect(first.traces).toHaveLength(2);
    expect(first.next_cursor).not.toBeNull();
    const pages = [];
    for await (const page of tracer.traces.list({ agent_id: 'trace-walker', limit: 2 })) pages.push(page);
    expect(pages.map((p) => p.traces.length)).toEqual([2, 2, 1]);
    const ids = pages.flatMap((p) => p.traces.map((t) => t.call_id));
    expect(new Set(ids).size).toBe(5);

    const detail = await tracer.traces.get(ids[0]!);
    expect(detail.call_id).toBe(ids[0]);
    expect(detail.events.map((e) => e.step)).toContain('request_received');

    const exported = await tracer.traces.export({ format: 'langsmith', agent_id: 'trace-walker' });
    expect(exported).toHaveLength(5);
    expect(exported[0]).toMatchObject({ run_type: 'tool', name: 'billing.lookup' });
  });

  it('creates, reads and lists executions under an idempotency key', async () => {
    const created = await agent.executions.create(
      { workflow: 'safe-tool-execution', agent_id: 'exec-agent', input: { tool: 'billing.lookup', params: { customer_id: 'cust_exec' } } },
      { idempotencyKey: 'exec-1' },
    );
    expect(created.success).toBe(true);
    expect(created.execution.idempotency_key).toBe('exec-1');
    const again = await agent.executions.create(
      { workflow: 'safe-tool-execution', agent_id: 'exec-agent', input: { tool: 'billing.lookup', params: { customer_id: 'cust_exec' } } },
      { idempotencyKey: 'exec-1' },
    );
    expect(again.execution.execution_id).toBe(created.execution.execution_id);
    expect((await agent.executions.get(created.execution.execution_id)).execution_id).toBe(created.execution.execution_id);
    expect((await agent.executions.list({ limit: 10 })).map((e) => e.execution_id)).toContain(created.execution.execution_id);
  });

  it('guard: the wrapped function runs through Invoke and returns the tool result', async () => {
    const localLookup = async (params: { customer_id: string }) => ({ customer_id: params.customer_id, plan: 'local' });
    const lookup = agent.guard('billing.lookup', localLookup);
    const before = server.tools.count('GET', '/customers/cust_guard');
    expect(await lookup({ customer_id: 'cust_guard' })).toEqual({ customer_id: 'cust_guard', plan: 'pro' });
    expect(server.tools.count('GET', '/customers/cust_guard') - before).toBe(1);

    const refund = agent.guard('billing.refund', async (_params: { payment_id: string }) => ({ refunded: true }), { waitForApproval: false });
    const refused = await refund({ payment_id: 'pay_guard' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvokeNotExecutedError);
    const answer = (refused as InvokeNotExecutedError).answer;
    expect(answer.status).toBe('pending_approval');
    if (answer.status === 'pending_approval') await bob.approvals.reject(answer.approval.id, 'cleanup');
  });
});
