import type { ParamEdit } from '../calls/param-edit.ts';
import type { DriftReport } from '../calls/state-verify.ts';
import type { RiskLevel } from '../vocabulary.ts';

/** What an approval card shows: plain data, built from an approval row by the Slack notifier. */
export interface ApprovalCardInput {
  approval_id: string;
  /** The contract's intent, else the rule's intent, else the tool key. */
  intent: string;
  tool: string;
  agent_id: string;
  risk: RiskLevel;
  /** The resolved entity (`entity_resolution.entity_id`), if any. */
  entity: string | null;
  expires_at: Date;
  /** Why it was frozen: the rule's reason, or the contract, or the escalation. */
  reason: string;
  params: Record<string, unknown>;
  /** Contract conditions with the value each field had at freeze time. */
  conditions: Array<{ field: string; condition: unknown; frozen_value: unknown }>;
  approvals_required: number;
  approvals_received: number;
  /** Set on a requeued card: what changed, field by field (approved value -> live value). */
  drift?: DriftReport | null;
  /** Set when this approval replaces another (requeue or escalation). */
  previous_approval_id?: string | null;
  /** False: no "Edit & approve" button (the card or the contract opted out); absent means editable. */
  editable?: boolean;
  /** Params an approver edited: the card shows them and the diff from the agent's. */
  edited?: ParamEdit | null;
  /** Who may decide: Slack users (U…, W…), user groups (S…), API approver ids. */
  deciders?: readonly string[];
  /** An absolute review link (web page) for approvers away from Slack. */
  review_url?: string | null;
}

/** How a card looks once decided (buttons gone). */
export interface DecidedCardInput extends ApprovalCardInput {
  status: string;
  outcome: string;
  decided_by: string;
  decided_at: Date;
  detail?: string | null;
}

/** A Slack message: top-level text (notifications, accessibility) plus blocks. */
export interface SlackMessage {
  text: string;
  blocks: Array<Record<string, unknown>>;
}
