/**
 * Throughput under a closed loop of 16 and 64 concurrent clients: the tool called directly (the
 * baseline), through /v1/call, through /v1/call with a fresh idempotency key per call, and the
 * same idempotency key replayed (answered from the store, the tool is not called again).
 */
import { runLoad, type LoadResult } from '../load.ts';
import { direct, governed, ms, processMetrics, ratio, warmUp, type ChartPoint, type Section } from '../section.ts';

const CONCURRENCY = [16, 64] as const;

export const throughputSection: Section = async (ctx) => {
  const invoke = await ctx.sharedInvoke();
  const durationMs = ctx.quick ? 300 : 5_000;
  const run = `${Date.now().toString(36)}`;
  // A server that has been running: 300 calls left the first case (concurrency 16, plain)
  // 0.36-0.48 ms of Invoke's CPU per call right after a start or a pause, 0.24 after 110,000.
  const warm = ctx.quick ? 300 : 10_000;
  await warmUp(direct(ctx.tool.url), warm);
  await warmUp(governed(invoke.url), warm);

  const rows: string[][] = [];
  // A Postgres server the bench started: its CPU per call too (the other half of a call's cost).
  const showServer = ctx.store.serverCpuSeconds() !== undefined;
  const data: Record<string, Record<string, LoadResult>> = {};
  const chart: ChartPoint[] = [];
  for (const concurrency of CONCURRENCY) {
    // A replay is the same request again: same key, same payload (another payload would be a 422).
    const replayKey = `replay-${run}-${concurrency}`;
    const replay = () => governed(invoke.url, () => replayKey)(0);
    await replay();
    const cases: Array<[string, (i: number) => Promise<number>]> = [
      ['tool called directly (baseline)', direct(ctx.tool.url)],
      ['through /v1/call', governed(invoke.url)],
      ['/v1/call, new idempotency key', governed(invoke.url, (i) => `k-${run}-${concurrency}-${i}`)],
      ['/v1/call, replayed idempotency key', replay],
    ];
    const results: Record<string, LoadResult & { invokeCpuMsPerCall?: number; postgresCpuMsPerCall?: number }> = {};
    for (const [name, send] of cases) {
      const before = await processMetrics(invoke.url);
      const serverBefore = ctx.store.serverCpuSeconds();
      const result = await runLoad(send, { concurrency, durationMs });
      const after = await processMetrics(invoke.url);
      const serverAfter = ctx.store.serverCpuSeconds();
      // The direct case does not touch Invoke: whatever CPU it used then was not a call's.
      const governedCase = name !== cases[0]![0];
      const perCall = (seconds: number) => (seconds * 1000) / result.requests;
      results[name] = governedCase
        ? {
            ...result,
            invokeCpuMsPerCall: perCall(after.cpuSeconds - before.cpuSeconds),
            ...(serverBefore !== undefined && serverAfter !== undefined ? { postgresCpuMsPerCall: perCall(serverAfter - serverBefore) } : {}),
          }
        : result;
    }
    const base = results[cases[0]![0]]!;
    for (const [name] of cases) {
      const r = results[name]!;
      rows.push([
        String(concurrency),
        name,
        r.perSecond.toFixed(0),
        r === base ? '1.0x' : ratio(base.perSecond, r.perSecond),
        ms(r.latency.p50),
        ms(r.latency.p99),
        r === base ? '' : ratio(r.latency.p99, base.latency.p99),
        r.invokeCpuMsPerCall === undefined ? '' : ms(r.invokeCpuMsPerCall),
        ...(showServer ? [r.postgresCpuMsPerCall === undefined ? '' : ms(r.postgresCpuMsPerCall)] : []),
        r.errors > 0 ? `${r.errors} (${r.firstError})` : '0',
      ]);
    }
    data[`c${concurrency}`] = results;
    chart.push({ concurrency, path: 'direct', ...base.latency }, { concurrency, path: 'governed', ...results[cases[1]![0]]!.latency });
  }
  return {
    tables: [
      {
        title: `Throughput, closed loop (${durationMs / 1000} s per case)`,
        columns: ['conc.', 'case', 'calls/s', 'slower', 'p50 ms', 'p99 ms', 'p99 vs direct', 'Invoke CPU ms/call', ...(showServer ? ['Postgres CPU ms/call'] : []), 'errors'],
        rows,
        notes: [
          '"slower": direct calls/s divided by this case\'s calls/s.',
          `"Invoke CPU ms/call": CPU time of the Invoke process per call (its /metrics), steadier than calls/s on a busy machine${ctx.store.kind === 'embedded' ? '; includes the embedded database' : "; the Postgres server's own CPU is not in it"}.`,
          ...(showServer ? ['"Postgres CPU ms/call": CPU time of the Postgres server\'s processes per call (/proc), all its work for the call: statements, WAL, commits.'] : []),
        ],
      },
    ],
    data,
    chart,
  };
};
