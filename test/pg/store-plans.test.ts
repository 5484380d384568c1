import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createCallsRepository } from '../../src/calls/calls-repository.ts';
import type { CallAnswer } from '../../src/calls/call-types.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { openStore, type Store } from '../../src/db/store.ts';
import { createTestDatabase } from './databases.ts';

/**
 * The hot-path statements are prepared once per connection. Postgres would switch a prepared
 * statement to a generic plan after five runs, made while the tables were small: a sequential scan
 * of `calls` that it then kept while the table grew (the completion cost 3.4 ms per batch at
 * 50,000 calls instead of 1). They are planned for each run, against the tables as they are.
 */
describe('hot-path statements on a real Postgres server', () => {
  let store: Store;

  beforeAll(async () => {
    // One connection: every statement below runs on it, and pg_prepared_statements is per connection.
    store = await openStore({ databaseUrl: await createTestDatabase(inject('pgUrl')), dataDir: 'memory://', poolSize: 1 });
    await migrateToLatest(store.db);
  });
  afterAll(async () => {
    await store?.close();
  });

  it('are never run on a generic plan', async () => {
    const calls = createCallsRepository(store);
    for (let i = 0; i < 12; i++) {
      const id = `call-${i}`;
      await calls.createCall({ id, api_key_id: 'k', agent_id: 'a', tool: 't.x', request: {}, idempotency_key: null, lease_ms: 60_000 });
      const answer: CallAnswer = { status: 'executed', call_id: id, tool: 't.x', agent_id: 'a', attempts: 1, trace: [] };
      await calls.finishCall(id, 200, answer, 1, [], false);
    }
    const { rows } = await sql<{ name: string; generic_plans: string; custom_plans: string }>`
      select name, generic_plans, custom_plans from pg_prepared_statements where name like 'invoke_%' order by name`.execute(store.db);
    expect(rows.map((r) => r.name)).toEqual(['invoke_claim_calls', 'invoke_complete_calls']);
    for (const row of rows) {
      expect(Number(row.custom_plans)).toBe(12);
      expect(Number(row.generic_plans)).toBe(0);
    }
    const finished = await store.db
      .selectFrom('calls')
      .select(({ fn }) => fn.countAll<string>().as('n'))
      .where('status', '=', 'executed')
      .executeTakeFirstOrThrow();
    expect(Number(finished.n)).toBe(12);
  });

  it('keep to plans made per run when DATABASE_URL brings startup options of its own', async () => {
    const url = new URL(await createTestDatabase(inject('pgUrl')));
    url.searchParams.set('options', '-c work_mem=8MB');
    const own = await openStore({ databaseUrl: url.toString(), dataDir: 'memory://', poolSize: 1 });
    try {
      const { rows } = await sql<{ mode: string; work_mem: string }>`select current_setting('plan_cache_mode') as mode, current_setting('work_mem') as work_mem`.execute(own.db);
      expect(rows[0]).toEqual({ mode: 'force_custom_plan', work_mem: '8MB' });
    } finally {
      await own.close();
    }
  });
});
