import { AppError } from '../errors.ts';
import type { ApprovalService, ApprovalView } from '../approvals/approval-service.ts';

/** How many of the oldest pending approvals are looked through (each is checked on its own). */
const SCANNED = 200;

export interface DecidableApprovals {
  /** Whether the Slack user is an approver at all (config lists, user groups). */
  isApprover: boolean;
  /** Pending approvals they may decide now, oldest first. */
  approvals: ApprovalView[];
  /** False when more approvals are pending than were looked through. */
  scannedAll: boolean;
}

/**
 * "Which pending approvals may this Slack user decide?", asked in one place so the rule can change
 * in one place: an approver (the same check as an Approve click), whom the approval service lets
 * decide this approval (never the requester's person or agent; only the people an escalation
 * names), and who has not voted on it yet (a quorum counts each approver once).
 */
export function createDecidableApprovals(deps: { approvals: ApprovalService; isApprover: (userId: string) => Promise<boolean> }) {
  const { approvals } = deps;

  async function mayDecideNow(userId: string, view: ApprovalView): Promise<boolean> {
    if (view.approvals.some((vote) => vote.approver === userId)) return false;
    return approvals.assertMayDecide({ approver: userId, via: 'slack' }, view.id).then(
      () => true,
      (error: unknown) => {
        if (error instanceof AppError) return false;
        throw error;
      },
    );
  }

  return {
    async pendingFor(userId: string): Promise<DecidableApprovals> {
      if (!(await deps.isApprover(userId))) return { isApprover: false, approvals: [], scannedAll: true };
      const pending = await approvals.list('pending', SCANNED);
      const allowed = await Promise.all(pending.map((view) => mayDecideNow(userId, view)));
      return { isApprover: true, approvals: pending.filter((_, i) => allowed[i]), scannedAll: pending.length < SCANNED };
    },
  };
}
export type DecidableApprovalsFinder = ReturnType<typeof createDecidableApprovals>;
