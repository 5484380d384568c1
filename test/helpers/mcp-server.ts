import { createServer } from 'node:http';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

/**
 * A real MCP server (official SDK, Streamable HTTP) on a node HTTP server on 127.0.0.1. Every
 * request is recorded at HTTP before the test's handler sees it, so tests count what reached the
 * server: each JSON-RPC method, and the tool name of each `tools/call`.
 */

/** The first JSON-RPC fields a test looks at. */
export interface McpMessage {
  method?: string;
  params?: { name?: string };
}

export interface McpRequest {
  req: IncomingMessage;
  res: ServerResponse;
  /** The parsed JSON body, undefined for a bodiless request. */
  body: unknown;
  message: McpMessage | undefined;
  http: HttpServer;
  /** Resolves when `signal` aborts or the server releases its hanging handlers. A closure: tests pass it on. */
  hang: (signal: AbortSignal) => Promise<void>;
}

export interface McpHttpServer {
  /** `http://127.0.0.1:<port>` */
  base: string;
  /** `${base}/mcp` */
  url: string;
  /** Every JSON-RPC method (or HTTP method for bodiless requests) the HTTP server received. */
  methods: string[];
  /** Tool names of the `tools/call` messages the HTTP server received. */
  toolCalls: string[];
  /** Resolves every handler still hanging. A closure: tests pass it on. */
  releaseAll: () => void;
  /** Releases hanging handlers, runs `beforeClose`, then drops every connection and stops listening. */
  close(): Promise<void>;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

export async function startMcpHttpServer(handle: (request: McpRequest) => Promise<void>, options: { beforeClose?: () => Promise<void> } = {}): Promise<McpHttpServer> {
  const methods: string[] = [];
  const toolCalls: string[] = [];
  let release: Array<() => void> = [];
  const hang = (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      release.push(resolve);
      signal.addEventListener('abort', () => resolve());
    });
  const releaseAll = () => {
    const pending = release;
    release = [];
    for (const resolve of pending) resolve();
  };

  const http: HttpServer = createServer((req, res) => {
    void (async () => {
      const body = await readJson(req);
      const message = body as McpMessage | undefined;
      methods.push(message?.method ?? req.method ?? '');
      if (message?.method === 'tools/call') toolCalls.push(message.params?.name ?? '');
      await handle({ req, res, body, message, http, hang });
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  return {
    base,
    url: `${base}/mcp`,
    methods,
    toolCalls,
    releaseAll,
    async close() {
      releaseAll();
      await options.beforeClose?.();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/**
 * Answers one request statelessly: a fresh server from `build` on a fresh transport (no session,
 * JSON responses), both closed with the response. Bodiless requests (GET, DELETE) get 405.
 */
export async function serveStateless(build: () => McpServer | Server, { req, res, body }: Pick<McpRequest, 'req' | 'res' | 'body'>): Promise<void> {
  if (req.method !== 'POST') {
    res.writeHead(405).end();
    return;
  }
  const server = build();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on('close', () => {
    void transport.close();
    void server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, body);
}
