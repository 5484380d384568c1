/**
 * `GET /traces?limit=50` (the newest calls, the first page anyone opens) over a calls table of
 * M rows (1,000,000; quick: 10,000), against the same request over
 * 1,000 rows (the baseline). The listing is a keyset walk of an index, so M should not matter;
 * the plan is printed to show it.
 *
 * `/invoke traces` in Slack over the same two tables: a signed slash command posted to
 * /slack/events, timed until its answer reaches the command's response_url (Invoke acks at once
 * and answers there, as Slack has it do), plain and narrowed to one agent.
 *
 * Rows are inserted with SQL from this process while Invoke is stopped (an embedded store is
 * open in one process at a time), then Invoke is started on them.
 */
import { CompiledQuery, sql, type Kysely, type KyselyPlugin, type QueryId, type RootOperationNode } from 'kysely';
import { request } from 'undici';
import { startSlackEmulator, type SlackEmulator } from '../../demo/slack-emulator.ts';
import type { Database } from '../../src/db/schema.ts';
import { signSlackRequest } from '../../src/slack/verify-request.ts';
import { createTracesRepository } from '../../src/traces/traces-repository.ts';
import { dispatcher, get, runLoad, type LoadResult } from '../load.ts';
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
async function explainListing(db: Kysely<Database>, filters: Parameters<ReturnType<typeof createTracesRepository>['listCalls']>[0]): Promise<string[]> {
  let captured: { node: RootOperationNode; queryId: QueryId } | undefined;
  const capture: KyselyPlugin = {
    transformQuery: (args) => {
      captured ??= { node: args.node, queryId: args.queryId };
      return args.node;
    },
    transformResult: async (args) => args.result,
  };
  await createTracesRepository(db.withPlugin(capture)).listCalls(filters);
  if (!captured) throw new Error('traces: the listing query was not captured');
  const compiled = db.getExecutor().compileQuery(captured.node, captured.queryId);
  const plan = await db.executeQuery<{ 'QUERY PLAN': string }>(CompiledQuery.raw(`explain (analyze, buffers) ${compiled.sql}`, [...compiled.parameters]));
  return [compiled.sql, ...plan.rows.map((row) => row['QUERY PLAN'])];
}

const SIGNING_SECRET = 'bench-signing-secret';
/** The Slack user running `/invoke`: a trace viewer (SLACK_TRACE_VIEWER_IDS). */
const VIEWER = 'U0BENCHVIEWER';
/** The first page anyone opens, and one narrowed by a filter (the bulk calls belong to 100 agents). */
const COMMANDS = ['traces', 'traces agent:agent_7'] as const;
/** `/invoke <text>` as Slack posts it, signed, answered at the emulator's response_url `id`; resolves once the answer landed there and lists calls. */
async function slashCommand(invokeUrl: string, slack: SlackEmulator, id: string, text: string): Promise<number> {
  const answer = slack.responseTo(id);
  const body = new URLSearchParams({
    token: 'legacy',
    team_id: 'T0INVOKE',
    team_domain: 'bench',
    channel_id: 'C0BENCH',
    channel_name: 'bench',
    user_id: VIEWER,
    user_name: 'bench',
    command: '/invoke',
    text,
    api_app_id: 'A0INVOKE',
    response_url: slack.responseUrl(id),
    trigger_id: 'bench.trigger',
  }).toString();
  const headers = { 'content-type': 'application/x-www-form-urlencoded', ...signSlackRequest(SIGNING_SECRET, body, Math.floor(Date.now() / 1000)) };
  const res = await request(`${invokeUrl}/slack/events`, { method: 'POST', dispatcher, headers, body });
  await res.body.dump();
  if (res.statusCode !== 200) {
    answer.catch(() => {}); // no answer is coming: the status is the error
    return res.statusCode;
  }
  const posted = JSON.stringify((await answer).body);
  // Every bulk call's id starts so: an answer without one is a refusal or an error, not a listing.
  if (!posted.includes('call_bulk_')) throw new Error(`/invoke ${text} answered without calls: ${posted.slice(0, 200)}`);
  return 200;
}

interface Listing {
  get: LoadResult;
  slash: Record<(typeof COMMANDS)[number], LoadResult>;
}

