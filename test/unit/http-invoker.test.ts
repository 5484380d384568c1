import { getEventListeners } from 'node:events';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { invokeHttpTool, startDeadline, type Deadline } from '../../src/tools/http-invoker.ts';

interface SeenRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingMessage['headers'];
  body: string;
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void) {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => handler(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { server, port, base: `http://127.0.0.1:${port}` };
}

const close = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

describe('invokeHttpTool', () => {
  let api: Awaited<ReturnType<typeof listen>>;
  let seen: SeenRequest[] = [];

  beforeAll(async () => {
    api = await listen((req, res, body) => {
      const url = new URL(req.url ?? '/', 'http://x');
      seen.push({
        method: req.method ?? '',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        body,
      });
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (url.pathname === '/v1/text') {
        res.end('plain words');
      } else if (url.pathname === '/v1/empty') {
        res.writeHead(204).end();
      } else if (url.pathname === '/v1/missing') {
        json(404, { error: 'no such order' });
      } else if (url.pathname === '/v1/busy') {
        json(429, { error: 'slow down' });
      } else if (url.pathname === '/v1/boom') {
        json(503, { error: 'overloaded' });
      } else if (url.pathname === '/v1/hang') {
        // Never answers.
      } else if (url.pathname === '/v1/half') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"partial":');
      } else if (url.pathname === '/v1/destroy') {
        req.socket.destroy();
      } else if (url.pathname === '/v1/error-then-reset') {
        res.writeHead(500, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"err');
        setTimeout(() => req.socket.destroy(), 20);
      } else {
        json(200, { echoed: true, method: req.method });
      }
    });
  });
  afterAll(() => close(api.server));
  beforeEach(() => {
    seen = [];
  });

  const base = () => `${api.base}/v1/`;

  it('fills path placeholders (URL-encoded) and sends the other params as a JSON body for POST', async () => {
    const outcome = await invokeHttpTool({ method: 'POST', path: '/orders/{order_id}/refunds' }, base(), { order_id: 'A/1 b', amount: 12.5, note: { reason: 'late' } }, 2_000);
    expect(outcome).toEqual({ kind: 'ok', result: { echoed: true, method: 'POST' }, http_status: 200 });
    expect(seen).toHaveLength(1);
    const [request] = seen;
    expect(request?.path).toBe('/v1/orders/A%2F1%20b/refunds');
    expect(JSON.parse(request?.body ?? '')).toEqual({ amount: 12.5, note: { reason: 'late' } });
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers.accept).toBe('application/json');
    expect(request?.query).toEqual({});
  });

  it.each(['PUT', 'PATCH'] as const)('sends a JSON body for %s', async (method) => {
    await invokeHttpTool({ method, path: '/items/{id}' }, base(), { id: 7, name: 'x' }, 2_000);
    expect(seen[0]?.method).toBe(method);
    expect(seen[0]?.path).toBe('/v1/items/7');
    expect(JSON.parse(seen[0]?.body ?? '')).toEqual({ name: 'x' });
  });

  it('puts the other params in the query string for GET and DELETE, JSON-encoding objects', async () => {
    await invokeHttpTool(
      { method: 'GET', path: '/orders/{id}' },
      base(),
      { id: 42, expand: true, filter: { status: 'open' }, tags: ['a', 'b'], q: 'x y', skipped: undefined },
      2_000,
    );
    await invokeHttpTool({ method: 'DELETE', path: '/orders/{id}' }, base(), { id: 42, reason: 'dup' }, 2_000);
    expect(seen.map((r) => [r.method, r.path, r.query, r.body])).toEqual([
      ['GET', '/v1/orders/42', { expand: 'true', filter: '{"status":"open"}', tags: '["a","b"]', q: 'x y' }, ''],
      ['DELETE', '/v1/orders/42', { reason: 'dup' }, ''],
    ]);
    // No body, so no content-type (some servers reject an empty JSON body).
    expect(seen[0]?.headers['content-type']).toBeUndefined();
    expect(seen[0]?.headers.accept).toBe('application/json');
  });

  describe('with a placement (an OpenAPI operation)', () => {
    const placement = {
      params: {
        pet_id: { in: 'path', name: 'petId' },
        limit: { in: 'query', name: 'limit' },
        tags: { in: 'query', name: 'tag' },
        filter: { in: 'query', name: 'filter', style: 'deepObject' },
        trace: { in: 'header', name: 'X-Trace-Id' },
      },
      body: { property: 'body', encoding: 'json' },
    } as const;

    it('sends each param where the operation wants it, and only the body property as the body', async () => {
      const outcome = await invokeHttpTool(
        { method: 'POST', path: '/pets/{petId}/visits', placement },
        base(),
        { pet_id: 'a b/c', limit: 5, tags: ['x', 'y'], filter: { kind: 'cat' }, trace: 't-1', body: { when: 'today' }, stray: 'never sent' },
        2_000,
      );
      expect(outcome.kind).toBe('ok');
      const [request] = seen;
      expect(request?.path).toBe('/v1/pets/a%20b%2Fc/visits');
      expect(request?.query).toEqual({ limit: '5', tag: 'y', 'filter[kind]': 'cat' });
      expect(request?.headers['x-trace-id']).toBe('t-1');
      expect(request?.headers['content-type']).toBe('application/json');
      expect(JSON.parse(request?.body ?? '')).toEqual({ when: 'today' });
      expect(JSON.stringify(request)).not.toContain('never sent');
    });

    it('repeats list query params and sends no body when the body property is absent', async () => {
      await invokeHttpTool({ method: 'GET', path: '/pets', placement }, base(), { tags: ['x', 'y'] }, 2_000);
      expect(seen[0]?.body).toBe('');
      expect(seen[0]?.headers['content-type']).toBeUndefined();
    });

    it('encodes a form body, and refuses a header value that would break the line', async () => {
      const form = { params: {}, body: { property: 'body', encoding: 'form' } } as const;
      await invokeHttpTool({ method: 'POST', path: '/login', placement: form }, base(), { body: { user: 'a b', roles: ['x', 'y'] } }, 2_000);
      expect(seen[0]?.headers['content-type']).toBe('application/x-www-form-urlencoded');
      expect(seen[0]?.body).toBe('user=a+b&roles=x&roles=y');
      const outcome = await invokeHttpTool({ method: 'GET', path: '/pets', placement }, base(), { trace: 'a\r\nX-Evil: 1' }, 2_000);
      expect(outcome).toMatchObject({ kind: 'failed', retryable: false, error: expect.stringMatching(/header parameter X-Trace-Id/) });
      expect(seen).toHaveLength(1);
    });

    it('sends a multipart body with its boundary', async () => {
      const multipart = { params: {}, body: { property: 'body', encoding: 'multipart' } } as const;
      await invokeHttpTool({ method: 'POST', path: '/upload', placement: multipart }, base(), { body: { name: 'photo' } }, 2_000);
      expect(seen[0]?.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
      expect(seen[0]?.body).toContain('name="name"');
      expect(seen[0]?.body).toContain('photo');
    });
  });

  it('keeps a query already in the path', async () => {
    await invokeHttpTool({ method: 'GET', path: '/search?kind=order' }, base(), { q: 'z' }, 2_000);
    expect(seen[0]?.query).toEqual({ kind: 'order', q: 'z' });
  });

  it('fails non-retryably without sending when a path parameter is missing', async () => {
    const outcome = await invokeHttpTool({ method: 'POST', path: '/orders/{order_id}' }, base(), { amount: 1 }, 2_000);
    expect(outcome).toEqual({ kind: 'failed', retryable: false, error: 'missing path parameter order_id' });
    expect(seen).toHaveLength(0);
  });

  it('returns non-JSON text as is and an empty body as null', async () => {
    expect(await invokeHttpTool({ method: 'GET', path: '/text' }, base(), {}, 2_000)).toEqual({
      kind: 'ok',
      result: 'plain words',
      http_status: 200,
    });
    expect(await invokeHttpTool({ method: 'POST', path: '/empty' }, base(), {}, 2_000)).toEqual({
      kind: 'ok',
      result: null,
      http_status: 204,
    });
  });

  it('classifies 4xx as non-retryable failures with the parsed body', async () => {
    const outcome = await invokeHttpTool({ method: 'GET', path: '/missing' }, base(), {}, 2_000);
    expect(outcome).toMatchObject({ kind: 'failed', retryable: false, http_status: 404, body: { error: 'no such order' } });
    expect(outcome.kind === 'failed' && outcome.error).toContain('HTTP 404');
  });

  it('classifies 429 as retryable: the server declined to process the request', async () => {
    const outcome = await invokeHttpTool({ method: 'POST', path: '/busy' }, base(), {}, 2_000);
    expect(outcome).toMatchObject({ kind: 'failed', retryable: true, http_status: 429 });
  });

  it('classifies 5xx as retryable failures', async () => {
    const outcome = await invokeHttpTool({ method: 'POST', path: '/boom' }, base(), {}, 2_000);
    expect(outcome).toMatchObject({ kind: 'failed', retryable: true, http_status: 503, body: { error: 'overloaded' } });
    expect(seen).toHaveLength(1);
  });

  it('keeps the status verdict when the error body is cut off', async () => {
    const outcome = await invokeHttpTool({ method: 'POST', path: '/error-then-reset' }, base(), {}, 2_000);
    expect(outcome).toMatchObject({ kind: 'failed', retryable: true, http_status: 500 });
  });

  it('classifies connection refused as a retryable failure', async () => {
    const closed = await listen(() => undefined);
    await close(closed.server);
    const outcome = await invokeHttpTool({ method: 'POST', path: '/orders' }, `${closed.base}/v1`, {}, 2_000);
    expect(outcome).toMatchObject({ kind: 'failed', retryable: true });
    expect(outcome.kind === 'failed' && outcome.error).toContain('ECONNREFUSED');
  });

  it('classifies a timeout while still connecting as a retryable failure, answered on time', async () => {
    // A TCP server that accepts but never completes the TLS handshake: the HTTP request
    // never reaches the wire, and undici's own connect timeout (10 s) is far away.
    const sockets: Socket[] = [];
    const tcp = createTcpServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    const port = (tcp.address() as AddressInfo).port;
    try {
      const started = Date.now();
      const outcome = await invokeHttpTool({ method: 'POST', path: '/orders' }, `https://127.0.0.1:${port}`, {}, 300);
      expect(outcome).toMatchObject({ kind: 'failed', retryable: true });
      expect(outcome.kind === 'failed' && outcome.error).toContain('before the request was sent');
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(sockets).toHaveLength(1);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => tcp.close(resolve));
    }
  });

  it('classifies a request the server received but never answered as unknown, sent exactly once', async () => {
    const started = Date.now();
    const outcome = await invokeHttpTool({ method: 'POST', path: '/hang' }, base(), { amount: 5 }, 300);
    expect(outcome.kind).toBe('unknown');
    expect(Date.now() - started).toBeLessThan(2_000);
    // Give a hidden retry time to show up.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(seen.filter((r) => r.path === '/v1/hang')).toHaveLength(1);
  });

  it('classifies a body that stops mid-way as unknown', async () => {
    const outcome = await invokeHttpTool({ method: 'GET', path: '/half' }, base(), {}, 300);
    expect(outcome.kind).toBe('unknown');
    expect(seen).toHaveLength(1);
  });

  it('classifies a socket destroyed after the request was read as unknown, sent exactly once', async () => {
    const outcome = await invokeHttpTool({ method: 'POST', path: '/destroy' }, base(), { amount: 5 }, 2_000);
    expect(outcome.kind).toBe('unknown');
    expect(outcome.kind === 'unknown' && outcome.error).toMatch(/UND_ERR_SOCKET|ECONNRESET|EPIPE/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seen.filter((r) => r.path === '/v1/destroy')).toHaveLength(1);
  });

  it('classifies a caller abort after sending as unknown, and before sending as a retryable failure', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const after = await invokeHttpTool({ method: 'POST', path: '/hang' }, base(), {}, 5_000, controller.signal);
    expect(after.kind).toBe('unknown');

    const before = await invokeHttpTool({ method: 'POST', path: '/orders' }, base(), {}, 5_000, AbortSignal.abort());
    expect(before).toMatchObject({ kind: 'failed', retryable: true });
    expect(seen.filter((r) => r.path === '/v1/orders')).toHaveLength(0);
  });
});

