/** What every bench section receives and returns, and the calls they share. */
import { fetchJson, getText, postJson, runLoad } from './load.ts';
import { API_KEY, startInvokeProcess, type InvokeProcess, type Running } from './processes.ts';
import type { StoreProvider } from './stores.ts';

/**
 * In the order they run: memory first, as it must see the shared Invoke process from its start;
 * pause last of those that share it, as it leaves that process idle for a minute and a section
 * after it would measure a process cooling down.
 */
export const SECTIONS = ['memory', 'latency', 'throughput', 'mcp', 'slack', 'sweep', 'traces', 'pause', 'startup'] as const;
export type SectionName = (typeof SECTIONS)[number];
/** `startup` is asked for by name only: it restarts Invoke several times and measures no call. */
export const DEFAULT_SECTIONS: readonly SectionName[] = SECTIONS.filter((s) => s !== 'startup');

export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
  notes: string[];
}

/** One point of the latency chart: percentiles of one path at one concurrency. */
export interface ChartPoint {
  concurrency: number;
  path: 'direct' | 'governed';
  p50: number;
  p90: number;
  p99: number;
}

export interface SectionOutcome {
  tables: Table[];
  /** Raw figures, for the JSON file. */
  data: Record<string, unknown>;
  chart?: ChartPoint[];
}

export interface SectionContext {
  store: StoreProvider;
  quick: boolean;
  tool: Running;
  /** An Invoke process on a fresh database with the bench tool registered, shared by the sections that only make calls. */
  sharedInvoke(): Promise<InvokeProcess>;
}

export type Section = (ctx: SectionContext) => Promise<SectionOutcome>;

export const AUTH = { 'x-api-key': API_KEY };
export const TOOL_KEY = 'bench.echo';

/** Registers the tool process with Invoke as provider `bench`, tool `echo` (low risk: it runs at once). */
export async function registerBenchTool(invokeUrl: string, toolUrl: string): Promise<void> {
  await fetchJson(`${invokeUrl}/v1/providers`, {
    headers: AUTH,
    body: {
      name: 'bench',
      base_url: toolUrl,
      tools: [{ name: 'echo', path: '/echo', risk: 'low', description: 'Answers at once', input_schema: { type: 'object', properties: { n: { type: 'integer' } } } }],
    },
  });
}

/** Starts Invoke on a fresh database of this store, with the bench tool registered. */
export async function startInvokeWithTool(ctx: SectionContext, env: Record<string, string> = {}): Promise<InvokeProcess> {
  const database = await ctx.store.fresh();
  const invoke = await startInvokeProcess({ storeEnv: database.env, env });
  await registerBenchTool(invoke.url, ctx.tool.url);
  return invoke;
}

/** The baseline: the tool called directly, with the same body Invoke would send it. */
export const direct = (toolUrl: string) => (i: number) => postJson(`${toolUrl}/echo`, { n: i });

/** The same call through Invoke's /v1/call, optionally under an idempotency key. */
export const governed = (invokeUrl: string, idempotencyKey?: (i: number) => string) => (i: number) =>
  postJson(`${invokeUrl}/v1/call`, { tool: TOOL_KEY, params: { n: i }, agent_id: 'bench', ...(idempotencyKey ? { idempotency_key: idempotencyKey(i) } : {}) }, AUTH);

/** A few hundred calls first, so JIT, connection pools and caches are warm before anything is measured. */
export async function warmUp(send: (i: number) => Promise<number>, requests: number): Promise<void> {
  const result = await runLoad(send, { concurrency: 8, requests });
  if (result.errors > 0) throw new Error(`warm-up failed: ${result.firstError}`);
}

/** Invoke's own figures from its /metrics (prom-client's process metrics, prefixed `invoke_process_`). */
export async function processMetrics(invokeUrl: string): Promise<{ rss: number; heapUsed: number; cpuSeconds: number }> {
  const text = await getText(`${invokeUrl}/metrics`, AUTH);
  const metric = (name: string) => Number(new RegExp(`^invoke_process_${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
  return { rss: metric('process_resident_memory_bytes'), heapUsed: metric('nodejs_heap_size_used_bytes'), cpuSeconds: metric('process_cpu_seconds_total') };
}

export const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(2) : '-');
export const ratio = (value: number, base: number) => (base > 0 && Number.isFinite(value) ? `${(value / base).toFixed(1)}x` : '-');
export const plus = (value: number, base: number) => (Number.isFinite(value - base) ? `+${(value - base).toFixed(2)}` : '-');
export const mb = (bytes: number) => (bytes / 1_048_576).toFixed(0);
export const count = (n: number) => n.toLocaleString('en-US');
