import { randomUUID } from 'node:crypto';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { invokeMcpTool, listMcpTools, mcpAnnotationsToCard } from '../../src/tools/mcp-invoker.ts';
import { serveStateless, startMcpHttpServer } from '../helpers/mcp-server.ts';

type Mode = 'stateless' | 'session';

interface TestMcpServer {
  url: string;
  /** Raw low-level server answering tools/call with JSON-RPC errors. */
  rawUrl: string;
  /** Answers every request with HTTP 500. */
  brokenUrl: string;
  /** Names of the tools/call requests the HTTP server received. */
  calls: string[];
  /** Requests seen per JSON-RPC method (or HTTP method for bodiless requests). */
  methods: string[];
  sessionsClosed: number;
  close(): Promise<void>;
}

function buildToolServer(hang: (signal: AbortSignal) => Promise<void>): McpServer {
  const server = new McpServer({ name: 'test-tools', version: '1.0.0' });
  server.registerTool(
    'get_order',
    {
      title: 'Get order',
      description: 'Reads one order.',
      inputSchema: { id: z.string() },
      outputSchema: { id: z.string(), status: z.string() },
      annotations: { title: 'Get order', readOnlyHint: true, idempotentHint: true },
    },
    async ({ id }) => ({
      content: [{ type: 'text', text: JSON.stringify({ id, status: 'open' }) }],
      structuredContent: { id, status: 'open' },
    }),
  );
  server.registerTool(
    'refund',
    {
      description: 'Refunds an order.',
      inputSchema: { order_id: z.string(), amount: z.number() },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false },
    },
    async ({ order_id, amount }) => ({
      content: [{ type: 'text', text: JSON.stringify({ refunded: amount, order_id }) }],
    }),
  );
  server.registerTool('greet', { description: 'Says hello in two lines.' }, async () => ({
    content: [
      { type: 'text', text: 'hello' },
      { type: 'text', text: 'world' },
    ],
  }));
  server.registerTool('note', { description: 'Plain text answer.' }, async () => ({
    content: [{ type: 'text', text: 'not json' }],
  }));
  server.registerTool('fail', { description: 'Always reports an error.' }, async () => ({
    content: [{ type: 'text', text: 'card declined' }],
    isError: true,
  }));
  server.registerTool('hang', { description: 'Never answers in time.' }, async (extra) => {
    await hang(extra.signal);
    return { content: [{ type: 'text', text: 'late' }] };
  });
  return server;
}

function buildRawServer(): Server {
  const server = new Server({ name: 'raw', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: [{ name: 'strict', inputSchema: { type: 'object' } }],
  }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    throw new McpError(ErrorCode.InvalidParams, `unknown tool ${request.params.name}`);
  });
  return server;
}

async function startMcpServer(mode: Mode, opts: { stopListeningAfterInitialized?: boolean } = {}): Promise<TestMcpServer> {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const state = { sessionsClosed: 0 };

  const mcp = await startMcpHttpServer(
    async (request) => {
      const { req, res, body, message, http, hang } = request;
      if (message?.method === 'notifications/initialized' && opts.stopListeningAfterInitialized) {
        // The session is set up; the next request needs a new connection, which is refused.
        res.setHeader('connection', 'close');
        http.close();
      }
      if (message?.method === 'tools/call' && message.params?.name === 'drop') {
        req.socket.destroy();
        return;
      }
      if (req.url === '/broken') {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('down');
        return;
      }
      if (req.url === '/raw') {
        await serveStateless(buildRawServer, request);
        return;
      }
      if (mode === 'stateless') {
        await serveStateless(() => buildToolServer(hang), request);
        return;
      }
      const sessionId = req.headers['mcp-session-id'];
      let transport = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;
      if (transport === undefined) {
        transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => {
            if (transport) sessions.set(id, transport);
          },
          onsessionclosed: (id) => {
            sessions.delete(id);
            state.sessionsClosed++;
          },
        });
        await buildToolServer(hang).connect(transport);
      }
      await transport.handleRequest(req, res, body);
    },
    {
      beforeClose: async () => {
        for (const transport of sessions.values()) await transport.close();
      },
    },
  );
  return {
    url: mcp.url,
    rawUrl: `${mcp.base}/raw`,
    brokenUrl: `${mcp.base}/broken`,
    calls: mcp.toolCalls,
    methods: mcp.methods,
    get sessionsClosed() {
      return state.sessionsClosed;
    },
    close: () => mcp.close(),
  };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('mcpAnnotationsToCard', () => {
  it('maps read-only tools to no side effects, low risk', () => {
    expect(mcpAnnotationsToCard({ readOnlyHint: true })).toEqual({ side_effects: false, risk: 'low', idempotent: true });
  });
  it('maps destructive tools to high risk', () => {
    expect(mcpAnnotationsToCard({ readOnlyHint: false, destructiveHint: true, idempotentHint: false })).toEqual({
      side_effects: true,
      risk: 'high',
      idempotent: false,
    });
  });
  it('maps idempotent non-destructive writers to medium risk, idempotent', () => {
    expect(mcpAnnotationsToCard({ destructiveHint: false, idempotentHint: true })).toEqual({
      side_effects: true,
      risk: 'medium',
      idempotent: true,
    });
  });
  it('treats an unannotated tool as a side-effecting, non-idempotent, medium-risk tool', () => {
    expect(mcpAnnotationsToCard(undefined)).toEqual({ side_effects: true, risk: 'medium', idempotent: false });
  });
});

