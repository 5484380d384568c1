/**
 * One sweep pass over a backlog of N pending approvals past their expiry (100,000; quick: 2,000),
 * against the same pass with nothing due (the baseline). Approvals that cancel on expiry go in
 * set-based batches until none is left, so one pass drains the backlog. On Postgres, a second
 * backlog is swept while calls from another Invoke process on the same database run, and those
 * calls are measured alone and for the whole pass.
 *
 * The app is built headless in this process on a fresh database, one call is frozen through the
 * API, and its approval and call are cloned N times with SQL, already expired. On the embedded
 * store the pass is timed here (one function call; the directory is this process's). On Postgres
 * each pass runs in a process of its own (`npm run sweep`'s CLI, which prints its timing), as an
 * operator's would: run here, its work would stall this process's load generator and show as the
 * live calls' latency.
 */
import { sql, type Kysely } from 'kysely';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import type { Database } from '../../src/db/schema.ts';
import { percentiles, runLoad, type LoadResult } from '../load.ts';
import { API_KEY, startInvokeProcess, startSweepProcess } from '../processes.ts';
import { AUTH, count, governed, ms, ratio, registerBenchTool, TOOL_KEY, warmUp, type Section } from '../section.ts';

/**
 * N copies of one approval and its call (with the call's trace), expired an hour ago.
 * jsonb_populate_record keeps every other column as it is, whatever columns the tables have.
 */
async function cloneExpired(db: Kysely<Database>, approvalId: string, callId: string, n: number, tag: string): Promise<void> {
  await sql`
    insert into calls
    select (jsonb_populate_record(c, jsonb_build_object('id', c.id || ${'_' + tag} || g, 'created_at', now() - interval '2 hours'))).*
    from calls c, generate_series(1, ${n}::int) g where c.id = ${callId}`.execute(db);
  await sql`
    insert into approvals
    select (jsonb_populate_record(a, jsonb_build_object(
      'id', a.id || ${'_' + tag} || g, 'call_id', a.call_id || ${'_' + tag} || g,
      'created_at', now() - interval '2 hours', 'expires_at', now() - interval '1 hour'))).*
    from approvals a, generate_series(1, ${n}::int) g where a.id = ${approvalId}`.execute(db);
  await sql`analyze`.execute(db);
}

