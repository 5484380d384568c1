import { CompiledQuery, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOT_PATH_STATEMENTS } from '../../src/calls/calls-repository.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { jsonForPostgres, openStore, type Store } from '../../src/db/store.ts';

/**
 * The hot-path statements take their batch as one JSON array, which Postgres guesses at a hundred
 * rows whatever it holds. Joined on that alone, it scanned tables instead of probing their primary
 * keys: the completion went through every in-flight entry of `calls_status_idx` (dead ones
 * included, until vacuum), and a new key's claim read `idempotency_keys` and `calls` whole.
 * Every statement here must reach `calls` and `idempotency_keys` by single-row index probes only.
 */
describe('hot-path statement plans', () => {
  let store: Store;
  const at = '2026-11-29T10:00:00.000Z';
  const events = [{ step: 'validated', status: 'ok', at }];

  beforeAll(async () => {
    store = await openStore({ dataDir: 'memory://' });
    await migrateToLatest(store.db);
    // A store with history: finished calls and their keys, a few still in flight, statistics taken.
    await sql`
      insert into calls (id, api_key_id, agent_id, tool, status, request, idempotency_key, answer)
      select 'old' || g, 'k', 'a', 't.x', case when g % 100 = 0 then 'in_flight' else 'executed' end, '{}', 'key' || g, '{"status": "executed"}'
      from generate_series(1, 3000) g`.execute(store.db);
    await sql`
      insert into idempotency_keys (api_key_id, key, fingerprint, state, call_id, expires_at)
      select 'k', 'key' || g, 'fp', 'completed', 'old' || g, now() + interval '1 day' from generate_series(1, 3000) g`.execute(store.db);
    // Completions leave dead in-flight versions behind them until vacuum.
    await sql`update calls set status = 'in_flight' where id in (select 'old' || g from generate_series(1, 3000, 3) g)`.execute(store.db);
    await sql`update calls set status = 'executed' where id in (select 'old' || g from generate_series(1, 3000, 3) g)`.execute(store.db);
    await sql`analyze`.execute(store.db);
  });
  afterAll(async () => {
    await store?.close();
  });

  /** Every table a plan touches, with how: a sequential scan or the index it uses. */
  async function accesses(text: string, values: unknown[]): Promise<string[]> {
    const { rows } = await store.db.executeQuery<{ 'QUERY PLAN': unknown }>(CompiledQuery.raw(`explain (format json) ${text}`, values));
    const found: string[] = [];
    const walk = (node: Record<string, unknown>) => {
      const relation = node['Relation Name'];
      if (typeof relation === 'string' && (relation === 'calls' || relation === 'idempotency_keys')) {
        found.push(`${relation}: ${String(node['Node Type'])}${node['Index Name'] ? ` ${String(node['Index Name'])}` : ''}`);
      }
      for (const child of (node['Plans'] as Array<Record<string, unknown>> | undefined) ?? []) walk(child);
    };
    const plan = rows[0]!['QUERY PLAN'];
    walk(((typeof plan === 'string' ? JSON.parse(plan) : plan) as Array<{ Plan: Record<string, unknown> }>)[0]!.Plan);
    return found;
  }

  const byPrimaryKeyOnly = (found: string[]) => {
    const scans = found.filter((a) => !a.endsWith(' ModifyTable'));
    expect(scans.length).toBeGreaterThan(0);
    // A key is found by its primary key or by the call holding it: one entry either way.
    for (const access of scans) expect(access, found.join('; ')).toMatch(/^(calls: Index Scan calls_pkey|idempotency_keys: Index Scan idempotency_keys_(pk|call_idx))$/);
  };

  it('the completion finds its calls (and their keys) by primary key', async () => {
    const input = [{ id: 'old300', status: 'executed', answer: { status: 'executed' }, attempts: 1, duration_ms: 1, http_status: 200, events }];
    for (const statement of [HOT_PATH_STATEMENTS.COMPLETE_CALLS, HOT_PATH_STATEMENTS.COMPLETE_KEYED_CALLS]) {
      byPrimaryKeyOnly(await accesses(statement.text, [jsonForPostgres(input), ['old300']]));
    }
  });

  it("a key's claim looks up only the keys it did not get, by primary key", async () => {
    const input = [
      { id: 'new1', api_key_id: 'k', agent_id: 'a', tool: 't.x', request: {}, lease_ms: 60_000, events, key: 'fresh', fingerprint: 'fp', ttl_ms: 60_000 },
      { id: 'new2', api_key_id: 'k', agent_id: 'a', tool: 't.x', request: {}, lease_ms: 60_000, events, key: 'key7', fingerprint: 'fp', ttl_ms: 60_000 },
    ];
    byPrimaryKeyOnly(await accesses(HOT_PATH_STATEMENTS.CLAIM_KEYED_CALLS.text, [jsonForPostgres(input), input.map((i) => i.id)]));
  });

  it('ending calls that never ran finds them by primary key', async () => {
    const input = [{ id: 'old100', events, answer_wanted: false }];
    byPrimaryKeyOnly(await accesses(HOT_PATH_STATEMENTS.END_CALLS_UNRUN.text, [jsonForPostgres(input), ['old100'], 'cancelled', 'expired']));
  });
});
