import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';

const READER = 'key-reader';
const AGENT_KEY = 'key-agent';
const NO_CALL = 'key-no-call';

describe('policy and scopes on /v1/call', () => {
  let built: BuiltApp;
  let server: Awaited<ReturnType<typeof startToolServer>>;

  beforeAll(async () => {
    server = await startToolServer({
      'POST /push': (_req, res) => json(res, 200, { pushed: true }),
      'POST /wire': (_req, res) => json(res, 200, { wired: true }),
      'POST /charge': (_req, res) => json(res, 200, { charged: true }),
      'GET /status': (_req, res) => json(res, 200, { ok: true }),
    });
    const dir = mkdtempSync(path.join(tmpdir(), 'invoke-policy-'));
    const policyFile = path.join(dir, 'policy.yaml');
    writeFileSync(
      policyFile,
      [
        'rules:',
        '  - when: "env == prod and tool == ops.push"',
        '    effect: deny',
        '    reason: No pushes in prod from agents',
        '  - when: "env == dev and tool == ops.wire"',
        '    effect: allow',
        '    reason: Dev wires are play money',
        '  - name: large charges',
        '    when: "tool == ops.charge and params.amount > 1000"',
        '    effect: deny',
        '    reason: Charges over 1000 are not for agents',
      ].join('\n'),
    );
    built = await buildTestApp({
      INVOKE_POLICY_FILE: policyFile,
      INVOKE_API_KEY_SCOPES: JSON.stringify({
        [READER]: { scopes: ['tools:read', 'tools:call'], read_only: true },
        [AGENT_KEY]: { scopes: ['tools:call'], allowed_tools: ['ops.push', 'ops.status'], agents: ['bot-1'], envs: ['dev'] },
        [NO_CALL]: { scopes: ['tools:read'] },
      }),
    });
    await send(built.app, 'POST', '/v1/providers', {
      name: 'ops',
      base_url: server.url,
      tools: [
        { name: 'push', path: '/push', risk: 'medium' },
        { name: 'wire', path: '/wire', risk: 'critical' },
        { name: 'charge', path: '/charge', risk: 'low' },
        { name: 'status', method: 'GET', path: '/status', risk: 'low', side_effects: false },
      ],
    });
  });
  afterAll(async () => {
    await built.app.close();
    await server.close();
  });

  const call = (body: Record<string, unknown>, key?: string) => send(built.app, 'POST', '/v1/call', { agent_id: 'bot-1', params: {}, ...body }, key ? { 'x-api-key': key } : {});

  describe('policy', () => {
    it('a request rule can require approval: the call is frozen, not run', async () => {
      const before = server.count('POST', '/push');
      const res = await call({
        tool: 'ops.push',
        action: 'git_push',
        params: { branch: 'main' },
        policy: { rules: [{ when: 'action == git_push and branch == main', effect: 'require_approval', intent: 'push_to_main', reason: 'Pushes to main need a human' }] },
      });
      expect(res.status).toBe(202);
      expect(res.body).toMatchObject({ status: 'pending_approval', reason: 'Pushes to main need a human', approval: { status: 'pending' } });
      expect(server.count('POST', '/push')).toBe(before);
      const stored = await built.store.db.selectFrom('approvals').selectAll().where('call_id', '=', res.body.call_id).executeTakeFirstOrThrow();
      expect(stored.checkpoint).toMatchObject({ tool: 'ops.push', params: { branch: 'main' }, action: 'git_push' });
    });

    it('a request rule can deny: blocked', async () => {
      const res = await call({ tool: 'ops.push', params: { branch: 'x' }, policy: { rules: [{ when: 'branch != main', effect: 'deny', reason: 'only main' }] } });
      expect(res.body).toMatchObject({ status: 'blocked', reason: 'only main' });
    });

    it('server rules from INVOKE_POLICY_FILE apply', async () => {
      const res = await call({ tool: 'ops.push', env: 'prod' });
      expect(res.body).toMatchObject({ status: 'blocked', reason: 'No pushes in prod from agents' });
    });

    it('a request cannot allow its way past a server deny', async () => {
      const res = await call({ tool: 'ops.push', env: 'prod', policy: { rules: [{ when: 'tool == ops.push', effect: 'allow' }] } });
      expect(res.body.status).toBe('blocked');
    });

    it('a request cannot allow its way past the risk threshold: critical tools wait for approval', async () => {
      const before = server.count('POST', '/wire');
      const res = await call({ tool: 'ops.wire', policy: { rules: [{ when: 'tool == ops.wire', effect: 'allow' }] } });
      expect(res.body.status).toBe('pending_approval');
      expect(server.count('POST', '/wire')).toBe(before);
    });

    it('a server allow rule may exempt a critical tool from the threshold', async () => {
      const res = await call({ tool: 'ops.wire', env: 'dev' });
      expect(res.body.status).toBe('executed');
    });

    it('an approval contract freezes even a low-risk call', async () => {
      const res = await call({ tool: 'ops.status', approval_contract: { intent: 'check', conditions: { ok: true } } });
      expect(res.status).toBe(202);
      expect(res.body.status).toBe('pending_approval');
    });

    it.each([
      ['[5000]', '[5000]', 'array'],
      ['{"value": 5000}', '{"value": 5000}', 'object'],
      ['"0x1388"', '"0x1388"', 'text'],
      ['"5,000"', '"5,000"', 'text'],
      ['1e400', '1e400', 'non-finite number'],
    ])('a server deny on params.amount > 1000 blocks amount %s, naming the value it could not compare', async (_name, amountJson, kind) => {
      const before = server.count('POST', '/charge');
      // Raw JSON: 1e400 only exists as text (JSON.parse reads it as Infinity).
      const res = await send(built.app, 'POST', '/v1/call', `{"tool": "ops.charge", "agent_id": "bot-1", "params": {"amount": ${amountJson}}}`);
      expect(res.status).toBe(200);
      const uncomparable = [
        {
          rule: 'server policy rules[2] "large charges"',
          effect: 'deny',
          outcome: 'matched',
          expression: 'params.amount > 1000',
          operand: 'params.amount',
          kind,
          expected: 'number',
        },
      ];
      expect(res.body).toMatchObject({ status: 'blocked', uncomparable });
      expect(res.body.reason).toMatch(/^Charges over 1000 are not for agents \(matched because params\.amount could not be compared \(.+, not a number\): fails closed\)$/);
      const evaluated = res.body.trace.find((event: { step: string }) => event.step === 'policy_evaluated');
      expect(evaluated).toMatchObject({ status: 'deny', detail: { uncomparable } });
      expect(server.count('POST', '/charge')).toBe(before);
    });

    it('the same server deny still blocks 5000 and lets 500 through', async () => {
      const big = await call({ tool: 'ops.charge', params: { amount: '5e3' } });
      expect(big.body).toMatchObject({ status: 'blocked', reason: 'Charges over 1000 are not for agents' });
      expect(big.body).not.toHaveProperty('uncomparable');
      const small = await call({ tool: 'ops.charge', params: { amount: 500 } });
      expect(small.body.status).toBe('executed');
    });

    it('a request require_approval rule fails closed too: the call waits for a human', async () => {
      const before = server.count('POST', '/push');
      const res = await call({ tool: 'ops.push', params: { amount: '5,000' }, policy: { rules: [{ when: 'params.amount > 100', effect: 'require_approval' }] } });
      expect(res.status).toBe(202);
      expect(res.body).toMatchObject({ status: 'pending_approval', uncomparable: [{ rule: 'request policy.rules[0]', operand: 'params.amount', kind: 'text' }] });
      expect(server.count('POST', '/push')).toBe(before);
    });

    it('a when nested 1,990 deep is a 400 with the error shape, not a 500', async () => {
      const res = await call({ tool: 'ops.push', policy: { rules: [{ when: '('.repeat(1990), effect: 'deny' }] } });
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'validation_error', details: { field: 'policy.rules[0].when', limit: 32, position: 32 } });
      expect(res.body.error.message).toContain('nested deeper than 32 levels of ( and [');
    });

    it('a malformed when is a 400 naming the rule', async () => {
      const res = await call({
        tool: 'ops.push',
        policy: {
          rules: [
            { when: 'ok', effect: 'deny' },
            { when: 'action == (', effect: 'deny' },
          ],
        },
      });
      expect(res.status).toBe(400);
      expect(res.body.error.message).toMatch(/rules\[1\]/);
    });
  });

  describe('scopes', () => {
    it('401 without a key and with an unknown key', async () => {
      const missing = await built.app.inject({ method: 'GET', url: '/v1/tools' });
      expect(missing.statusCode).toBe(401);
      expect(missing.json()).toMatchObject({ error: { code: 'unauthorized' } });
      const unknown = await send(built.app, 'GET', '/v1/tools', undefined, { 'x-api-key': 'nope' });
      expect(unknown.status).toBe(401);
    });

    it('403 names the missing scope', async () => {
      const res = await call({ tool: 'ops.status' }, NO_CALL);
      expect(res.status).toBe(403);
      expect(res.body.error.details).toMatchObject({ missing_scope: 'tools:call' });
      const admin = await send(built.app, 'POST', '/v1/providers', { name: 'x', base_url: server.url, tools: [{ name: 't', path: '/t' }] }, { 'x-api-key': READER });
      expect(admin.status).toBe(403);
      expect(admin.body.error.details.missing_scope).toBe('providers:admin');
    });

    it('a read-only key may not call a tool with side effects, but may read', async () => {
      const write = await call({ tool: 'ops.push' }, READER);
      expect(write.status).toBe(403);
      expect(write.body.error.details.missing_scope).toBe('read_only');
      const read = await call({ tool: 'ops.status' }, READER);
      expect(read.body.status).toBe('executed');
    });

    it('allowed_tools, agents and envs limit a key', async () => {
      expect((await call({ tool: 'ops.wire', env: 'dev' }, AGENT_KEY)).body.error.details.missing_scope).toBe('allowed_tools');
      expect((await call({ tool: 'ops.push', env: 'dev', agent_id: 'bot-2' }, AGENT_KEY)).body.error.details.missing_scope).toBe('agents');
      expect((await call({ tool: 'ops.push', env: 'prod' }, AGENT_KEY)).body.error.details.missing_scope).toBe('envs');
      expect((await call({ tool: 'ops.push' }, AGENT_KEY)).status).toBe(403);
      expect((await call({ tool: 'ops.push', env: 'dev' }, AGENT_KEY)).body.status).toBe('executed');
    });

    it('a state_refetch must be a tool the key may use', async () => {
      const res = await call(
        { tool: 'ops.push', env: 'dev', failure_policy: { reconcile: { state_refetch: { tool: 'fetch.url', params: { url: 'http://example.com' } }, conditions: { ok: true } } } },
        AGENT_KEY,
      );
      expect(res.status).toBe(403);
      expect(res.body.error.details.missing_scope).toBe('allowed_tools');
    });
  });
});
