import { z } from 'zod';

/**
 * The routing fields a capability card and a policy rule may carry: who decides (`approvers`),
 * where the card goes (`channel`) and, for admins only, an escalation chain (`escalate_to`).
 * Plain schemas, shared by the tools and policy folders; what they mean is in
 * `src/approvals/routing.ts`.
 */

/** `#finance` or a Slack channel id (C…, G…): the one shape `isSlackChannel` recognises. */
export const SLACK_CHANNEL = /^(#[a-z0-9][a-z0-9._-]{0,79}|[CG][A-Z0-9]{6,})$/;

/** A Slack user (U…, W…), a Slack user group (S…), or an API approver id (a key's `approver_id`). */
const approverEntry = z
  .string()
  .min(1)
  .max(200)
  .refine((entry) => !SLACK_CHANNEL.test(entry), 'is a channel: name channels in `channel`, not among approvers');

export const approversSchema = z.array(approverEntry).min(1).max(50);
export const channelSchema = z.string().regex(SLACK_CHANNEL, 'a channel: #name or a channel id (C…, G…)');

/** One level of an escalation chain: after `after_seconds` undecided, the approval goes to it. */
export const escalationLevelSchema = z
  .object({
    approvers: approversSchema,
    channel: channelSchema.optional(),
    /** How long the level before this one waits for a decision before handing over. */
    after_seconds: z
      .number()
      .int()
      .min(1)
      .max(30 * 86_400),
  })
  .strict();
export type EscalationLevel = z.infer<typeof escalationLevelSchema>;

export const escalationChainSchema = z.array(escalationLevelSchema).min(1).max(10);

/** Whether an `escalate_to` value is a chain of levels rather than the single-step list. */
export function isEscalationChain(value: unknown): value is EscalationLevel[] {
  return Array.isArray(value) && value.length > 0 && value.every((level) => typeof level === 'object' && level !== null);
}
