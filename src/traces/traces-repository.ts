import { sql, type Kysely, type Transaction } from 'kysely';
import { jsonb } from '../db/store.ts';
import type { Database } from '../db/schema.ts';
import type { TraceEvent } from './trace-recorder.ts';

export interface CallSummary {
  call_id: string;
  agent_id: string;
  tool: string;
  status: string;
  attempts: number;
  idempotency_key: string | null;
  created_at: string;
  finished_at: string | null;
  duration_ms: number | null;
}

/** A call as trace views show it: its summary plus what was asked and answered. */
export interface CallDetail {
  summary: CallSummary;
  api_key_id: string;
  request: unknown;
  answer: unknown;
  /** Its trace, in order (on the call's row). */
  trace: TraceEvent[];
}

/** Reads calls' details (the calls repository is one): what trace views need of the calls folder. */
export interface CallDetailsReader {
  findCallDetails(callIds: string[]): Promise<Map<string, CallDetail>>;
}

/** Calls still open: running, or waiting on a human. Retention never removes them or their traces. */
export const OPEN_CALL_STATUSES = ['in_flight', 'pending_approval', 'escalated'] as const;

export interface TraceFilters {
  /** Only this key's calls (keys without full access see their own calls only). */
  api_key_id?: string;
  agent_id?: string;
  tool?: string;
  status?: string;
  since?: Date;
  /** Keyset cursor: rows strictly older than this (created_at, id). */
  before?: { created_at: string; id: string };
  limit: number;
}

type Db = Kysely<Database> | Transaction<Database>;

export function toCallSummary(row: {
  id: string;
  agent_id: string;
  tool: string;
  status: string;
  attempts: number;
  idempotency_key: string | null;
  created_at: Date;
  finished_at: Date | null;
  duration_ms: number | null;
}): CallSummary {
  return {
    call_id: row.id,
    agent_id: row.agent_id,
    tool: row.tool,
    status: row.status,
    attempts: row.attempts,
    idempotency_key: row.idempotency_key,
    created_at: row.created_at.toISOString(),
    finished_at: row.finished_at ? row.finished_at.toISOString() : null,
    duration_ms: row.duration_ms,
  };
}

const SUMMARY_COLUMNS = ['id', 'agent_id', 'tool', 'status', 'attempts', 'idempotency_key', 'created_at', 'finished_at', 'duration_ms'] as const;

export function createTracesRepository(db: Kysely<Database>) {
  return {
    /** Appends events to a call's trace (on its row), inside the caller's transaction or on their own. */
    async appendEvents(callId: string, events: TraceEvent[], trx: Db = db): Promise<void> {
      if (events.length === 0) return;
      await trx
        .updateTable('calls')
        .set({ trace: sql`trace || ${jsonb(events)}` })
        .where('id', '=', callId)
        .execute();
    },

    /** A call's trace as its row holds it (empty for an unknown call). */
    async eventsFor(callId: string): Promise<TraceEvent[]> {
      const row = await db.selectFrom('calls').select('trace').where('id', '=', callId).executeTakeFirst();
      return (row?.trace as TraceEvent[] | undefined) ?? [];
    },

    /**
     * Newest first, keyset-paginated on (created_at, id). Each row carries `cursor_at`, its
     * created_at at full microsecond precision (a JS Date keeps only milliseconds, and a
     * millisecond cursor would skip rows created within the same millisecond).
     */
    async listCalls(filters: TraceFilters): Promise<Array<CallSummary & { cursor_at: string }>> {
      let query = db
        .selectFrom('calls')
        .select(SUMMARY_COLUMNS)
        .select(sql<string>`to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as('cursor_at'));
      if (filters.api_key_id) query = query.where('api_key_id', '=', filters.api_key_id);
      if (filters.agent_id) query = query.where('agent_id', '=', filters.agent_id);
      if (filters.tool) query = query.where('tool', '=', filters.tool);
      if (filters.status) query = query.where('status', '=', filters.status);
      if (filters.since) query = query.where('created_at', '>=', filters.since);
      if (filters.before) {
        const { created_at, id } = filters.before;
        query = query.where(sql<boolean>`(created_at, id) < (${created_at}::timestamptz, ${id})`);
      }
      const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(filters.limit).execute();
      return rows.map((row) => ({ ...toCallSummary(row), cursor_at: row.cursor_at }));
    },
  };
}
export type TracesRepository = ReturnType<typeof createTracesRepository>;
