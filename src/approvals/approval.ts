import type { RiskLevel } from '../tools/types.ts';
import type { Checkpoint } from './checkpoint.ts';

/** Every status an approval takes: `pending`, then `approved` while its call runs, then one final status. */
export const APPROVAL_STATUSES = ['pending', 'approved', 'executed', 'failed', 'rejected', 'expired', 'cancelled', 'blocked', 'invalidated', 'escalated'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

/** Statuses after which nothing changes (a waiting agent stops waiting). */
export const FINAL_APPROVAL_STATUSES: ReadonlySet<ApprovalStatus> = new Set(['executed', 'failed', 'rejected', 'expired', 'cancelled', 'blocked', 'invalidated', 'escalated']);

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
