import type { ApprovalService, ApprovalView } from '../approvals/approval-service.ts';

export interface DecidableApprovals {
  /** Whether the Slack user is an approver at all: a global one, or one some pending approval is routed to. */
  isApprover: boolean;
  /** Pending approvals they may decide now, oldest first. */
  approvals: ApprovalView[];
  /** False when more approvals are pending than were looked through. */
  scannedAll: boolean;
}

/**
 * "Which pending approvals may this Slack user decide?", asked in one place: the approval
 * service's own decision check (the approval's routing, never the requester's person or agent),
 * and not twice for a quorum.
 */
export function createDecidableApprovals(deps: { approvals: ApprovalService; isGlobalApprover: (userId: string) => Promise<boolean> }) {
  const { approvals } = deps;

  return {
    async pendingFor(userId: string): Promise<DecidableApprovals> {
      const { approvals: decidable, scannedAll } = await approvals.pendingDecidableBy({ approver: userId, via: 'slack' });
      const isApprover = decidable.length > 0 || (await deps.isGlobalApprover(userId));
      return { isApprover, approvals: decidable, scannedAll };
    },
  };
}
export type DecidableApprovalsFinder = ReturnType<typeof createDecidableApprovals>;
