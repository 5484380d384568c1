import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp } from '../helpers/app.ts';

/**
 * PGlite has no autovacuum: the sweep stands in for it on the embedded store, vacuuming and
 * analyzing the tables past autovacuum's default thresholds.
 */
describe('the sweep vacuums the embedded store', () => {
  let built: BuiltApp;

  beforeAll(async () => {
    built = await buildTestApp();
    expect(built.store.kind).toBe('embedded');
  });
  afterAll(async () => {
    await built?.app.close();
  });

  const callsStats = async () => {
    // Statistics reach pg_stat_user_tables when a transaction ends, at most once a second unless forced.
    await sql`select pg_stat_force_next_flush()`.execute(built.store.db);
    await sql`select 1`.execute(built.store.db);
    const { rows } = await sql<{ n_dead_tup: string; vacuumed: boolean; analyzed: boolean }>`
      select n_dead_tup, last_vacuum is not null as vacuumed, last_analyze is not null as analyzed
      from pg_stat_user_tables where relname = 'calls'`.execute(built.store.db);
    return { dead: Number(rows[0]!.n_dead_tup), vacuumed: rows[0]!.vacuumed, analyzed: rows[0]!.analyzed };
  };

  it('removes the dead rows a pass finds past the threshold, and leaves a table below it alone', async () => {
    await sql`
      insert into calls (id, api_key_id, agent_id, tool, status, request)
      select 'v' || g, 'k', 'a', 't.x', 'in_flight', '{}' from generate_series(1, 1000) g`.execute(built.store.db);
    // Completions: every row gets a new version, the old one is dead.
    await sql`update calls set status = 'executed' where id like 'v%'`.execute(built.store.db);
    const before = await callsStats();
    expect(before.dead).toBeGreaterThanOrEqual(1000);
    expect(before.vacuumed).toBe(false);

    const counts = await built.services.sweeps.runPass();
    expect(counts.errors).toBe(0);
    const after = await callsStats();
    expect(after.dead).toBe(0);
    expect(after.vacuumed).toBe(true);
    expect(after.analyzed).toBe(true);

    // Nothing new to do: a second pass vacuums nothing (the last vacuum time stays).
    const { rows: first } = await sql<{ at: Date }>`select last_vacuum as at from pg_stat_user_tables where relname = 'calls'`.execute(built.store.db);
    await built.services.sweeps.runPass();
    await callsStats();
    const { rows: second } = await sql<{ at: Date }>`select last_vacuum as at from pg_stat_user_tables where relname = 'calls'`.execute(built.store.db);
    expect(second[0]!.at.getTime()).toBe(first[0]!.at.getTime());
  });
});
