import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, realpathSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type BuiltApp } from '../../src/app.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { DataDirInUseError, openStore } from '../../src/db/store.ts';
import { buildTestApp, send } from '../helpers/app.ts';

describe('health, metrics, errors', () => {
  let built: BuiltApp;
  beforeAll(async () => {
    built = await buildTestApp();
  });
  afterAll(async () => {
    await built.app.close();
  });

  it('serves /health without a key', async () => {
    const res = await built.app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok', store: 'embedded' });
  });

  it('serves Prometheus metrics that count calls', async () => {
    await send(built.app, 'POST', '/v1/call', { tool: 'fetch.url', params: { url: 'http://127.0.0.1:1/' }, agent_id: 'a' });
    const res = await send(built.app, 'GET', '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/plain/);
    expect(res.text).toMatch(/invoke_calls_total\{status="failed"\} 1/);
    expect(res.text).toMatch(/invoke_call_duration_seconds_bucket/);
  });

  it('lists the built-in fetch.url card and discovers by text', async () => {
    const tools = await send(built.app, 'GET', '/tools');
    expect(tools.body.tools.map((t: { key: string }) => t.key)).toContain('fetch.url');
    const found = await send(built.app, 'GET', '/discover?q=fetch');
    expect(found.body.tools[0].key).toBe('fetch.url');
    expect((await send(built.app, 'GET', '/discover?q=zzzz')).body.tools).toEqual([]);
  });

  it('blocks fetch.url to loopback through the SSRF guard', async () => {
    const res = await send(built.app, 'POST', '/v1/call', { tool: 'fetch.url', params: { url: 'http://localhost:8000/health' }, agent_id: 'a' });
    expect(res.body.status).toBe('failed');
    expect(res.body.error).toMatch(/SSRF/i);
  });

  it.each([
    ['malformed JSON', '{"tool":', 400, 'invalid_json'],
    ['wrong types', JSON.stringify({ tool: 5, agent_id: [], params: 'x' }), 400, 'validation_error'],
    ['a huge string', JSON.stringify({ tool: 'x'.repeat(100_000), agent_id: 'a' }), 400, 'validation_error'],
    [
      'a bad expression',
      JSON.stringify({ tool: 'fetch.url', agent_id: 'a', params: { url: 'http://x' }, policy: { rules: [{ when: 'a ==', effect: 'deny' }] } }),
      400,
      'validation_error',
    ],
    [
      'an unknown effect',
      JSON.stringify({ tool: 'fetch.url', agent_id: 'a', params: { url: 'http://x' }, policy: { rules: [{ when: 'a == b', effect: 'explode' }] } }),
      400,
      'validation_error',
    ],
  ])('answers %s with a 4xx in the one error shape', async (_name, payload, status, code) => {
    const res = await send(built.app, 'POST', '/v1/call', payload);
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect(typeof res.body.error.message).toBe('string');
  });

  it('answers an oversized body with 413 and a wrong content type with 415', async () => {
    const big = await send(built.app, 'POST', '/v1/call', JSON.stringify({ tool: 'x', agent_id: 'a', params: { blob: 'x'.repeat(1_100_000) } }));
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('body_too_large');
    const xml = await built.app.inject({ method: 'POST', url: '/v1/call', headers: { 'x-api-key': 'test-admin-key', 'content-type': 'application/xml' }, payload: '<a/>' });
    expect(xml.statusCode).toBe(415);
    expect(xml.json().error.code).toBe('unsupported_media_type');
  });

  it('answers an unknown route with 404 in the same shape', async () => {
    const res = await send(built.app, 'GET', '/v1/nope');
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
  });

  it('rejects bad provider registrations with 400', async () => {
    expect((await send(built.app, 'POST', '/v1/providers', { name: 'x' })).status).toBe(400);
    expect((await send(built.app, 'POST', '/v1/providers', { name: 'fetch', base_url: 'http://a', tools: [{ name: 't', path: '/t' }] })).status).toBe(400);
    const badSchema = await send(built.app, 'POST', '/v1/providers', { name: 'y', base_url: 'http://a', tools: [{ name: 't', path: '/t', input_schema: { type: 'nope' } }] });
    expect(badSchema.status).toBe(400);
    expect(badSchema.body.error.message).toMatch(/JSON Schema/);
    const mcpDown = await send(built.app, 'POST', '/v1/providers', { name: 'z', mcp_url: 'http://127.0.0.1:1/mcp' });
    expect(mcpDown.status).toBe(422);
  });

  it('replaces a provider registered again under the same name', async () => {
    await send(built.app, 'POST', '/v1/providers', {
      name: 'r',
      base_url: 'http://127.0.0.1:9',
      tools: [
        { name: 'a', path: '/a' },
        { name: 'b', path: '/b' },
      ],
    });
    await send(built.app, 'POST', '/v1/providers', { name: 'r', base_url: 'http://127.0.0.1:9', tools: [{ name: 'c', path: '/c' }] });
    const keys = (await send(built.app, 'GET', '/v1/tools')).body.tools.map((t: { key: string }) => t.key);
    expect(keys).toContain('r.c');
    expect(keys).not.toContain('r.a');
  });
});

describe('configuration and the generated key', () => {
  it('reports every bad variable at once', () => {
    expect(() => loadConfig({ PORT: 'abc', INVOKE_IDEMPOTENCY_TTL: 'forever', INVOKE_API_KEY_SCOPES: '{bad' })).toThrow(ConfigError);
    try {
      loadConfig({ PORT: 'abc', INVOKE_IDEMPOTENCY_TTL: 'forever', INVOKE_API_KEY_SCOPES: '{bad' });
    } catch (error) {
      const message = (error as Error).message;
      expect(message).toMatch(/PORT/);
      expect(message).toMatch(/INVOKE_IDEMPOTENCY_TTL/);
      expect(message).toMatch(/INVOKE_API_KEY_SCOPES/);
    }
  });

  it('reads the legacy TRACE_ names', async () => {
    const config = loadConfig({ TRACE_API_KEYS: 'legacy', TRACE_API_KEY_SCOPES: JSON.stringify({ s: { scopes: ['tools:read'] } }) });
    expect(config.apiKeys).toEqual(['legacy']);
    expect(Object.keys(config.scopedKeys)).toEqual(['s']);
  });

  it('generates one key when none is configured, stores only its hash, and persists it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'invoke-data-'));
    const config = loadConfig({ INVOKE_DATA_DIR: dir, LOG_LEVEL: 'silent' });
    const first = await buildApp(config, { logger: false });
    const key = first.generatedApiKey!;
    expect(key).toMatch(/^inv_/);
    const rows = await first.store.db.selectFrom('api_keys').selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.key_hash).not.toContain(key);
    expect((await first.app.inject({ method: 'GET', url: '/v1/tools', headers: { 'x-api-key': key } })).statusCode).toBe(200);
    expect((await first.app.inject({ method: 'GET', url: '/v1/tools' })).statusCode).toBe(401);
    await first.app.close();

    const second = await buildApp(config, { logger: false });
    expect(second.generatedApiKey).toBeNull();
    expect((await second.app.inject({ method: 'GET', url: '/v1/tools', headers: { 'x-api-key': key } })).statusCode).toBe(200);
    await second.app.close();
  });

  it('a headless worker (npm run sweep) generates no key, so the next start still prints one', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'invoke-data-'));
    const config = loadConfig({ INVOKE_DATA_DIR: dir, LOG_LEVEL: 'silent' });
    const worker = await buildApp(config, { logger: false, headless: true });
    expect(worker.generatedApiKey).toBeNull();
    expect(await worker.store.db.selectFrom('api_keys').selectAll().execute()).toHaveLength(0);
    await worker.app.close();
    const server = await buildApp(config, { logger: false });
    expect(server.generatedApiKey).toMatch(/^inv_/);
    await server.app.close();
  });

  it('answers 503 on /health when the store is down, without echoing the driver error (it can name the database address)', async () => {
    const store = await openStore({ dataDir: 'memory://' });
    const built = await buildTestApp({}, store);
    await store.close();
    const res = await built.app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json()).toEqual({ status: 'unavailable', store: 'embedded', error: { code: 'store_unavailable', message: 'The store is unavailable; retry shortly' } });
    await built.app.close();
  });
});

