import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  /** The raw query string, for repeated names. */
  search: string;
  headers: IncomingMessage['headers'];
  body: unknown;
}

export type Route = (request: RecordedRequest, response: ServerResponse) => void | Promise<void>;

/**
 * A real HTTP server on 127.0.0.1 standing in for a third-party tool (a payments API, a CRM):
 * routes are plain functions, and every request is recorded so tests count side effects at the
 * tool, not in Invoke.
 */
export async function startToolServer(routes: Record<string, Route>) {
  const requests: RecordedRequest[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const recorded: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      search: url.search,
      headers: req.headers,
      body: text ? safeJson(text) : undefined,
    };
    requests.push(recorded);
    const route = routes[`${recorded.method} ${recorded.path}`] ?? Object.entries(routes).find(([pattern]) => matches(pattern, recorded))?.[1];
    if (!route) return json(res, 404, { error: 'no such route' });
    await route(recorded, res);
  };
  // node:http ignores a handler's promise: a route that throws answers 500 instead of an unhandled rejection.
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => (res.headersSent ? res.destroy() : json(res, 500, { error: String(error) })));
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    count: (method: string, path: string) => requests.filter((r) => r.method === method && r.path === path).length,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `GET /payments/*` matches any one path segment. */
function matches(pattern: string, request: RecordedRequest): boolean {
  const [method, path] = pattern.split(' ', 2);
  if (method !== request.method || !path) return false;
  const want = path.split('/');
  const got = request.path.split('/');
  return want.length === got.length && want.every((part, i) => part === '*' || part === got[i]);
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
