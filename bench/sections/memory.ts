/**
 * Memory: the Invoke process's resident set when idle, after 10,000 and after 100,000 calls
 * (quick: 1,000 and 2,000), read from its own /metrics. Growth between the two marks that
 * does not level off would be a leak.
 *
 * It runs first, on the process the latency and throughput sections then share: it sees that
 * process from its start, and its calls are their warm-up (a server that has been running).
 */
import { runLoad } from '../load.ts';
import { count, governed, mb, processMetrics, type Section } from '../section.ts';

interface Memory {
  rss: number;
  heapUsed: number;
}

async function memoryOf(invokeUrl: string, settleMs: number): Promise<Memory> {
  // Let the last requests' garbage settle a moment: the figure is the process at rest.
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  const { rss, heapUsed } = await processMetrics(invokeUrl);
  return { rss, heapUsed };
}

export const memorySection: Section = async (ctx) => {
  const marks = ctx.quick ? [1_000, 2_000] : [10_000, 100_000];
  const settleMs = ctx.quick ? 200 : 500;
  const invoke = await ctx.sharedInvoke();
  const idle = await memoryOf(invoke.url, settleMs);
  const at: Array<{ calls: number; perSecond: number } & Memory> = [];
  let done = 0;
  for (const mark of marks) {
    const result = await runLoad((i) => governed(invoke.url)(done + i), { concurrency: 16, requests: mark - done });
    if (result.errors > 0) throw new Error(`memory: ${result.errors} errors (${result.firstError})`);
    done = mark;
    at.push({ calls: mark, perSecond: result.perSecond, ...(await memoryOf(invoke.url, settleMs)) });
  }
  const [first, last] = [at[0]!, at[at.length - 1]!];
  const row = (name: string, m: Memory, perSecond?: number) => [name, mb(m.rss), mb(m.heapUsed), (m.rss / idle.rss).toFixed(2), perSecond ? perSecond.toFixed(0) : ''];
  return {
    tables: [
      {
        title: 'Memory of the Invoke process (calls through /v1/call, 16 at a time)',
        columns: ['when', 'RSS MB', 'heap used MB', 'RSS vs idle', 'calls/s'],
        rows: [row('idle, after start (baseline)', idle), ...at.map((m) => row(`after ${count(m.calls)} calls`, m, m.perSecond))],
        notes: [`RSS after ${count(last.calls)} / after ${count(first.calls)} calls: ${(last.rss / first.rss).toFixed(2)}`],
      },
    ],
    data: { idle, at },
  };
};
