import type { FastifyInstance } from 'fastify';
import { buildApp, type BuiltApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import type { Store } from '../../src/db/store.ts';

export const ADMIN_KEY = 'test-admin-key';

/** Config as a test wants it: an in-memory embedded store, one full-access key, fast retries. */
export function testConfig(env: Record<string, string> = {}) {
  return loadConfig({
    INVOKE_DATA_DIR: 'memory://',
    INVOKE_API_KEYS: ADMIN_KEY,
    INVOKE_RETRY_BASE_MS: '1',
    INVOKE_RETRY_MAX_MS: '5',
    LOG_LEVEL: 'silent',
    // Tests run sweep passes themselves, when they mean to.
    INVOKE_SWEEP_CRON: 'off',
    ...env,
  });
}

export async function buildTestApp(env: Record<string, string> = {}, store?: Store): Promise<BuiltApp> {
  return buildApp(testConfig(env), { store, logger: false });
}

/** JSON request helper over `app.inject`: returns status, headers and the parsed body. */
export async function send(app: FastifyInstance, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await app.inject({
    method,
    url,
    headers: { 'x-api-key': ADMIN_KEY, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    payload: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  let json: any;
  try {
    json = response.json();
  } catch {
    json = undefined;
  }
  return { status: response.statusCode, headers: response.headers, body: json, text: response.body };
}
