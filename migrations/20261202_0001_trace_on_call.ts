import { sql, type Kysely } from 'kysely';

/**
 * A call's trace lives on its row, as one JSONB array of events in order: the claim writes it
 * with the call, the completion appends in its own statement, other steps append in their
 * transaction, and a trace is read with the call. A row per event cost each call six inserts and
 * eighteen index entries on the hot path (a quarter of Postgres's work per call). Existing events
 * move over.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('calls')
    .addColumn('trace', 'jsonb', (col) => col.notNull().defaultTo(sql`'[]'::jsonb`))
    .execute();
  await sql`
    update calls c set trace = e.trace
    from (
      select call_id, jsonb_agg(
          jsonb_build_object('step', step, 'status', status, 'at', to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
          || case when duration_ms is null then '{}'::jsonb else jsonb_build_object('duration_ms', duration_ms) end
          || case when detail is null then '{}'::jsonb else jsonb_build_object('detail', detail) end
          order by id) as trace
      from trace_events group by call_id
    ) e
    where e.call_id = c.id`.execute(db);
  await db.schema.dropTable('trace_events').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('trace_events')
    .addColumn('id', 'bigint', (c) => c.generatedAlwaysAsIdentity().primaryKey())
    .addColumn('call_id', 'text', (c) => c.notNull())
    .addColumn('step', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('detail', 'jsonb')
    .addColumn('duration_ms', 'integer')
    .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`clock_timestamp()`))
    .execute();
  await db.schema.createIndex('trace_events_call_idx').on('trace_events').columns(['call_id', 'id']).execute();
  await db.schema.createIndex('trace_events_at_idx').on('trace_events').column('at').execute();
  await sql`
    insert into trace_events (call_id, step, status, detail, duration_ms, at)
    select c.id, e.value->>'step', e.value->>'status', e.value->'detail', (e.value->>'duration_ms')::integer, (e.value->>'at')::timestamptz
    from calls c cross join lateral jsonb_array_elements(c.trace) with ordinality as e(value, ord)
    order by c.created_at, c.id, e.ord`.execute(db);
  await db.schema.alterTable('calls').dropColumn('trace').execute();
}
