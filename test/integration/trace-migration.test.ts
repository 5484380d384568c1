import { Migrator, sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { migrations } from '../../migrations/index.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { openStore, type Store } from '../../src/db/store.ts';

/** Traces written before they moved onto the call row are kept: the migration carries them over. */
describe('migration 20261202_0001_trace_on_call', () => {
  let store: Store | undefined;
  afterEach(async () => {
    await store?.close();
    store = undefined;
  });

  const migrator = (s: Store) => new Migrator({ db: s.db, provider: { getMigrations: async () => migrations } });

  it("moves each call's events onto its row, in order, and back again on the way down", async () => {
    store = await openStore({ dataDir: 'memory://' });
    const before = await migrator(store).migrateTo('20261201_0001_review_link_uses');
    expect(before.error).toBeUndefined();
    await sql`insert into calls (id, api_key_id, agent_id, tool, status, request) values ('c1', 'k', 'a', 't.x', 'executed', '{}'), ('c2', 'k', 'a', 't.x', 'executed', '{}')`.execute(
      store.db,
    );
    await sql`
      insert into trace_events (call_id, step, status, detail, duration_ms, at) values
        ('c1', 'validated', 'ok', null, null, '2026-11-29T10:00:00.000Z'),
        ('c1', 'attempt', 'ok', '{"http_status": 200}', 12, '2026-11-29T10:00:00.005Z'),
        ('c1', 'execution_completed', 'executed', null, null, '2026-11-29T10:00:00.020Z')`.execute(store.db);

    await migrateToLatest(store.db);
    const rows = await store.db.selectFrom('calls').select(['id', 'trace']).orderBy('id').execute();
    expect(rows).toEqual([
      {
        id: 'c1',
        trace: [
          { step: 'validated', status: 'ok', at: '2026-11-29T10:00:00.000Z' },
          { step: 'attempt', status: 'ok', at: '2026-11-29T10:00:00.005Z', duration_ms: 12, detail: { http_status: 200 } },
          { step: 'execution_completed', status: 'executed', at: '2026-11-29T10:00:00.020Z' },
        ],
      },
      { id: 'c2', trace: [] },
    ]);
    const tables = await sql<{ n: number }>`select count(*)::int as n from information_schema.tables where table_name = 'trace_events'`.execute(store.db);
    expect(tables.rows[0]!.n).toBe(0);

    const down = await migrator(store).migrateDown();
    expect(down.error).toBeUndefined();
    const events = await sql<{ call_id: string; step: string; duration_ms: number | null }>`select call_id, step, duration_ms from trace_events order by id`.execute(store.db);
    expect(events.rows).toEqual([
      { call_id: 'c1', step: 'validated', duration_ms: null },
      { call_id: 'c1', step: 'attempt', duration_ms: 12 },
      { call_id: 'c1', step: 'execution_completed', duration_ms: null },
    ]);
  });
});
