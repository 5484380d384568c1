import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/schema.ts';
import { jsonb } from '../db/store.ts';

export interface NewApproval {
  id: string;
  call_id: string;
  api_key_id: string;
  agent_id: string;
  tool: string;
  risk: string;
  reason: string;
  checkpoint: Record<string, unknown>;
  expires_at: Date;
}

export function createApprovalsRepository(db: Kysely<Database>) {
  return {
    async insertApproval(trx: Transaction<Database>, approval: NewApproval): Promise<void> {
      await trx
        .insertInto('approvals')
        .values({ ...approval, status: 'pending', checkpoint: jsonb(approval.checkpoint), expires_at: approval.expires_at })
        .execute();
    },

    async findApproval(id: string) {
      return db.selectFrom('approvals').selectAll().where('id', '=', id).executeTakeFirst();
    },
  };
}
export type ApprovalsRepository = ReturnType<typeof createApprovalsRepository>;
