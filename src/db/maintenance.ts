import { sql } from 'kysely';
import type { Store } from './store.ts';

/**
 * The embedded store has no autovacuum: PGlite runs Postgres in one process without the
 * autovacuum launcher (10,000 deleted rows were still dead 75 s later). Without it, every updated
 * call leaves a dead row version and index entries behind for good, deleted rows never free their
 * space, and statistics stay as the first ANALYZE left them. The sweep stands in: tables past
 * autovacuum's own default thresholds are vacuumed and analyzed, one table at a time. On a
 * Postgres server this does nothing: its autovacuum does the job.
 */
export function createVacuumer(store: Pick<Store, 'db' | 'kind'>) {
  return async function vacuumDue(): Promise<string[]> {
    if (store.kind !== 'embedded') return [];
    // autovacuum_vacuum_threshold 50 + scale factor 0.2; autovacuum_analyze_threshold 50 + 0.1.
    const { rows } = await sql<{ schemaname: string; relname: string }>`
      select schemaname, relname from pg_stat_user_tables
      where n_dead_tup > 50 + 0.2 * n_live_tup or n_mod_since_analyze > 50 + 0.1 * n_live_tup
      order by schemaname, relname`.execute(store.db);
    for (const { schemaname, relname } of rows) await sql`vacuum (analyze) ${sql.id(schemaname, relname)}`.execute(store.db);
    return rows.map((row) => `${row.schemaname}.${row.relname}`);
  };
}
