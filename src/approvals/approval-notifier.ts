import type { CallAnswer } from '../calls/call-types.ts';
import type { ParamEdit } from '../calls/param-edit.ts';
import type { DriftReport } from '../calls/state-verify.ts';
import type { Trx } from '../db/transact.ts';
import type { ApprovalStatus, NewApproval } from './approval.ts';

export interface ApprovalCreated {
  approval: NewApproval;
  /** The approval this one replaces: its card's thread is where the new card goes. */
  replaces?: string | null;
  drift?: DriftReport | null;
}

export interface ApprovalDecided {
  approvalId: string;
  status: ApprovalStatus;
  outcome: string;
  actor: string;
  reason?: string | null;
  answer?: CallAnswer;
  drift?: DriftReport | null;
  newApprovalId?: string | null;
  /** The approver edited the params before approving. */
  edited?: ParamEdit | null;
  /** The approver's comment on an approval. */
  comment?: string | null;
}

/**
 * Told of every approval created and decided, inside the transaction that does it, so what it
 * writes (Slack posts in the outbox) commits or rolls back with the decision.
 */
export interface ApprovalNotifier {
  created(trx: Trx, event: ApprovalCreated): Promise<void>;
  decided(trx: Trx, event: ApprovalDecided): Promise<void>;
  /** Many decisions made in one statement (the expiry sweep); the rows are read, as they now are, only by a notifier that needs them. */
  decidedInBulk(trx: Trx, decisions: ApprovalDecided[]): Promise<void>;
  /** An approval is close to expiry and still undecided. */
  reminded(trx: Trx, event: { approvalId: string; expiresAt: Date; approvers: string[] | null }): Promise<void>;
  /** A call ended in an unknown outcome that nobody can reconcile automatically: a human should look. */
  needsAttention(trx: Trx, event: { callId: string; tool: string; agentId: string; reason: string }): Promise<void>;
}

export const silentNotifier: ApprovalNotifier = {
  created: async () => {},
  decided: async () => {},
  decidedInBulk: async () => {},
  reminded: async () => {},
  needsAttention: async () => {},
};