export const sweepSection: Section = async (ctx) => {
  const backlog = ctx.quick ? 2_000 : 100_000;
  const database = await ctx.store.fresh();
  const config = loadConfig({ ...database.env, INVOKE_API_KEYS: API_KEY, LOG_LEVEL: 'silent', INVOKE_SWEEP_CRON: 'off' });
  const { app, store, services } = await buildApp(config, { logger: false, headless: true });
  try {
    const inject = async (url: string, payload: unknown) => {
      const res = await app.inject({ method: 'POST', url, headers: { ...AUTH, 'content-type': 'application/json' }, payload: JSON.stringify(payload) });
      if (res.statusCode >= 300) throw new Error(`sweep setup: ${url} answered ${res.statusCode}: ${res.body}`);
      return res.json<unknown>();
    };
    await inject('/v1/providers', { name: 'bench', base_url: ctx.tool.url, tools: [{ name: 'echo', path: '/echo', risk: 'low' }] });
    const frozen = (await inject('/v1/call', { tool: TOOL_KEY, params: { n: 0 }, agent_id: 'bench', approval_contract: { intent: 'bench_approval' } })) as {
      call_id: string;
      approval: { id: string };
    };

    const pass = async () => {
      const t0 = performance.now();
      const counts = await services.sweeps.runPass();
      if (counts.errors > 0) throw new Error(`sweep: a pass counted ${counts.errors} errors`);
      return { ms: performance.now() - t0, counts };
    };
    const idle: number[] = [];
    for (let i = 0; i < 5; i++) idle.push((await pass()).ms);

    const t0 = performance.now();
    await cloneExpired(store.db, frozen.approval.id, frozen.call_id, backlog, 'a');
    const loadSeconds = (performance.now() - t0) / 1000;
    type Swept = { ms: number; counts: { expired: number } };
    // A pass that counts errors exits 1, which startSweepProcess reports with the process's output.
    const inOwnProcess = () => {
      const sweep = startSweepProcess(database.env);
      const done = sweep.done.then(({ ms, counts }): Swept => ({ ms, counts: { expired: counts['expired'] ?? 0 } }));
      return { started: sweep.started, done };
    };
    let first: Swept;
    // On Postgres, a second backlog, swept while calls from another Invoke process on the same
    // database run: what the sweep does to live traffic (the embedded store is one process's).
    let loaded: { pass: Swept; alone: LoadResult; during: LoadResult } | null = null;
    if (ctx.store.kind === 'postgres') {
      first = await inOwnProcess().done;
      // The first pass's old row versions go before the second backlog, so neither pass meets the
      // other's garbage (or autovacuum cleaning it).
      await sql`vacuum analyze`.execute(store.db);
      await cloneExpired(store.db, frozen.approval.id, frozen.call_id, backlog, 'b');
      const live = await startInvokeProcess({ storeEnv: database.env });
      try {
        await registerBenchTool(live.url, ctx.tool.url);
        // A fresh process is slow for its first seconds (JIT tiers, heap growth): past them first,
        // so "alone" is the process's steady state.
        await warmUp(governed(live.url), ctx.quick ? 200 : 3000);
        const alone = await runLoad(governed(live.url), { concurrency: 16, durationMs: ctx.quick ? 400 : 5000 });
        // The calls go on for as long as the pass does, from its start (the process up and
        // connected) to its end.
        const passing = inOwnProcess();
        await passing.started;
        const during = await runLoad(governed(live.url), { concurrency: 16, until: passing.done });
        loaded = { pass: await passing.done, alone, during };
      } finally {
        await live.stop();
      }
    } else {
      first = await pass();
    }
    const second = await pass();
    const base = percentiles(idle).p50;
    const perApproval = first.ms / Math.max(1, first.counts.expired);
    return {
      tables: [
        {
          title: `Sweep pass over ${count(backlog)} expired pending approvals`,
          columns: ['pass', 'ms', 'expired', 'vs idle pass'],
          rows: [
            ['nothing due (baseline, median of 5)', ms(base), '0', ''],
            ['first pass over the backlog', ms(first.ms), String(first.counts.expired), `+${ms(first.ms - base)}`],
            ...(loaded ? [['a second backlog, with calls running (below)', ms(loaded.pass.ms), String(loaded.pass.counts.expired), `+${ms(loaded.pass.ms - base)}`]] : []),
            ['a pass after the backlog', ms(second.ms), String(second.counts.expired), `+${ms(second.ms - base)}`],
          ],
          notes: [
            `${ms(perApproval)} ms per expired approval; draining all ${count(backlog)} at this rate: ~${((backlog * perApproval) / 1000).toFixed(0)} s of passes.`,
            `Backlog inserted with SQL in ${loadSeconds.toFixed(1)} s, then ANALYZE.`,
          ],
        },
        ...(loaded
          ? [
              {
                title: `/v1/call at concurrency 16 from another process on the same database, alone (${loaded.alone.seconds.toFixed(1)} s) and for as long as the second backlog's pass runs (${loaded.during.seconds.toFixed(1)} s)`,
                columns: ['when', 'calls/s', 'p50 ms', 'p99 ms', 'p99 vs alone'],
                rows: [
                  ['alone (baseline)', loaded.alone.perSecond.toFixed(0), ms(loaded.alone.latency.p50), ms(loaded.alone.latency.p99), ''],
                  [
                    'during the sweep pass',
                    loaded.during.perSecond.toFixed(0),
                    ms(loaded.during.latency.p50),
                    ms(loaded.during.latency.p99),
                    ratio(loaded.during.latency.p99, loaded.alone.latency.p99),
                  ],
                ],
                notes: [],
              },
            ]
          : []),
      ],
      data: { backlog, idle_ms: idle, first, second, per_approval_ms: perApproval, load_seconds: loadSeconds, loaded },
    };
  } finally {
    await app.close();
  }
};
