import type { ApprovalCreated, ApprovalDecided, ApprovalNotifier } from '../approvals/approval-notifier.ts';
import { isSlackUser, isUserGroup, routingOf } from '../approvals/routing.ts';
import type { Checkpoint } from '../approvals/checkpoint.ts';
import type { DriftReport } from '../calls/state-verify.ts';
import type { Transact } from '../db/transact.ts';
import { readPath } from '../policy/conditions.ts';
import type { RiskLevel } from '../tools/types.ts';
import { approvalCard, deciderMention, decidedCard, ephemeralText, refetchedCard, threadReply } from './blocks.ts';
import type { DmFacts } from './dm.ts';
import { escapeText } from './mrkdwn.ts';
import type { ApprovalCardInput } from './card-types.ts';
import type { SlackOutbox, SlackPost } from './slack-outbox.ts';
import type { Approval, ApprovalsRepository } from '../approvals/approvals-repository.ts';

interface ApprovalFacts {
  id: string;
  tool: string;
  agent_id: string;
  risk: RiskLevel;
  reason: string;
  expires_at: Date | string;
  approvals_required: number;
  previous_approval_id: string | null;
  checkpoint: Pick<Checkpoint, 'params' | 'contract' | 'policy_rule' | 'entity_resolution' | 'frozen_state' | 'editable' | 'edited'>;
  approvers: string[] | null;
}

/** The card's facts, from an approval row (or one about to be inserted); `defaultDeciders` decide unrouted ones. */
export function cardInputOf(approval: ApprovalFacts, approvalsReceived: number, defaultDeciders: readonly string[], drift?: DriftReport | null): ApprovalCardInput {
  const routed = routingOf(approval.approvers).approvers;
  const cp = approval.checkpoint;
  const conditions = cp.contract?.conditions ?? {};
  return {
    approval_id: approval.id,
    intent: cp.contract?.intent ?? cp.policy_rule?.intent ?? approval.tool,
    tool: approval.tool,
    agent_id: approval.agent_id,
    risk: approval.risk,
    entity: cp.entity_resolution?.entity_id ?? null,
    expires_at: new Date(approval.expires_at),
    reason: approval.reason,
    params: cp.params,
    conditions: Object.entries(conditions).map(([field, condition]) => ({ field, condition, frozen_value: readPath(cp.frozen_state ?? {}, field) })),
    approvals_required: approval.approvals_required,
    approvals_received: approvalsReceived,
    drift: drift ?? null,
    previous_approval_id: approval.previous_approval_id,
    editable: cp.editable !== false,
    edited: cp.edited ?? null,
    deciders: routed.length > 0 ? routed : defaultDeciders,
  };
}

/** What a DM says of an approval. */
function dmFactsOf(approval: ApprovalFacts, kind: DmFacts['kind']): DmFacts {
  const cp = approval.checkpoint;
  const intent = cp.contract?.intent ?? cp.policy_rule?.intent ?? approval.tool;
  return { kind, intent, tool: approval.tool, agent_id: approval.agent_id, expires_at: new Date(approval.expires_at).toISOString() };
}

/** A one-line summary of what a tool returned, for the thread. */
function resultSummary(result: unknown): string | null {
  if (result === undefined) return null;
  const text = JSON.stringify(result);
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}

/** On a decision: the card updated without buttons, and a reply in its thread. */
function decisionPosts(row: Approval, votes: number, event: ApprovalDecided, deciders: readonly string[]): SlackPost[] {
  const input = cardInputOf(row, votes, deciders, event.drift);
  const decidedAt = row.decided_at ?? new Date();
  return [
    {
      role: 'update',
      approval_id: row.id,
      message: decidedCard({
        ...input,
        edited: event.edited ?? input.edited ?? null,
        status: event.status,
        outcome: event.outcome,
        decided_by: event.actor,
        decided_at: decidedAt,
        detail: event.reason ?? null,
      }),
    },
    {
      role: 'reply',
      approval_id: row.id,
      message: threadReply({
        status: event.status,
        outcome: event.outcome,
        decided_by: event.actor,
        reason: event.reason ?? null,
        result_summary: resultSummary(event.answer?.result),
        new_approval_id: event.newApprovalId ?? null,
        edited: event.edited ?? null,
        comment: event.comment ?? null,
      }),
    },
  ];
}

/**
 * Approvals to Slack: a card when one is created (in the replaced card's thread for a requeue),
 * and on a decision the card updated without buttons plus a reply in its thread. Everything
 * goes through the outbox, in the transaction of the change it reports.
 */