describe('startDeadline', () => {
  const later = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));
  /** Runs `check` on a deadline of `ms`, disposed after whatever happens. */
  const withDeadline = async (ms: number, check: (deadline: Deadline) => Promise<void>) => {
    const deadline = startDeadline(ms);
    try {
      await check(deadline);
    } finally {
      deadline.dispose();
    }
  };

  it("settles as the work does and drops its listener on the deadline's signal then", async () => {
    await withDeadline(5_000, async (deadline) => {
      const raced = deadline.unlessUnwrittenAtDeadline(later(20, 'answered'), () => false);
      expect(getEventListeners(deadline.signal, 'abort')).toHaveLength(1);
      await expect(raced).resolves.toBe('answered');
      expect(getEventListeners(deadline.signal, 'abort')).toHaveLength(0);

      const failed = deadline.unlessUnwrittenAtDeadline(Promise.reject(new Error('refused')), () => false);
      await expect(failed).rejects.toThrow('refused');
      expect(getEventListeners(deadline.signal, 'abort')).toHaveLength(0);
    });
  });

  it('rejects at the deadline while nothing was written, without waiting for the work', async () => {
    await withDeadline(50, async (deadline) => {
      const started = Date.now();
      await expect(deadline.unlessUnwrittenAtDeadline(later(2_000, 'too late'), () => false)).rejects.toThrow('timed out after 50 ms');
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(deadline.timedOut).toBe(true);
      expect(getEventListeners(deadline.signal, 'abort')).toHaveLength(0);
    });
  });

  it('waits for the work past the deadline once the request was written', async () => {
    await withDeadline(20, async (deadline) => {
      await expect(deadline.unlessUnwrittenAtDeadline(later(120, 'answered late'), () => true)).resolves.toBe('answered late');
      expect(deadline.timedOut).toBe(true);
    });
  });
});
