/**
 * A closed-loop load generator: `concurrency` workers, each sending its next request as soon as
 * the previous one answered, for a number of requests or a duration. Latency is measured per
 * request in this process; the servers under test run in other processes.
 */
import { Agent, request } from 'undici';

/** One keep-alive agent for the whole run: connections are reused, as a real agent fleet would. */
export const dispatcher = new Agent({ keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000, connections: 256, pipelining: 1 });

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface LoadResult {
  concurrency: number;
  requests: number;
  errors: number;
  /** First unexpected status or error, to say what went wrong. */
  firstError: string | null;
  seconds: number;
  perSecond: number;
  /** Milliseconds. */
  latency: Percentiles;
}

/** Nearest-rank percentiles of milliseconds; the input need not be sorted. */
export function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { p50: NaN, p90: NaN, p99: NaN, max: NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1]! };
}

/** A request of the load: resolves to the HTTP status. */
export type Send = (i: number) => Promise<number>;

export interface LoadOptions {
  concurrency: number;
  /** Stop after this many requests... */
  requests?: number;
  /** ...or after this many milliseconds... */
  durationMs?: number;
  /** ...or once this settles (whichever comes first). */
  until?: Promise<unknown>;
  /** Statuses that count as success; others are errors. */
  ok?: (status: number) => boolean;
}

export async function runLoad(send: Send, options: LoadOptions): Promise<LoadResult> {
  const { concurrency } = options;
  const limit = options.requests ?? Number.POSITIVE_INFINITY;
  const ok = options.ok ?? ((status: number) => status < 400);
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  let firstError: string | null = null;
  const started = performance.now();
  const deadline = options.durationMs === undefined ? Number.POSITIVE_INFINITY : started + options.durationMs;
  let settled = false;
  const settle = () => {
    settled = true;
  };
  options.until?.then(settle, settle);

  const worker = async () => {
    for (let i = next++; i < limit && !settled && performance.now() < deadline; i = next++) {
      const t0 = performance.now();
      try {
        const status = await send(i);
        if (!ok(status)) {
          errors++;
          firstError ??= `HTTP ${status}`;
        }
      } catch (error) {
        errors++;
        firstError ??= (error as Error).message;
      }
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  return {
    concurrency,
    requests: latencies.length,
    errors,
    firstError,
    seconds,
    perSecond: latencies.length / seconds,
    latency: percentiles(latencies),
  };
}

/** POSTs JSON and drains the answer; resolves to the status. */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<number> {
  const res = await request(url, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  await res.body.dump();
  return res.statusCode;
}

/** GETs a URL and drains the answer; resolves to the status. */
export async function get(url: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await request(url, { method: 'GET', dispatcher, headers });
  await res.body.dump();
  return res.statusCode;
}

/** A JSON request whose answer the caller needs; throws on a status outside 2xx. */
export async function fetchJson<T>(url: string, init: { method?: 'GET' | 'POST'; body?: unknown; headers?: Record<string, string> } = {}): Promise<{ status: number; body: T }> {
  const res = await request(url, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    dispatcher,
    headers: { ...(init.body === undefined ? {} : { 'content-type': 'application/json' }), ...init.headers },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`${init.method ?? 'GET'} ${url} answered ${res.statusCode}: ${text.slice(0, 300)}`);
  return { status: res.statusCode, body: (text ? JSON.parse(text) : null) as T };
}

/** GETs a text answer (e.g. /metrics); throws on a status outside 2xx. */
export async function getText(url: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await request(url, { method: 'GET', dispatcher, headers });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`GET ${url} answered ${res.statusCode}: ${text.slice(0, 300)}`);
  return text;
}
