import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createCallsRepository, HOT_PATH_STATEMENTS } from '../../src/calls/calls-repository.ts';
import type { CallAnswer } from '../../src/calls/call-types.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { jsonForPostgres, openStore, type Store } from '../../src/db/store.ts';
import { seedCallHistory } from '../helpers/call-history.ts';
import { createTestDatabase } from './databases.ts';

/**
 * The hot-path statements are prepared and planned once per connection (a generic plan): planning
 * them on every run had been a third of Postgres's CPU per call. A generic plan made the default
 * way while the tables were small scanned `calls` whole and was kept as the table grew (the
 * completion cost 3.4 ms per batch at 50,000 calls instead of 1). On their own connections, with
 * scans and joins other than primary-key probes priced out, the plan made on a small table is the
 * one wanted on a large one.
 */
describe('hot-path statements on a real Postgres server', () => {
  let store: Store;

  beforeAll(async () => {
    // One connection per pool: every hot-path statement below runs on the same one, and
    // pg_prepared_statements is per connection.
    store = await openStore({ databaseUrl: await createTestDatabase(inject('pgUrl')), dataDir: 'memory://', poolSize: 1 });
    await migrateToLatest(store.db);
  });
  afterAll(async () => {
    await store?.close();
  });

  /** Every access to `calls` and `idempotency_keys` in the plan the hot path's connection runs `statement` on. */
  async function accesses(statement: string, args: string[]): Promise<string[]> {
    // EXPLAIN EXECUTE takes no bound parameters: the arguments go in as literals.
    const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;
    const rows = await store.run<{ 'QUERY PLAN': unknown }>(
      { name: `explain_${statement}`, text: `explain (format json) execute ${statement}(${args.map(literal).join(', ')})` },
      [],
    );
    const found: string[] = [];
    const walk = (node: Record<string, unknown>) => {
      const relation = node['Relation Name'];
      if (relation === 'calls' || relation === 'idempotency_keys') {
        found.push(`${relation}: ${String(node['Node Type'])}${node['Index Name'] ? ` ${String(node['Index Name'])}` : ''}`);
      }
      for (const child of (node['Plans'] as Array<Record<string, unknown>> | undefined) ?? []) walk(child);
    };
    walk((rows[0]!['QUERY PLAN'] as Array<{ Plan: Record<string, unknown> }>)[0]!.Plan);
    return found.filter((a) => !a.endsWith(' ModifyTable'));
  }

  it('are planned once, on small tables, and still probe primary keys when the tables have grown', async () => {
    const calls = createCallsRepository(store);
    const answer = (id: string): CallAnswer => ({ status: 'executed', call_id: id, tool: 't.x', agent_id: 'a', attempts: 1, trace: [] });
    const callBothWays = async (i: number) => {
      const id = `call-${i}`;
      await calls.createCall({ id, api_key_id: 'k', agent_id: 'a', tool: 't.x', request: {}, idempotency_key: null, lease_ms: 60_000 });
      await calls.finishCall(id, 200, answer(id), 1, [], false);
      const keyed = { id: `keyed-${i}`, api_key_id: 'k', agent_id: 'a', tool: 't.x', request: {}, idempotency_key: `new-key-${i}`, lease_ms: 60_000 };
      expect(await calls.claimIdempotencyKey(keyed, 'fp', 60_000)).toEqual({ kind: 'claimed' });
      await calls.finishCall(keyed.id, 200, answer(keyed.id), 1, [], true);
      // A repeat, and its count written.
      expect(await calls.claimIdempotencyKey({ ...keyed, id: `again-${i}` }, 'fp', 60_000)).toMatchObject({ kind: 'replay' });
      await calls.flushReplays();
    };
    // A young store, its statistics taken (autovacuum analyzes a small table soon), then twelve
    // calls each way: Postgres makes its plans now, knowing the tables to be a page each.
    await callBothWays(0);
    await sql`analyze`.execute(store.db);
    for (let i = 1; i <= 12; i++) await callBothWays(i);
    const prepared = await store.run<{ name: string; generic_plans: string; custom_plans: string }>(
      { name: 'prepared_statements', text: `select name, generic_plans, custom_plans from pg_prepared_statements where name like 'invoke_%' order by name` },
      [],
    );
    // Generic plans only, one run each per call (the keyed claim ran twice: the call and its repeat).
    expect(Object.fromEntries(prepared.map((r) => [r.name, [Number(r.generic_plans), Number(r.custom_plans)]]))).toEqual({
      invoke_add_replays: [13, 0],
      invoke_claim_calls: [13, 0],
      invoke_claim_keyed_calls: [26, 0],
      invoke_complete_calls: [13, 0],
      invoke_complete_keyed_calls: [13, 0],
    });

    // The tables grow to 50,000 calls and keys, a few in flight, before statistics are taken again
    // (an ANALYZE would have Postgres plan afresh).
    // No autovacuum meanwhile either: its ANALYZE would have the plans made again, on the large tables.
    for (const table of ['calls', 'idempotency_keys']) await sql`alter table ${sql.table(table)} set (autovacuum_enabled = false)`.execute(store.db);
    await seedCallHistory(store.db, 50_000);

    const events = [{ step: 'validated', status: 'ok', at: '2026-11-29T10:00:00.000Z' }];
    const completion = [{ id: 'old300', status: 'executed', answer: { status: 'executed' }, attempts: 1, duration_ms: 1, http_status: 200, events }];
    const claim = [{ id: 'new1', api_key_id: 'k', agent_id: 'a', tool: 't.x', request: {}, lease_ms: 60_000, events, key: 'key7', fingerprint: 'fp', ttl_ms: 60_000 }];
    const primaryKeysOnly = /^(calls: Index Scan calls_pkey|idempotency_keys: Index Scan idempotency_keys_(pk|call_idx))$/;
    for (const [name, args] of [
      [HOT_PATH_STATEMENTS.COMPLETE_CALLS.name, [jsonForPostgres(completion), '{old300}']],
      [HOT_PATH_STATEMENTS.COMPLETE_KEYED_CALLS.name, [jsonForPostgres(completion), '{old300}']],
      [HOT_PATH_STATEMENTS.CLAIM_KEYED_CALLS.name, [jsonForPostgres(claim), '{new1}']],
      [HOT_PATH_STATEMENTS.ADD_REPLAYS.name, ['{k}', '{key7}', '{1}']],
    ] as const) {
      const found = await accesses(name, [...args]);
      expect(found.length, name).toBeGreaterThan(0);
      for (const access of found) expect(access, `${name}: ${found.join('; ')}`).toMatch(primaryKeysOnly);
    }
  });

  it('keep their connection through a data error, and a connection that replaces a lost one gets the settings', async () => {
    const own = await openStore({ databaseUrl: await createTestDatabase(inject('pgUrl')), dataDir: 'memory://', poolSize: 1 });
    try {
      const backend = { name: 'backend', text: `select pg_backend_pid() as pid, current_setting('plan_cache_mode') as mode, current_setting('enable_seqscan') as seqscan` };
      const [first] = await own.run<{ pid: number; mode: string; seqscan: string }>(backend, []);
      expect(first).toMatchObject({ mode: 'force_generic_plan', seqscan: 'off' });
      // Bad data: Postgres answers an error, and the connection (its plans with it) stays.
      await expect(own.run({ name: 'cast', text: 'select $1::int as n' }, ['not a number'])).rejects.toMatchObject({ code: '22P02' });
      expect((await own.run<{ pid: number }>(backend, []))[0]!.pid).toBe(first!.pid);
      // The connection is lost: the next one is set up the same way.
      await sql`select pg_terminate_backend(${first!.pid})`.execute(own.db);
      let next: { pid: number; mode: string; seqscan: string } | undefined;
      for (let attempt = 0; attempt < 5 && !next; attempt++) {
        next = (await own.run<{ pid: number; mode: string; seqscan: string }>(backend, []).catch(() => undefined))?.[0];
      }
      expect(next).toMatchObject({ mode: 'force_generic_plan', seqscan: 'off' });
      expect(next!.pid).not.toBe(first!.pid);
    } finally {
      await own.close();
    }
  });

  it('keep their settings when DATABASE_URL brings startup options of its own', async () => {
    const url = new URL(await createTestDatabase(inject('pgUrl')));
    url.searchParams.set('options', '-c work_mem=8MB');
    const own = await openStore({ databaseUrl: url.toString(), dataDir: 'memory://', poolSize: 1 });
    try {
      const settings = {
        name: 'settings',
        text: `select current_setting('plan_cache_mode') as mode, current_setting('enable_seqscan') as seqscan, current_setting('work_mem') as work_mem`,
      };
      expect(await own.run(settings, [])).toEqual([{ mode: 'force_generic_plan', seqscan: 'off', work_mem: '8MB' }]);
      // Invoke's other queries keep the server's settings.
      const { rows } = await sql<{ mode: string; seqscan: string }>`select current_setting('plan_cache_mode') as mode, current_setting('enable_seqscan') as seqscan`.execute(
        own.db,
      );
      expect(rows[0]).toEqual({ mode: 'auto', seqscan: 'on' });
    } finally {
      await own.close();
    }
  });
});
