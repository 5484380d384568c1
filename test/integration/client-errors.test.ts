import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { ADMIN_KEY, buildTestApp } from '../helpers/app.ts';

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Requests Node's HTTP parser refuses before Fastify sees them. `app.inject` skips that parser,
 * so these go over a real socket as raw bytes, and the raw answer is parsed here.
 */
describe('errors from the HTTP layers below the routes', () => {
  let built: BuiltApp;
  let port: number;

  beforeAll(async () => {
    built = await buildTestApp();
    await built.app.listen({ host: '127.0.0.1', port: 0 });
    port = (built.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await built.app.close();
  });

  /** Writes `request` and reads until the server closes the connection (or 3 s pass). */
  function sendRaw(request: string): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => socket.destroy(new Error('no answer within 3 s')), 3000);
      socket.on('data', (chunk) => chunks.push(chunk));
      socket.on('error', (error) => {
        clearTimeout(timer);
        if (chunks.length === 0) reject(error);
        else resolve(parseRaw(Buffer.concat(chunks).toString('utf8')));
      });
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(parseRaw(Buffer.concat(chunks).toString('utf8')));
      });
      socket.write(request);
    });
  }

  function parseRaw(text: string): RawResponse {
    const [head = '', ...rest] = text.split('\r\n\r\n');
    const [statusLine = '', ...headerLines] = head.split('\r\n');
    const headers = Object.fromEntries(headerLines.map((line) => [line.slice(0, line.indexOf(':')).trim().toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
    return { status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') };
  }

  function expectOurShape(res: RawResponse, status: number, code: string) {
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = JSON.parse(res.body);
    expect(body).toEqual({ error: { code, message: expect.any(String) } });
    expect(body.error.message.length).toBeGreaterThan(0);
    expect(body.error.message.length).toBeLessThan(300);
  }

  const cases: Array<[string, string, number, string]> = [
    ['headers larger than the limit', `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'headers_too_large'],
    ['a URL larger than the header limit', `GET /traces?x=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431, 'headers_too_large'],
    ['a Content-Length that is not a number', 'POST /v1/call HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 400, 'invalid_content_length'],
    ['two different Content-Lengths', 'POST /v1/call HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}', 400, 'invalid_content_length'],
    [
      'Content-Length together with chunked framing',
      'POST /v1/call HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
      400,
      'invalid_framing',
    ],
    [
      'a chunk size that is not hexadecimal',
      'POST /v1/call HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
      400,
      'invalid_framing',
    ],
    ['a request line that is not HTTP', 'HELLO THERE\r\n\r\n', 400, 'bad_request'],
    ['an unknown HTTP version', 'GET /health HTTP/9.9\r\nHost: x\r\n\r\n', 400, 'bad_request'],
  ];

  for (const [name, request, status, code] of cases) {
    it(`answers ${name} with ${status} ${code} in the one error shape and closes`, async () => {
      const res = await sendRaw(request);
      expectOurShape(res, status, code);
      expect(res.headers['connection']).toBe('close');
    });
  }

  it('answers a path parameter over the router limit with 414 in the one error shape, without echoing it', async () => {
    const long = 'a'.repeat(5_000);
    const res = await sendRaw(`GET /traces/${long} HTTP/1.1\r\nHost: x\r\nX-API-Key: ${ADMIN_KEY}\r\nConnection: close\r\n\r\n`);
    expectOurShape(res, 414, 'uri_too_long');
    expect(res.body).not.toContain(long);
  });

  it('answers a path with invalid percent-encoding with 400 in the one error shape', async () => {
    const res = await sendRaw(`GET /traces/%ED%B2%80 HTTP/1.1\r\nHost: x\r\nX-API-Key: ${ADMIN_KEY}\r\nConnection: close\r\n\r\n`);
    expectOurShape(res, 400, 'invalid_url');
  });

  it('still serves a well-formed request on a fresh connection after all that', async () => {
    const res = await sendRaw('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).status).toBe('ok');
  });
});
