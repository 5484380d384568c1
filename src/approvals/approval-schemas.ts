import { APPROVAL_STATUSES } from '../vocabulary.ts';
import { z } from 'zod';
import { paramEditSchema } from '../calls/call-schemas.ts';
import { openObject } from '../http/error-schema.ts';

export const approvalListQuery = z.object({ status: z.enum(APPROVAL_STATUSES).optional(), limit: z.coerce.number().int().min(1).max(500).default(100) }).strict();
export const approvalGetQuery = z.object({ wait: z.coerce.number().min(0).max(3600).default(0) }).strict();
export const approvalIdParams = z.object({ id: z.string().min(1).max(100) });
/**
 * The original clients' free-text reviewer: kept as a note with the decision, never taken as
 * identity (the approver is the key's `approver_id`; the original's free text was a hole).
 */
const reviewedBy = z.string().min(1).max(200).optional();

export const approveBodySchema = z
  .object({
    approver: z.string().min(1).max(200).optional(),
    current_state: z.record(z.string(), z.unknown()).optional(),
    comment: z.string().max(2000).optional(),
    /** Edited params: validated against the tool's schema and checked again by policy before they run. */
    params: z.record(z.string(), z.unknown()).optional(),
    reviewed_by: reviewedBy,
  })
  .strict();
export type ApproveBody = z.infer<typeof approveBodySchema>;
/** A reason is required, except from the original clients, which send only `reviewed_by`. */
export const rejectBodySchema = z
  .object({ approver: z.string().min(1).max(200).optional(), reason: z.string().min(1).max(2000).optional(), reviewed_by: reviewedBy })
  .strict()
  .refine((body) => body.reason !== undefined || body.reviewed_by !== undefined, { message: 'reason is required', path: ['reason'] });
export type RejectBody = z.infer<typeof rejectBodySchema>;

/** An approval as the API shows it. Open: the checkpoint's fields depend on the call. */
export const approvalViewSchema = openObject({
  id: z.string(),
  call_id: z.string(),
  status: z.enum(APPROVAL_STATUSES),
  tool: z.string(),
  agent_id: z.string(),
  risk: z.string(),
  reason: z.string(),
  created_at: z.string(),
  expires_at: z.string(),
  decided_at: z.string().nullable(),
  decision: z.unknown(),
  approvals_required: z.number(),
  /** The votes so far (a quorum needs `approvals_required` distinct approvers). */
  approvals: z.array(z.object({ approver: z.string(), at: z.string() })),
  previous_approval_id: z.string().nullable(),
  /** Who may decide, when routed (a card, a rule or an escalation named them; may include the card's channel); null: the global lists. */
  approvers: z.array(z.string()).nullable(),
  /** Set when the params were edited: on the decision of an approved edit, or on an approval an edit created. */
  edited: paramEditSchema.optional(),
  /** On `GET /v1/approvals/:id` of a pending approval, when INVOKE_LINK_SECRET is set: its review page. */
  review_url: z.string().optional(),
});
export const approvalListAnswerSchema = z.object({ approvals: z.array(approvalViewSchema) });
export const approvalAnswerSchema = z.object({ approval: approvalViewSchema });
export const approvalAuditAnswerSchema = z.object({
  audit: z.array(openObject({ kind: z.string(), actor: z.string().nullable(), detail: z.unknown(), at: z.string() })),
});
/** What approve, reject and refetch answer: the approval and what the decision led to. */
export const approvalDecisionAnswerSchema = openObject({ approval: approvalViewSchema });
