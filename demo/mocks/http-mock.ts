// A minimal HTTP server for the demo's mock production tools: routes are plain functions on
// `METHOD /path` patterns (`*` matches one path segment), every request is recorded, and answers
// can be held back (a slow or stalled tool) without keeping the process alive after `close()`.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface MockRequest {
  method: string;
  path: string;
  /** Path segments, `/customers/cust_1` -> ['customers', 'cust_1']. */
  segments: string[];
  query: Record<string, string>;
  body: Record<string, unknown>;
}

export interface MockReply {
  json(status: number, body: unknown): void;
  /** Answer after `ms`, unless the server is reset or closed first (then the socket just drops). */
  later(ms: number, status: number, body: unknown): void;
}

export type MockRoute = (request: MockRequest, reply: MockReply) => void;

export interface HttpMock {
  readonly url: string;
  readonly requests: readonly MockRequest[];
  /** Forgets recorded requests and drops answers still held back. */
  resetRequests(): void;
  close(): Promise<void>;
}

export async function startHttpMock(routes: Record<string, MockRoute>): Promise<HttpMock> {
  const requests: MockRequest[] = [];
  const sockets = new Set<Socket>();
  const held = new Set<{ timer: NodeJS.Timeout; res: ServerResponse }>();

  const dropHeld = () => {
    for (const entry of held) {
      clearTimeout(entry.timer);
      entry.res.destroy();
    }
    held.clear();
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://mock');
      const text = Buffer.concat(chunks).toString('utf8');
      let body: Record<string, unknown> = {};
      if (text.trim() !== '') {
        try {
          const parsed: unknown = JSON.parse(text);
          if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
        } catch {
          return send(res, 400, { error: 'body is not JSON' });
        }
      }
      const request: MockRequest = {
        method: req.method ?? 'GET',
        path: url.pathname,
        segments: url.pathname.split('/').filter(Boolean).map(decodeURIComponent),
        query: Object.fromEntries(url.searchParams),
        body,
      };
      requests.push(request);
      const route = Object.entries(routes).find(([pattern]) => matches(pattern, request))?.[1];
      if (!route) return send(res, 404, { error: `no route for ${request.method} ${request.path}` });
      const reply: MockReply = {
        json: (status, answer) => send(res, status, answer),
        later: (ms, status, answer) => {
          const entry = {
            res,
            timer: setTimeout(() => {
              held.delete(entry);
              send(res, status, answer);
            }, ms),
          };
          held.add(entry);
        },
      };
      try {
        route(request, reply);
      } catch (error) {
        send(res, 500, { error: (error as Error).message });
      }
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });

  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    resetRequests: () => {
      dropHeld();
      requests.length = 0;
    },
    close: async () => {
      dropHeld();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function matches(pattern: string, request: MockRequest): boolean {
  const [method, path] = pattern.split(' ', 2);
  if (method !== request.method || path === undefined) return false;
  const want = path.split('/').filter(Boolean);
  return want.length === request.segments.length && want.every((part, i) => part === '*' || part === request.segments[i]);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
