import { sql, type Kysely } from 'kysely';
import type { Database } from '../../src/db/schema.ts';

/**
 * A store with history, for tests of how Postgres plans the hot path: `count` finished calls
 * (`old1`, `old2`, ...; every hundredth still in flight), each with its completed idempotency key
 * (`key1`, `key2`, ...) under API key `k`.
 */
export async function seedCallHistory(db: Kysely<Database>, count: number): Promise<void> {
  await sql`
    insert into calls (id, api_key_id, agent_id, tool, status, request, idempotency_key, answer)
    select 'old' || g, 'k', 'a', 't.x', case when g % 100 = 0 then 'in_flight' else 'executed' end, '{}', 'key' || g, '{"status": "executed"}'
    from generate_series(1, ${count}::int) g`.execute(db);
  await sql`
    insert into idempotency_keys (api_key_id, key, fingerprint, state, call_id, expires_at)
    select 'k', 'key' || g, 'fp', 'completed', 'old' || g, now() + interval '1 day' from generate_series(1, ${count}::int) g`.execute(db);
}
