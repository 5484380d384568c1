import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFetchUrlTool } from '../../src/tools/fetch-url.ts';
import type { FetchUrlTool } from '../../src/tools/fetch-url.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, base: string) => void;

async function listen(handler: Handler): Promise<{ server: Server; port: number; base: string }> {
  let base = '';
  const server = createServer((req, res) => handler(req, res, base));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
  return { server, port, base };
}

const close = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

const redirect = (res: ServerResponse, location: string, status = 302) => {
  res.writeHead(status, { location });
  res.end();
};

describe('fetch.url', () => {
  let main: Awaited<ReturnType<typeof listen>>;
  let other: Awaited<ReturnType<typeof listen>>;
  let refusedPort: number;
  const tools: FetchUrlTool[] = [];
  const tool = (overrides: Partial<Parameters<typeof createFetchUrlTool>[0]> = {}) => {
    const t = createFetchUrlTool({
      maxBytes: 1_000,
      timeoutMs: 2_000,
      maxRedirects: 3,
      allowHosts: [`127.0.0.1:${main.port}`, `127.0.0.1:${refusedPort}`],
      ...overrides,
    });
    tools.push(t);
    return t;
  };

  beforeAll(async () => {
    other = await listen((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ server: 'other', authorization: req.headers.authorization ?? null }));
    });
    main = await listen((req, res, base) => {
      const url = new URL(req.url ?? '/', base);
      const path = url.pathname;
      if (path === '/json') {
        res.setHeader('content-type', 'application/json; charset=utf-8');
        res.setHeader('x-custom', 'yes');
        res.end(JSON.stringify({ hello: 'world', n: 1 }));
      } else if (path === '/problem-json') {
        res.setHeader('content-type', 'application/problem+json');
        res.end('{"title":"x"}');
      } else if (path === '/text') {
        res.setHeader('content-type', 'text/plain');
        res.end('just text');
      } else if (path === '/echo') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(req.headers));
      } else if (path.startsWith('/chain/')) {
        const n = Number(path.slice('/chain/'.length));
        if (n > 0) redirect(res, `/chain/${n - 1}`);
        else {
          res.setHeader('content-type', 'application/json');
          res.end('{"arrived":true}');
        }
      } else if (path === '/to-other') {
        redirect(res, `http://127.0.0.1:${other.port}/`);
      } else if (path === '/to-localhost') {
        redirect(res, `http://localhost:${main.port}/json`);
      } else if (path === '/to-metadata') {
        redirect(res, 'http://169.254.169.254/latest/meta-data/', 301);
      } else if (path === '/to-file') {
        redirect(res, 'file:///etc/passwd');
      } else if (path === '/big') {
        // Chunked, no content-length: the cap must hold while streaming.
        res.write('x'.repeat(600));
        res.write('x'.repeat(600));
        res.end();
      } else if (path === '/big-declared') {
        res.setHeader('content-length', '5000');
        res.end('y'.repeat(5000));
      } else if (path === '/exact') {
        res.end('z'.repeat(1_000));
      } else if (path === '/slow') {
        setTimeout(() => res.end('late'), 3_000).unref();
      } else if (path === '/slow-body') {
        res.write('start');
        setTimeout(() => res.end('end'), 3_000).unref();
      } else if (path === '/404') {
        res.statusCode = 404;
        res.setHeader('content-type', 'application/json');
        res.end('{"error":"nope"}');
      } else if (path === '/503') {
        res.statusCode = 503;
        res.end('down');
      } else if (path === '/429') {
        res.statusCode = 429;
        res.end('slow down');
      } else {
        res.statusCode = 500;
        res.end('unexpected path');
      }
    });
    const closed = await listen(() => undefined);
    refusedPort = closed.port;
    await close(closed.server);
  });

  afterAll(async () => {
    await Promise.all(tools.map((t) => t.close()));
    await close(main.server);
    await close(other.server);
  });

  it('has the built-in capability card', () => {
    const { card } = tool();
    expect(card).toMatchObject({
      key: 'fetch.url',
      provider: 'fetch',
      name: 'url',
      transport: 'builtin',
      risk: 'low',
      side_effects: false,
      idempotent: true,
      timeout_ms: 2_000,
    });
    expect(card.input_schema).toMatchObject({ type: 'object', required: ['url'] });
  });

  it('GETs an allow-listed URL and parses a JSON body', async () => {
    const out = await tool().invoke({ url: `${main.base}/json` });
    expect(out).toMatchObject({
      kind: 'ok',
      http_status: 200,
      result: {
        status: 200,
        body: { hello: 'world', n: 1 },
        headers: { 'content-type': 'application/json; charset=utf-8', 'x-custom': 'yes' },
      },
    });
  });

  it('parses +json media types and returns other bodies as text', async () => {
    const t = tool();
    expect(await t.invoke({ url: `${main.base}/problem-json` })).toMatchObject({ kind: 'ok', result: { body: { title: 'x' } } });
    expect(await t.invoke({ url: `${main.base}/text` })).toMatchObject({ kind: 'ok', result: { body: 'just text' } });
  });

  it('sends the caller headers', async () => {
    const out = await tool().invoke({ url: `${main.base}/echo`, headers: { 'x-trace': 'abc', 'accept-encoding': 'gzip' } });
    expect(out).toMatchObject({ kind: 'ok', result: { body: { 'x-trace': 'abc', 'accept-encoding': 'identity' } } });
  });

  it('rejects malformed parameters without a request', async () => {
    const t = tool();
    expect(await t.invoke({})).toMatchObject({ kind: 'failed', retryable: false });
    expect(await t.invoke({ url: 'not a url' })).toMatchObject({ kind: 'failed', retryable: false, error: expect.stringMatching(/invalid URL/) });
    expect(await t.invoke({ url: `${main.base}/json`, headers: { a: 1 } })).toMatchObject({ kind: 'failed', retryable: false });
  });

  describe('SSRF guard', () => {
    it.each([
      ['http://127.0.0.1:9/', 'loopback'],
      ['http://127.1/', 'loopback'],
      ['http://2130706433/', 'loopback'],
      ['http://0x7f.1/', 'loopback'],
      ['http://10.0.0.1/', 'private'],
      ['http://172.16.0.1/', 'private'],
      ['http://192.168.1.1/', 'private'],
      ['http://169.254.169.254/latest/meta-data/', 'metadata'],
      ['http://0.0.0.0/', 'unspecified'],
      ['http://[::1]/', 'loopback'],
      ['http://[::ffff:127.0.0.1]/', 'loopback'],
      ['http://[fe80::1]/', 'linkLocal'],
      ['http://[fc00::1]/', 'uniqueLocal'],
      ['http://[::]/', 'unspecified'],
      ['file:///etc/passwd', 'scheme file:'],
      ['ftp://example.com/', 'scheme ftp:'],
      ['http://user:secret@example.com/', 'credentials'],
    ])('blocks %s', async (url, reason) => {
      const out = await tool().invoke({ url });
      expect(out).toMatchObject({ kind: 'failed', retryable: false });
      expect(out.kind === 'failed' && out.error).toMatch(/^blocked by SSRF guard: /);
      expect(out.kind === 'failed' && out.error).toContain(reason);
    });

    it('blocks a host name that resolves to loopback at connect time', async () => {
      const out = await tool().invoke({ url: `http://localhost:${main.port}/json` });
      expect(out).toMatchObject({ kind: 'failed', retryable: false });
      expect(out.kind === 'failed' && out.error).toMatch(/^blocked by SSRF guard: localhost resolves to .*loopback/);
    });

    it('refuses a redirect to a loopback port that is not allow-listed', async () => {
      const out = await tool().invoke({ url: `${main.base}/to-other` });
      expect(out).toMatchObject({ kind: 'failed', retryable: false });
      expect(out.kind === 'failed' && out.error).toMatch(/^blocked by SSRF guard: .*127\.0\.0\.1.*loopback/);
    });

    it.each([
      ['/to-localhost', 'localhost resolves to'],
      ['/to-metadata', 'metadata'],
      ['/to-file', 'scheme file:'],
    ])('refuses the redirect %s', async (path, reason) => {
      const out = await tool().invoke({ url: `${main.base}${path}` });
      expect(out).toMatchObject({ kind: 'failed', retryable: false });
      expect(out.kind === 'failed' && out.error).toMatch(/^blocked by SSRF guard: /);
      expect(out.kind === 'failed' && out.error).toContain(reason);
    });
  });

  describe('redirects', () => {
    it('follows up to maxRedirects hops', async () => {
      const out = await tool({ maxRedirects: 3 }).invoke({ url: `${main.base}/chain/3` });
      expect(out).toMatchObject({ kind: 'ok', result: { status: 200, body: { arrived: true } } });
    });

    it('fails a chain longer than maxRedirects', async () => {
      const out = await tool({ maxRedirects: 3 }).invoke({ url: `${main.base}/chain/4` });
      expect(out).toMatchObject({ kind: 'failed', retryable: false, error: 'too many redirects (more than 3)' });
      const none = await tool({ maxRedirects: 0 }).invoke({ url: `${main.base}/chain/1` });
      expect(none).toMatchObject({ kind: 'failed', retryable: false });
    });

    it('drops credentials on a cross-origin redirect', async () => {
      const t = tool({ allowHosts: [`127.0.0.1:${main.port}`, `127.0.0.1:${other.port}`] });
      const out = await t.invoke({ url: `${main.base}/to-other`, headers: { authorization: 'Bearer s3cret' } });
      expect(out).toMatchObject({ kind: 'ok', result: { body: { server: 'other', authorization: null } } });
    });
  });

  describe('limits', () => {
    it('fails a streamed body larger than maxBytes', async () => {
      const out = await tool({ maxBytes: 1_000 }).invoke({ url: `${main.base}/big` });
      expect(out).toEqual({ kind: 'failed', retryable: false, error: 'response larger than 1000 bytes' });
    });

    it('fails a declared content-length larger than maxBytes', async () => {
      const out = await tool({ maxBytes: 1_000 }).invoke({ url: `${main.base}/big-declared` });
      expect(out).toEqual({ kind: 'failed', retryable: false, error: 'response larger than 1000 bytes' });
    });

    it('accepts a body of exactly maxBytes', async () => {
      const out = await tool({ maxBytes: 1_000 }).invoke({ url: `${main.base}/exact` });
      expect(out).toMatchObject({ kind: 'ok', result: { body: 'z'.repeat(1_000) } });
    });

    it('times out a slow server as a retryable failure', async () => {
      const started = Date.now();
      const out = await tool({ timeoutMs: 300 }).invoke({ url: `${main.base}/slow` });
      expect(out).toEqual({ kind: 'failed', retryable: true, error: 'timed out after 300 ms' });
      expect(Date.now() - started).toBeLessThan(2_000);
    });

    it('times out a body that stalls mid-stream', async () => {
      const out = await tool({ timeoutMs: 300 }).invoke({ url: `${main.base}/slow-body` });
      expect(out).toEqual({ kind: 'failed', retryable: true, error: 'timed out after 300 ms' });
    });

    it('stops when the caller aborts', async () => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      const out = await tool().invoke({ url: `${main.base}/slow` }, controller.signal);
      expect(out).toMatchObject({ kind: 'failed', retryable: true, error: 'aborted by caller' });
    });
  });

  describe('failures', () => {
    it('reports a 404 as non-retryable with status and body', async () => {
      const out = await tool().invoke({ url: `${main.base}/404` });
      expect(out).toEqual({ kind: 'failed', retryable: false, error: 'HTTP 404', http_status: 404, body: { error: 'nope' } });
    });

    it('reports a 503 as retryable', async () => {
      const out = await tool().invoke({ url: `${main.base}/503` });
      expect(out).toEqual({ kind: 'failed', retryable: true, error: 'HTTP 503', http_status: 503, body: 'down' });
    });

    it('reports a 429 as retryable', async () => {
      const out = await tool().invoke({ url: `${main.base}/429` });
      expect(out).toMatchObject({ kind: 'failed', retryable: true, http_status: 429 });
    });

    it('reports connection refused as retryable', async () => {
      const out = await tool().invoke({ url: `http://127.0.0.1:${refusedPort}/` });
      expect(out).toMatchObject({ kind: 'failed', retryable: true, error: expect.stringMatching(/^connection refused/) });
    });
  });
});
