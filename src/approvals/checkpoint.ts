import type { ApprovalContract, CallRequest } from '../calls/call-request.ts';
import { canonicalJson, sha256Hex } from '../calls/fingerprint.ts';
import type { ParamEdit } from '../calls/param-edit.ts';
import type { MatchedRule } from '../policy/policy.ts';
import type { EscalationLevel } from '../policy/routing-fields.ts';

/** The frozen snapshot of a call awaiting approval: everything a human and the thaw need. */
export interface Checkpoint {
  tool: string;
  params: Record<string, unknown>;
  agent_id: string;
  action: string | null;
  env: string | null;
  workflow: string | null;
  resource: string | null;
  variables: Record<string, unknown>;
  tool_outputs: Record<string, unknown>;
  policy_rule: MatchedRule | null;
  contract: ApprovalContract | null;
  entity_resolution: CallRequest['entity_resolution'] | null;
  frozen_state: Record<string, unknown> | null;
  frozen_state_error: string | null;
  failure: { status: string; error: string | null; attempts: number } | null;
  requester: string;
  callback_url: string | null;
  request: CallRequest;
  action_digest: string;
  /** False when the card or the contract opted out of edits (absent on older checkpoints: editable). */
  editable?: boolean;
  /** Set on an approval created by an edit (quorum restarted): `request` already holds the edited params. */
  edited?: ParamEdit | null;
  /**
   * The escalation levels still ahead of this approval (absent when none): when it expires
   * undecided, the first takes over (src/approvals/routing.ts).
   */
  escalation_chain?: EscalationLevel[];
}

/** The exact action an approval is bound to. */
export function actionOf(request: CallRequest) {
  return {
    tool: request.tool,
    params: request.params,
    agent_id: request.agent_id,
    action: request.action ?? null,
    env: request.env ?? null,
    workflow: request.workflow ?? null,
    resource: request.resource ?? null,
  };
}

/** Digest of the canonical action: stored at freeze, checked at thaw, so what runs is what was approved. */
export function actionDigest(request: CallRequest): string {
  return sha256Hex(canonicalJson(actionOf(request)));
}
