/**
 * `GET /traces?limit=50` (the newest calls, the first page anyone opens) over a calls table of
 * M rows (1,000,000; quick: 10,000), against the same request over
 * 1,000 rows (the baseline). The listing is a keyset walk of an index, so M should not matter;
 * the plan is printed to show it.
 *
 * Rows are inserted with SQL from this process while Invoke is stopped (an embedded store is
 * open in one process at a time), then Invoke is started on them.
 */
import { CompiledQuery, sql, type Kysely, type KyselyPlugin, type QueryId, type RootOperationNode } from 'kysely';
import type { Database } from '../../src/db/schema.ts';
import { createTracesRepository } from '../../src/traces/traces-repository.ts';
import { get, runLoad, type LoadResult } from '../load.ts';
import { startInvokeProcess } from '../processes.ts';
import { AUTH, count, ms, ratio, type Section } from '../section.ts';
import type { BenchDatabase } from '../stores.ts';

const BASELINE_ROWS = 1_000;
const CHUNK = 100_000;

/** Calls `from`..`to` (1-based), newest first: call g was created g half-seconds ago. */
async function insertCalls(db: Kysely<Database>, from: number, to: number): Promise<void> {
  for (let start = from; start <= to; start += CHUNK) {
    const end = Math.min(to, start + CHUNK - 1);
    await sql`
      insert into calls (id, api_key_id, agent_id, tool, status, request, answer, attempts, duration_ms, created_at, finished_at)
      select 'call_bulk_' || g, 'bench', 'agent_' || (g % 100), 'bench.echo', 'executed',
        jsonb_build_object('tool', 'bench.echo', 'params', jsonb_build_object('n', g), 'agent_id', 'agent_' || (g % 100)),
        jsonb_build_object('status', 'executed', 'result', jsonb_build_object('ok', true)),
        1, g % 50, now() - make_interval(secs => g * 0.5), now() - make_interval(secs => g * 0.5) + interval '5 milliseconds'
      from generate_series(${start}::int, ${end}::int) g`.execute(db);
  }
  await sql`analyze calls`.execute(db);
}

/** EXPLAIN (ANALYZE, BUFFERS) of the very query the listing runs, captured from the repository. */
async function explainListing(db: Kysely<Database>): Promise<string[]> {
  let captured: { node: RootOperationNode; queryId: QueryId } | undefined;
  const capture: KyselyPlugin = {
    transformQuery: (args) => {
      captured ??= { node: args.node, queryId: args.queryId };
      return args.node;
    },
    transformResult: async (args) => args.result,
  };
  // What GET /traces asks for a key with full access: no filter, the default limit.
  await createTracesRepository(db.withPlugin(capture)).listCalls({ limit: 50 });
  if (!captured) throw new Error('traces: the listing query was not captured');
  const compiled = db.getExecutor().compileQuery(captured.node, captured.queryId);
  const plan = await db.executeQuery<{ 'QUERY PLAN': string }>(CompiledQuery.raw(`explain (analyze, buffers) ${compiled.sql}`, [...compiled.parameters]));
  return [compiled.sql, ...plan.rows.map((row) => row['QUERY PLAN'])];
}

/** Starts Invoke on the database, times the listing, stops Invoke. */
async function timeListing(database: BenchDatabase, requests: number): Promise<LoadResult> {
  const invoke = await startInvokeProcess({ storeEnv: database.env });
  try {
    const list = () => get(`${invoke.url}/traces?limit=50`, AUTH);
    await runLoad(list, { concurrency: 1, requests: 20 });
    const result = await runLoad(list, { concurrency: 1, requests });
    if (result.errors > 0) throw new Error(`traces: ${result.errors} errors (${result.firstError})`);
    return result;
  } finally {
    await invoke.stop();
  }
}

async function withStore<T>(database: BenchDatabase, run: (db: Kysely<Database>) => Promise<T>): Promise<T> {
  const store = await database.open();
  try {
    return await run(store.db);
  } finally {
    await store.close();
  }
}

export const tracesSection: Section = async (ctx) => {
  const rows = ctx.quick ? 10_000 : 1_000_000;
  const requests = ctx.quick ? 100 : 1_000;
  const database = await ctx.store.fresh();

  await withStore(database, (db) => insertCalls(db, 1, BASELINE_ROWS));
  const small = await timeListing(database, requests);
  const t0 = performance.now();
  const plan = await withStore(database, async (db) => {
    await insertCalls(db, BASELINE_ROWS + 1, rows);
    return explainListing(db);
  });
  const loadSeconds = (performance.now() - t0) / 1000;
  const large = await timeListing(database, requests);

  const line = (name: string, r: LoadResult) => [name, ms(r.latency.p50), ms(r.latency.p90), ms(r.latency.p99)];
  return {
    tables: [
      {
        title: `GET /traces?limit=50, one request at a time (${requests} requests)`,
        columns: ['calls in the table', 'p50 ms', 'p90 ms', 'p99 ms'],
        rows: [
          line(`${count(BASELINE_ROWS)} (baseline)`, small),
          line(count(rows), large),
          ['ratio', ratio(large.latency.p50, small.latency.p50), ratio(large.latency.p90, small.latency.p90), ratio(large.latency.p99, small.latency.p99)],
        ],
        notes: [
          `${count(rows - BASELINE_ROWS)} rows inserted with generate_series in ${loadSeconds.toFixed(1)} s, then ANALYZE. The listing query and its plan:`,
          ...plan.map((l) => `  ${l}`),
        ],
      },
    ],
    data: { rows, requests, baseline_rows: BASELINE_ROWS, baseline: small, large, load_seconds: loadSeconds, plan },
  };
};