export function createSlackNotifier(
  transact: Transact,
  approvals: Pick<ApprovalsRepository, 'findApproval' | 'findApprovals' | 'lockApproval' | 'voteCount' | 'voteCounts'>,
  outbox: SlackOutbox,
  channel: string,
  approverIds: readonly string[],
  /** A review link for pending cards; only absolute links (Slack opens nothing else). */
  reviewUrl: ((approval: { id: string; expires_at: Date }) => string) | null = null,
): ApprovalNotifier & {
  refetched(approvalId: string, live: { state_source: string; drift: DriftReport | null }): Promise<void>;
} {
  /** Approvals routed to a channel (by card, rule or escalation) post their card there. */
  function channelFor(approvers: string[] | null): string {
    return routingOf(approvers).channel ?? channel;
  }

  /**
   * DMs to the Slack users and groups an approval names (not to the global lists: those watch the
   * channel), sent once its card is posted; nothing when it names none.
   */
  function dmPost(approval: ApprovalFacts & { requester_person: string | null }, kind: DmFacts['kind']): SlackPost[] {
    const named = routingOf(approval.approvers).approvers.filter((entry) => isSlackUser(entry) || isUserGroup(entry));
    if (named.length === 0) return [];
    const exclude = [approval.agent_id, ...(approval.requester_person ? [approval.requester_person] : [])];
    return [{ role: 'dm_fanout', approval_id: approval.id, approvers: named, exclude, facts: dmFactsOf(approval, kind) }];
  }

  /** A pending card carries a fresh link (a refetched card too: the first one may have been used). */
  function withLink(input: ApprovalCardInput, approval: { id: string; expires_at: Date }): ApprovalCardInput {
    return reviewUrl ? { ...input, review_url: reviewUrl(approval) } : input;
  }

  return {
    async created(trx, event: ApprovalCreated) {
      const message = approvalCard(withLink(cardInputOf(event.approval, 0, approverIds, event.drift), event.approval));
      await outbox.enqueueMany(trx, [
        { role: 'card', approval_id: event.approval.id, channel: channelFor(event.approval.approvers), thread_of: event.replaces ?? null, message },
        ...dmPost(event.approval, 'posted'),
      ]);
    },

    async decided(trx, event: ApprovalDecided) {
      const row = await approvals.findApproval(event.approvalId, trx);
      if (!row) throw new Error(`approval ${event.approvalId} vanished inside its own decision`);
      await outbox.enqueueMany(trx, decisionPosts(row, await approvals.voteCount(row.id, trx), event, approverIds));
    },

    async decidedInBulk(trx, decisions) {
      if (decisions.length === 0) return;
      const ids = decisions.map((event) => event.approvalId);
      const rows = new Map((await approvals.findApprovals(trx, ids)).map((row) => [row.id, row]));
      const votesOf = await approvals.voteCounts(trx, ids);
      await outbox.enqueueMany(
        trx,
        decisions.flatMap((event) => {
          const row = rows.get(event.approvalId);
          if (!row) throw new Error(`approval ${event.approvalId} vanished inside its own decision`);
          return decisionPosts(row, votesOf.get(row.id) ?? 0, event, approverIds);
        }),
      );
    },

    async reminded(trx, event) {
      const addressed = routingOf(event.approvers).approvers;
      const mentions = (addressed.length > 0 ? addressed : approverIds).map(deciderMention).join(' ');
      const when = Math.floor(event.expiresAt.getTime() / 1000);
      const text = `:alarm_clock: ${mentions} this approval is still waiting and expires <!date^${when}^{time} {date_short_pretty}|${event.expiresAt.toISOString()}>.`;
      const row = await approvals.findApproval(event.approvalId, trx);
      await outbox.enqueueMany(trx, [{ role: 'reply', approval_id: event.approvalId, message: ephemeralText(text) }, ...(row ? dmPost(row, 'reminder') : [])]);
    },

    async needsAttention(trx, event) {
      const text = `:warning: Call \`${escapeText(event.callId)}\` (${escapeText(event.tool)}, agent ${escapeText(event.agentId)}) has an unknown outcome that Invoke cannot reconcile: ${escapeText(event.reason)}. Check the tool before anyone repeats it.`;
      await outbox.enqueue(trx, { role: 'notice', channel, message: ephemeralText(text) });
    },

    async refetched(approvalId, live) {
      // Under the row's lock, and only while pending: a decision committing meanwhile comes
      // after this in the outbox, so the decided card is the one that stays.
      await transact(async (trx) => {
        const row = await approvals.lockApproval(trx, approvalId);
        if (row?.status !== 'pending') return;
        const message = refetchedCard(withLink(cardInputOf(row, await approvals.voteCount(row.id, trx), approverIds), row), live, new Date());
        await outbox.enqueue(trx, { role: 'update', approval_id: approvalId, message });
      });
    },
  };
}
export type SlackNotifier = ReturnType<typeof createSlackNotifier>;
