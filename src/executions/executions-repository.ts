import type { Kysely, Selectable } from 'kysely';
import type { Database, ExecutionsTable } from '../db/schema.ts';

export type ExecutionRow = Selectable<ExecutionsTable>;

export interface NewExecution {
  id: string;
  workflow_id: string;
  api_key_id: string;
  agent_id: string;
  idempotency_key: string;
  call_id: string;
  status: string;
  final_outcome: string;
}

/** Executions: one row per (API key, idempotency key), written once. */
export function createExecutionsRepository(db: Kysely<Database>) {
  return {
    /** Records the execution unless the key already has one; returns the one the key holds. */
    async recordOnce(execution: NewExecution): Promise<ExecutionRow> {
      await db
        .insertInto('executions')
        .values(execution)
        .onConflict((oc) => oc.columns(['api_key_id', 'idempotency_key']).doNothing())
        .execute();
      return db
        .selectFrom('executions')
        .selectAll()
        .where('api_key_id', '=', execution.api_key_id)
        .where('idempotency_key', '=', execution.idempotency_key)
        .executeTakeFirstOrThrow();
    },

    /** Newest first; `apiKeyId` limits to one key's executions. */
    async list(apiKeyId: string | null, limit: number): Promise<ExecutionRow[]> {
      let query = db.selectFrom('executions').selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit);
      if (apiKeyId !== null) query = query.where('api_key_id', '=', apiKeyId);
      return query.execute();
    },

    async find(id: string, apiKeyId: string | null): Promise<ExecutionRow | undefined> {
      let query = db.selectFrom('executions').selectAll().where('id', '=', id);
      if (apiKeyId !== null) query = query.where('api_key_id', '=', apiKeyId);
      return query.executeTakeFirst();
    },
  };
}
export type ExecutionsRepository = ReturnType<typeof createExecutionsRepository>;
