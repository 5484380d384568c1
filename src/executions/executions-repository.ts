import type { Kysely, Selectable } from 'kysely';
import type { CallStatus } from '../calls/call-types.ts';
import type { Database, ExecutionsTable } from '../db/schema.ts';

/** What an execution's status says about the call it ran. */
export const EXECUTION_STATUSES = ['completed', 'pending_approval', 'blocked', 'replan_required', 'failed', 'unknown_outcome', 'rejected', 'cancelled'] as const;
export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];

export interface NewExecution {
  id: string;
  workflow_id: string;
  api_key_id: string;
  agent_id: string;
  idempotency_key: string;
  call_id: string;
  status: ExecutionStatus;
  final_outcome: CallStatus;
}

export interface Execution extends Omit<NewExecution, 'call_id' | 'final_outcome'> {
  call_id: string | null;
  final_outcome: CallStatus | null;
  created_at: Date;
}

function toExecution(row: Selectable<ExecutionsTable>): Execution {
  const { updated_at: _updated, ...rest } = row;
  return { ...rest, status: row.status as ExecutionStatus, final_outcome: row.final_outcome as CallStatus | null };
}

/** Executions: one row per (API key, idempotency key), written once. */
export function createExecutionsRepository(db: Kysely<Database>) {
  return {
    /** Records the execution unless the key already has one; returns the one the key holds. */
    async recordOnce(execution: NewExecution): Promise<Execution> {
      await db
        .insertInto('executions')
        .values(execution)
        .onConflict((oc) => oc.columns(['api_key_id', 'idempotency_key']).doNothing())
        .execute();
      const row = await db
        .selectFrom('executions')
        .selectAll()
        .where('api_key_id', '=', execution.api_key_id)
        .where('idempotency_key', '=', execution.idempotency_key)
        .executeTakeFirstOrThrow();
      return toExecution(row);
    },

    /** Newest first; `apiKeyId` limits to one key's executions. */
    async list(apiKeyId: string | null, limit: number): Promise<Execution[]> {
      let query = db.selectFrom('executions').selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit);
      if (apiKeyId !== null) query = query.where('api_key_id', '=', apiKeyId);
      return (await query.execute()).map(toExecution);
    },

    async find(id: string, apiKeyId: string | null): Promise<Execution | undefined> {
      let query = db.selectFrom('executions').selectAll().where('id', '=', id);
      if (apiKeyId !== null) query = query.where('api_key_id', '=', apiKeyId);
      const row = await query.executeTakeFirst();
      return row && toExecution(row);
    },
  };
}
export type ExecutionsRepository = ReturnType<typeof createExecutionsRepository>;