describe.each(['stateless', 'session'] as const)('MCP invoker against a real SDK server (%s)', (mode) => {
  let server: TestMcpServer;

  beforeAll(async () => {
    server = await startMcpServer(mode);
  });
  afterAll(() => server.close());
  beforeEach(() => {
    server.calls.length = 0;
    server.methods.length = 0;
  });

  it('lists tools with their annotations', async () => {
    const tools = await listMcpTools(server.url, 2_000);
    expect(tools.map((t) => t.name)).toEqual(['get_order', 'refund', 'greet', 'note', 'fail', 'hang']);
    const getOrder = tools.find((t) => t.name === 'get_order');
    expect(getOrder).toMatchObject({
      description: 'Reads one order.',
      annotations: { title: 'Get order', readOnlyHint: true, idempotentHint: true },
      inputSchema: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
    });
    expect(tools.find((t) => t.name === 'refund')?.annotations).toEqual({
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: false,
    });
    expect(tools.find((t) => t.name === 'greet')?.annotations).toBeUndefined();
    expect(mcpAnnotationsToCard(getOrder?.annotations)).toEqual({ side_effects: false, risk: 'low', idempotent: true });
  });

  it('returns structuredContent when present', async () => {
    const outcome = await invokeMcpTool(server.url, 'get_order', { id: 'o-1' }, 2_000);
    expect(outcome).toEqual({ kind: 'ok', result: { id: 'o-1', status: 'open' } });
    expect(server.calls).toEqual(['get_order']);
  });

  it('parses a single JSON text item, keeps plain text, joins several texts', async () => {
    expect(await invokeMcpTool(server.url, 'refund', { order_id: 'o-1', amount: 5 }, 2_000)).toEqual({
      kind: 'ok',
      result: { refunded: 5, order_id: 'o-1' },
    });
    expect(await invokeMcpTool(server.url, 'note', {}, 2_000)).toEqual({ kind: 'ok', result: 'not json' });
    expect(await invokeMcpTool(server.url, 'greet', {}, 2_000)).toEqual({ kind: 'ok', result: 'hello\nworld' });
  });

  it('classifies an isError result as a non-retryable failure with the text', async () => {
    const outcome = await invokeMcpTool(server.url, 'fail', {}, 2_000);
    expect(outcome).toEqual({ kind: 'failed', retryable: false, error: 'card declined' });
  });

  it('classifies an unknown tool as a non-retryable failure', async () => {
    const outcome = await invokeMcpTool(server.url, 'no_such_tool', {}, 2_000);
    expect(outcome).toMatchObject({ kind: 'failed', retryable: false });
    expect(outcome.kind === 'failed' && outcome.error).toContain('no_such_tool');
    expect(server.calls).toEqual(['no_such_tool']);
  });

  it('classifies invalid params as a non-retryable failure', async () => {
    const outcome = await invokeMcpTool(server.url, 'refund', { order_id: 'o-1', amount: 'lots' }, 2_000);
    expect(outcome).toMatchObject({ kind: 'failed', retryable: false });
  });

  it('classifies a tools/call that outlives the timeout as unknown, sent exactly once', async () => {
    const started = Date.now();
    const outcome = await invokeMcpTool(server.url, 'hang', {}, 500);
    expect(outcome.kind).toBe('unknown');
    expect(Date.now() - started).toBeLessThan(3_000);
    await pause(400);
    expect(server.calls).toEqual(['hang']);
    expect(server.methods.filter((m) => m === 'tools/call')).toHaveLength(1);
  });

  it('classifies a connection dropped after tools/call was sent as unknown, sent exactly once', async () => {
    const outcome = await invokeMcpTool(server.url, 'drop', {}, 2_000);
    expect(outcome.kind).toBe('unknown');
    await pause(200);
    expect(server.calls).toEqual(['drop']);
  });

  it('classifies a caller abort after tools/call was sent as unknown', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const outcome = await invokeMcpTool(server.url, 'hang', {}, 5_000, controller.signal);
    expect(outcome.kind).toBe('unknown');
    expect(server.calls).toEqual(['hang']);
  });

  it('sends nothing when the caller already aborted', async () => {
    const outcome = await invokeMcpTool(server.url, 'refund', { order_id: 'o', amount: 1 }, 2_000, AbortSignal.abort());
    expect(outcome).toMatchObject({ kind: 'failed', retryable: true });
    expect(server.methods).toEqual([]);
  });

  if (mode === 'session') {
    it('terminates its session after an answer', async () => {
      const before = server.sessionsClosed;
      await invokeMcpTool(server.url, 'get_order', { id: 'o-2' }, 2_000);
      expect(server.sessionsClosed).toBe(before + 1);
    });
  }
});

