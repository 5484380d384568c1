import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createCallsRepository } from '../../src/calls/calls-repository.ts';
import { openStore, type Store } from '../../src/db/store.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { waitFor } from '../helpers/wait.ts';
import { createTestDatabase } from './databases.ts';

/**
 * A call settled by another step while its completion runs (recovery reconciling it, on another
 * connection) keeps the settled answer, and the late run's events still go on its trace. The
 * completion waits on the row, then sees the settled version: it must append to that one.
 */
describe('a completion racing the step that settles its call, on a real Postgres server', () => {
  let store: Store;
  let url: string;

  beforeAll(async () => {
    url = await createTestDatabase(inject('pgUrl'));
    store = await openStore({ databaseUrl: url, dataDir: 'memory://' });
    await migrateToLatest(store.db);
  });
  afterAll(async () => {
    await store?.close();
  });

  it('appends the late events to the version settled while it waited', async () => {
    const calls = createCallsRepository(store);
    const id = 'racing-call';
    const at = '2026-11-30T10:00:00.000Z';
    await calls.createCall({ id, api_key_id: 'k', agent_id: 'a', tool: 't.x', request: {}, idempotency_key: null, lease_ms: 60_000 }, [
      { step: 'request_received', status: 'completed', at },
    ]);
    const settler = new pg.Client({ connectionString: url });
    await settler.connect();
    try {
      await settler.query('begin');
      await settler.query(
        `update calls set status = 'outcome_reconciled', answer = '{"status": "outcome_reconciled"}', trace = trace || '[{"step": "recovery_started", "status": "completed", "at": "2026-11-30T10:00:01.000Z"}]' where id = $1`,
        [id],
      );
      const late = { step: 'attempt', status: 'completed', at: '2026-11-30T10:00:02.000Z' };
      const finished = calls.finishCall(id, 200, { status: 'executed', call_id: id, tool: 't.x', agent_id: 'a', attempts: 1, trace: [] }, 5, [late], false);
      // The completion is waiting on the settler's row lock before the settler commits.
      await waitFor(async () => {
        const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like '%update calls c%'`.execute(
          store.db,
        );
        return rows[0]!.n > 0;
      });
      await settler.query('commit');
      await finished;
    } finally {
      await settler.end();
    }
    const row = await store.db.selectFrom('calls').select(['status', 'answer', 'trace']).where('id', '=', id).executeTakeFirstOrThrow();
    expect(row.status).toBe('outcome_reconciled');
    expect(row.answer).toEqual({ status: 'outcome_reconciled' });
    expect((row.trace as Array<{ step: string }>).map((e) => e.step)).toEqual(['request_received', 'recovery_started', 'attempt']);
  });
});
