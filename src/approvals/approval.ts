import type { RiskLevel } from '../tools/types.ts';
import type { Checkpoint } from './checkpoint.ts';

import type { ApprovalStatus } from '../vocabulary.ts';

// The statuses are words of the vocabulary; re-exported where approvals are typed.
export { APPROVAL_STATUSES, type ApprovalStatus } from '../vocabulary.ts';

/** A pending approval as the freeze builds it, before it is stored. */
export interface NewApproval {
  id: string;
  call_id: string;
  api_key_id: string;
  /** The person behind the requesting key, who may never decide it. */
  requester_person: string;
  agent_id: string;
  tool: string;
  risk: RiskLevel;
  reason: string;
  checkpoint: Checkpoint;
  expires_at: Date;
  approvals_required: number;
  approvers: string[] | null;
  previous_approval_id: string | null;
  action_digest: string;
}

/** A stored approval: its checkpoint typed once, where the repository reads it. */
export interface Approval extends Omit<NewApproval, 'requester_person'> {
  status: ApprovalStatus;
  /** Null on approvals stored before it was recorded. */
  requester_person: string | null;
  created_at: Date;
  decided_at: Date | null;
  decision: unknown;
  slack_channel: string | null;
  slack_ts: string | null;
  slack_thread_ts: string | null;
}
