import type { CallRequest } from '../calls/call-request.ts';
import { newId } from '../calls/fingerprint.ts';
import { ValidationError } from '../errors.ts';
import type { Config } from '../config.ts';
import type { MatchedRule } from '../policy/policy.ts';
import type { CapabilityCard } from '../tools/types.ts';
import type { CallFreezer, FreezeRequest } from '../calls/call-freezer.ts';
import type { ApprovalSummary } from '../calls/call-types.ts';
import type { ApprovalNotifier } from './approval-notifier.ts';
import type { ApprovalsRepository } from './approvals-repository.ts';
import { assertEscalationAllowed } from './escalation.ts';
import { resolveRouting, type EscalationLevel } from './routing.ts';
import type { NewApproval } from './approval.ts';
import { actionDigest, actionOf, type Checkpoint } from './checkpoint.ts';

export interface FreezeInput extends FreezeRequest {
  /** Set when this approval replaces another (requeue after drift, escalation after expiry). */
  previousApprovalId?: string;
  /** Who may decide and where the card goes (routing.ts), when not the global lists. */
  approvers?: string[] | null;
  /** Escalation levels still ahead: the approval expires (and hands over) after the first one's delay. */
  escalationChain?: EscalationLevel[];
  expiresAt?: Date;
}

export type { ApprovalSummary };

export interface PendingApproval {
  row: NewApproval;
  /** What the agent's answer shows of it. */
  summary: ApprovalSummary;
}

/** How many distinct approvers must approve: the rule's or contract's quorum, at least two for critical risk. */
export function approvalsRequired(config: Config, card: CapabilityCard, rule: MatchedRule | null, request: CallRequest): number {
  const critical = card.risk === 'critical' ? config.criticalApprovals : 1;
  return Math.max(1, critical, rule?.approvals_required ?? 1, request.approval_contract?.approvals_required ?? 1);
}

function assertNotPast(expiresAt: string | undefined, field: string): void {
  if (expiresAt !== undefined && Date.parse(expiresAt) <= Date.now()) {
    throw new ValidationError(`${field} (${expiresAt}) is already past: the approval would expire before anyone could decide it`, { field });
  }
}

/** Builds a pending approval and its checkpoint: plain data, stored by the caller in its transaction. */
export function buildPendingApproval(config: Config, input: FreezeInput): PendingApproval {
  const { request, card } = input;
  const contract = request.approval_contract ?? null;
  const id = newId('apr');
  // A contract or rule may shorten the approval's life, never stretch it past the TTL for its risk.
  const riskLimit = Date.now() + config.approvalTtlMs[card.risk];
  const ruleLimit = input.policyRule?.expires_at ? Date.parse(input.policyRule.expires_at) : riskLimit;
  const contractLimit = contract?.expires_at ? Date.parse(contract.expires_at) : riskLimit;
  const chain = input.escalationChain ?? [];
  // With an escalation level ahead, this approval lasts until that level's turn.
  const handOver = chain[0] ? Date.now() + chain[0].after_seconds * 1000 : riskLimit;
  const expiresAt = input.expiresAt ?? new Date(Math.min(riskLimit, ruleLimit, contractLimit, handOver));
  const digest = actionDigest(request);
  const checkpoint: Checkpoint = {
    ...actionOf(request),
    variables: request.execution_state?.variables ?? {},
    tool_outputs: request.execution_state?.tool_outputs ?? {},
    policy_rule: input.policyRule,
    contract,
    entity_resolution: request.entity_resolution ?? null,
    frozen_state: input.frozenState,
    frozen_state_error: input.frozenStateError ?? null,
    failure: input.failure ?? null,
    requester: input.requester,
    callback_url: contract?.callback_url ?? request.callback_url ?? null,
    request,
    action_digest: digest,
    editable: card.editable !== false && contract?.editable !== false,
    ...(chain.length > 0 ? { escalation_chain: chain } : {}),
  };
  const required = approvalsRequired(config, card, input.policyRule, request);
  return {
    row: {
      id,
      call_id: input.callId,
      api_key_id: input.requester,
      requester_person: input.requesterPerson,
      agent_id: request.agent_id,
      tool: request.tool,
      risk: card.risk,
      reason: input.reason,
      checkpoint,
      expires_at: expiresAt,
      approvals_required: required,
      approvers: input.approvers ?? null,
      previous_approval_id: input.previousApprovalId ?? null,
      action_digest: digest,
    },
    summary: {
      id,
      status: 'pending',
      reason: input.reason,
      risk: card.risk,
      expires_at: expiresAt.toISOString(),
      approvals_required: required,
      frozen_state: input.frozenState,
      ...(input.previousApprovalId ? { previous_approval_id: input.previousApprovalId } : {}),
    },
  };
}

/**
 * The approvals side of a freeze, for the calls folder (which never imports approvals): builds
 * the pending approval and stores it, with its Slack card, in the call's transaction.
 */
export function createCallFreezer(deps: {
  config: Config;
  approvals: Pick<ApprovalsRepository, 'insertApproval'>;
  notifier: ApprovalNotifier;
  /** A review link for the agent's answer, when links are on. */
  reviewUrl?: ((approval: { id: string; expires_at: Date }) => string) | null;
}): CallFreezer {
  const { config, approvals, notifier, reviewUrl } = deps;
  return {
    assertRequestable(request) {
      // Checked on the way in only: an approval frozen under an older approver list still thaws.
      const configuredApprovers = [...config.approvers, ...(config.slack?.approverIds ?? [])];
      assertEscalationAllowed(request.approval_contract?.escalate_to, configuredApprovers, 'approval_contract.escalate_to');
      (request.policy?.rules ?? []).forEach((rule, i) => {
        if ('escalate_to' in rule) assertEscalationAllowed(rule.escalate_to, configuredApprovers, `policy.rules[${i}].escalate_to`);
      });
    },
    assertFreezable(request, policyRule) {
      // An approval that would be born expired is a mistake in the request, not a card to post.
      assertNotPast(request.approval_contract?.expires_at, 'approval_contract.expires_at');
      if (policyRule?.source === 'request') assertNotPast(policyRule.expires_at, `policy.rules[${policyRule.index}].expires_at`);
    },
    freeze(input) {
      // Throws (400) when a rule the agent sent names approvers or a channel the server does not.
      const routing = resolveRouting(config, input.card, input.policyRule);
      const pending = buildPendingApproval(config, { ...input, approvers: routing.entries, escalationChain: routing.chain });
      return {
        summary: reviewUrl ? { ...pending.summary, review_url: reviewUrl(pending.row) } : pending.summary,
        async store(trx) {
          await approvals.insertApproval(trx, pending.row);
          await notifier.created(trx, { approval: pending.row });
        },
      };
    },
  };
}
