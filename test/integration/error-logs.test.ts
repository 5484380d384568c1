import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type BuiltApp } from '../../src/app.ts';
import { openStore, type Store } from '../../src/db/store.ts';
import { loggerOptions, serializeError } from '../../src/http/logging.ts';
import { ADMIN_KEY, send, testConfig } from '../helpers/app.ts';

/** A pino destination that keeps every line, parsed. */
function captureLines() {
  const lines: Array<Record<string, any>> = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line));
      }
      done();
    },
  });
  return { stream, lines, raw };
}

const SECRET = 'sk_live_do_not_log_4242';

describe('error logs', () => {
  let store: Store;
  let built: BuiltApp;
  const captured = captureLines();

  beforeAll(async () => {
    store = await openStore({ dataDir: 'memory://' });
    built = await buildApp(testConfig({ LOG_LEVEL: 'info' }), { store, logger: { ...loggerOptions({ level: 'info' }), stream: captured.stream } });
    // A real store error carrying the call's data: Postgres refuses the row, and its error
    // (PGlite attaches the query's parameters; `detail` and `where` quote the row) is logged.
    await sql`alter table calls add constraint refuse_agent_boom check (agent_id <> 'boom')`.execute(store.db);
  });
  afterAll(async () => {
    await built.app.close();
    await store.close();
  });

  it('log a store error without its SQL parameters or the row it quotes', async () => {
    const res = await send(built.app, 'POST', '/v1/call', { tool: 'fetch.url', agent_id: 'boom', params: { url: `http://example.com/?token=${SECRET}` } });
    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe('internal_error');
    const logged = captured.lines.find((line) => line.level === 50 && line.err);
    expect(logged?.err.code).toBe('23514');
    expect(logged?.err.message).toMatch(/refuse_agent_boom/);
    expect(logged?.err).not.toHaveProperty('params');
    expect(logged?.err).not.toHaveProperty('detail');
    expect(logged?.err).not.toHaveProperty('where');
    expect(captured.raw.join('\n')).not.toContain(SECRET);
  });

  it('log one line per request, when it is answered, without its query string', async () => {
    const before = captured.lines.length;
    const res = await built.app.inject({ method: 'GET', url: `/health?probe=${SECRET}` });
    expect(res.statusCode).toBe(200);
    const lines = captured.lines.slice(before).filter((line) => line.reqId === res.headers['request-id'] || line.url === '/health');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'request', method: 'GET', url: '/health', status: 200 });
    expect(typeof lines[0]?.ms).toBe('number');
    expect(captured.lines.slice(before).some((line) => line.msg === 'incoming request')).toBe(false);
    expect(captured.raw.join('\n')).not.toContain(SECRET);
  });

  it('drop data fields from wrapped causes too, and keep what describes the failure', () => {
    const inner = Object.assign(new Error('insert failed'), {
      code: '23514',
      params: [SECRET],
      detail: `Failing row contains (${SECRET})`,
      query: 'insert into calls values ($1)',
    });
    const serialized = serializeError(new Error('call failed', { cause: inner }));
    expect(JSON.stringify(serialized)).not.toContain(SECRET);
    expect(serialized.cause).toMatchObject({ code: '23514', message: 'insert failed', query: 'insert into calls values ($1)' });
  });

  it('redact API keys and authorization headers wherever a request is logged', async () => {
    const lines = captureLines();
    const app = Fastify({ logger: { ...loggerOptions({ level: 'info' }), stream: lines.stream } });
    const headers = { 'x-api-key': ADMIN_KEY, authorization: 'Bearer abc.def', cookie: 'session=xyz', 'user-agent': 'probe' };
    app.log.info({ request: { headers }, headers }, 'headers seen');
    await app.close();
    const line = lines.lines.find((l) => l.msg === 'headers seen');
    expect(line?.request.headers['user-agent']).toBe('probe');
    expect(line?.headers['user-agent']).toBe('probe');
    expect(line?.headers['x-api-key']).toBe('[redacted]');
    expect(lines.raw.join('\n')).not.toMatch(/test-admin-key|abc\.def|session=xyz/);
  });
});
