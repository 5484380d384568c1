/**
 * `npm run bench`: what Invoke costs per call. Measures, in one run on this machine, a tool
 * called directly (the baseline) and the same tool through Invoke's /v1/call in three ways,
 * and prints each as a ratio of the baseline. Bounded: a fixed number of requests per case.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';

const REQUESTS = Number(process.env['BENCH_REQUESTS'] ?? 2000);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 16);
const KEY = 'bench-key';

interface Result {
  name: string;
  perSecond: number;
  p50: number;
  p99: number;
}

async function measure(name: string, send: (i: number) => Promise<number>): Promise<Result> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < REQUESTS; i = next++) {
        const t0 = performance.now();
        const status = await send(i);
        if (status >= 400) throw new Error(`${name}: request ${i} answered ${status}`);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  return { name, perSecond: REQUESTS / seconds, p50: at(0.5), p99: at(0.99) };
}

async function main(): Promise<void> {
  const tool = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => tool.listen(0, '127.0.0.1', resolve));
  const toolUrl = `http://127.0.0.1:${(tool.address() as AddressInfo).port}`;

  const { app } = await buildApp(
    loadConfig({
      INVOKE_DATA_DIR: 'memory://',
      // Set DATABASE_URL to measure against a real Postgres server instead of the embedded store.
      DATABASE_URL: process.env['DATABASE_URL'],
      INVOKE_API_KEYS: KEY,
      LOG_LEVEL: 'silent',
      INVOKE_SWEEP_CRON: 'off',
      INVOKE_OUTBOX_INTERVAL_MS: '0',
    }),
    { logger: false },
  );
  const invokeUrl = await app.listen({ host: '127.0.0.1', port: 0 });
  const headers = { 'content-type': 'application/json', 'x-api-key': KEY };
  const registered = await request(`${invokeUrl}/v1/providers`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ name: 'bench', base_url: toolUrl, tools: [{ name: 'echo', path: '/echo', risk: 'low', input_schema: { type: 'object', properties: { n: { type: 'integer' } } } }] }),
  });
  await registered.body.dump();

  const post = async (url: string, body: unknown) => {
    const res = await request(url, { method: 'POST', headers, body: JSON.stringify(body) });
    await res.body.dump();
    return res.statusCode;
  };

  const storeName = process.env['DATABASE_URL'] ? 'Postgres (DATABASE_URL)' : 'embedded store';
  console.log(`Invoke bench: ${REQUESTS} requests per case, ${CONCURRENCY} at a time, ${storeName}, tool on loopback\n`);
  const results = [
    await measure('tool called directly (baseline)', (i) => post(`${toolUrl}/echo`, { n: i })),
    await measure('through /v1/call', (i) => post(`${invokeUrl}/v1/call`, { tool: 'bench.echo', params: { n: i }, agent_id: 'bench' })),
    await measure('through /v1/call with an idempotency key', (i) =>
      post(`${invokeUrl}/v1/call`, { tool: 'bench.echo', params: { n: i }, agent_id: 'bench', idempotency_key: `k-${i}` }),
    ),
    await measure('replayed idempotency key', () => post(`${invokeUrl}/v1/call`, { tool: 'bench.echo', params: { n: 0 }, agent_id: 'bench', idempotency_key: 'k-0' })),
  ];
  const base = results[0]!;
  const rows = results.map((r) => [
    r.name.padEnd(42),
    r.perSecond.toFixed(0).padStart(8),
    (base.perSecond / r.perSecond).toFixed(1).padStart(8) + 'x',
    r.p50.toFixed(2).padStart(8),
    r.p99.toFixed(2).padStart(8),
  ]);
  console.log(`${'case'.padEnd(42)} ${'req/s'.padStart(8)} ${'slower'.padStart(9)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)}`);
  for (const row of rows) console.log(row.join(' '));
  await app.close();
  await new Promise<void>((resolve) => tool.close(() => resolve()));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