/** Starts Invoke on the database (with Slack), times the listing and the slash commands, stops Invoke. */
async function timeListing(database: BenchDatabase, requests: number, commands: number): Promise<Listing> {
  const slack = await startSlackEmulator();
  const invoke = await startInvokeProcess({
    storeEnv: database.env,
    env: {
      SLACK_BOT_TOKEN: 'xoxb-bench',
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_APPROVAL_CHANNEL: 'C0BENCHAPPROVALS',
      SLACK_APPROVER_IDS: 'U0BENCHAPPROVER',
      SLACK_TRACE_VIEWER_IDS: VIEWER,
      SLACK_API_URL: slack.url,
    },
  });
  try {
    const list = () => get(`${invoke.url}/traces?limit=50`, AUTH);
    await runLoad(list, { concurrency: 1, requests: 20 });
    const listed = await runLoad(list, { concurrency: 1, requests });
    if (listed.errors > 0) throw new Error(`traces: ${listed.errors} errors (${listed.firstError})`);
    const slash = {} as Listing['slash'];
    let sent = 0;
    for (const text of COMMANDS) {
      const send = () => slashCommand(invoke.url, slack, `command-${++sent}`, text);
      await runLoad(send, { concurrency: 1, requests: 10 });
      const result = await runLoad(send, { concurrency: 1, requests: commands });
      if (result.errors > 0) throw new Error(`traces: /invoke ${text}: ${result.errors} errors (${result.firstError})`);
      slash[text] = result;
    }
    return { get: listed, slash };
  } finally {
    await invoke.stop();
    await slack.close();
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
  const commands = ctx.quick ? 30 : 200;
  const database = await ctx.store.fresh();

  await withStore(database, (db) => insertCalls(db, 1, BASELINE_ROWS));
  const small = await timeListing(database, requests, commands);
  const t0 = performance.now();
  const plan = await withStore(database, async (db) => {
    await insertCalls(db, BASELINE_ROWS + 1, rows);
    // What GET /traces asks for a key with full access (no filter, the default limit), and what
    // `/invoke traces agent:agent_7` asks.
    return { all: await explainListing(db, { limit: 50 }), agent: await explainListing(db, { agent_id: 'agent_7', limit: 10 }) };
  });
  const loadSeconds = (performance.now() - t0) / 1000;
  const large = await timeListing(database, requests, commands);

  const line = (name: string, r: LoadResult) => [name, ms(r.latency.p50), ms(r.latency.p90), ms(r.latency.p99)];
  const ratios = (a: LoadResult, b: LoadResult) => ['ratio', ratio(a.latency.p50, b.latency.p50), ratio(a.latency.p90, b.latency.p90), ratio(a.latency.p99, b.latency.p99)];
  return {
    tables: [
      {
        title: `GET /traces?limit=50, one request at a time (${requests} requests)`,
        columns: ['calls in the table', 'p50 ms', 'p90 ms', 'p99 ms'],
        rows: [line(`${count(BASELINE_ROWS)} (baseline)`, small.get), line(count(rows), large.get), ratios(large.get, small.get)],
        notes: [
          `${count(rows - BASELINE_ROWS)} rows inserted with generate_series in ${loadSeconds.toFixed(1)} s, then ANALYZE. The listing query and its plan:`,
          ...plan.all.map((l) => `  ${l}`),
        ],
      },
      {
        title: `/invoke in Slack: a signed slash command until its answer reaches the response_url, one at a time (${commands} commands each)`,
        columns: ['command, calls in the table', 'p50 ms', 'p90 ms', 'p99 ms'],
        rows: COMMANDS.flatMap((text) => [
          line(`/invoke ${text}, ${count(BASELINE_ROWS)} (baseline)`, small.slash[text]),
          line(`/invoke ${text}, ${count(rows)}`, large.slash[text]),
          ratios(large.slash[text], small.slash[text]),
        ]),
        notes: [
          "Invoke acks the command at once and posts its answer (Block Kit, ephemeral) to the response_url, here the Slack emulator's. `/invoke traces` runs the listing above with the command's default of 10 rows; narrowed to one agent, the query and its plan:",
          ...plan.agent.map((l) => `  ${l}`),
        ],
      },
    ],
    data: { rows, requests, commands, baseline_rows: BASELINE_ROWS, baseline: small, large, load_seconds: loadSeconds, plan },
  };
};
