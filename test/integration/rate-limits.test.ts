import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { openStore, type Store } from '../../src/db/store.ts';
import { ADMIN_KEY, buildTestApp } from '../helpers/app.ts';

const OTHER_KEY = 'second-key';

describe('rate limits', () => {
  let store: Store;
  let built: BuiltApp | undefined;
  // Each test builds its own app (its own counters) over one store, to start quickly.
  beforeAll(async () => {
    store = await openStore({ dataDir: 'memory://' });
  });
  afterEach(async () => {
    await built?.app.close();
    built = undefined;
  });
  afterAll(async () => {
    await store.close();
  });

  async function start(env: Record<string, string>) {
    built = await buildTestApp({ INVOKE_API_KEYS: `${ADMIN_KEY},${OTHER_KEY}`, ...env }, store);
  }

  /** One GET as a client at `address` (app.inject sets the socket's remote address). */
  async function get(url: string, address: string, key: string | null = ADMIN_KEY, headers: Record<string, string> = {}) {
    const res = await built!.app.inject({ method: 'GET', url, remoteAddress: address, headers: { ...headers, ...(key === null ? {} : { 'x-api-key': key }) } });
    return { status: res.statusCode, headers: res.headers, body: res.json() };
  }

  function expectRateLimited(res: Awaited<ReturnType<typeof get>>, limit: string) {
    expect(res.status).toBe(429);
    const retryAfter = Number(res.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(res.body.error.code).toBe('rate_limited');
    expect(res.body.error.message).toMatch(/retry in \d+ s/);
    expect(res.body.error.details).toMatchObject({ limit, retry_after_seconds: retryAfter });
  }

  it('answers 429 with Retry-After past the per-key limit; another key is counted apart', async () => {
    await start({ INVOKE_RATE_LIMIT_PER_KEY: '3', INVOKE_RATE_LIMIT_PER_ADDRESS: '0' });
    for (let i = 0; i < 3; i += 1) expect((await get('/v1/tools', '10.0.0.1')).status).toBe(200);
    expectRateLimited(await get('/v1/tools', '10.0.0.1'), 'api_key');
    // The same key from another address is the same key.
    expectRateLimited(await get('/v1/tools', '10.0.0.2'), 'api_key');
    expect((await get('/v1/tools', '10.0.0.1', OTHER_KEY)).status).toBe(200);
  });

  it('answers 429 past the per-address limit, whatever the key; /health is never limited', async () => {
    await start({ INVOKE_RATE_LIMIT_PER_ADDRESS: '3' });
    expect((await get('/v1/tools', '10.0.0.1')).status).toBe(200);
    expect((await get('/v1/tools', '10.0.0.1', OTHER_KEY)).status).toBe(200);
    expect((await get('/v1/tools', '10.0.0.1', null)).status).toBe(401);
    expectRateLimited(await get('/v1/tools', '10.0.0.1', OTHER_KEY), 'address');
    expect((await get('/v1/tools', '10.0.0.3')).status).toBe(200);
    for (let i = 0; i < 5; i += 1) expect((await get('/health', '10.0.0.1', null)).status).toBe(200);
  });

  it('after the failed-authentication limit, refuses the address (even with a right key) while other addresses work', async () => {
    await start({ INVOKE_AUTH_FAILURE_LIMIT: '5' });
    for (let i = 0; i < 5; i += 1) expect((await get('/v1/tools', '10.0.0.9', `guess-${i}`)).status).toBe(401);
    expectRateLimited(await get('/v1/tools', '10.0.0.9', 'guess-5'), 'failed_authentication');
    // A right key from the flooding address is refused too, or the flood would learn which guess was right.
    expectRateLimited(await get('/v1/tools', '10.0.0.9'), 'failed_authentication');
    expect((await get('/v1/tools', '10.0.0.10')).status).toBe(200);
    expect((await get('/health', '10.0.0.9', null)).status).toBe(200);
  });

  it('counts only failures: successful requests do not use up the failed-authentication limit', async () => {
    await start({ INVOKE_AUTH_FAILURE_LIMIT: '2' });
    for (let i = 0; i < 10; i += 1) expect((await get('/v1/tools', '10.0.0.4')).status).toBe(200);
    expect((await get('/v1/tools', '10.0.0.4', 'wrong')).status).toBe(401);
    expect((await get('/v1/tools', '10.0.0.4')).status).toBe(200);
  });

  it('serves the address again once the window has passed', async () => {
    await start({ INVOKE_AUTH_FAILURE_LIMIT: '1', INVOKE_RATE_LIMIT_WINDOW: '1s' });
    expect((await get('/v1/tools', '10.0.0.5', 'wrong')).status).toBe(401);
    expectRateLimited(await get('/v1/tools', '10.0.0.5'), 'failed_authentication');
    // The limiter's counters (@fastify/rate-limit, in memory) read Date.now(): move that clock past the window.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 1100 });
    try {
      expect((await get('/v1/tools', '10.0.0.5')).status).toBe(200);
    } finally {
      vi.useRealTimers();
    }
  });

  it('ignores X-Forwarded-For unless the proxy is trusted: a client cannot dodge the limit by inventing addresses', async () => {
    await start({ INVOKE_AUTH_FAILURE_LIMIT: '2' });
    for (let i = 0; i < 2; i += 1) expect((await get('/v1/tools', '10.0.1.1', 'wrong', { 'x-forwarded-for': `198.51.100.${i}` })).status).toBe(401);
    expectRateLimited(await get('/v1/tools', '10.0.1.1', 'wrong', { 'x-forwarded-for': '198.51.100.99' }), 'failed_authentication');
  });

  it('behind a trusted proxy, counts the client address the proxy forwards', async () => {
    await start({ INVOKE_AUTH_FAILURE_LIMIT: '2', INVOKE_TRUST_PROXY: '10.0.2.1' });
    const via = (client: string) => ({ 'x-forwarded-for': client });
    for (let i = 0; i < 2; i += 1) expect((await get('/v1/tools', '10.0.2.1', 'wrong', via('203.0.113.5'))).status).toBe(401);
    expectRateLimited(await get('/v1/tools', '10.0.2.1', null, via('203.0.113.5')), 'failed_authentication');
    expect((await get('/v1/tools', '10.0.2.1', ADMIN_KEY, via('203.0.113.6'))).status).toBe(200);
  });

  it('turns each limit off with 0 (0 means no limit, not "allow none")', async () => {
    await start({ INVOKE_RATE_LIMIT_PER_KEY: '0', INVOKE_RATE_LIMIT_PER_ADDRESS: '0', INVOKE_AUTH_FAILURE_LIMIT: '0' });
    for (let i = 0; i < 30; i += 1) expect((await get('/v1/tools', '10.0.0.6', `guess-${i}`)).status).toBe(401);
    for (let i = 0; i < 30; i += 1) expect((await get('/v1/tools', '10.0.0.6')).status).toBe(200);
  });

  it('limits failed authentication by default (20 a minute per address)', async () => {
    await start({});
    for (let i = 0; i < 20; i += 1) expect((await get('/v1/tools', '10.0.0.7', `guess-${i}`)).status).toBe(401);
    expectRateLimited(await get('/v1/tools', '10.0.0.7', 'guess-20'), 'failed_authentication');
  });
});