/** Errors pg and its pool raise while Postgres stops (`-m fast`, `-m immediate`), restarts or refuses connections. */
const STORE_OUTAGE_ERRORS: Array<[string, () => Error]> = [
  ['admin_shutdown (57P01, pg_ctl stop -m fast)', () => Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })],
  ['crash_shutdown (57P02)', () => Object.assign(new Error('terminating connection because of crash of another server process'), { code: '57P02' })],
  ['cannot_connect_now (57P03, starting up or shutting down)', () => Object.assign(new Error('the database system is shutting down'), { code: '57P03' })],
  ['a refused connection', () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED', address: '127.0.0.1', port: 5432 })],
  [
    'a refused connection on every address (AggregateError)',
    () => Object.assign(new AggregateError([Object.assign(new Error('connect ECONNREFUSED ::1:5432'), { code: 'ECONNREFUSED' })], ''), {}),
  ],
  ['a reset connection', () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })],
  ['a broken pipe', () => Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })],
  ['a connection that ended mid-query', () => new Error('Connection terminated unexpectedly')],
  ['a client reused after its connection failed', () => new Error('Client has encountered a connection error and is not queryable')],
  ['a pool connect timeout', () => new Error('Connection terminated due to connection timeout', { cause: new Error('Connection terminated unexpectedly') })],
  ['an error wrapping one of these', () => new Error('query failed', { cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }) })],
];

