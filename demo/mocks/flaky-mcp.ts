// Mock flaky MCP server (official SDK, Streamable HTTP, stateless): one read-only tool,
// `check_stock`, that stalls on its first `failFirstN` calls after a reset (the caller times out)
// and answers normally after that. Calls are counted inside the tool handler.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

export interface FlakyMcpMock {
  /** The MCP endpoint (Streamable HTTP). */
  readonly url: string;
  readonly failFirstN: number;
  /** `tools/call` runs of check_stock since the last reset. */
  readonly calls: number;
  /** Of those, the ones answered normally (the others stalled). */
  readonly answered: number;
  reset(): void;
  close(): Promise<void>;
}

const STOCK: Record<string, number> = { 'SKU-RED-42': 17, 'SKU-BLUE-7': 0 };

export async function startFlakyMcpMock(options: { failFirstN: number; stallMs?: number }): Promise<FlakyMcpMock> {
  const stallMs = options.stallMs ?? 3_000;
  const state = { calls: 0, answered: 0 };
  const stalled = new Set<() => void>();
  const sockets = new Set<Socket>();

  const stall = (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stalled.delete(done);
        resolve();
      };
      const timer = setTimeout(done, stallMs);
      stalled.add(done);
      signal.addEventListener('abort', done, { once: true });
    });

  const buildServer = () => {
    const server = new McpServer({ name: 'inventory', version: '1.0.0' });
    server.registerTool(
      'check_stock',
      {
        title: 'Check stock',
        description: 'Units in stock for a SKU (read-only).',
        inputSchema: { sku: z.string() },
        annotations: { readOnlyHint: true, idempotentHint: true },
      },
      async ({ sku }, extra) => {
        state.calls += 1;
        if (state.calls <= options.failFirstN) {
          await stall(extra.signal);
          return { content: [{ type: 'text', text: 'upstream warehouse API timed out' }], isError: true };
        }
        state.answered += 1;
        const answer = { sku, in_stock: STOCK[sku] ?? 0 };
        return { content: [{ type: 'text', text: JSON.stringify(answer) }], structuredContent: answer };
      },
    );
    return server;
  };

  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      if (req.method !== 'POST') {
        res.writeHead(405).end();
        return;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const text = Buffer.concat(chunks).toString('utf8');
      const body: unknown = text === '' ? undefined : JSON.parse(text);
      const server = buildServer();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      res.on('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
  http.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(0, '127.0.0.1', () => resolve());
  });

  const releaseStalled = () => {
    for (const done of [...stalled]) done();
  };
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    failFirstN: options.failFirstN,
    get calls() {
      return state.calls;
    },
    get answered() {
      return state.answered;
    },
    reset: () => {
      releaseStalled();
      state.calls = 0;
      state.answered = 0;
    },
    close: async () => {
      releaseStalled();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
