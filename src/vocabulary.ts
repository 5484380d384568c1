/**
 * The words Invoke's data is made of, each spelled once: risk levels, approval thresholds,
 * approval statuses, call statuses and key scopes. Schemas (`z.enum(RISK_LEVELS)`), types and
 * renderers (emoji per status) import them from here, so adding a word is one edit.
 */

/** What a call's answer says happened. */
export const CALL_STATUSES = [
  'executed',
  'blocked',
  'pending_approval',
  'failed',
  'escalated',
  'outcome_reconciled',
  'replan_required',
  'unknown_outcome',
  'rejected',
  'cancelled',
] as const;
export type CallStatus = (typeof CALL_STATUSES)[number];

/** A tool's risk, lowest first (the order is used to rank them). */
export const RISK_LEVELS = ['low', 'medium', 'high', 'critical'] as const;
export type RiskLevel = (typeof RISK_LEVELS)[number];

/** From which risk on a call needs a human (`INVOKE_REQUIRE_APPROVAL_AT`). */
export const APPROVAL_THRESHOLDS = ['critical', 'high', 'never'] as const;
export type ApprovalThreshold = (typeof APPROVAL_THRESHOLDS)[number];

/** An approval's lifecycle: `pending`, then `approved` while its thaw runs, then a final status. */
export const APPROVAL_STATUSES = ['pending', 'approved', 'executed', 'failed', 'rejected', 'expired', 'cancelled', 'blocked', 'invalidated', 'escalated'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

/** Statuses no decision moves an approval out of. */
export const FINAL_APPROVAL_STATUSES: readonly ApprovalStatus[] = APPROVAL_STATUSES.filter((status) => status !== 'pending' && status !== 'approved');

/** What an API key may be allowed to do. */
export const SCOPES = [
  'tools:read',
  'tools:call',
  'state:verify',
  'outcomes:reconcile',
  'approvals:read',
  'approvals:write',
  'logs:read',
  'traces:read',
  'providers:admin',
] as const;
export type Scope = (typeof SCOPES)[number];

export function isRiskLevel(value: string): value is RiskLevel {
  return (RISK_LEVELS as readonly string[]).includes(value);
}
