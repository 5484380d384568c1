import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { ADMIN_KEY, buildTestApp, send } from './app.ts';
import { json, startToolServer } from './tool-server.ts';

/** Bob approves (another person than the agent's key); the reader may only list tools. */
export const BOB_KEY = 'key-bob-approver';
export const READER_KEY = 'key-tools-reader';
export { ADMIN_KEY };

/**
 * Invoke listening on loopback, for the clients (SDK, CLI) that must talk real HTTP to it: a
 * billing provider with a plain tool (`billing.lookup`) and one that needs a human
 * (`billing.refund`, high risk, approval from high on), both on a recording tool server.
 */
export async function startSdkServer(env: Record<string, string> = {}) {
  const tools = await startToolServer({
    'GET /customers/*': (req, res) => json(res, 200, { customer_id: req.path.split('/').pop(), plan: 'pro' }),
    'POST /refunds': (req, res) => json(res, 200, { refunded: true, echo: req.body }),
  });
  const built: BuiltApp = await buildTestApp({
    INVOKE_API_KEY_SCOPES: JSON.stringify({
      [BOB_KEY]: { scopes: ['approvals:read', 'approvals:write', 'tools:read'], approver_id: 'bob' },
      [READER_KEY]: { scopes: ['tools:read'] },
    }),
    INVOKE_REQUIRE_APPROVAL_AT: 'high',
    ...env,
  });
  const registered = await send(built.app, 'POST', '/v1/providers', {
    name: 'billing',
    base_url: tools.url,
    tools: [
      { name: 'lookup', method: 'GET', path: '/customers/{customer_id}', side_effects: false, risk: 'low', description: 'Look up a customer' },
      { name: 'refund', path: '/refunds', risk: 'high', description: 'Refund a payment' },
    ],
  });
  expect(registered.status).toBe(201);
  await built.app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(built.app.server.address() as AddressInfo).port}`;
  return {
    url,
    built,
    tools,
    refunds: () => tools.count('POST', '/refunds'),
    async close() {
      await built.app.close();
      await tools.close();
    },
  };
}
export type SdkServer = Awaited<ReturnType<typeof startSdkServer>>;
