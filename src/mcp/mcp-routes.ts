import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../errors.ts';
import type { McpGateway } from './mcp-server.ts';

/** GET (a server-initiated stream) and DELETE (ending a session): a stateless server offers neither. */
class MethodNotAllowedError extends AppError {
  constructor(method: string) {
    super(405, 'method_not_allowed', `${method} /mcp is not offered: this MCP server is stateless (no sessions, no server-initiated stream); send JSON-RPC with POST`);
  }
}

/**
 * A `tools/call` may wait minutes for an approval: it is answered as an SSE stream, which
 * carries its progress notifications and keep-alive comments. Everything else is one JSON answer.
 */
function mayWait(body: unknown): boolean {
  const messages = Array.isArray(body) ? body : [body];
  return messages.some((message) => typeof message === 'object' && message !== null && (message as { method?: unknown }).method === 'tools/call');
}

/** The request as the SDK's web-standard transport reads it: headers only (the body is already parsed). */
function webRequest(request: FastifyRequest): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  return new Request(new URL(request.url, 'http://invoke.local'), { method: request.method, headers });
}

/**
 * `/mcp`, Streamable HTTP without sessions: every POST gets a fresh transport and server bound
 * to its key, so replicas share nothing and a client may land on any of them. Authentication
 * (X-API-Key or Bearer), rate limits and the error shape are the API's own hooks; JSON-RPC
 * errors inside a valid request are the SDK's.
 */
export function registerMcpRoutes(app: FastifyInstance, gateway: McpGateway): void {
  app.post('/mcp', { config: { bearer: true }, schema: { hide: true } }, async (request, reply) => {
    const closed = new AbortController();
    const server = gateway.serverFor(request.identity, closed.signal);
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: !mayWait(request.body) });
    reply.raw.once('close', () => {
      closed.abort();
      void server.close();
    });
    await server.connect(transport);
    return reply.send(await transport.handleRequest(webRequest(request), { parsedBody: request.body }));
  });
  for (const method of ['GET', 'DELETE'] as const) {
    app.route({
      method,
      url: '/mcp',
      config: { bearer: true },
      schema: { hide: true },
      handler: async (_request, reply) => {
        void reply.header('allow', 'POST');
        throw new MethodNotAllowedError(method);
      },
    });
  }
}
