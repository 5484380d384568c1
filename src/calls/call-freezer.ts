import type { Trx } from '../db/transact.ts';
import type { MatchedRule } from '../policy/policy.ts';
import type { CapabilityCard } from '../tools/types.ts';
import type { CallRequest } from './call-request.ts';
import type { ApprovalSummary } from './call-types.ts';

/** The call's side of a freeze: what it knows when it stops for a human. */
export interface FreezeRequest {
  request: CallRequest;
  card: CapabilityCard;
  callId: string;
  /** The requesting key's id. */
  requester: string;
  /** The person behind the requesting key (its `approver_id`, else the key id). */
  requesterPerson: string;
  reason: string;
  policyRule: MatchedRule | null;
  frozenState: Record<string, unknown> | null;
  frozenStateError?: string;
  failure?: { status: string; error: string | null; attempts: number };
}

/** A pending approval built for a frozen call, stored in the transaction that stores the call's answer. */
export interface FrozenCall {
  summary: ApprovalSummary;
  store(trx: Trx): Promise<void>;
}

/**
 * How a call freezes without knowing approvals: the approvals folder implements this and the
 * composition root passes it in, so calls never import approvals (approvals import calls).
 */
export interface CallFreezer {
  /** On the way in: escalation targets the server does not list are refused (400). */
  assertRequestable(request: CallRequest): void;
  /**
   * Before a new call freezes (not on a replay, not on an escalation after a run): an
   * `expires_at` already past, on the contract or the request rule that froze it, is refused (400).
   */
  assertFreezable(request: CallRequest, policyRule: MatchedRule | null): void;
  freeze(input: FreezeRequest): FrozenCall;
}