describe('a store outage is a 503 with Retry-After, never a 500', () => {
  let built: BuiltApp;
  beforeAll(async () => {
    built = await buildTestApp();
    STORE_OUTAGE_ERRORS.forEach(([, makeError], i) => {
      built.app.get(`/test-outage/${i}`, async () => {
        throw makeError();
      });
    });
    built.app.get('/test-outage/bug', async () => {
      throw new TypeError("Cannot read properties of undefined (reading 'id')");
    });
  });
  afterAll(async () => {
    await built.app.close();
  });

  it.each(STORE_OUTAGE_ERRORS.map(([name], i) => [name, i] as const))('%s', async (_name, i) => {
    const res = await send(built.app, 'GET', `/test-outage/${i}`);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.body).toEqual({ error: { code: 'service_unavailable', message: 'The store is unavailable; retry shortly' } });
  });

  it('a plain bug is still a 500 that hides its message', async () => {
    const res = await send(built.app, 'GET', '/test-outage/bug');
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: { code: 'internal_error', message: 'Internal error' } });
  });
});

const ROOT = path.resolve(import.meta.dirname, '../..');

interface Exited {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Runs one of our entry points (`src/server.ts`, `src/sweeps/sweep-cli.ts`) as its own process on an embedded data directory. */
function spawnEntry(script: string, dataDir: string): { child: ChildProcess; output: () => string; exited: Promise<Exited> } {
  const env = {
    PATH: process.env['PATH'] ?? '',
    HOME: process.env['HOME'] ?? '/tmp',
    INVOKE_DATA_DIR: dataDir,
    INVOKE_API_KEYS: 'lock-test-key',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    INVOKE_SWEEP_CRON: 'off',
    INVOKE_OUTBOX_INTERVAL_MS: '0',
  };
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<Exited>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, output: () => stdout + stderr, exited };
}

async function waitUntilReady(server: ReturnType<typeof spawnEntry>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!server.output().includes('Invoke is ready')) {
    if (server.child.exitCode !== null) throw new Error(`server exited before it was ready:\n${server.output()}`);
    if (Date.now() > deadline) throw new Error(`server not ready within 60 s:\n${server.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('one process per embedded data directory', () => {
  const running = new Set<ChildProcess>();
  const start = (script: string, dataDir: string) => {
    const entry = spawnEntry(script, dataDir);
    running.add(entry.child);
    void entry.exited.then(() => running.delete(entry.child));
    return entry;
  };
  afterAll(() => {
    for (const child of running) child.kill('SIGKILL');
  });

  it('a second server and npm run sweep refuse a directory a running server holds, with a message naming it; it opens again once that server stops', async () => {
    const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'invoke-lock-')));
    const first = start('src/server.ts', dir);
    await waitUntilReady(first);

    // Bounded: a process that was let in keeps running, and that is the failure.
    const within = (exited: Promise<Exited>) =>
      Promise.race([
        exited,
        new Promise<Exited>((resolve) => setTimeout(() => resolve({ code: null, signal: null, stdout: '', stderr: 'still running after 60 s' }), 60_000).unref()),
      ]);
    const [second, sweep] = await Promise.all([within(start('src/server.ts', dir).exited), within(start('src/sweeps/sweep-cli.ts', dir).exited)]);
    for (const refused of [second, sweep]) {
      expect(refused.code, refused.stdout + refused.stderr).toBe(1);
      expect(refused.stderr).toContain(`The data directory ${dir} is in use by another Invoke process`);
      expect(refused.stderr, 'a clear message, no stack trace').not.toMatch(/^\s+at /m);
    }
    await expect(openStore({ dataDir: dir })).rejects.toThrow(DataDirInUseError);
    expect(first.child.exitCode, 'the first server keeps running').toBeNull();

    first.child.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);
    const store = await openStore({ dataDir: dir });
    await store.ping();
    await store.close();
  }, 90_000);

  it('a server killed with SIGKILL leaves its lock: honored while fresh, taken over once stale', async () => {
    const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'invoke-lock-')));
    const server = start('src/server.ts', dir);
    await waitUntilReady(server);
    server.child.kill('SIGKILL');
    expect((await server.exited).signal).toBe('SIGKILL');

    // Just killed: nothing tells a dead holder from a live one until the lock goes stale.
    await expect(openStore({ dataDir: dir })).rejects.toThrow(DataDirInUseError);
    // Ten seconds later (the stale time), without waiting them out: the lock's mtime is what counts.
    const past = new Date(Date.now() - 11_000);
    utimesSync(`${dir}.lock`, past, past);
    const store = await openStore({ dataDir: dir });
    // The same data: the schema the killed server migrated is there.
    const { rows } = await sql<{ applied: number }>`select count(*)::int as applied from kysely_migration`.execute(store.db);
    expect(rows[0]!.applied).toBeGreaterThan(0);
    // And it is ours now: another opener is refused.
    await expect(openStore({ dataDir: dir })).rejects.toThrow(DataDirInUseError);
    await store.close();
  }, 90_000);
});
