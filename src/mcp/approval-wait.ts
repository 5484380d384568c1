import type { ApprovalService, ApprovalView } from '../approvals/approval-service.ts';
import type { CallAnswer } from '../calls/call-types.ts';
import { FINAL_APPROVAL_STATUSES } from '../vocabulary.ts';

/** How often a waiting agent hears that it still waits (MCP clients time out requests that stay silent). */
export const PROGRESS_EVERY_MS = 5_000;

export interface WaitProgress {
  approval: ApprovalView;
  waitedMs: number;
  totalMs: number;
}

export interface ApprovalWaitDeps {
  approvals: Pick<ApprovalService, 'get'>;
  /** The stored answer of a call (its final answer once its approval is decided). */
  answerOf: (callId: string) => Promise<CallAnswer | null>;
  /** The longest one long-poll may last (`INVOKE_APPROVAL_WAIT_MAX`); 0 turns waiting off. */
  longPollMaxMs: number;
}

export interface WaitOutcome {
  /** The approval last waited on (a requeue or an escalation replaces the first one). */
  approval: ApprovalView;
  /** The call's answer once its approval is decided; null while it still waits. */
  answer: CallAnswer | null;
}

const isFinal = (view: ApprovalView) => FINAL_APPROVAL_STATUSES.includes(view.status);

/**
 * The approval a decided approval handed the call to, if any: drift requeues it as a fresh
 * pending approval, an expiry may escalate it. The call's stored answer names it.
 */
function successorOf(view: ApprovalView, answer: CallAnswer | null): string | null {
  const next = answer?.approval;
  if (!next || next.id === view.id) return null;
  return answer.status === 'pending_approval' || answer.status === 'escalated' ? next.id : null;
}

/**
 * Waits up to `waitMs` for a call's approval to be decided, through the approval service's
 * long-poll (woken by the decision on any replica), in steps of `PROGRESS_EVERY_MS` with a
 * progress report before each. Stops early when `signal` aborts (the client went away); the
 * call itself is never touched.
 */
export async function waitForDecision(
  deps: ApprovalWaitDeps,
  approvalId: string,
  waitMs: number,
  signal: AbortSignal,
  onProgress: (progress: WaitProgress) => Promise<void>,
): Promise<WaitOutcome> {
  const started = Date.now();
  const stepMs = Math.min(PROGRESS_EVERY_MS, deps.longPollMaxMs);
  let view = await deps.approvals.get(approvalId);
  for (;;) {
    if (isFinal(view)) {
      const answer = await deps.answerOf(view.call_id);
      const successor = successorOf(view, answer);
      if (successor === null) return { approval: view, answer };
      view = await deps.approvals.get(successor);
      continue;
    }
    const waitedMs = Date.now() - started;
    const remaining = waitMs - waitedMs;
    if (remaining <= 0 || stepMs <= 0 || signal.aborted) return { approval: view, answer: null };
    await onProgress({ approval: view, waitedMs, totalMs: waitMs });
    view = await deps.approvals.get(view.id, Math.min(remaining, stepMs));
  }
}
