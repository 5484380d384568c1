import type { PolicyUncomparable } from '../policy/policy.ts';
import type { TraceEvent } from '../traces/trace-recorder.ts';
import type { ParamEdit } from './param-edit.ts';

export { CALL_STATUSES, type CallStatus } from '../vocabulary.ts';
import type { CallStatus } from '../vocabulary.ts';

/** The pending approval a frozen call's answer shows. */
export interface ApprovalSummary {
  id: string;
  status: string;
  reason: string;
  risk: string;
  expires_at: string;
  approvals_required: number;
  frozen_state: Record<string, unknown> | null;
  previous_approval_id?: string;
  /** A signed, single-use page for deciding without Slack (when review links are on). */
  review_url?: string;
}

/** What `/v1/call` answers. Domain outcomes are answers, not errors. */
export interface CallAnswer {
  status: CallStatus;
  call_id: string;
  tool: string;
  agent_id: string;
  attempts: number;
  result?: unknown;
  error?: string;
  reason?: string;
  mismatches?: unknown[];
  /** Values policy rules could not compare (a deny / require_approval rule failed closed on them). */
  uncomparable?: PolicyUncomparable[];
  approval?: ApprovalSummary;
  reconciliation?: Record<string, unknown>;
  fallback?: { tool: string; used: boolean };
  /** Set when an approver edited the params before approving: what ran is `edited.params`. */
  edited?: ParamEdit;
  trace: TraceEvent[];
}

/** A checkpoint waits for a human: 202. Everything else Invoke decided: 200. */
export function httpStatusFor(answer: Pick<CallAnswer, 'status'>): number {
  return answer.status === 'pending_approval' || answer.status === 'escalated' ? 202 : 200;
}
