/**
 * The MCP gateway's cost: the same tool called through `POST /v1/call` and through MCP
 * `tools/call` on `/mcp`, in the same run against the same Invoke process, one request at a time
 * (added latency) and 16 at a time (throughput). MCP is measured twice: with the official SDK
 * client, as an agent would call it (its client-side work included), and as a plain JSON-RPC POST
 * (the server's share alone).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { postJson, runLoad, type LoadResult } from '../load.ts';
import { AUTH, governed, ms, plus, ratio, TOOL_KEY, warmUp, type Section } from '../section.ts';

const THROUGHPUT_CONCURRENCY = 16;

/** A `tools/call` through the SDK client: 200 when the call ran, 500 otherwise (counted as an error). */
function viaSdk(client: Client) {
  return async (i: number) => {
    const result = (await client.callTool({ name: TOOL_KEY, arguments: { n: i } })) as { isError?: boolean; structuredContent?: { status?: string } };
    return !result.isError && result.structuredContent?.status === 'executed' ? 200 : 500;
  };
}

/** The same `tools/call` as one plain HTTP POST of JSON-RPC (stateless: no initialize needed), its SSE answer drained. */
function viaPost(invokeUrl: string) {
  const headers = { ...AUTH, accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };
  return (i: number) => postJson(`${invokeUrl}/mcp`, { jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: TOOL_KEY, arguments: { n: i } } }, headers);
}

function assertNoErrors(label: string, results: LoadResult[]): void {
  for (const r of results) if (r.errors > 0) throw new Error(`mcp (${label}): ${r.errors} errors (${r.firstError})`);
}

export const mcpSection: Section = async (ctx) => {
  const invoke = await ctx.sharedInvoke();
  const client = new Client({ name: 'invoke-bench', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${invoke.url}/mcp`), { requestInit: { headers: AUTH } }));
  try {
    const requests = ctx.quick ? 100 : 2000;
    const durationMs = ctx.quick ? 300 : 5_000;
    const paths: Array<[string, (i: number) => Promise<number>]> = [
      ['POST /v1/call (baseline)', governed(invoke.url)],
      ['MCP tools/call, SDK client', viaSdk(client)],
      ['MCP tools/call, plain POST', viaPost(invoke.url)],
    ];
    for (const [, send] of paths) await warmUp(send, ctx.quick ? 100 : 200);

    const serial: LoadResult[] = [];
    for (const [, send] of paths) serial.push(await runLoad(send, { concurrency: 1, requests }));
    assertNoErrors('concurrency 1', serial);
    const loaded: LoadResult[] = [];
    for (const [, send] of paths) loaded.push(await runLoad(send, { concurrency: THROUGHPUT_CONCURRENCY, durationMs }));
    assertNoErrors(`concurrency ${THROUGHPUT_CONCURRENCY}`, loaded);

    const base = serial[0]!.latency;
    const baseRate = loaded[0]!.perSecond;
    return {
      tables: [
        {
          title: `MCP gateway vs /v1/call, same tool (${TOOL_KEY}), concurrency 1 (${requests} calls each)`,
          columns: ['path', 'p50 ms', 'p90 ms', 'p99 ms', 'added p50 ms', 'p50 ratio'],
          rows: paths.map(([name], i) => {
            const p = serial[i]!.latency;
            return [name, ms(p.p50), ms(p.p90), ms(p.p99), i === 0 ? '' : plus(p.p50, base.p50), i === 0 ? '1.0x' : ratio(p.p50, base.p50)];
          }),
          notes: [],
        },
        {
          title: `MCP gateway vs /v1/call, closed loop of ${THROUGHPUT_CONCURRENCY} (${durationMs / 1000} s each)`,
          columns: ['path', 'calls/s', 'vs /v1/call', 'p50 ms', 'p99 ms'],
          rows: paths.map(([name], i) => {
            const r = loaded[i]!;
            return [name, r.perSecond.toFixed(0), i === 0 ? '1.0x' : ratio(r.perSecond, baseRate), ms(r.latency.p50), ms(r.latency.p99)];
          }),
          notes: [
            'Each MCP request gets a fresh stateless SDK server and transport; tools/call answers as an SSE stream (it may wait for an approval).',
            '"SDK client" includes the client-side work of the official SDK; "plain POST" is the server\'s share alone.',
          ],
        },
      ],
      data: {
        requests,
        durationMs,
        concurrency1: Object.fromEntries(paths.map(([name], i) => [name, serial[i]])),
        [`concurrency${THROUGHPUT_CONCURRENCY}`]: Object.fromEntries(paths.map(([name], i) => [name, loaded[i]])),
      },
    };
  } finally {
    await client.close();
  }
};
