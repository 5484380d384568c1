import type { LookupAddress } from 'node:dns';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { BuiltApp } from '../../src/app.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { openStore, type Store } from '../../src/db/store.ts';
import { createParamValidator } from '../../src/tools/param-validator.ts';
import { createToolRegistry, type ToolRegistry } from '../../src/tools/tool-registry.ts';
import { createToolsRepository } from '../../src/tools/tools-repository.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { serveStateless, startMcpHttpServer, type McpHttpServer } from '../helpers/mcp-server.ts';
import { startToolServer } from '../helpers/tool-server.ts';

/**
 * Providers are registered by admins for internal services, so loopback and private addresses
 * are allowed; link-local and cloud metadata addresses never are: not at registration, and not
 * at call time when a registered name starts resolving to one (DNS can change).
 */

const FORBIDDEN_LITERALS = [
  'http://169.254.169.254/latest',
  'http://169.254.10.1',
  'http://[fe80::1]:8080',
  'http://[fd00:ec2::254]',
  'http://[fd20:ce::254]',
  'http://100.100.100.200',
  'http://[::ffff:169.254.169.254]',
  'http://[::ffff:a9fe:a9fe]',
  'http://[64:ff9b::a9fe:a9fe]',
  'http://[::169.254.169.254]',
  'http://metadata.google.internal/computeMetadata/v1',
  'http://METADATA.GOOGLE.INTERNAL./',
];

describe('provider addresses at registration (literals and metadata names)', () => {
  let built: BuiltApp;
  beforeAll(async () => {
    built = await buildTestApp();
  });
  afterAll(async () => {
    await built.app.close();
  });

  it.each(FORBIDDEN_LITERALS)('refuses base_url %s with 400 forbidden_address', async (url) => {
    const res = await send(built.app, 'POST', '/v1/providers', { name: 'meta', base_url: url, tools: [{ name: 't', path: '/t' }] });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('forbidden_address');
    expect(res.body.error.details).toMatchObject({ field: 'base_url' });
    expect((await send(built.app, 'GET', '/v1/tools')).body.tools.map((c: { key: string }) => c.key)).not.toContain('meta.t');
  });

  it.each(FORBIDDEN_LITERALS)('refuses mcp_url %s with 400 forbidden_address', async (url) => {
    const res = await send(built.app, 'POST', '/v1/providers', { name: 'meta', mcp_url: url });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('forbidden_address');
    expect(res.body.error.details).toMatchObject({ field: 'mcp_url' });
  });

  it.each(['http://127.0.0.1:9', 'http://10.1.2.3', 'http://192.168.4.5:8080', 'http://[::1]:9', 'http://[fd12::1]', 'http://100.64.0.7'])(
    'keeps loopback and private base_url %s allowed',
    async (url) => {
      const res = await send(built.app, 'POST', '/v1/providers', { name: 'internal', base_url: url, tools: [{ name: 't', path: '/t' }] });
      expect(res.status).toBe(201);
    },
  );
});

describe('provider addresses through the system resolver', () => {
  let built: BuiltApp;
  beforeAll(async () => {
    built = await buildTestApp({ INVOKE_TOOL_TIMEOUT_MS: '1000' });
  });
  afterAll(async () => {
    await built.app.close();
  });

  it('a tool stored before the rule existed, pointing at the metadata address, fails without a retry', async () => {
    // As an older version would have stored it: registration refuses it now.
    await createToolsRepository(built.store.db).replaceProvider('legacy', 'http', {}, [
      {
        card: {
          key: 'legacy.creds',
          provider: 'legacy',
          name: 'creds',
          description: '',
          input_schema: { type: 'object' },
          risk: 'low',
          side_effects: false,
          idempotent: true,
          timeout_ms: 1_000,
          transport: 'http',
        },
        transport: { kind: 'http', base_url: 'http://169.254.169.254', method: 'GET', path: '/latest/meta-data/iam' },
      },
    ]);
    const res = await send(built.app, 'POST', '/v1/call', { tool: 'legacy.creds', agent_id: 'a', params: {}, failure_policy: { retry: 2 } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'failed', attempts: 1 });
    const failed = res.body.trace.find((e: { step: string }) => e.step === 'attempt_failed');
    expect(JSON.stringify(failed)).toMatch(/169\.254\.169\.254.*forbidden.*metadata/);
    expect(JSON.stringify(failed)).toContain('"retryable":false');
  });
});

/** A resolver the test steers: host name -> addresses. */
function steeredResolver() {
  const answers = new Map<string, LookupAddress[]>();
  return {
    answers,
    set(host: string, ...addresses: string[]) {
      answers.set(
        host,
        addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
      );
    },
    resolveAll: async (hostname: string) => {
      const found = answers.get(hostname);
      if (found) return found;
      const error: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
      error.code = 'ENOTFOUND';
      throw error;
    },
  };
}

