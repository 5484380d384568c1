// 1. A flaky MCP tool stalls on its first calls: bounded retry recovers it, the naive loop gives up.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { AgentTimeout, agentLoop } from '../agent.ts';
import { failedSummary, invokeOnce, plural, type Scenario } from './scenario.ts';

const SKU = 'SKU-RED-42';

export const toolTimeout: Scenario = {
  id: 1,
  title: 'Tool timeout (flaky MCP tool)',
  measures: [
    { key: 'tool_calls', label: 'check_stock calls at the MCP server' },
    { key: 'answered', label: 'calls it answered' },
  ],
  async naive(ctx) {
    const { flaky } = ctx.env;
    const client = new Client({ name: 'naive-agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(flaky.url)));
    try {
      const loop = await agentLoop(async () => {
        try {
          const result = await client.callTool({ name: 'check_stock', arguments: { sku: SKU } }, undefined, { timeout: ctx.timeoutMs });
          return { kind: 'answer', value: result };
        } catch (error) {
          if (/timed out|timeout/i.test((error as Error).message)) throw new AgentTimeout('tools/call check_stock', ctx.timeoutMs);
          throw error;
        }
      }, ctx.signal);
      const counts = { tool_calls: flaky.calls, answered: flaky.answered };
      if (!loop.value) return { counts, summary: failedSummary('gave up: no stock figure', loop.failures), details: { requests: loop.requests, gave_up: true } };
      const stock = (loop.value.structuredContent as { in_stock?: number } | undefined)?.in_stock;
      return { counts, summary: `got in_stock=${String(stock)} after ${plural(loop.requests, 'call')}`, details: { requests: loop.requests, gave_up: false } };
    } finally {
      await client.close().catch(() => undefined);
    }
  },
  async invoke(ctx) {
    const res = await invokeOnce(ctx, { tool: 'inventory.check_stock', params: { sku: SKU }, failure_policy: { retry: 3 } });
    const answer = res.body;
    return {
      counts: { tool_calls: ctx.env.flaky.calls, answered: ctx.env.flaky.answered },
      outcome: String(answer.status),
      summary: `${answer.status} after ${plural(Number(answer.attempts), 'attempt')} (bounded retry: 1 + up to 3, with backoff)`,
      details: { attempts: Number(answer.attempts) },
    };
  },
};
