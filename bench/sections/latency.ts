/**
 * Added latency: one request at a time, the tool called directly and then through /v1/call.
 * What Invoke adds is the difference of the two, measured minutes apart on the same machine.
 */
import { runLoad } from '../load.ts';
import { direct, governed, ms, plus, ratio, warmUp, type Section } from '../section.ts';

export const latencySection: Section = async (ctx) => {
  const invoke = await ctx.sharedInvoke();
  const requests = ctx.quick ? 200 : 3000;
  // Past the first seconds of a fresh process (JIT tiers, heap growth, the store's first plans),
  // whichever section ran before on the shared process.
  const warm = ctx.quick ? 200 : 3000;
  await warmUp(direct(ctx.tool.url), warm);
  await warmUp(governed(invoke.url), warm);
  const base = await runLoad(direct(ctx.tool.url), { concurrency: 1, requests });
  const call = await runLoad(governed(invoke.url), { concurrency: 1, requests });
  // A repeat of a settled idempotency key: answered from the store, the tool is not called.
  const replayKey = `latency-replay-${Date.now()}`;
  const replayed = governed(invoke.url, () => replayKey);
  await replayed(0);
  // The replay path has its own code to warm (the calls above never replay): 10,000 repeats, as
  // the throughput section warms up. After 1,000 its p99 was still 2.4-2.6 ms (p50 0.58), the
  // slow ones spread evenly through the run, not at the collector's pauses; after 10,000, 1.40-1.46
  // ms (two runs each, Postgres).
  await warmUp(() => replayed(0), ctx.quick ? 200 : 10_000);
  const replay = await runLoad(() => replayed(0), { concurrency: 1, requests });
  for (const r of [base, call, replay]) if (r.errors > 0) throw new Error(`latency: ${r.errors} errors (${r.firstError})`);
  const p = (r: typeof base) => r.latency;
  return {
    tables: [
      {
        title: `Added latency at concurrency 1 (${requests} calls each)`,
        columns: ['path', 'p50 ms', 'p90 ms', 'p99 ms'],
        rows: [
          ['tool called directly (baseline)', ms(p(base).p50), ms(p(base).p90), ms(p(base).p99)],
          ['through /v1/call', ms(p(call).p50), ms(p(call).p90), ms(p(call).p99)],
          ['added by Invoke', plus(p(call).p50, p(base).p50), plus(p(call).p90, p(base).p90), plus(p(call).p99, p(base).p99)],
          ['ratio', ratio(p(call).p50, p(base).p50), ratio(p(call).p90, p(base).p90), ratio(p(call).p99, p(base).p99)],
          ['replayed idempotency key (total)', ms(p(replay).p50), ms(p(replay).p90), ms(p(replay).p99)],
        ],
        notes: [],
      },
    ],
    data: { requests, direct: base, governed: call, replayed: replay },
    chart: [
      { concurrency: 1, path: 'direct', ...p(base) },
      { concurrency: 1, path: 'governed', ...p(call) },
    ],
  };
};