describe('MCP invoker failures outside tools', () => {
  let server: TestMcpServer;

  beforeAll(async () => {
    server = await startMcpServer('stateless');
  });
  afterAll(() => server.close());
  beforeEach(() => {
    server.calls.length = 0;
  });

  it('classifies a JSON-RPC error answer as a non-retryable failure', async () => {
    const outcome = await invokeMcpTool(server.rawUrl, 'strict', {}, 2_000);
    expect(outcome).toEqual({
      kind: 'failed',
      retryable: false,
      error: `MCP error ${ErrorCode.InvalidParams}: unknown tool strict`,
    });
    expect(server.calls).toEqual(['strict']);
  });

  it('classifies a failing initialize as a retryable failure, without sending tools/call', async () => {
    const outcome = await invokeMcpTool(server.brokenUrl, 'refund', {}, 2_000);
    expect(outcome).toMatchObject({ kind: 'failed', retryable: true });
    expect(outcome.kind === 'failed' && outcome.error).toContain('tools/call not sent');
    expect(outcome.kind === 'failed' && outcome.error).toContain('HTTP 500');
    expect(server.calls).toEqual([]);
  });

  it('classifies a server that is not listening as a retryable failure', async () => {
    const closed = await startMcpServer('stateless');
    await closed.close();
    const outcome = await invokeMcpTool(closed.url, 'refund', {}, 2_000);
    expect(outcome).toMatchObject({ kind: 'failed', retryable: true });
    expect(outcome.kind === 'failed' && outcome.error).toContain('ECONNREFUSED');
  });

  it('classifies a tools/call refused after initialize as a retryable failure', async () => {
    const vanishing = await startMcpServer('stateless', { stopListeningAfterInitialized: true });
    try {
      const outcome = await invokeMcpTool(vanishing.url, 'refund', { order_id: 'o', amount: 1 }, 2_000);
      expect(outcome).toMatchObject({ kind: 'failed', retryable: true });
      expect(outcome.kind === 'failed' && outcome.error).toMatch(/^tools\/call not sent: ECONNREFUSED/);
      expect(vanishing.methods).toEqual(['initialize', 'notifications/initialized']);
    } finally {
      await vanishing.close();
    }
  });

  it('throws a readable error when tools cannot be listed', async () => {
    await expect(listMcpTools(server.brokenUrl, 2_000)).rejects.toThrow(/HTTP 500/);
  });
});