describe('provider addresses behind host names (steered resolver)', () => {
  let store: Store;
  let registry: ToolRegistry;
  const dns = steeredResolver();
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  let mcp: McpHttpServer;

  beforeAll(async () => {
    store = await openStore({ dataDir: 'memory://' });
    await migrateToLatest(store.db);
    registry = createToolRegistry({
      repository: createToolsRepository(store.db),
      validator: createParamValidator(),
      builtins: [],
      defaultTimeoutMs: 2_000,
      resolveHost: dns.resolveAll,
    });
    // Connection: close, so every call connects (and resolves) anew instead of reusing a socket.
    tools = await startToolServer({
      'GET /whoami': (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', connection: 'close' }).end('{"me":"svc"}');
      },
    });
    mcp = await startMcpHttpServer((request) =>
      serveStateless(() => {
        const server = new McpServer({ name: 'internal', version: '1.0.0' });
        server.registerTool('whoami', { inputSchema: { who: z.string().optional() }, annotations: { readOnlyHint: true } }, async () => ({
          content: [{ type: 'text', text: '{"me":"mcp"}' }],
        }));
        return server;
      }, request),
    );
  });
  afterAll(async () => {
    await tools.close();
    await mcp.close();
    await store.close();
  });
  beforeEach(() => {
    dns.answers.clear();
  });

  it.each([
    ['metadata.google.internal', ['169.254.169.254']],
    ['imds.corp', ['169.254.169.254']],
    ['ecs-creds.corp', ['169.254.170.2']],
    ['imds6.corp', ['fd00:ec2::254']],
    ['gce6.corp', ['fd20:ce::254']],
    ['alibaba.corp', ['100.100.100.200']],
    ['mapped.corp', ['::ffff:169.254.169.254']],
    ['linklocal6.corp', ['fe80::1']],
    ['mixed.corp', ['10.0.0.5', '169.254.169.254']],
  ])('refuses a base_url host %s resolving to %j', async (host, addresses) => {
    dns.set(host, ...addresses);
    const error = await registry.registerProvider({ name: 'svc', base_url: `http://${host}:8080`, tools: [{ name: 't', path: '/t' }] }).catch((e: unknown) => e);
    expect(error).toMatchObject({ statusCode: 400, code: 'forbidden_address', details: { field: 'base_url' } });
    expect((error as Error).message).toContain(host);
  });

  it('refuses an mcp_url host resolving to the metadata address, before any request', async () => {
    dns.set('mcp.corp', '169.254.169.254');
    const before = mcp.methods.length;
    const error = await registry.registerProvider({ name: 'm', mcp_url: `http://mcp.corp:${new URL(mcp.url).port}/mcp` }).catch((e: unknown) => e);
    expect(error).toMatchObject({ statusCode: 400, code: 'forbidden_address', details: { field: 'mcp_url' } });
    expect(mcp.methods.length).toBe(before);
  });

  it('an HTTP provider whose name later resolves to 169.254.169.254 fails at call time without a request', async () => {
    dns.set('svc.corp', '127.0.0.1');
    await registry.registerProvider({ name: 'svc', base_url: `http://svc.corp:${tools.port}`, tools: [{ name: 'whoami', method: 'GET', path: '/whoami' }] });
    const tool = await registry.getTool('svc.whoami');
    expect(await registry.invoke(tool, {})).toMatchObject({ kind: 'ok', result: { me: 'svc' } });
    expect(tools.count('GET', '/whoami')).toBe(1);

    dns.set('svc.corp', '169.254.169.254');
    const outcome = await registry.invoke(tool, {});
    expect(outcome).toMatchObject({ kind: 'failed', retryable: false });
    expect(outcome.kind === 'failed' && outcome.error).toMatch(/svc\.corp resolves to 169\.254\.169\.254.*forbidden range \(metadata\)/);
    expect(tools.count('GET', '/whoami')).toBe(1);
  });

  it('an MCP provider whose name later resolves to 169.254.169.254 fails at call time without a request', async () => {
    dns.set('crm.corp', '127.0.0.1');
    const url = `http://crm.corp:${new URL(mcp.url).port}/mcp`;
    await registry.registerProvider({ name: 'crm', mcp_url: url });
    const tool = await registry.getTool('crm.whoami');
    expect(await registry.invoke(tool, {})).toMatchObject({ kind: 'ok', result: { me: 'mcp' } });

    dns.set('crm.corp', '::ffff:169.254.169.254');
    const before = mcp.methods.length;
    const outcome = await registry.invoke(tool, {});
    expect(outcome).toMatchObject({ kind: 'failed', retryable: false });
    expect(outcome.kind === 'failed' && outcome.error).toMatch(/crm\.corp resolves to ::ffff:169\.254\.169\.254.*forbidden range \(metadata\)/);
    expect(mcp.methods.length).toBe(before);
  });

  it('a name that does not resolve at registration is accepted; the call-time guard decides later', async () => {
    const res = await registry.registerProvider({ name: 'later', base_url: 'http://not-yet.corp', tools: [{ name: 't', path: '/t' }] });
    expect(res.provider).toBe('later');
  });
});
