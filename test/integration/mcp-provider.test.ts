import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { serveStateless, startMcpHttpServer } from '../helpers/mcp-server.ts';

/**
 * MCP providers end to end: register a real MCP server (official SDK, Streamable HTTP, stateless)
 * through `POST /v1/providers`, then call its tools through `POST /v1/call`. Side effects are
 * counted at the MCP server: per tool inside the tool handlers, and per JSON-RPC message at HTTP.
 */

interface TestMcpServer {
  url: string;
  /** Runs per tool, counted inside the tool handlers. */
  runs: Map<string, number>;
  /** Every JSON-RPC method (or HTTP method for bodiless requests) the HTTP server received. */
  methods: string[];
  /** Tool names of the `tools/call` messages the HTTP server received. */
  toolCalls: string[];
  /** Resolves every handler still hanging. */
  releaseAll(): void;
  reset(): void;
  close(): Promise<void>;
}

interface ToolKit {
  count(tool: string): void;
  /** Resolves when the request is aborted or the server releases its hanging handlers. */
  hang(signal: AbortSignal): Promise<void>;
}

async function startMcpServer(register: (server: McpServer, kit: ToolKit) => void): Promise<TestMcpServer> {
  const runs = new Map<string, number>();
  const count = (tool: string) => runs.set(tool, (runs.get(tool) ?? 0) + 1);
  const mcp = await startMcpHttpServer((request) =>
    serveStateless(() => {
      const server = new McpServer({ name: 'test-crm', version: '1.0.0' });
      register(server, { count, hang: request.hang });
      return server;
    }, request),
  );
  return {
    url: mcp.url,
    runs,
    methods: mcp.methods,
    toolCalls: mcp.toolCalls,
    releaseAll: mcp.releaseAll,
    reset() {
      mcp.releaseAll();
      runs.clear();
      mcp.methods.length = 0;
      mcp.toolCalls.length = 0;
    },
    close: () => mcp.close(),
  };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (value: unknown) => ({ content: [{ type: 'text' as const, text: JSON.stringify(value) }] });

describe('MCP providers end to end', () => {
  let built: BuiltApp;
  let crm: TestMcpServer;
  let other: TestMcpServer;
  let registered: Awaited<ReturnType<typeof send>>;
  let methodsAtRegistration: string[] = [];
  /** The CRM's records: the live state reconciliation reads back. */
  const records = new Map<string, string>();

  const crmOverrides = [
    // Annotated destructive (risk high); the override wins on risk, idempotent, timeout and description.
    { name: 'sync_record', risk: 'low', idempotent: true, timeout_ms: 300, description: 'Sync a record to the ledger (slow)' },
    { name: 'charge_card', timeout_ms: 2_000 },
  ];

  beforeAll(async () => {
    crm = await startMcpServer((server, kit) => {
      server.registerTool(
        'get_record',
        {
          description: 'Reads one CRM record.',
          inputSchema: { id: z.string() },
          outputSchema: { id: z.string(), status: z.string() },
          annotations: { readOnlyHint: true, idempotentHint: true },
        },
        async ({ id }) => {
          kit.count('get_record');
          const status = records.get(id) ?? 'missing';
          return { ...text({ id, status }), structuredContent: { id, status } };
        },
      );
      server.registerTool(
        'update_record',
        {
          description: 'Sets the status of a CRM record.',
          inputSchema: { id: z.string(), status: z.enum(['open', 'closed']) },
          annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true },
        },
        async ({ id, status }) => {
          kit.count('update_record');
          records.set(id, status);
          return text({ id, status, updated: true });
        },
      );
      server.registerTool(
        'delete_record',
        {
          description: 'Deletes a CRM record.',
          inputSchema: { id: z.string() },
          annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false },
        },
        async ({ id }) => {
          kit.count('delete_record');
          records.delete(id);
          return text({ id, deleted: true });
        },
      );
      server.registerTool(
        'sync_record',
        {
          description: 'Syncs a record.',
          inputSchema: { id: z.string(), status: z.enum(['open', 'closed']) },
          annotations: { destructiveHint: true },
        },
        async ({ id, status }, extra) => {
          kit.count('sync_record');
          records.set(id, status); // Takes effect, then never answers in time.
          await kit.hang(extra.signal);
          return text({ id, status, synced: true });
        },
      );
      server.registerTool('charge_card', { description: 'Charges a card.', inputSchema: { amount: z.number() } }, async () => {
        kit.count('charge_card');
        return { content: [{ type: 'text', text: 'card declined' }], isError: true };
      });
    });
    other = await startMcpServer((server, kit) => {
      server.registerTool('lookup', { description: 'Looks something up.', inputSchema: { q: z.string() }, annotations: { readOnlyHint: true } }, async ({ q }) => {
        kit.count('lookup');
        return text({ q, found: true });
      });
    });
    built = await buildTestApp();
    registered = await send(built.app, 'POST', '/v1/providers', { name: 'crm', mcp_url: crm.url, tools: crmOverrides });
    methodsAtRegistration = [...crm.methods];
  });

  afterAll(async () => {
    await built?.app.close();
    await crm?.close();
    await other?.close();
  });

  beforeEach(() => {
    crm.reset();
    other.reset();
    records.clear();
  });

  describe('registration', () => {
    it('registers the server tools as crm.<tool>, cards filled from annotations and overrides', async () => {
      const res = registered;
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ provider: 'crm', kind: 'mcp' });
      const cards = new Map<string, Record<string, unknown>>(res.body.tools.map((c: { key: string }) => [c.key, c]));
      expect([...cards.keys()].sort()).toEqual(['crm.charge_card', 'crm.delete_record', 'crm.get_record', 'crm.sync_record', 'crm.update_record']);

      expect(cards.get('crm.get_record')).toMatchObject({
        provider: 'crm',
        name: 'get_record',
        transport: 'mcp',
        description: 'Reads one CRM record.',
        side_effects: false,
        risk: 'low',
        idempotent: true,
        input_schema: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
      });
      expect(cards.get('crm.update_record')).toMatchObject({ side_effects: true, risk: 'medium', idempotent: true });
      expect(cards.get('crm.delete_record')).toMatchObject({ side_effects: true, risk: 'high', idempotent: false });
      // Unannotated: side-effecting, medium, not idempotent; timeout from the override.
      expect(cards.get('crm.charge_card')).toMatchObject({ side_effects: true, risk: 'medium', idempotent: false, timeout_ms: 2_000 });
      // destructiveHint would say high and not idempotent: the override wins, the rest stays annotation-derived.
      expect(cards.get('crm.sync_record')).toMatchObject({
        side_effects: true,
        risk: 'low',
        idempotent: true,
        timeout_ms: 300,
        description: 'Sync a record to the ledger (slow)',
        input_schema: { properties: { id: { type: 'string' }, status: { type: 'string', enum: ['open', 'closed'] } } },
      });
      // Listing ran tools/list, never tools/call.
      expect(methodsAtRegistration).toContain('tools/list');
      expect(methodsAtRegistration).not.toContain('tools/call');
    });

    it('shows the cards in GET /v1/tools and GET /discover', async () => {
      const list = await send(built.app, 'GET', '/v1/tools');
      expect(list.status).toBe(200);
      const keys = list.body.tools.map((c: { key: string }) => c.key);
      expect(keys).toEqual(expect.arrayContaining(['crm.get_record', 'crm.update_record', 'crm.delete_record', 'crm.sync_record', 'crm.charge_card']));
      expect(list.body.tools.find((c: { key: string }) => c.key === 'crm.delete_record')).toMatchObject({ risk: 'high', transport: 'mcp' });

      const found = await send(built.app, 'GET', '/discover?q=record');
      expect(found.status).toBe(200);
      const foundKeys = found.body.tools.map((c: { key: string }) => c.key);
      expect(foundKeys).toEqual(expect.arrayContaining(['crm.get_record', 'crm.update_record', 'crm.delete_record', 'crm.sync_record']));
      expect(foundKeys).not.toContain('crm.charge_card');

      const exact = await send(built.app, 'GET', `/discover?q=${encodeURIComponent('crm.charge_card')}`);
      expect(exact.body.tools[0]).toMatchObject({ key: 'crm.charge_card', transport: 'mcp' });
    });

    it('refuses an override naming a tool the server does not list, keeping the registered tools', async () => {
      const res = await send(built.app, 'POST', '/v1/providers', {
        name: 'crm',
        mcp_url: crm.url,
        tools: [
          { name: 'get_record', risk: 'high' },
          { name: 'no_such_tool', risk: 'low' },
        ],
      });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_error');
      expect(res.body.error.details).toEqual({ unknown_tools: ['no_such_tool'] });
      const list = await send(built.app, 'GET', '/v1/tools');
      expect(list.body.tools.find((c: { key: string }) => c.key === 'crm.get_record')).toMatchObject({ risk: 'low' });
      expect(list.body.tools.find((c: { key: string }) => c.key === 'crm.sync_record')).toMatchObject({ timeout_ms: 300 });
    });
  });

  describe('calls', () => {
    it('executes through tools/call: structured content', async () => {
      records.set('r1', 'open');
      const res = await send(built.app, 'POST', '/v1/call', { tool: 'crm.get_record', params: { id: 'r1' }, agent_id: 'a1' });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: 'executed', attempts: 1, result: { id: 'r1', status: 'open' } });
      expect(crm.runs.get('get_record')).toBe(1);
      expect(crm.toolCalls).toEqual(['get_record']);
    });

    it('executes through tools/call: a JSON text answer becomes the result', async () => {
      const res = await send(built.app, 'POST', '/v1/call', { tool: 'crm.update_record', params: { id: 'r2', status: 'closed' }, agent_id: 'a1' });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: 'executed', attempts: 1, result: { id: 'r2', status: 'closed', updated: true } });
      expect(crm.runs.get('update_record')).toBe(1);
      expect(crm.toolCalls).toEqual(['update_record']);
      expect(records.get('r2')).toBe('closed');
    });

    it('validates params against the inputSchema before the server sees anything', async () => {
      const wrongType = await send(built.app, 'POST', '/v1/call', { tool: 'crm.update_record', params: { id: 7, status: 'gone' }, agent_id: 'a1' });
      expect(wrongType.status).toBe(400);
      expect(wrongType.body.error.code).toBe('validation_error');
      const paths = wrongType.body.error.details.problems.map((p: { path: string }) => p.path);
      expect(paths).toEqual(expect.arrayContaining(['params.id', 'params.status']));

      const missing = await send(built.app, 'POST', '/v1/call', { tool: 'crm.get_record', params: {}, agent_id: 'a1' });
      expect(missing.status).toBe(400);
      expect(missing.body.error.details.problems.map((p: { path: string }) => p.path)).toContain('params.id');

      expect(crm.methods).toEqual([]);
      expect(crm.runs.size).toBe(0);
    });

    it('answers unknown_outcome for a side-effecting tool that hangs, with exactly one tools/call despite retry 3', async () => {
      const started = Date.now();
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'crm.sync_record',
        params: { id: 'r3', status: 'closed' },
        agent_id: 'a1',
        failure_policy: { retry: 3 },
      });
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: 'unknown_outcome', attempts: 1 });
      expect(res.body.error).toMatch(/outcome unknown/);
      // No late or background re-send either.
      await pause(300);
      expect(crm.runs.get('sync_record')).toBe(1);
      expect(crm.toolCalls).toEqual(['sync_record']);
      expect(crm.methods.filter((m) => m === 'tools/call')).toHaveLength(1);
    });

    it('reconciles the hanging call from a read-only tool on the same server: outcome_reconciled, one tools/call', async () => {
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'crm.sync_record',
        params: { id: 'r4', status: 'closed' },
        agent_id: 'a1',
        failure_policy: {
          retry: 3,
          reconcile: { state_refetch: { tool: 'crm.get_record', params: { id: '{{params.id}}' } }, conditions: { status: 'closed' } },
        },
      });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        status: 'outcome_reconciled',
        attempts: 1,
        result: { id: 'r4', status: 'closed' },
        reconciliation: { decision: 'do_not_retry' },
      });
      expect(res.body.trace.map((e: { step: string }) => e.step)).toEqual(expect.arrayContaining(['outcome_unknown', 'state_refetched', 'outcome_reconciled']));
      await pause(300);
      expect(crm.runs.get('sync_record')).toBe(1);
      expect(crm.runs.get('get_record')).toBe(1);
      expect(crm.toolCalls).toEqual(['sync_record', 'get_record']);
    });

    it('fails an isError result without retrying: one tools/call despite retry 2', async () => {
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'crm.charge_card',
        params: { amount: 12 },
        agent_id: 'a1',
        failure_policy: { retry: 2 },
      });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: 'failed', attempts: 1, error: 'card declined' });
      expect(crm.runs.get('charge_card')).toBe(1);
      expect(crm.toolCalls).toEqual(['charge_card']);
    });
  });

  describe('re-registration', () => {
    it('replaces the tools of a provider registered again under the same name', async () => {
      const first = await send(built.app, 'POST', '/v1/providers', { name: 'swap', mcp_url: crm.url });
      expect(first.status).toBe(201);
      expect(first.body.tools).toHaveLength(5);
      const again = await send(built.app, 'POST', '/v1/providers', { name: 'swap', mcp_url: crm.url, tools: [{ name: 'delete_record', risk: 'medium' }] });
      expect(again.status).toBe(201);
      let list = await send(built.app, 'GET', '/v1/tools');
      expect(list.body.tools.filter((c: { key: string }) => c.key.startsWith('swap.'))).toHaveLength(5);
      expect(list.body.tools.find((c: { key: string }) => c.key === 'swap.delete_record')).toMatchObject({ risk: 'medium' });

      const moved = await send(built.app, 'POST', '/v1/providers', { name: 'swap', mcp_url: other.url });
      expect(moved.status).toBe(201);
      expect(moved.body.tools.map((c: { key: string }) => c.key)).toEqual(['swap.lookup']);
      list = await send(built.app, 'GET', '/v1/tools');
      const swapKeys = list.body.tools.map((c: { key: string }) => c.key).filter((k: string) => k.startsWith('swap.'));
      expect(swapKeys).toEqual(['swap.lookup']);
      // The crm provider is untouched.
      expect(list.body.tools.some((c: { key: string }) => c.key === 'crm.get_record')).toBe(true);

      const gone = await send(built.app, 'POST', '/v1/call', { tool: 'swap.get_record', params: { id: 'r1' }, agent_id: 'a1' });
      expect(gone.status).toBe(404);
      const found = await send(built.app, 'POST', '/v1/call', { tool: 'swap.lookup', params: { q: 'x' }, agent_id: 'a1' });
      expect(found.body).toMatchObject({ status: 'executed', result: { q: 'x', found: true } });
      expect(other.runs.get('lookup')).toBe(1);
      expect(crm.toolCalls).toEqual([]);
    });
  });
});
